//! The sandbox holds against hostile policies: each adversarial fixture ends in its documented
//! failure within its budget, and the engine serves a good policy right after.

mod support;

use std::time::{Duration, Instant};

use ipvs_policy::{
    ArtifactStore, Failure, Limits, LoadError, LogLevel, LogLine, OutputError, PolicyEngine,
    ServerHealth, Version, server_name,
};
use support::fixtures::{self, Out, componentize, componentize_v1_1, core_module, input, policy};

/// Generous: the guards catch a hung sandbox, not a slow machine.
const MARGIN: Duration = Duration::from_secs(3);

fn engine(limits: Limits) -> PolicyEngine {
    PolicyEngine::new(limits, None).expect("engine")
}

/// Evaluates `component`, checks the failure and the time taken, then checks that the same
/// engine still runs a good policy.
fn expect_failure(engine: &PolicyEngine, component: &[u8], want: Failure, budget: Duration) {
    let p = engine.load(component).expect("fixture loads");
    let started = Instant::now();
    let e = engine.evaluate(&p, &input(3));
    let took = started.elapsed();
    assert_eq!(e.outcome, Err(want));
    assert!(took < budget + MARGIN, "took {took:?}, budget {budget:?}");

    let good = engine.load(&fixtures::good()).expect("good fixture loads");
    let e = engine.evaluate(&good, &input(3));
    let d = e.outcome.expect("the engine still serves a good policy");
    assert_eq!(d.reason, "fixture ok");
    assert_eq!(d.weights.len(), 1);
    assert_eq!(server_name(&d.weights[0].dest), "10.0.0.2:80");
    assert_eq!((d.weights[0].from, d.weights[0].dest.weight), (1, 7));
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let limits = Limits {
        fuel: 5_000_000,
        deadline: Duration::from_secs(30),
        ..Limits::default()
    };
    let e = engine(limits);
    let looping = policy("(loop $l (br $l))", &Out::ok("never"));
    expect_failure(
        &e,
        &looping,
        Failure::OutOfFuel { fuel: 5_000_000 },
        Duration::from_millis(500),
    );
}

#[test]
fn infinite_loop_hits_the_deadline() {
    let deadline = Duration::from_millis(200);
    let limits = Limits {
        fuel: u64::MAX / 2,
        deadline,
        ..Limits::default()
    };
    let e = engine(limits);
    let looping = policy("(loop $l (br $l))", &Out::ok("never"));
    let p = e.load(&looping).expect("fixture loads");
    let started = Instant::now();
    let ev = e.evaluate(&p, &input(3));
    let took = started.elapsed();
    assert!(took < deadline + MARGIN, "took {took:?}");
    // A tight loop never hands its fuel count back: what was used is only known up to the
    // last check, so the report says "at least" and names the deadline.
    let Err(Failure::Deadline {
        deadline: d,
        fuel_at_least,
    }) = ev.outcome
    else {
        panic!("not stopped by the deadline: {:?}", ev.outcome);
    };
    assert_eq!(d, deadline);
    assert_eq!(ev.fuel_used, fuel_at_least);
    assert_eq!(
        Failure::Deadline {
            deadline: d,
            fuel_at_least
        }
        .to_string(),
        format!(
            "stopped by its wall-clock deadline of 200ms (fuel used: at least {fuel_at_least})"
        )
    );
    let report = ipvs_policy::TestReport::new(p.hash_hex(), ev);
    assert!(report.fuel_is_lower_bound);
}

#[test]
fn deep_recursion_overflows_the_stack() {
    let e = engine(Limits::default());
    let module = core_module(
        "(drop (call $down (i32.const 0)))",
        &Out::ok("never"),
        "(func $down (param i32) (result i32) (call $down (i32.add (local.get 0) (i32.const 1))))",
    );
    expect_failure(
        &e,
        &componentize(&module),
        Failure::StackOverflow,
        Duration::from_millis(500),
    );
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    let limits = Limits {
        memory_bytes: 8 << 20,
        ..Limits::default()
    };
    let e = engine(limits);
    // Grow by 1 MiB until growth fails (it traps instead of returning -1).
    let bomb = policy(
        "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))",
        &Out::ok("never"),
    );
    expect_failure(
        &e,
        &bomb,
        Failure::MemoryLimit { limit: 8 << 20 },
        Duration::from_millis(500),
    );
}

#[test]
fn a_trap_is_reported_with_its_message() {
    let e = engine(Limits::default());
    let trap = policy("(unreachable)", &Out::ok("never"));
    expect_failure(
        &e,
        &trap,
        Failure::Trap("wasm trap: wasm `unreachable` instruction executed".into()),
        Duration::from_millis(500),
    );
}

#[test]
fn huge_and_malformed_outputs_are_rejected() {
    let limits = Limits::default();
    let e = engine(limits.clone());
    let quick = Duration::from_millis(500);

    let huge_state = Out {
        state: Some((0, 70_000)),
        ..Out::ok("big")
    };
    expect_failure(
        &e,
        &policy("", &huge_state),
        Failure::InvalidOutput(OutputError::StateTooLarge {
            len: 70_000,
            limit: limits.state_bytes,
        }),
        quick,
    );

    let long_reason = Out::ok(&"x".repeat(300));
    expect_failure(
        &e,
        &policy("", &long_reason),
        Failure::InvalidOutput(OutputError::ReasonTooLarge {
            len: 300,
            limit: 256,
        }),
        quick,
    );

    // Not UTF-8, and a list that runs past the end of memory: both break the ABI.
    let bad_utf8 = Out {
        reason: vec![0xff, 0xfe],
        ..Out::default()
    };
    let past_memory = Out {
        weights_len: Some(0x0100_0000),
        ..Out::ok("x")
    };
    for out in [bad_utf8, past_memory] {
        let p = e.load(&policy("", &out)).expect("loads");
        let got = e.evaluate(&p, &input(3)).outcome;
        assert!(
            matches!(&got, Err(Failure::InvalidOutput(OutputError::Malformed(_)))),
            "{out:?}: {got:?}"
        );
    }
    expect_failure(
        &e,
        &policy(
            "",
            &Out::ok("x")
                .weight("10.0.0.2:80", 1)
                .weight("10.0.0.2:80", 2),
        ),
        Failure::InvalidOutput(OutputError::DuplicateServer("10.0.0.2:80".into())),
        quick,
    );
}

#[test]
fn unknown_server_weight_range_and_scheduler_are_rejected() {
    let e = engine(Limits::default());
    let quick = Duration::from_millis(500);
    expect_failure(
        &e,
        &policy("", &Out::ok("x").weight("10.9.9.9:80", 1)),
        Failure::InvalidOutput(OutputError::UnknownServer("10.9.9.9:80".into())),
        quick,
    );
    expect_failure(
        &e,
        &policy("", &Out::ok("x").weight("10.0.0.3:80", 65536)),
        Failure::InvalidOutput(OutputError::Weight {
            server: "10.0.0.3:80".into(),
            weight: 65536,
        }),
        quick,
    );
    let bogus = Out {
        scheduler: Some(b"fastest".to_vec()),
        ..Out::ok("x")
    };
    expect_failure(
        &e,
        &policy("", &bogus),
        Failure::InvalidOutput(OutputError::UnknownScheduler("fastest".into())),
        quick,
    );
}

#[test]
fn policy_errors_and_logs_come_back() {
    let e = engine(Limits::default());
    let refusing = Out {
        err: Some(b"parameter x: bad".to_vec()),
        ..Out::default()
    };
    expect_failure(
        &e,
        &policy("", &refusing),
        Failure::Policy("parameter x: bad".into()),
        Duration::from_millis(500),
    );

    // log(warn, "hello") with the message at address 16.
    let module = core_module(
        "(call $log (i32.const 2) (i32.const 16) (i32.const 5))",
        &Out::ok("logged"),
        r#"(data (i32.const 16) "hello")"#,
    );
    let p = e.load(&componentize(&module)).expect("loads");
    let ev = e.evaluate(&p, &input(1));
    assert_eq!(ev.outcome.map(|d| d.reason), Ok("logged".to_owned()));
    assert_eq!(
        ev.logs,
        [LogLine {
            level: LogLevel::Warn,
            message: "hello".into()
        }]
    );
    assert!(ev.fuel_used > 0);
}

/// Components of the first contract (every fixture here) and of 1.1.0 load side by side,
/// each run with its own version's input; the `log` import of either version works.
#[test]
fn components_of_both_contract_versions_load_and_run() {
    let e = engine(Limits::default());
    let mut i = input(2);
    // Health a 1.0.0 component is not given, and a 1.1.0 one is: both run.
    i.health.insert(
        ("10.0.0.3".parse().expect("addr"), 80),
        ServerHealth {
            up: false,
            reason: "http 503".into(),
            ..ServerHealth::default()
        },
    );
    let logging = |version: &str| {
        core_module(
            "(call $log (i32.const 1) (i32.const 16) (i32.const 5))",
            &Out::ok("logged").weight("10.0.0.2:80", 7),
            r#"(data (i32.const 16) "hello")"#,
        )
        .replace("ipvs:policy/host@1.0.0", version)
    };
    let cases = [
        (fixtures::good(), Version::V1_0),
        (
            componentize(&logging("ipvs:policy/host@1.0.0")),
            Version::V1_0,
        ),
        (
            componentize_v1_1(&logging("ipvs:policy/host@1.1.0")),
            Version::V1_1,
        ),
        (
            componentize_v1_1(&core_module("", &Out::ok("no log"), "").replace(
                r#"(import "ipvs:policy/host@1.0.0" "log" (func $log (param i32 i32 i32)))"#,
                "",
            )),
            Version::V1_1,
        ),
    ];
    for (n, (component, version)) in cases.into_iter().enumerate() {
        let p = e.load(&component).expect("loads");
        assert_eq!(p.version(), version, "case {n}");
        let ev = e.evaluate(&p, &i);
        let d = ev.outcome.expect("a decision");
        if n == 3 {
            assert_eq!(d.reason, "no log");
            continue;
        }
        assert_eq!(server_name(&d.weights[0].dest), "10.0.0.2:80", "case {n}");
        assert_eq!(d.weights[0].dest.weight, 7, "case {n}");
        if n > 0 {
            assert_eq!(
                ev.logs,
                [LogLine {
                    level: LogLevel::Info,
                    message: "hello".into()
                }],
                "case {n}"
            );
        }
    }

    // A component that names both versions is refused, naming them.
    let mixed = wat::parse_str(
        r#"(component
            (import "ipvs:policy/types@1.0.0" (instance))
            (import "ipvs:policy/host@1.1.0" (instance))
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func $f (canon lift (core func $i "f")))
            (export "evaluate" (func $f)))"#,
    )
    .expect("WAT parses");
    assert_eq!(
        e.load(&mixed).map(|_| ()),
        Err(LoadError::Contract(
            "imports ipvs:policy at both 1.0.0 and 1.1.0".into()
        ))
    );
}

#[test]
fn uploads_are_checked_before_compiling() {
    let e = engine(Limits {
        component_bytes: 100_000,
        ..Limits::default()
    });
    let wat = |text: &str| wat::parse_str(text).expect("WAT parses");
    let cases: Vec<(Vec<u8>, LoadError)> = vec![
        (wat("(module)"), LoadError::NotAComponent),
        (b"MZ\x90\x00".to_vec(), LoadError::NotWasm),
        (
            wat("(component)"),
            LoadError::MissingExport("evaluate".into()),
        ),
        (
            wat(r#"(component (import "wasi:sockets/tcp@0.2.6" (instance)))"#),
            LoadError::DisallowedImport("wasi:sockets/tcp@0.2.6".into()),
        ),
        (
            wat(r#"(component (import "wasi:http/outgoing-handler@0.2.6" (instance)))"#),
            LoadError::DisallowedImport("wasi:http/outgoing-handler@0.2.6".into()),
        ),
        (
            vec![0; 100_001],
            LoadError::TooLarge {
                len: 100_001,
                limit: 100_000,
            },
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(e.load(&bytes).map(|_| ()), Err(want));
    }
    assert_eq!(
        LoadError::NotAComponent.to_string(),
        "not a component: this is a core WebAssembly module; build for wasm32-wasip2 or use \
         wasm-tools component new"
    );

    // Exports `evaluate`, but with the wrong type.
    let wrong_type = wat(r#"(component
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func $f (canon lift (core func $i "f")))
            (export "evaluate" (func $f)))"#);
    let err = e.load(&wrong_type).map(|_| ());
    assert!(
        matches!(&err, Err(LoadError::Contract(m)) if m.contains("evaluate")),
        "{err:?}"
    );
    assert!(
        e.load(&fixtures::good()).is_ok(),
        "still loads good policies"
    );
}

#[test]
fn compiled_policies_are_stored_and_reused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = || ArtifactStore::open(dir.path().join("artifacts")).expect("store");
    let good = fixtures::good();

    let first = PolicyEngine::new(Limits::default(), Some(store())).expect("engine");
    let p = first.load(&good).expect("loads");
    assert!(!p.from_cache());
    let names: Vec<String> = std::fs::read_dir(store().dir())
        .expect("store dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with(&p.hash_hex()) && names[0].ends_with(".cwasm"));
    drop(first);

    let second = PolicyEngine::new(Limits::default(), Some(store())).expect("engine");
    let p = second.load(&good).expect("loads");
    assert!(
        p.from_cache(),
        "the stored artifact is used after a restart"
    );
    assert_eq!(p.hash_hex().len(), 64);
    let d = second.evaluate(&p, &input(2)).outcome.expect("runs");
    assert_eq!(d.reason, "fixture ok");
}

/// Where the fixtures below put a 1 MiB string of `x`, and a list, in grown memory.
const BIG: u32 = 1 << 20;
const LIST: u32 = 2 << 20;

/// Grows memory to 8.5 MiB and fills `BIG..BIG + 1 MiB` with `x`.
const GROW_AND_FILL: &str = "(drop (memory.grow (i32.const 134)))
    (memory.fill (i32.const 1048576) (i32.const 0x78) (i32.const 1048576))";

/// Stores `value` at `offset` in the result area (see `fixtures` for its layout).
fn set_result(offset: u32, value: u32) -> String {
    format!(
        "(i32.store (i32.const {}) (i32.const {value}))",
        1024 + offset
    )
}

/// Writes `n` weight changes at `LIST`, each naming the 1 MiB string at `BIG`, and points the
/// answer's weights at them.
fn aliasing_weights(n: u32) -> String {
    format!(
        "{GROW_AND_FILL}
    (block $done (loop $l
      (br_if $done (i32.ge_u (global.get $i) (i32.const {n})))
      (i32.store (i32.add (i32.const {LIST}) (i32.mul (global.get $i) (i32.const 12)))
                 (i32.const {BIG}))
      (i32.store (i32.add (i32.const {}) (i32.mul (global.get $i) (i32.const 12)))
                 (i32.const 1048576))
      (i32.store (i32.add (i32.const {}) (i32.mul (global.get $i) (i32.const 12)))
                 (i32.const 1))
      (global.set $i (i32.add (global.get $i) (i32.const 1)))
      (br $l)))
    {}
    {}",
        LIST + 4,
        LIST + 8,
        set_result(4, LIST),
        set_result(8, n)
    )
}

fn with_counter(body: &str, out: &Out) -> Vec<u8> {
    componentize(&core_module(
        body,
        out,
        "(global $i (mut i32) (i32.const 0))",
    ))
}

/// Limits under which copying any of the fixtures' 1 MiB strings out of the guest would
/// exhaust the hostcall fuel (and fail as malformed output): the exact errors below show
/// that nothing over its cap is copied.
fn tight_hostcall() -> Limits {
    Limits {
        hostcall_bytes: 64 << 10,
        ..Limits::default()
    }
}

#[test]
fn more_weight_changes_than_real_servers_are_refused_before_copying() {
    let e = engine(tight_hostcall());
    // 500 000 entries that all name one 1 MiB string: 6 MB of list in an 8.5 MiB memory.
    expect_failure(
        &e,
        &with_counter(&aliasing_weights(500_000), &Out::ok("aliased")),
        Failure::InvalidOutput(OutputError::TooManyWeights {
            len: 500_000,
            servers: 3,
        }),
        Duration::from_millis(500),
    );
    assert_eq!(
        OutputError::TooManyWeights {
            len: 500_000,
            servers: 3
        }
        .to_string(),
        "500000 weight changes for a service of 3 real servers"
    );
}

#[test]
fn long_strings_are_measured_not_copied() {
    let e = engine(tight_hostcall());
    let quick = Duration::from_millis(500);
    let head = "x".repeat(256);
    // As many entries as servers, each naming the 1 MiB string.
    expect_failure(
        &e,
        &with_counter(&aliasing_weights(3), &Out::ok("aliased")),
        Failure::InvalidOutput(OutputError::UnknownServer(head.clone())),
        quick,
    );
    let reason = format!(
        "{GROW_AND_FILL} {} {}",
        set_result(36, BIG),
        set_result(40, BIG)
    );
    expect_failure(
        &e,
        &policy(&reason, &Out::ok("short")),
        Failure::InvalidOutput(OutputError::ReasonTooLarge {
            len: 1 << 20,
            limit: 256,
        }),
        quick,
    );
    let scheduler = format!(
        "{GROW_AND_FILL} {} {} {}",
        set_result(12, 1),
        set_result(16, BIG),
        set_result(20, BIG)
    );
    expect_failure(
        &e,
        &policy(&scheduler, &Out::ok("short")),
        Failure::InvalidOutput(OutputError::UnknownScheduler(head.clone())),
        quick,
    );
    let state = format!(
        "{GROW_AND_FILL} {} {} {}",
        set_result(24, 1),
        set_result(28, BIG),
        set_result(32, 6 << 20)
    );
    expect_failure(
        &e,
        &policy(&state, &Out::ok("short")),
        Failure::InvalidOutput(OutputError::StateTooLarge {
            len: 6 << 20,
            limit: 64 << 10,
        }),
        quick,
    );
    let error = format!(
        "{GROW_AND_FILL} {} {} {}",
        set_result(0, 1),
        set_result(4, BIG),
        set_result(8, BIG)
    );
    expect_failure(
        &e,
        &policy(&error, &Out::ok("short")),
        Failure::Policy(head),
        quick,
    );
    // A string past the end of memory is still malformed, measured or not.
    let past = format!("{} {}", set_result(36, 0x1_0000), set_result(40, 1 << 30));
    let p = e.load(&policy(&past, &Out::ok("x"))).expect("loads");
    let got = e.evaluate(&p, &input(3)).outcome;
    assert!(
        matches!(&got, Err(Failure::InvalidOutput(OutputError::Malformed(m))) if m.contains("out of bounds")),
        "{got:?}"
    );
}

#[test]
fn log_lines_past_the_cap_are_dropped_not_fatal() {
    let e = engine(tight_hostcall());
    // 100 lines of 1000 bytes, then one line of 1 MiB: 16 lines fit in 16 KiB.
    let body = format!(
        "{GROW_AND_FILL}
    (block $done (loop $l
      (br_if $done (i32.ge_u (global.get $i) (i32.const 100)))
      (call $log (i32.const 1) (i32.const {BIG}) (i32.const 1000))
      (global.set $i (i32.add (global.get $i) (i32.const 1)))
      (br $l)))
    (call $log (i32.const 3) (i32.const {BIG}) (i32.const {BIG}))"
    );
    let p = e
        .load(&with_counter(&body, &Out::ok("chatty")))
        .expect("loads");
    let ev = e.evaluate(&p, &input(3));
    assert!(ev.output_truncated());
    assert_eq!(ev.outcome.map(|d| d.reason), Ok("chatty".to_owned()));
    assert_eq!(ev.logs.len(), 16);
    assert!(ev.logs.iter().all(|l| l.message == "x".repeat(1000)));
    assert_eq!(ev.logs_dropped, 85);
}

#[test]
fn static_memory_past_the_limit_is_refused_naming_the_option() {
    let e = engine(Limits::default());
    let module = core_module("", &Out::ok("big"), "").replace(
        r#"(memory (export "memory") 2)"#,
        r#"(memory (export "memory") 768)"#,
    );
    let err = e.load(&componentize(&module)).map(|_| ());
    assert_eq!(
        err,
        Err(LoadError::MemoryTooLarge {
            needs: 48 << 20,
            limit: 32 << 20
        })
    );
    assert_eq!(
        err.map_err(|e| e.to_string()),
        Err("needs 48 MiB of linear memory, the limit is 32 MiB (--policy-memory-bytes)".into())
    );
    // Exactly at the limit loads.
    let module = core_module("", &Out::ok("fits"), "").replace(
        r#"(memory (export "memory") 2)"#,
        r#"(memory (export "memory") 512)"#,
    );
    assert!(e.load(&componentize(&module)).is_ok());
}
