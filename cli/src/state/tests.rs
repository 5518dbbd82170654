//! Command lines of the declared-state commands.

use clap::error::ErrorKind;

use super::drain::{DrainArgs, ServiceArg};
use super::*;

fn argv(s: &str) -> Vec<String> {
    s.split(' ').map(String::from).collect()
}

fn command(line: &str) -> StateCommand {
    match parse(&argv(line)) {
        Ok(cli) => cli.command,
        Err(e) => panic!("{line}: {e}"),
    }
}

#[test]
fn state_command_lines_are_recognised() {
    for line in [
        "apply -f n.yaml",
        "diff -f n.yaml",
        "export",
        "state",
        "drain -t 1.2.3.4:80 -r 10.0.0.1",
        "--agent unix:/a state revisions",
        "-o json diff -f n.yaml",
        "--output=json export",
    ] {
        assert!(is_state_command(&argv(line)), "{line}");
    }
    for line in ["-L -n", "policy ls", "link show", "-A -t 1.2.3.4:80", ""] {
        assert!(!is_state_command(&argv(line)), "{line}");
    }
}

#[test]
fn commands_parse() {
    let cases = [
        (
            "ipvsctl apply -f node.yaml --prune --dry-run --revision 7",
            StateCommand::Apply {
                file: "node.yaml".into(),
                prune: true,
                dry_run: true,
                revision: Some(7),
            },
        ),
        (
            "ipvsctl apply --file -",
            StateCommand::Apply {
                file: "-".into(),
                prune: false,
                dry_run: false,
                revision: None,
            },
        ),
        (
            "ipvsctl diff -f node.toml --prune",
            StateCommand::Diff {
                file: "node.toml".into(),
                prune: true,
            },
        ),
        (
            "ipvsctl export",
            StateCommand::Export {
                file: None,
                format: None,
            },
        ),
        (
            "ipvsctl export -f out.yml --format toml",
            StateCommand::Export {
                file: Some("out.yml".into()),
                format: Some(Format::Toml),
            },
        ),
        ("ipvsctl state", StateCommand::State { command: None }),
        (
            "ipvsctl state revisions",
            StateCommand::State {
                command: Some(StateSub::Revisions),
            },
        ),
        (
            "ipvsctl state rollback",
            StateCommand::State {
                command: Some(StateSub::Rollback {
                    target: None,
                    dry_run: false,
                    revision: None,
                }),
            },
        ),
        (
            "ipvsctl state rollback 3 --dry-run --revision 5",
            StateCommand::State {
                command: Some(StateSub::Rollback {
                    target: Some(3),
                    dry_run: true,
                    revision: Some(5),
                }),
            },
        ),
        (
            "ipvsctl state events",
            StateCommand::State {
                command: Some(StateSub::Events),
            },
        ),
    ];
    for (line, want) in cases {
        assert_eq!(command(line), want, "{line}");
    }
    let cli = parse(&argv("ipvsctl -o json --agent unix:/x state")).expect("parses");
    assert_eq!(
        (cli.output, cli.agent.as_deref()),
        (Some(OutputFormat::Json), Some("unix:/x"))
    );
}

#[test]
fn drain_takes_ipvsadm_style_options() {
    let cases = [
        (
            "ipvsctl drain -t 10.0.0.1:80 -r 10.0.1.1:80",
            DrainArgs {
                service: ServiceArg::Tcp("10.0.0.1:80".into()),
                ipv6: false,
                server: "10.0.1.1:80".into(),
                timeout_ms: 300_000,
                keep: false,
                expected_revision: None,
            },
        ),
        (
            "ipvsctl drain --udp-service 10.0.0.1:53 --real-server 10.0.1.1 --timeout 90s --keep --revision 4",
            DrainArgs {
                service: ServiceArg::Udp("10.0.0.1:53".into()),
                ipv6: false,
                server: "10.0.1.1".into(),
                timeout_ms: 90_000,
                keep: true,
                expected_revision: Some(4),
            },
        ),
        (
            "ipvsctl drain --sctp-service 10.0.0.1:9 -r 10.0.1.1 --timeout 500ms",
            DrainArgs {
                service: ServiceArg::Sctp("10.0.0.1:9".into()),
                ipv6: false,
                server: "10.0.1.1".into(),
                timeout_ms: 500,
                keep: false,
                expected_revision: None,
            },
        ),
        (
            "ipvsctl drain -f 7 -6 -r 2001:db8::1",
            DrainArgs {
                service: ServiceArg::Fwmark("7".into()),
                ipv6: true,
                server: "2001:db8::1".into(),
                timeout_ms: 300_000,
                keep: false,
                expected_revision: None,
            },
        ),
    ];
    for (line, want) in cases {
        assert_eq!(command(line).drain_args(), Ok(Some(want)), "{line}");
    }
    assert_eq!(command("ipvsctl state").drain_args(), Ok(None));
    assert_eq!(
        command("ipvsctl drain -t 10.0.0.1:80 -r 10.0.1.1 --timeout 2h").drain_args(),
        Err(Failure::new(
            2,
            "ipvsctl: invalid interval \"2h\" (e.g. 2s, 500ms, 1m)"
        ))
    );
    assert_eq!(
        command("ipvsctl drain -t 10.0.0.1:80 -r 10.0.1.1 --timeout 0").drain_args(),
        Err(Failure::new(2, "ipvsctl: --timeout must be at least 1ms"))
    );
}

#[test]
fn bad_command_lines_are_clap_errors() {
    let cases = [
        ("ipvsctl apply", ErrorKind::MissingRequiredArgument),
        (
            "ipvsctl drain -r 10.0.1.1",
            ErrorKind::MissingRequiredArgument,
        ),
        (
            "ipvsctl drain -t 10.0.0.1:80",
            ErrorKind::MissingRequiredArgument,
        ),
        (
            "ipvsctl drain -t 10.0.0.1:80 -u 10.0.0.1:53 -r 10.0.1.1",
            ErrorKind::ArgumentConflict,
        ),
        ("ipvsctl export --format json", ErrorKind::ValueValidation),
        ("ipvsctl -o yaml state", ErrorKind::ValueValidation),
        ("ipvsctl state rollback x", ErrorKind::ValueValidation),
        ("ipvsctl state forget", ErrorKind::InvalidSubcommand),
        (
            "ipvsctl apply -f n.yaml --force",
            ErrorKind::UnknownArgument,
        ),
    ];
    for (line, kind) in cases {
        let err = parse(&argv(line)).expect_err(line);
        assert_eq!(err.kind(), kind, "{line}: {err}");
    }
}

#[test]
fn help_and_usage_errors_keep_clap_statuses() {
    assert!(matches!(main(&argv("ipvsctl apply --help")), Ok(text) if text.contains("--prune")));
    assert_eq!(main(&argv("ipvsctl apply")).map_err(|f| f.code), Err(2));
}
