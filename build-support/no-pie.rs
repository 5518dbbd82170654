//! Build script of the crates whose executables run in the lab VM (ipvsctl, ipvs-agent, the
//! end-to-end tests): debug builds link them without PIE.
//!
//! The VM runs them under TCG, where a PIE's start-up relocations (over 100,000 in a debug
//! ipvsctl, a copy-on-write fault on every page of `.data.rel.ro`) cost more than the work:
//! 0.34-0.43 s per `ipvsctl -Ln` against 0.13-0.14 s without PIE, measured in the same VM
//! (ipvsadm: 0.09 s). Release builds stay position-independent, for ASLR.

fn main() {
    println!("cargo:rerun-if-changed=../build-support/no-pie.rs");
    let debug = std::env::var("PROFILE").is_ok_and(|p| p == "debug");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if debug && linux {
        // Cargo refuses a bin link argument for a package without a bin (the tests).
        let dir = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default();
        if std::path::Path::new(&dir).join("src/main.rs").exists() {
            println!("cargo:rustc-link-arg-bins=-no-pie");
        }
        println!("cargo:rustc-link-arg-tests=-no-pie");
    }
}
