//! Build script of the crates whose executables start often: ipvsctl, and in debug builds
//! ipvs-agent and the end-to-end tests too. It links them without PIE.
//!
//! A PIE's start-up relocations write a copy-on-write page for every page of
//! `.data.rel.ro`: over 100,000 relocations in a debug ipvsctl, 47,000 in a release one. Under
//! TCG (the lab VM) that costs more than the work: `ipvsctl -ln`, release, 164-223 ms against
//! 72-87 ms without PIE in the same VM (ipvsadm: 58-66 ms); debug, 0.34-0.43 s against
//! 0.13-0.14 s. On hardware it is about 1 ms a call.
//!
//! So ipvsctl, a short-lived client, is never PIE; the agent, a long-running daemon, stays
//! PIE in release builds, for ASLR. `IPVS_PIE=1` in the build's environment keeps every
//! executable PIE (a packager's choice).

fn main() {
    println!("cargo:rerun-if-changed=../build-support/no-pie.rs");
    println!("cargo:rerun-if-env-changed=IPVS_PIE");
    let env = |name: &str| std::env::var(name).unwrap_or_default();
    let wanted = env("PROFILE") == "debug" || env("CARGO_PKG_NAME") == "ipvsctl";
    if !wanted || env("CARGO_CFG_TARGET_OS") != "linux" || !env("IPVS_PIE").is_empty() {
        return;
    }
    // Cargo refuses a bin link argument for a package without a bin (the tests).
    if std::path::Path::new(&env("CARGO_MANIFEST_DIR"))
        .join("src/main.rs")
        .exists()
    {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    if env("PROFILE") == "debug" {
        println!("cargo:rustc-link-arg-tests=-no-pie");
    }
}
