//! Project tasks: the single test command and the lab VM (a stock Debian kernel with IPVS,
//! booted under qemu) that the end-to-end tests run in.

mod bench;
mod cargo;
mod console;
mod cpio;
mod exec;
mod fuzz;
mod host;
mod image;
mod init;
mod kernel;
mod lab;
mod modules;
mod node;
mod paths;
mod pcap;
mod policies;
mod qemu;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};

use crate::lab::VmOpts;
use crate::node::UpArgs;
use crate::paths::Paths;

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "Project tasks: tests and the lab VM")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run every test: host tests, then the end-to-end tests inside the lab VM.
    Test {
        #[command(flatten)]
        vm: VmOpts,
    },
    /// The lab VM: a real kernel with IPVS under qemu.
    #[command(subcommand)]
    Lab(LabCmd),
    /// Coverage-guided fuzzing of the parsers that take outside input (cargo-fuzz, fuzz/).
    ///
    /// Needs the nightly toolchain and cargo-fuzz; says how to get them when they are missing,
    /// or installs them with --install. Seeds are made from the project's sources on every run;
    /// what libFuzzer finds stays in fuzz/corpus/, crashes in fuzz/artifacts/. Prints per
    /// target: executions, exec/s, coverage (cov, ft) and crashes; fails if any target crashed.
    Fuzz {
        /// Targets to run (default: all of them).
        #[arg(value_name = "TARGET")]
        targets: Vec<String>,
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        time: u64,
        /// Install a missing nightly toolchain or cargo-fuzz instead of stopping.
        #[arg(long)]
        install: bool,
    },
    /// Guest policies (WebAssembly components in policies/).
    #[command(subcommand)]
    Policies(PoliciesCmd),
    /// Benchmark: ipvsadm and ipvsctl side by side on the lab VM's kernel, at several table
    /// sizes, with the kernel's own cost as a floor; prints one table per size.
    ///
    /// Builds release binaries and boots one VM. Takes hours with the default sizes under
    /// TCG; --quick checks the harness in minutes. Not part of `test` or CI.
    Bench(bench::BenchArgs),
    /// (guest side of `bench`)
    #[command(hide = true)]
    BenchGuest(bench::guest::GuestArgs),
}

#[derive(Debug, Subcommand)]
enum PoliciesCmd {
    /// Install the wasm32-wasip2 target and build every example policy in release.
    Build,
    /// Run the policy SDK's and examples' unit tests on the host.
    Test,
}

#[derive(Debug, Subcommand)]
enum LabCmd {
    /// Build and run the e2e tests inside a fresh VM.
    Test {
        #[command(flatten)]
        vm: VmOpts,
        /// Build and run only this e2e test target (e.g. `lab_smoke`); repeatable.
        #[arg(long = "test", value_name = "TARGET")]
        targets: Vec<String>,
        /// Run only tests whose name contains FILTER.
        filter: Option<String>,
        /// Further arguments for every test executable (e.g. --exact, --nocapture).
        #[arg(last = true)]
        test_args: Vec<String>,
    },
    /// Install host packages, fetch the kernel and build the base image, without booting.
    Prepare,
    /// Boot a long-running node: ipvs-agent on 127.0.0.1:PORT, plus two seed backends.
    Up(UpArgs),
    /// Stop the node.
    Down,
    /// Show whether the node is up.
    Status,
    /// Run a command inside the node: `cargo xtask lab exec -- ipvsadm -ln`.
    Exec {
        /// Send this process's stdin to the command.
        #[arg(short = 'i', long)]
        stdin: bool,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Run a command in a fresh VM while capturing netlink; print each message as hex.
    Capture {
        #[command(flatten)]
        vm: VmOpts,
        /// Also save the capture as a pcap file.
        #[arg(long)]
        pcap: Option<PathBuf>,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// (guest side of `exec`)
    #[command(hide = true)]
    ExecServer {
        #[arg(long)]
        listen: SocketAddr,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<u8> {
    let paths = Paths::new();
    match cli.command {
        Cmd::Test { vm } => test_all(&paths, &vm).map(|()| 0),
        Cmd::Fuzz {
            targets,
            time,
            install,
        } => fuzz::run(&paths, &targets, time, install).map(|clean| if clean { 0 } else { 1 }),
        Cmd::Policies(PoliciesCmd::Build) => policies::build(&paths).map(|_| 0),
        Cmd::Policies(PoliciesCmd::Test) => policies::test(&paths).map(|()| 0),
        Cmd::Bench(args) => bench::run(&paths, &args).map(|()| 0),
        Cmd::BenchGuest(args) => bench::guest::run(&args).map(|()| 0),
        Cmd::Lab(cmd) => match cmd {
            LabCmd::Test {
                vm,
                targets,
                filter,
                test_args,
            } => lab::test(&paths, &vm, &targets, filter, test_args).map(|()| 0),
            LabCmd::Prepare => {
                host::ensure_packages()?;
                let k = kernel::prepare(&paths)?;
                image::base(&paths, &k)?;
                Ok(0)
            }
            LabCmd::Up(args) => node::up(&paths, args).map(|()| 0),
            LabCmd::Down => node::down(&paths).map(|()| 0),
            LabCmd::Status => node::status(&paths).map(|up| if up { 0 } else { 1 }),
            LabCmd::Exec { stdin, command } => node::exec(&paths, &command, stdin).map(exit_code),
            LabCmd::Capture { vm, pcap, command } => {
                lab::capture(&paths, &vm, pcap, command).map(exit_code)
            }
            LabCmd::ExecServer { listen } => exec::serve(listen).map(|()| 0),
        },
    }
}

/// A child's exit status as ours (statuses outside 0..=255 become 255).
fn exit_code(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(255)
}

/// `cargo xtask test`: policy builds and host tests, then the VM tests; both always run.
fn test_all(paths: &Paths, vm: &VmOpts) -> Result<()> {
    let started = Instant::now();
    // The agent's policy tests load the example components: build them first.
    let policies_ok = match policies::build(paths).and_then(|_| policies::test(paths)) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("xtask: policies: {e:#}");
            false
        }
    };
    eprintln!(
        "xtask: host tests (cargo test --workspace --exclude {})",
        cargo::E2E_PACKAGE
    );
    let host_ok = cargo::cargo(paths)
        .args(["test", "--workspace", "--exclude", cargo::E2E_PACKAGE])
        .status()?
        .success()
        && policies_ok;
    // ipvsctl without the policy engine: only its own refusal of `policy test` differs.
    eprintln!("xtask: host tests of ipvsctl without the policy engine");
    let thin_ok = cargo::cargo(paths)
        .args(["test", "-p", "ipvsctl", "--no-default-features"])
        .args(["--test", "without_policy_engine"])
        .status()?
        .success();
    // The policy engine's derived lowering (the fallback for a wasmtime bump) is tested in the
    // default build too (`the_engine_lowers_the_input_as_the_bindings_do`); CI lints the build
    // without `fast-lowering`, and a bump runs its tests (policies/README.md).
    let host_ok = host_ok && thin_ok;
    let host_secs = started.elapsed().as_secs_f64();
    let vm_started = Instant::now();
    let vm_result = lab::test(paths, vm, &[], None, Vec::new());
    let vm_secs = vm_started.elapsed().as_secs_f64();
    let word = |ok: bool| if ok { "ok" } else { "FAILED" };
    println!(
        "xtask: host tests {} ({host_secs:.0} s); VM tests {} ({vm_secs:.0} s)",
        word(host_ok),
        word(vm_result.is_ok())
    );
    match (host_ok, vm_result) {
        (true, Ok(())) => Ok(()),
        (_, Err(e)) => Err(e.context(if host_ok {
            "VM tests failed"
        } else {
            "host and VM tests failed"
        })),
        (false, Ok(())) => bail!("host tests failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn exec_takes_the_command_verbatim() -> Result<()> {
        let cli = Cli::try_parse_from(["xtask", "lab", "exec", "--", "ipvsadm", "-ln", "--stats"])?;
        let Cmd::Lab(LabCmd::Exec { stdin, command }) = cli.command else {
            bail!("parsed as {cli:?}");
        };
        assert!(!stdin);
        assert_eq!(command, ["ipvsadm", "-ln", "--stats"]);
        Ok(())
    }

    #[test]
    fn lab_test_filter_and_arguments() -> Result<()> {
        let cli = Cli::try_parse_from([
            "xtask",
            "lab",
            "test",
            "--test",
            "lab_smoke",
            "smoke",
            "--",
            "--nocapture",
        ])?;
        let Cmd::Lab(LabCmd::Test {
            targets,
            filter,
            test_args,
            ..
        }) = cli.command
        else {
            bail!("parsed as {cli:?}");
        };
        assert_eq!(targets, ["lab_smoke"]);
        assert_eq!(filter.as_deref(), Some("smoke"));
        assert_eq!(test_args, ["--nocapture"]);
        Ok(())
    }

    #[test]
    fn exit_codes() {
        assert_eq!([0, 3, 255, 256, -1].map(exit_code), [0, 3, 255, 255, 255]);
    }
}
