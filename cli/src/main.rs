//! `ipvsctl`: a remote client of ipvs-agent that speaks ipvsadm's command line, plus
//! iproute2-style `link` and `addr` commands for the interfaces that hold virtual IPs.
//!
//! Exit statuses are listed in `ipvsctl --help`; the program itself is the library.

fn main() -> std::process::ExitCode {
    // Arguments that are not UTF-8 cannot name services or links; keep them visible in errors.
    let argv = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    ipvsctl::main(argv)
}
