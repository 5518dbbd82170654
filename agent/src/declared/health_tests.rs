//! Health checks with the other owners of the table, over the in-memory kernel and real
//! probes of local listeners: drift enforcement, drains and policies never fight health.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipvs_proto::v1 as pb;
use tokio::net::TcpListener;

use super::drain::{DrainRequest, Progress};
use super::tests::{masq, tcp};
use super::*;
use crate::ipvs::fake::FakeIpvs;
use crate::ipvs::{Scheduler, Service};
use crate::kernel::{DecisionError, PolicyWrite};
use crate::link::fake::FakeLinks;
use crate::state::CheckDecl;

type State = Declared<FakeIpvs, FakeLinks>;

const VIP: &str = "10.0.0.1:80";

fn ms(n: u64) -> Option<prost_types::Duration> {
    Some(crate::convert::duration_to_proto(Duration::from_millis(n)))
}

/// A tcp check of `server` (all servers when `None`) that probes `probe` instead, every
/// 40 ms, up or down after one result.
fn check(
    server: Option<&str>,
    probe: SocketAddr,
    tweak: impl FnOnce(&mut pb::CheckSpec),
) -> CheckDecl {
    let mut spec = pb::CheckSpec {
        service: Some(crate::convert::ipvs::key_to_proto(&tcp(VIP))),
        server: server.unwrap_or_default().to_owned(),
        kind: Some(pb::check_spec::Kind::Tcp(pb::TcpCheck {})),
        interval: ms(40),
        timeout: ms(20),
        rise: 1,
        fall: 1,
        connect_ip: probe.ip().to_string(),
        connect_port: probe.port().into(),
        ..Default::default()
    };
    tweak(&mut spec);
    let sa = server.map(|s| s.parse::<SocketAddr>().expect("server"));
    let sorry = spec
        .sorry_server
        .as_ref()
        .map(|d| crate::convert::ipvs::destination(d).expect("sorry"));
    CheckDecl {
        service: tcp(VIP),
        server: sa.map(|s| (s.ip(), s.port())),
        check: ipvs_health::spec::check(&spec).expect("check"),
        sorry,
        quorum: spec.quorum.max(1),
        spec,
    }
}

fn spec(servers: &[(&str, u32)], checks: Vec<CheckDecl>, drift: DriftMode) -> NodeSpec {
    let table = DesiredTable::new(vec![(
        Service::new(tcp(VIP), Scheduler::Rr),
        servers.iter().map(|(d, w)| masq(d, *w)).collect(),
    )])
    .expect("table");
    NodeSpec::new(vec![], table, vec![], Some(drift))
        .expect("spec")
        .with_checks(checks)
        .expect("checks")
}

/// A node with its checks running, and `servers` with `checks` applied (drift: enforce).
async fn node(servers: &[(&str, u32)], checks: Vec<CheckDecl>) -> (Arc<FakeIpvs>, Arc<State>) {
    let ipvs = Arc::new(FakeIpvs::default());
    let kernel = Arc::new(Kernel::new(ipvs.clone()));
    let links = Arc::new(FakeLinks::default());
    let drift = DriftMode::Enforce;
    let state = Arc::new(Declared::open(kernel, links, None, None, drift).expect("open"));
    state.start_checks().await;
    state
        .apply(spec(servers, checks, drift), ApplyOptions::default())
        .await
        .expect("apply");
    (ipvs, state)
}

/// The service's real servers and weights, in address order.
async fn weights(state: &State) -> Vec<(String, u32)> {
    let mut out: Vec<(String, u32)> = state
        .kernel
        .read()
        .destinations(&tcp(VIP))
        .await
        .expect("destinations")
        .into_iter()
        .map(|d| {
            (
                SocketAddr::new(d.dest.addr, d.dest.port).to_string(),
                d.dest.weight,
            )
        })
        .collect();
    out.sort();
    out
}

/// Waits (up to 5 s) until the weights are `want`.
async fn until(state: &State, want: &[(&str, u32)]) {
    let want: Vec<(String, u32)> = want.iter().map(|(s, w)| ((*s).to_owned(), *w)).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let got = weights(state).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "weights are {got:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = l.local_addr().expect("addr");
    (l, a)
}

/// The next health event, skipping the others.
async fn health_event(rx: &mut tokio::sync::broadcast::Receiver<Event>) -> HealthView {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("an event within 5 s")
            .expect("event");
        if let EventKind::Health(h) = e.kind {
            return h;
        }
    }
}

#[tokio::test]
async fn a_down_server_is_quiesced_and_restored_and_drift_enforcement_agrees() {
    let (l, probe) = listener().await;
    let (_, state) = node(
        &[("10.0.1.1:80", 3), ("10.0.1.2:80", 1)],
        vec![check(Some("10.0.1.1:80"), probe, |_| {})],
    )
    .await;
    let mut events = state.subscribe();
    until(&state, &[("10.0.1.1:80", 3), ("10.0.1.2:80", 1)]).await;
    drop(l);
    until(&state, &[("10.0.1.1:80", 0), ("10.0.1.2:80", 1)]).await;
    let h = health_event(&mut events).await;
    assert_eq!(
        (h.server, h.status.state, h.weight),
        (
            ("10.0.1.1".parse::<IpAddr>().expect("ip"), 80),
            ipvs_health::check::State::Down,
            0
        )
    );
    assert_eq!(
        h.status.last.map(|r| r.reason),
        Some("connect refused".to_owned())
    );
    // Health's weight is the effective state: no drift, and enforcement does not undo it.
    assert_eq!(
        state.check(false).await.expect("check"),
        Vec::<String>::new()
    );
    assert_eq!(weights(&state).await[0].1, 0);
    let snap = state.snapshot().await;
    assert_eq!(snap.health.len(), 1);
    assert_eq!(snap.health[0].status.state, ipvs_health::check::State::Down);
    let _l = TcpListener::bind(probe).await.expect("rebind");
    until(&state, &[("10.0.1.1:80", 3), ("10.0.1.2:80", 1)]).await;
    assert_eq!(
        state.check(false).await.expect("check"),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn remove_takes_the_server_out_and_the_sorry_server_stands_in_below_quorum() {
    let (l, probe) = listener().await;
    let (_, state) = node(
        &[("10.0.1.1:80", 2)],
        vec![check(None, probe, |c| {
            c.on_failure = pb::FailureAction::Remove.into();
            c.quorum = 2;
            c.sorry_server = Some(pb::Destination {
                address: "10.0.9.9".into(),
                port: 80,
                forwarding: pb::ForwardingMethod::Masquerade.into(),
                ..Default::default()
            });
        })],
    )
    .await;
    let mut events = state.subscribe();
    until(&state, &[("10.0.1.1:80", 2)]).await;
    drop(l);
    until(&state, &[("10.0.9.9:80", 1)]).await;
    let quorum = loop {
        let e = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("event")
            .expect("event");
        if let EventKind::Quorum(q) = e.kind {
            break q;
        }
    };
    assert_eq!(
        (quorum.lost, quorum.healthy_weight, quorum.quorum),
        (true, 0, 2)
    );
    assert_eq!(
        state.check(false).await.expect("check"),
        Vec::<String>::new()
    );
    // The export holds what was declared, checks included, not what health did: applied
    // back, it changes nothing and records nothing.
    let exported = state.export().await.expect("export");
    assert_eq!(exported.checks.len(), 1);
    let servers: Vec<(String, u32)> = exported
        .table
        .services()
        .flat_map(|s| s.dests.values())
        .map(|d| (SocketAddr::new(d.addr, d.port).to_string(), d.weight))
        .collect();
    assert_eq!(servers, [("10.0.1.1:80".to_owned(), 2)]);
    let again = state
        .apply(exported, ApplyOptions::default())
        .await
        .expect("apply the export");
    assert!(again.steps.is_empty(), "{:?}", again.steps);
    assert!(!again.recorded);
    let _l = TcpListener::bind(probe).await.expect("rebind");
    until(&state, &[("10.0.1.1:80", 2)]).await;
}

#[tokio::test]
async fn a_drain_stays_a_drain_whatever_the_probes_say() {
    let (_l, probe) = listener().await;
    let (ipvs, state) = node(
        &[("10.0.1.1:80", 3), ("10.0.1.2:80", 1)],
        vec![check(None, probe, |_| {})],
    )
    .await;
    let rip: IpAddr = "10.0.1.1".parse().expect("ip");
    ipvs.set_active(&tcp(VIP), rip, 80, 1);
    let mut rx = state
        .drain(DrainRequest {
            service: tcp(VIP),
            addr: rip,
            port: 80,
            timeout: Duration::from_secs(30),
            keep: false,
            expected: None,
            poll: Duration::from_millis(10),
        })
        .await
        .expect("drain");
    assert_eq!(
        rx.recv().await.and_then(Result::ok),
        Some(Progress::WeightZero { previous: 3 })
    );
    // The server answers its probes all along: it stays at 0 while the drain runs.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(weights(&state).await[0], ("10.0.1.1:80".to_owned(), 0));
    assert_eq!(
        state.check(false).await.expect("check"),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn a_policy_cannot_revive_a_server_its_health_check_took_out() {
    let (l, probe) = listener().await;
    let (_, state) = node(
        &[("10.0.1.1:80", 3), ("10.0.1.2:80", 1)],
        vec![check(Some("10.0.1.1:80"), probe, |_| {})],
    )
    .await;
    state.kernel.hold("a1", &[tcp(VIP)]).expect("hold");
    drop(l);
    until(&state, &[("10.0.1.1:80", 0), ("10.0.1.2:80", 1)]).await;
    let rip: IpAddr = "10.0.1.1".parse().expect("ip");
    let written = state
        .kernel
        .write_decision(&PolicyWrite {
            attachment: "a1".into(),
            service: tcp(VIP),
            weights: vec![((rip, 80), 0, 7)],
            scheduler: None,
        })
        .await
        .map_err(|e: DecisionError| e.to_string())
        .expect("write");
    assert_eq!(written.weights, 0);
    assert_eq!(written.draining, vec![(rip, 80)]);
    assert_eq!(weights(&state).await[0].1, 0);
    // Back up, with no weight written by the policy since: the declared weight returns.
    let _l = TcpListener::bind(probe).await.expect("rebind");
    until(&state, &[("10.0.1.1:80", 3), ("10.0.1.2:80", 1)]).await;
}

/// An HTTP server whose every answer is the next status `script` gives it; the number of
/// requests answered so far.
async fn scripted_http(
    mut script: impl FnMut(u64) -> u16 + Send + 'static,
) -> (SocketAddr, Arc<std::sync::atomic::AtomicU64>) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (l, addr) = listener().await;
    let served = Arc::new(AtomicU64::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let status = script(count.load(Ordering::SeqCst));
            let reply = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
            let _ = s.write_all(reply.as_bytes()).await;
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    (addr, served)
}

/// Waits (up to 5 s) until `served` has answered `n` more requests than `from`.
async fn served_at_least(served: &std::sync::atomic::AtomicU64, n: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while served.load(std::sync::atomic::Ordering::SeqCst) < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "fewer than {n} probes"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_flapping_server_held_by_rise_and_fall_causes_no_kernel_write() {
    use std::sync::atomic::{AtomicU16, Ordering};
    // Alternating answers (200, 503, 200, ...) under rise 2 / fall 2: no two alike in a row,
    // so the state never changes. Then a steady 503, then a steady 200 again.
    let mode = Arc::new(AtomicU16::new(0));
    let m = mode.clone();
    let (probe, served) = scripted_http(move |n| match m.load(Ordering::SeqCst) {
        0 if n % 2 == 0 => 200,
        0 => 503,
        steady => steady,
    })
    .await;
    let http = |spec: &mut pb::CheckSpec| {
        spec.kind = Some(pb::check_spec::Kind::Http(pb::HttpCheck::default()));
        spec.rise = 2;
        spec.fall = 2;
    };
    let (ipvs, state) = node(
        &[("10.0.1.1:80", 3), ("10.0.1.2:80", 1)],
        vec![check(Some("10.0.1.1:80"), probe, http)],
    )
    .await;
    until(&state, &[("10.0.1.1:80", 3), ("10.0.1.2:80", 1)]).await;
    let applied = ipvs.writes().len();
    served_at_least(&served, 12).await;
    assert_eq!(ipvs.writes()[applied..], [], "flapping wrote to the kernel");
    assert_eq!(weights(&state).await[0].1, 3);

    // Down for good: one write (weight 0), and none for the failures after it.
    mode.store(503, Ordering::SeqCst);
    until(&state, &[("10.0.1.1:80", 0), ("10.0.1.2:80", 1)]).await;
    let down = served.load(Ordering::SeqCst);
    served_at_least(&served, down + 6).await;
    let rip: IpAddr = "10.0.1.1".parse().expect("ip");
    let quiesced: Vec<(IpAddr, u32)> = ipvs.writes()[applied..]
        .iter()
        .map(|w| match w {
            crate::ipvs::fake::Write::SetDest(_, d) => (d.addr, d.weight),
            other => panic!("not a weight change: {other:?}"),
        })
        .collect();
    assert_eq!(quiesced, [(rip, 0)]);

    // Up for good: the declared weight back, in one write.
    mode.store(200, Ordering::SeqCst);
    until(&state, &[("10.0.1.1:80", 3), ("10.0.1.2:80", 1)]).await;
    let up = served.load(Ordering::SeqCst);
    served_at_least(&served, up + 6).await;
    assert_eq!(
        ipvs.writes().len(),
        applied + 2,
        "{:?}",
        &ipvs.writes()[applied..]
    );
}

#[tokio::test]
async fn an_exec_check_runs_and_is_reaped_on_the_probe_runtime() {
    // The probe is the command; what it connects to does not matter.
    let (_l, probe) = listener().await;
    let exec = |fails: bool| {
        move |spec: &mut pb::CheckSpec| {
            let code = if fails { "exit 1" } else { "exit 0" };
            spec.kind = Some(pb::check_spec::Kind::Exec(pb::ExecCheck {
                command: vec!["sh".into(), "-c".into(), code.into()],
            }));
        }
    };
    let (_, state) = node(
        &[("10.0.1.1:80", 3), ("10.0.1.2:80", 1)],
        vec![
            check(Some("10.0.1.1:80"), probe, exec(true)),
            check(Some("10.0.1.2:80"), probe, exec(false)),
        ],
    )
    .await;
    until(&state, &[("10.0.1.1:80", 0), ("10.0.1.2:80", 1)]).await;
    let snap = state.snapshot().await;
    let reasons: Vec<Option<String>> = snap
        .health
        .iter()
        .map(|h| h.status.last.as_ref().map(|r| r.reason.clone()))
        .collect();
    assert!(
        reasons
            .iter()
            .all(|r| r.as_deref().is_some_and(|r| r.starts_with("exit "))),
        "{reasons:?}"
    );
}
