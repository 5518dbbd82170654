//! An ipvsctl built without the `policy-test` feature refuses `policy test` as a usage error
//! that says how to get it. Runs only in such a build:
//! `cargo test -p ipvsctl --no-default-features --test without_policy_engine`.

#![cfg(not(feature = "policy-test"))]

#[test]
fn policy_test_is_refused_with_a_usage_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ipvsctl"))
        .args(["policy", "test", "policy.wasm", "--input", "{}"])
        .output()
        .expect("run ipvsctl");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ipvsctl: this ipvsctl was built without the policy engine; \
         rebuild with --features policy-test\n"
    );
}
