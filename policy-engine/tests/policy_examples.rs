//! The example policies, built for wasm32-wasip2, run through the engine: their decisions
//! are validated against the live service and hold only changes.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ipvs_policy::{
    CompiledPolicy, Decision, Failure, Limits, OutputError, PolicyEngine, PolicyInput,
    ServerHealth, Version, server_name, test_component,
};
use ipvs_types::Scheduler;
use support::fixtures::input;
use support::guests::component;

/// One engine for the file, as in the agent; each example is compiled once.
fn engine() -> &'static PolicyEngine {
    static ENGINE: OnceLock<PolicyEngine> = OnceLock::new();
    ENGINE.get_or_init(|| PolicyEngine::new(Limits::default(), None).expect("engine"))
}

fn load(name: &str) -> Arc<CompiledPolicy> {
    static LOADED: OnceLock<Mutex<HashMap<String, Arc<CompiledPolicy>>>> = OnceLock::new();
    let mut loaded = LOADED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    loaded
        .entry(name.to_owned())
        .or_insert_with(|| engine().load(&component(name)).expect("example loads"))
        .clone()
}

fn run(name: &str, input: &PolicyInput) -> Result<Decision, Failure> {
    engine().evaluate(&load(name), input).outcome
}

fn weights(d: &Decision) -> BTreeMap<String, (u32, u32)> {
    d.weights
        .iter()
        .map(|w| (server_name(&w.dest), (w.from, w.dest.weight)))
        .collect()
}

fn with_conns(mut i: PolicyInput, conns: &[(u32, u32)]) -> PolicyInput {
    for (s, (active, inactive)) in i.servers.iter_mut().zip(conns) {
        s.active_conns = *active;
        s.inactive_conns = *inactive;
    }
    i
}

#[test]
fn least_connections_sets_only_changed_weights() {
    let i = with_conns(input(3), &[(1, 0), (3, 0), (0, 10)]);
    let d = run("least_connections", &i).expect("decision");
    // 10.0.0.3 stays at weight 1: not part of the decision.
    assert_eq!(
        weights(&d),
        BTreeMap::from([
            ("10.0.0.2:80".to_owned(), (1, 4)),
            ("10.0.0.4:80".to_owned(), (1, 100)),
        ])
    );
    assert_eq!(d.reason, "least-connections over 3 servers, lowest load 10");
    assert_eq!(d.scheduler, None);
}

/// The examples are 1.1.0 components: they see each real server's health.
#[test]
fn least_connections_takes_a_down_server_out() {
    assert_eq!(load("least_connections").version(), Version::V1_1);
    let mut i = with_conns(input(3), &[(1, 0), (3, 0), (0, 10)]);
    let down = &i.servers[1].dest;
    i.health.insert(
        (down.addr, down.port),
        ServerHealth {
            up: false,
            last_passed: false,
            consecutive: 3,
            last_latency: Some(Duration::from_millis(2)),
            since: Duration::from_secs(4),
            reason: "http 503".into(),
        },
    );
    let up = &i.servers[2].dest;
    i.health.insert(
        (up.addr, up.port),
        ServerHealth {
            up: true,
            last_passed: true,
            consecutive: 9,
            ..ServerHealth::default()
        },
    );
    let d = run("least_connections", &i).expect("decision");
    assert_eq!(
        weights(&d),
        BTreeMap::from([
            ("10.0.0.2:80".to_owned(), (1, 4)),
            ("10.0.0.3:80".to_owned(), (1, 0)),
            ("10.0.0.4:80".to_owned(), (1, 100)),
        ])
    );
    assert_eq!(
        d.reason,
        "least-connections over 2 servers, lowest load 10; 1 down"
    );
    assert_eq!(d.state.as_deref(), Some(&b"10.0.0.3:80=down\n"[..]));
}

#[test]
fn slow_start_ramps_a_newcomer_across_evaluations() {
    let e = engine();
    let p = load("slow_start");
    let mut i = input(1);
    i.params = vec![("duration-s".into(), "10".into())];
    let t0 = i.now;
    let d = e.evaluate(&p, &i).outcome.expect("baseline");
    assert!(d.weights.is_empty());

    let mut next = input(2);
    next.servers[1].dest.weight = 40;
    next.params = i.params.clone();
    next.state = d.state.expect("state");
    next.sequence = 2;
    next.now = t0 + Duration::from_secs(5);
    let d = e.evaluate(&p, &next).outcome.expect("ramp start");
    assert_eq!(
        weights(&d),
        BTreeMap::from([("10.0.0.3:80".to_owned(), (40, 1))])
    );

    next.state = d.state.expect("state");
    next.servers[1].dest.weight = 1;
    next.now = t0 + Duration::from_secs(10);
    let d = e.evaluate(&p, &next).outcome.expect("half way");
    assert_eq!(
        weights(&d),
        BTreeMap::from([("10.0.0.3:80".to_owned(), (1, 20))])
    );
    assert_eq!(d.reason, "ramping 10.0.0.3:80 20/40");
}

#[test]
fn drain_zeroes_and_reports() {
    let mut i = with_conns(input(2), &[(4, 2), (1, 0)]);
    i.params = vec![("servers".into(), "10.0.0.2:80".into())];
    let d = run("drain", &i).expect("decision");
    assert_eq!(
        weights(&d),
        BTreeMap::from([("10.0.0.2:80".to_owned(), (1, 0))])
    );
    assert_eq!(d.reason, "draining: 10.0.0.2:80 (4 active, 2 inactive)");

    let mut i = with_conns(input(2), &[(0, 0), (1, 0)]);
    i.servers[0].dest.weight = 0;
    i.params = vec![("servers".into(), "10.0.0.2:80".into())];
    let d = run("drain", &i).expect("decision");
    assert!(d.weights.is_empty());
    assert_eq!(d.reason, "drained: 10.0.0.2:80");
}

#[test]
fn canary_split_and_its_refusals() {
    let mut i = input(4);
    i.params = vec![
        ("canary".into(), "10.0.0.5:80".into()),
        ("percent".into(), "25".into()),
    ];
    let d = run("canary", &i).expect("decision");
    assert_eq!(
        weights(&d).values().map(|(_, w)| *w).collect::<Vec<_>>(),
        [250; 4]
    );

    i.params = vec![("canary".into(), "10.0.0.9:80".into())];
    assert_eq!(
        run("canary", &i),
        Err(Failure::Policy(
            "canary 10.0.0.9:80 is not in the service".into()
        ))
    );
}

#[test]
fn skew_switches_scheduler_only_to_one_the_kernel_has() {
    let i = with_conns(input(3), &[(90, 0), (5, 0), (5, 0)]);
    let d = run("skew_scheduler", &i).expect("decision");
    assert_eq!(d.scheduler, Some(Scheduler::Lc));
    assert_eq!(d.reason, "skew 2.70 >= 2.00: wlc -> lc");

    let mut without_lc = i.clone();
    without_lc.schedulers = vec![Scheduler::Wlc, Scheduler::Wrr];
    assert_eq!(
        run("skew_scheduler", &without_lc),
        Err(Failure::InvalidOutput(OutputError::UnknownScheduler(
            "lc".into()
        )))
    );
}

#[test]
fn example_components_import_only_what_is_allowed() {
    for name in [
        "least_connections",
        "slow_start",
        "drain",
        "canary",
        "skew_scheduler",
    ] {
        let p = load(name);
        assert!(
            p.imports()
                .iter()
                .all(|i| ipvs_policy::contract::import_allowed(i)),
            "{name}: {:?}",
            p.imports()
        );
    }
}

#[test]
fn policy_test_runs_a_file_against_json() {
    let json = r#"{
        "service": "TCP 10.0.0.1:80",
        "servers": [
            {"address": "10.0.0.2", "port": 80, "active": 1},
            {"address": "10.0.0.3", "port": 80, "active": 0, "weight": 3}
        ],
        "params": [["max-weight", "10"]]
    }"#;
    let report =
        test_component(&component("least_connections"), json, Limits::default()).expect("runs");
    assert!(report.ok, "{report:?}");
    let d = report.decision.as_ref().expect("decision");
    let got: Vec<(&str, u32, u32)> = d
        .weights
        .iter()
        .map(|w| (w.server.as_str(), w.from, w.to))
        .collect();
    // loads 256 and 0: 10 * 1 / 257 rounds to 0, kept at 1 (unchanged); the idle one gets 10.
    assert_eq!(got, [("10.0.0.3:80", 3, 10)]);
    let json_text = serde_json::to_string(&report).expect("serializes");
    assert!(json_text.contains("\"reason\":\"least-connections over 2 servers, lowest load 0\""));

    let bad = test_component(&component("least_connections"), "{}", Limits::default());
    assert!(
        matches!(&bad, Err(ipvs_policy::TestError::Input(m)) if m.starts_with("missing field `service`")),
        "{bad:?}"
    );
}

#[test]
fn evaluations_run_concurrently_off_the_runtime() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let e = PolicyEngine::new(
        Limits {
            concurrency: 2,
            ..Limits::default()
        },
        None,
    )
    .expect("engine");
    let outcomes = rt.block_on(async {
        let p = e
            .load_async(component("least_connections"))
            .await
            .expect("loads");
        let runs = (0..8).map(|n| e.evaluate_async(p.clone(), input(n + 1)));
        futures::future::join_all(runs).await
    });
    assert_eq!(outcomes.len(), 8);
    for (n, ev) in outcomes.into_iter().enumerate() {
        assert!(ev.outcome.is_ok(), "evaluation {n}: {:?}", ev.outcome);
    }
}

/// `input(1)` with the chatty fixture's parameters.
fn chatty(params: &[(&str, &str)]) -> ipvs_policy::Evaluation {
    let mut i = input(1);
    i.params = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    engine().evaluate(&load("chatty"), &i)
}

#[test]
fn output_past_the_cap_is_cut_not_fatal() {
    // Rust's print! panics when stdout refuses a write: every byte must be accepted.
    let ev = chatty(&[("stdout", "65536"), ("stderr", "70000"), ("log", "20000")]);
    assert!(ev.output_truncated());
    assert_eq!(
        ev.outcome.as_ref().map(|d| d.reason.as_str()),
        Ok("printed 65536, eprinted 70000, logged 20000")
    );
    assert_eq!((ev.stdout.len(), ev.stdout_dropped), (16384, 65536 - 16384));
    assert_eq!((ev.stderr.len(), ev.stderr_dropped), (16384, 70000 - 16384));
    assert!(ev.stdout.starts_with(&[b'x'; 63]) && ev.stdout[63] == b'\n');
    // 313 lines of 63 bytes: 260 fit in 16 KiB.
    assert_eq!((ev.logs.len(), ev.logs_dropped), (260, 53));

    // Within the cap nothing is marked.
    let ev = chatty(&[("stdout", "100")]);
    assert!(!ev.output_truncated());
    assert_eq!((ev.stdout.len(), ev.stdout_dropped), (100, 0));
    assert!(ev.outcome.is_ok());
}

#[test]
fn a_panic_is_a_trap_with_its_message_on_stderr() {
    let ev = chatty(&[("panic", "policy gave up")]);
    assert_eq!(
        ev.outcome,
        Err(Failure::Trap(
            "wasm trap: wasm `unreachable` instruction executed".into()
        ))
    );
    let stderr = String::from_utf8_lossy(&ev.stderr);
    assert!(
        stderr.contains("panicked at") && stderr.contains("policy gave up"),
        "{stderr}"
    );
}

#[test]
fn files_are_not_there() {
    let ev = chatty(&[("read", "/etc/passwd")]);
    assert_eq!(
        ev.outcome.map(|d| d.reason),
        Ok("read /etc/passwd: entity not found".to_owned())
    );
}

/// The CLI's `policy test` runs inside a tokio runtime: each of these touches WASI (stdout,
/// a file, a panic's message) and must come back as a report, on a blocking thread.
#[test]
fn test_component_reports_from_a_blocking_thread_of_a_runtime() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let json = |params: &str| {
        format!(
            r#"{{"service": "TCP 10.0.0.1:80", "servers": [{{"address": "10.0.0.2", "port": 80}}], "params": {params}}}"#
        )
    };
    let cases = [
        (json(r#"{"stdout": "100"}"#), true, "printed 100"),
        (
            json(r#"{"read": "/etc/passwd"}"#),
            true,
            "read /etc/passwd: entity not found",
        ),
        (json(r#"{"panic": "boom"}"#), false, "trap"),
    ];
    for (input, ok, what) in cases {
        let report = rt
            .block_on(async move {
                tokio::task::spawn_blocking(move || {
                    test_component(&component("chatty"), &input, Limits::default())
                })
                .await
            })
            .expect("joins")
            .expect("runs");
        assert_eq!(report.ok, ok, "{report:?}");
        match (&report.decision, &report.failure) {
            (Some(d), None) => assert_eq!(d.reason, what),
            (None, Some(f)) => assert_eq!(f.kind, what),
            _ => panic!("{report:?}"),
        }
    }
}
