//! The declared state over the in-memory cores: plans, revisions, prune, concurrency, drift,
//! persistence and drain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::drain::{DrainRequest, Progress};
use super::*;
use crate::ipvs::fake::{FakeIpvs, Write};
use crate::ipvs::{Destination, ForwardMethod, IpvsOp, Protocol, Scheduler, Service};
use crate::link::fake::FakeLinks;

pub(super) fn tcp(s: &str) -> ServiceKey {
    let sa: SocketAddr = s.parse().expect("test address");
    ServiceKey::Endpoint {
        protocol: Protocol::Tcp,
        addr: sa.ip(),
        port: sa.port(),
    }
}

pub(super) fn masq(s: &str, weight: u32) -> Destination {
    let sa: SocketAddr = s.parse().expect("test address");
    Destination {
        forward: ForwardMethod::Masquerade,
        weight,
        ..Destination::new(sa.ip(), sa.port())
    }
}

fn cidr(s: &str) -> Cidr {
    let (a, p) = s.split_once('/').expect("cidr");
    Cidr::new(a.parse().expect("addr"), p.parse().expect("len")).expect("cidr")
}

/// ipvs0 holding the VIPs, and one rr service per (VIP, real servers).
fn spec(services: &[(&str, &[(&str, u32)])]) -> NodeSpec {
    let table = DesiredTable::new(
        services
            .iter()
            .map(|(k, dests)| {
                (
                    Service::new(tcp(k), Scheduler::Rr),
                    dests.iter().map(|(d, w)| masq(d, *w)).collect(),
                )
            })
            .collect(),
    )
    .expect("table");
    let vips = services
        .iter()
        .map(|(k, _)| cidr(&format!("{}/32", k.split(':').next().expect("vip"))))
        .collect::<BTreeSet<_>>();
    NodeSpec::new(
        vec![(
            LinkName::new("ipvs0").expect("name"),
            vips.into_iter().collect(),
        )],
        table,
        vec![],
        None,
    )
    .expect("spec")
}

type State = Declared<FakeIpvs, FakeLinks>;

/// A node core over `ipvs`, as a (re)started agent opens it.
fn kernel(ipvs: &Arc<FakeIpvs>) -> Arc<Kernel<FakeIpvs>> {
    Arc::new(Kernel::new(ipvs.clone()))
}

fn open(dir: Option<PathBuf>, drift: DriftMode) -> (Arc<FakeIpvs>, Arc<FakeLinks>, Arc<State>) {
    let ipvs = Arc::new(FakeIpvs::default());
    let links = Arc::new(FakeLinks::default());
    let state = Declared::open(kernel(&ipvs), links.clone(), None, dir, drift).expect("open");
    (ipvs, links, Arc::new(state))
}

fn words(o: &Outcome) -> Vec<String> {
    o.steps.iter().map(ToString::to_string).collect()
}

fn apply() -> ApplyOptions {
    ApplyOptions::default()
}

#[tokio::test]
async fn apply_makes_the_node_and_a_second_apply_changes_nothing() {
    let (ipvs, _, state) = open(None, DriftMode::Report);
    let s = spec(&[("10.0.0.1:80", &[("10.0.1.1:80", 1), ("10.0.1.2:80", 2)])]);
    let first = state.apply(s.clone(), apply()).await.expect("apply");
    assert_eq!(
        words(&first),
        [
            "ip link add ipvs0 type dummy",
            "ip link set ipvs0 up",
            "ip addr add 10.0.0.1/32 dev ipvs0",
            "-A -t 10.0.0.1:80 -s rr",
            "-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1",
            "-a -t 10.0.0.1:80 -r 10.0.1.2:80 -m -w 2",
        ]
    );
    assert_eq!((first.revision, first.recorded), (1, true));
    let writes = ipvs.writes().len();
    let second = state.apply(s.clone(), apply()).await.expect("again");
    assert!(second.steps.is_empty(), "{:?}", words(&second));
    assert_eq!(
        (second.revision, second.recorded),
        (1, false),
        "no new revision for no change"
    );
    assert_eq!(ipvs.writes().len(), writes, "nothing written");
    // Only the declaration changes: nothing to do on the node, but a new revision.
    let enforced = NodeSpec {
        drift: Some(DriftMode::Enforce),
        ..s
    };
    let third = state.apply(enforced, apply()).await.expect("drift mode");
    assert!(third.steps.is_empty(), "{:?}", words(&third));
    assert_eq!((third.revision, third.recorded), (2, true));
    assert_eq!(ipvs.writes().len(), writes, "nothing written");
}

#[tokio::test]
async fn a_dry_run_plans_and_changes_nothing() {
    let (ipvs, _, state) = open(None, DriftMode::Report);
    let s = spec(&[("10.0.0.1:80", &[("10.0.1.1:80", 1)])]);
    let o = state
        .apply(
            s,
            ApplyOptions {
                dry_run: true,
                ..apply()
            },
        )
        .await
        .expect("dry run");
    assert_eq!(o.steps.len(), 5);
    assert!(!o.applied);
    assert_eq!(o.revision, 0);
    assert!(ipvs.writes().is_empty());
}

#[tokio::test]
async fn prune_removes_only_what_a_revision_declared() {
    let (ipvs, _, state) = open(None, DriftMode::Report);
    // Made by another tool: never pruned.
    ipvs.new_service(&Service::new(tcp("10.9.9.9:80"), Scheduler::Wlc))
        .await
        .expect("foreign");
    state
        .apply(
            spec(&[("10.0.0.1:80", &[("10.0.1.1:80", 1)]), ("10.0.0.2:80", &[])]),
            apply(),
        )
        .await
        .expect("first");
    let next = spec(&[("10.0.0.1:80", &[])]);
    let kept = state.apply(next.clone(), apply()).await.expect("no prune");
    assert!(
        kept.steps.is_empty(),
        "without prune nothing goes: {:?}",
        words(&kept)
    );
    let pruned = state
        .apply(
            next,
            ApplyOptions {
                prune: true,
                ..apply()
            },
        )
        .await
        .expect("prune");
    assert_eq!(
        words(&pruned),
        [
            "-d -t 10.0.0.1:80 -r 10.0.1.1:80",
            "-D -t 10.0.0.2:80",
            "ip addr del 10.0.0.2/32 dev ipvs0",
        ]
    );
    let left: Vec<ServiceKey> = ipvs
        .table()
        .await
        .expect("table")
        .iter()
        .map(|(s, _)| s.service.key)
        .collect();
    assert_eq!(left, [tcp("10.0.0.1:80"), tcp("10.9.9.9:80")]);
}

#[tokio::test]
async fn a_write_based_on_an_old_revision_is_refused() {
    let (_, _, state) = open(None, DriftMode::Report);
    let s = spec(&[("10.0.0.1:80", &[])]);
    state.apply(s.clone(), apply()).await.expect("first");
    let stale = ApplyOptions {
        expected: Some(0),
        ..apply()
    };
    let err = state.apply(s.clone(), stale).await.expect_err("stale");
    assert_eq!(
        err.to_string(),
        "the revision moved: expected 0, the current one is 1"
    );
    let ok = ApplyOptions {
        expected: Some(1),
        ..apply()
    };
    state.apply(s, ok).await.expect("current");
}

#[tokio::test]
async fn a_refused_change_undoes_everything_and_keeps_the_revision() {
    let (ipvs, links, state) = open(None, DriftMode::Report);
    let s = spec(&[("10.0.0.1:80", &[("10.0.1.1:80", 1), ("10.0.1.2:80", 1)])]);
    ipvs.refuse_write(
        Write::NewDest(tcp("10.0.0.1:80"), masq("10.0.1.2:80", 1)),
        libc::ENOMEM,
    );
    let err = state.apply(s, apply()).await.expect_err("refused");
    let msg = err.to_string();
    assert!(
        msg.starts_with("change 6 of 6 failed: \"-a -t 10.0.0.1:80 -r 10.0.1.2:80 -m -w 1\""),
        "{msg}"
    );
    assert!(
        msg.ends_with("the 3 earlier change(s) were undone: the node is as it was"),
        "{msg}"
    );
    assert!(ipvs.table().await.expect("table").is_empty());
    assert_eq!(
        links.list().await.expect("links").len(),
        1,
        "only lo is left"
    );
    assert_eq!(state.snapshot().await.current, None);
}

#[tokio::test]
async fn drift_is_reported_or_repaired() {
    let (ipvs, _, state) = open(None, DriftMode::Report);
    state
        .apply(spec(&[("10.0.0.1:80", &[("10.0.1.1:80", 3)])]), apply())
        .await
        .expect("apply");
    let mut events = state.subscribe();
    ipvs.flush().await.expect("flush behind the agent's back");
    let found = state.check(false).await.expect("check");
    assert_eq!(
        found,
        [
            "-A -t 10.0.0.1:80 -s rr",
            "-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 3"
        ]
    );
    assert!(ipvs.table().await.expect("table").is_empty(), "report only");
    assert_eq!(state.snapshot().await.drift, found);
    assert!(matches!(
        events.recv().await.expect("event").kind,
        EventKind::DriftFound(_)
    ));
    // Enforce: the next check restores it.
    state.check(true).await.expect("repair");
    assert_eq!(ipvs.table().await.expect("table").len(), 1);
    assert!(state.snapshot().await.drift.is_empty());
    assert!(state.check(false).await.expect("clean").is_empty());
}

#[tokio::test]
async fn revisions_survive_a_restart_and_the_node_is_reconciled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("revisions");
    let s = spec(&[("10.0.0.1:80", &[("10.0.1.1:80", 1)])]);
    let (ipvs, links, state) = open(Some(path.clone()), DriftMode::Report);
    state.apply(s.clone(), apply()).await.expect("apply");
    // A restart: the kernel kept its table; one real server was lost meanwhile.
    ipvs.del_dest(&tcp("10.0.0.1:80"), "10.0.1.1".parse().expect("ip"), 80)
        .await
        .expect("lose one");
    let writes = ipvs.writes().len();
    let again =
        Declared::open(kernel(&ipvs), links, None, Some(path), DriftMode::Report).expect("reopen");
    assert_eq!(again.snapshot().await.current.expect("revision").spec, s);
    let repaired = again.check(true).await.expect("reconcile");
    assert_eq!(repaired, ["-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1"]);
    assert_eq!(
        ipvs.writes().len(),
        writes + 1,
        "only the missing server is written"
    );
}

#[tokio::test]
async fn rollback_returns_to_the_previous_revision() {
    let (ipvs, _, state) = open(None, DriftMode::Report);
    state
        .apply(spec(&[("10.0.0.1:80", &[("10.0.1.1:80", 1)])]), apply())
        .await
        .expect("r1");
    state
        .apply(
            spec(&[("10.0.0.1:80", &[("10.0.1.1:80", 5)]), ("10.0.0.2:80", &[])]),
            apply(),
        )
        .await
        .expect("r2");
    let back = state.rollback(0, false, None).await.expect("rollback");
    assert_eq!(back.revision, 3);
    assert_eq!(
        words(&back),
        [
            "-e -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1",
            "-D -t 10.0.0.2:80",
            "ip addr del 10.0.0.2/32 dev ipvs0"
        ]
    );
    assert_eq!(ipvs.table().await.expect("table").len(), 1);
    let revs = state.revisions().await;
    assert_eq!(revs[0].origin, "rollback to 1");
    assert_eq!(
        state
            .rollback(9, false, None)
            .await
            .expect_err("missing")
            .to_string(),
        "revision 9 is not kept"
    );
}

#[tokio::test]
async fn export_holds_the_up_links_and_applies_back_as_no_change() {
    let (ipvs, links, state) = open(None, DriftMode::Report);
    // Made by other tools: an up dummy with a VIP, a down one, and the table.
    let name = |n: &str| LinkName::new(n).expect("name");
    for (n, up, a) in [
        ("vip0", true, "10.0.0.1/32"),
        ("vip1", false, "10.0.0.9/32"),
    ] {
        links.create_dummy(&name(n)).await.expect("dummy");
        links.set_up(&name(n), up).await.expect("state");
        let c = cidr(a);
        links
            .add_address(&name(n), c.address(), c.prefix_len())
            .await
            .expect("address");
    }
    let s = Service::new(tcp("10.0.0.1:80"), Scheduler::Rr);
    ipvs.apply(&[
        IpvsOp::NewService(s.clone()),
        IpvsOp::NewDest(s.key, masq("10.0.1.1:80", 3)),
    ])
    .await
    .into_iter()
    .collect::<Result<Vec<()>, _>>()
    .expect("table");

    let exported = state.export().await.expect("export");
    assert_eq!(
        exported
            .links
            .keys()
            .map(LinkName::as_str)
            .collect::<Vec<_>>(),
        ["vip0"],
        "lo is not a dummy and vip1 is down"
    );
    assert_eq!(exported.table.len(), 1);
    let back = state.apply(exported, apply()).await.expect("apply");
    assert!(back.steps.is_empty(), "{:?}", words(&back));
}

#[tokio::test]
async fn drain_waits_for_connections_then_removes_and_records_it() {
    let (ipvs, _, state) = open(None, DriftMode::Enforce);
    let key = tcp("10.0.0.1:80");
    let rip = "10.0.1.1".parse().expect("ip");
    state
        .apply(
            spec(&[("10.0.0.1:80", &[("10.0.1.1:80", 4), ("10.0.1.2:80", 1)])]),
            apply(),
        )
        .await
        .expect("apply");
    ipvs.set_active(&key, rip, 80, 2);
    let mut rx = state
        .drain(DrainRequest {
            service: key,
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
        Some(Progress::WeightZero { previous: 4 })
    );
    assert!(matches!(
        rx.recv().await,
        Some(Ok(Progress::Waiting { active: 2, .. }))
    ));
    // Drift enforcement leaves a draining server's weight alone.
    assert!(state.check(false).await.expect("check").is_empty());
    ipvs.set_active(&key, rip, 80, 0);
    let done = loop {
        match rx.recv().await.expect("progress").expect("no error") {
            Progress::Waiting { .. } => continue,
            p => break p,
        }
    };
    assert!(
        matches!(
            done,
            Progress::Done {
                removed: true,
                timed_out: false,
                revision: 2,
                ..
            }
        ),
        "{done:?}"
    );
    let dests = ipvs.destinations(&key).await.expect("dests");
    assert_eq!(dests.len(), 1);
    // The new revision no longer declares it, so drift does not bring it back.
    assert!(state.check(false).await.expect("check").is_empty());
    assert_eq!(state.revisions().await[0].origin, "drain");
}

/// An agent process: its own runtime, so dropping it ends every task it started, as a
/// `kill -9` would; the kernel's table (the fake) and the state directory outlive it.
struct Process {
    rt: tokio::runtime::Runtime,
    kernel: Arc<Kernel<FakeIpvs>>,
    state: Arc<State>,
}

impl Process {
    fn start(ipvs: &Arc<FakeIpvs>, links: &Arc<FakeLinks>, dir: &std::path::Path) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let kernel =
            Arc::new(Kernel::open(ipvs.clone(), dir.join("drains.pb")).expect("open the core"));
        let state = Arc::new(
            Declared::open(
                kernel.clone(),
                links.clone(),
                None,
                Some(dir.join("revisions")),
                DriftMode::Enforce,
            )
            .expect("open"),
        );
        Process { rt, kernel, state }
    }
}

#[test]
fn a_drain_survives_a_restart_and_finishes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ipvs = Arc::new(FakeIpvs::default());
    let links = Arc::new(FakeLinks::default());
    let key = tcp("10.0.0.1:80");
    let rip: std::net::IpAddr = "10.0.1.1".parse().expect("ip");
    let weight = |ipvs: &FakeIpvs| {
        futures::executor::block_on(ipvs.destinations(&key))
            .expect("read")
            .iter()
            .find(|d| d.dest.addr == rip)
            .map(|d| d.dest.weight)
    };

    let first = Process::start(&ipvs, &links, dir.path());
    first.rt.block_on(async {
        first
            .state
            .apply(
                spec(&[("10.0.0.1:80", &[("10.0.1.1:80", 100), ("10.0.1.2:80", 1)])]),
                apply(),
            )
            .await
            .expect("apply");
        ipvs.set_active(&key, rip, 80, 6);
        let mut rx = first
            .state
            .drain(DrainRequest {
                service: key,
                addr: rip,
                port: 80,
                timeout: Duration::from_secs(3600),
                keep: false,
                expected: None,
                poll: Duration::from_millis(10),
            })
            .await
            .expect("drain");
        assert_eq!(
            rx.recv().await.and_then(Result::ok),
            Some(Progress::WeightZero { previous: 100 })
        );
    });
    assert_eq!(first.kernel.drains().len(), 1);
    // kill -9: the drain's task is gone with the process, the drain is not.
    drop(first);
    assert_eq!(weight(&ipvs), Some(0));

    let second = Process::start(&ipvs, &links, dir.path());
    second.rt.block_on(async {
        // The reconcile after a start leaves the server drained...
        let repaired = second.state.check(true).await.expect("reconcile");
        assert_eq!(repaired, Vec::<String>::new());
        assert_eq!(weight(&ipvs), Some(0));
        // ...and the drain carries on where it was, then finishes.
        assert_eq!(second.state.resume_drains().await, 1);
        let declared_before = second.state.snapshot().await.current.expect("rev").number;
        ipvs.set_active(&key, rip, 80, 0);
        for _ in 0..500 {
            if weight(&ipvs).is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(weight(&ipvs), None, "the drained server is removed");
        let current = second.state.snapshot().await.current.expect("rev");
        assert_eq!(current.number, declared_before + 1);
        assert_eq!(current.origin, "drain");
        assert!(
            !current
                .spec
                .table
                .get(&key)
                .expect("svc")
                .dests
                .contains_key(&(rip, 80)),
            "the new revision leaves it out"
        );
    });
    assert_eq!(second.kernel.drains(), []);
    drop(second);
    // And a third start finds nothing left to do.
    let third = Process::start(&ipvs, &links, dir.path());
    assert_eq!(third.kernel.drains(), []);
}

/// In paused time: a count every poll, and the server left in place at the timeout exactly.
#[tokio::test(start_paused = true)]
async fn a_drain_that_times_out_keeps_its_timing() {
    let (ipvs, _, state) = open(None, DriftMode::Report);
    let key = tcp("10.0.0.1:80");
    let rip = "10.0.1.1".parse().expect("ip");
    state
        .apply(spec(&[("10.0.0.1:80", &[("10.0.1.1:80", 4)])]), apply())
        .await
        .expect("apply");
    ipvs.set_conns(&key, rip, 80, 2, 1);
    let mut rx = state
        .drain(DrainRequest {
            service: key,
            addr: rip,
            port: 80,
            timeout: Duration::from_millis(2500),
            keep: true,
            expected: None,
            poll: Duration::from_secs(1),
        })
        .await
        .expect("drain");
    let mut reports = Vec::new();
    while let Some(r) = rx.recv().await {
        reports.push(r.expect("no error"));
    }
    let waiting = |ms| Progress::Waiting {
        active: 2,
        inactive: 1,
        elapsed: Duration::from_millis(ms),
    };
    assert_eq!(
        reports,
        vec![
            Progress::WeightZero { previous: 4 },
            waiting(0),
            waiting(1000),
            waiting(2000),
            Progress::Done {
                active: 2,
                inactive: 1,
                elapsed: Duration::from_millis(2500),
                timed_out: true,
                removed: false,
                revision: 2,
            },
        ]
    );
}

#[tokio::test]
async fn a_drain_the_kernel_cuts_short_ends_with_why() {
    let (ipvs, _, state) = open(None, DriftMode::Report);
    let key = tcp("10.0.0.1:80");
    let rip = "10.0.1.1".parse().expect("ip");
    state
        .apply(spec(&[("10.0.0.1:80", &[("10.0.1.1:80", 4)])]), apply())
        .await
        .expect("apply");
    ipvs.refuse_write(Write::DelDest(key, rip, 80), libc::ENOENT);
    let mut rx = state
        .drain(DrainRequest {
            service: key,
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
        Some(Progress::WeightZero { previous: 4 })
    );
    let last = rx.recv().await.expect("a last report");
    assert_eq!(
        last.map_err(|e| e.to_string()),
        Err("\"-d -t 10.0.0.1:80 -r 10.0.1.1:80\" failed: No such destination".to_owned())
    );
    assert!(rx.recv().await.is_none(), "nothing after the error");
    assert_eq!(state.revisions().await.len(), 1, "no drain revision");
}

#[tokio::test]
async fn draining_a_missing_server_says_so() {
    let (_, _, state) = open(None, DriftMode::Report);
    state
        .apply(spec(&[("10.0.0.1:80", &[])]), apply())
        .await
        .expect("apply");
    let err = state
        .drain(DrainRequest {
            service: tcp("10.0.0.1:80"),
            addr: "10.0.1.9".parse().expect("ip"),
            port: 80,
            timeout: Duration::from_secs(1),
            keep: false,
            expected: None,
            poll: Duration::from_millis(10),
        })
        .await
        .expect_err("missing");
    assert_eq!(
        err.to_string(),
        "real server 10.0.1.9:80 of service TCP 10.0.0.1:80 not found"
    );
}

mod attachments {
    use super::*;
    use crate::api::policy_tests::fixture;
    use crate::attach::{Attachments, Mode, PolicyStore};
    use crate::policy::{Limits, PolicyEngine};
    use tempfile::TempDir;

    async fn policies(dir: &TempDir, kernel: Arc<Kernel<FakeIpvs>>) -> Arc<Attachments<FakeIpvs>> {
        let engine = PolicyEngine::new(Limits::default(), None).expect("engine");
        let store = PolicyStore::open(Some(dir.path().join("policies")), &engine)
            .await
            .expect("store");
        Arc::new(Attachments::new(engine, store, kernel))
    }

    fn with_attachment(policy: &str) -> NodeSpec {
        let mut s = spec(&[("10.0.0.1:80", &[("10.0.1.1:80", 1)])]);
        s.attachments = vec![AttachmentSpec {
            policy: policy.into(),
            services: vec![tcp("10.0.0.1:80")],
            params: vec![("k".into(), "v".into())],
            interval: Duration::from_secs(3600),
            mode: Mode::DryRun,
            quarantine_after: 3,
        }];
        s
    }

    /// Drift enforcement and an enforcing policy on the same service: the policy owns the
    /// weights, so repair never undoes its decision and the node is not reported as drifted.
    #[tokio::test]
    async fn drift_enforcement_and_an_enforcing_policy_do_not_fight() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ipvs = Arc::new(FakeIpvs::default());
        let links = Arc::new(FakeLinks::default());
        let k = kernel(&ipvs);
        let p = policies(&dir, k.clone()).await;
        // Sets 10.0.1.1:80 to weight 20 whatever it had.
        p.upload(fixture("", "10.0.1.1:80", 20, "lc"), "lc".into())
            .await
            .expect("upload");
        let state =
            Declared::open(k, links, Some(p.clone()), None, DriftMode::Enforce).expect("open");
        let mut s = spec(&[("10.0.0.1:80", &[("10.0.1.1:80", 100), ("10.0.1.2:80", 1)])]);
        s.attachments = vec![AttachmentSpec {
            policy: "lc".into(),
            services: vec![tcp("10.0.0.1:80")],
            params: vec![],
            interval: Duration::from_secs(3600),
            mode: Mode::Enforce,
            quarantine_after: 3,
        }];
        state.apply(s, apply()).await.expect("apply");
        let id = p.list().await[0].0.clone();
        let weights = || async {
            ipvs.destinations(&tcp("10.0.0.1:80"))
                .await
                .expect("read")
                .iter()
                .map(|d| d.dest.weight)
                .collect::<Vec<_>>()
        };
        assert_eq!(weights().await, [100, 1]);
        let mut seen = Vec::new();
        for _ in 0..10 {
            p.evaluate(&id).await.expect("evaluate");
            seen.push(weights().await);
            let drift = state.check(false).await.expect("check");
            assert_eq!(
                drift,
                Vec::<String>::new(),
                "a policy's weight is not drift"
            );
            seen.push(weights().await);
        }
        assert!(seen.iter().all(|w| w == &[20, 1]), "{seen:?}");
        assert!(state.snapshot().await.drift.is_empty());

        // A change behind everyone's back to a server the policy owns is still drift, measured
        // against the policy's weight, and repaired to it.
        ipvs.set_dest(&tcp("10.0.0.1:80"), &masq("10.0.1.1:80", 3))
            .await
            .expect("behind the back");
        let drift = state.check(false).await.expect("check");
        assert_eq!(drift, ["-e -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 20"]);
        assert_eq!(weights().await, [20, 1]);

        // No longer declared, the attachment goes, and the declaration owns the weights again.
        let without = spec(&[("10.0.0.1:80", &[("10.0.1.1:80", 100), ("10.0.1.2:80", 1)])]);
        let pruned = state
            .apply(
                without,
                ApplyOptions {
                    prune: true,
                    ..apply()
                },
            )
            .await
            .expect("prune");
        assert_eq!(
            words(&pruned),
            [format!("policy detach {id} (")
                + &p.policies().await[0].hash
                + " from TCP 10.0.0.1:80)"]
        );
        let drift = state.check(false).await.expect("check");
        assert_eq!(drift, ["-e -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 100"]);
        assert_eq!(weights().await, [100, 1]);
    }

    #[tokio::test]
    async fn declared_attachments_are_made_kept_pruned_and_remade_after_a_restart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ipvs = Arc::new(FakeIpvs::default());
        let links = Arc::new(FakeLinks::default());
        let k = kernel(&ipvs);
        let p = policies(&dir, k.clone()).await;
        let hash = p
            .upload(fixture("", "10.0.1.1:80", 5, "fixed"), "fixed".into())
            .await
            .expect("upload")
            .hash;
        let revisions = Some(dir.path().join("revisions"));
        let state = Declared::open(
            k,
            links.clone(),
            Some(p.clone()),
            revisions.clone(),
            DriftMode::Report,
        )
        .expect("open");

        let unknown = state
            .apply(with_attachment("nope"), apply())
            .await
            .expect_err("unknown policy");
        assert_eq!(unknown.to_string(), "policy \"nope\" is not uploaded");

        // By name; it is recorded and attached by hash.
        let first = state
            .apply(with_attachment("fixed"), apply())
            .await
            .expect("apply");
        let attach = format!("policy attach {hash} to TCP 10.0.0.1:80");
        assert_eq!(words(&first).last(), Some(&attach));
        let live = p.list().await;
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].1.policy, hash);
        assert_eq!(live[0].1.params, [("k".to_owned(), "v".to_owned())]);
        let again = state
            .apply(with_attachment(&hash), apply())
            .await
            .expect("again");
        assert!(again.steps.is_empty(), "{:?}", words(&again));

        // A restart: the attachments are gone with the old process, and come back.
        let k2 = kernel(&ipvs);
        let p2 = policies(&dir, k2.clone()).await;
        let restarted = Declared::open(
            k2,
            links.clone(),
            Some(p2.clone()),
            revisions,
            DriftMode::Report,
        )
        .expect("reopen");
        let repaired = restarted.check(true).await.expect("reconcile");
        assert_eq!(repaired, [attach]);
        assert_eq!(p2.list().await.len(), 1);

        // Pruned away when the spec no longer declares it.
        let none = spec(&[("10.0.0.1:80", &[("10.0.1.1:80", 1)])]);
        let pruned = restarted
            .apply(
                none,
                ApplyOptions {
                    prune: true,
                    ..apply()
                },
            )
            .await
            .expect("prune");
        assert_eq!(pruned.steps.len(), 1);
        assert!(
            words(&pruned)[0].starts_with("policy detach a"),
            "{:?}",
            words(&pruned)
        );
        assert!(p2.list().await.is_empty());
    }
}
