//! The node core over the in-memory table: turns, compare-and-set policy writes, drains kept.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use super::*;
use crate::ipvs::fake::{FakeIpvs, Write};
use crate::ipvs::{Destination, ForwardMethod, Protocol, Service};

fn key() -> ServiceKey {
    ServiceKey::Endpoint {
        protocol: Protocol::Tcp,
        addr: "10.0.0.1".parse().expect("addr"),
        port: 80,
    }
}

fn masq(s: &str, weight: u32) -> Destination {
    let sa: SocketAddr = s.parse().expect("test address");
    Destination {
        forward: ForwardMethod::Masquerade,
        weight,
        ..Destination::new(sa.ip(), sa.port())
    }
}

fn dk(s: &str) -> DestKey {
    let sa: SocketAddr = s.parse().expect("test address");
    (sa.ip(), sa.port())
}

/// A wrr service with 10.0.1.1:80 and 10.0.1.2:80 at weight 1, held by attachment a1.
async fn setup() -> (Arc<FakeIpvs>, Arc<Kernel<FakeIpvs>>) {
    let ipvs = Arc::new(FakeIpvs::default());
    ipvs.new_service(&Service::new(key(), Scheduler::Wrr))
        .await
        .expect("service");
    for d in ["10.0.1.1:80", "10.0.1.2:80"] {
        ipvs.new_dest(&key(), &masq(d, 1)).await.expect("dest");
    }
    let kernel = Arc::new(Kernel::new(ipvs.clone()));
    kernel.hold("a1", &[key()]).expect("hold");
    (ipvs, kernel)
}

fn decision(weights: &[(&str, u32, u32)]) -> PolicyWrite {
    PolicyWrite {
        attachment: "a1".into(),
        service: key(),
        weights: weights.iter().map(|(d, f, t)| (dk(d), *f, *t)).collect(),
        scheduler: None,
    }
}

async fn dest(ipvs: &FakeIpvs, d: &str) -> Destination {
    ipvs.destinations(&key())
        .await
        .expect("read")
        .into_iter()
        .find(|e| (e.dest.addr, e.dest.port) == dk(d))
        .expect("present")
        .dest
}

#[tokio::test]
async fn a_decision_keeps_the_fields_another_writer_changed_while_it_ran() {
    let (ipvs, kernel) = setup().await;
    // The policy read weight 1; meanwhile another writer set a threshold.
    let mut other = masq("10.0.1.1:80", 1);
    other.upper_threshold = 50;
    kernel
        .turn()
        .await
        .ipvs()
        .set_dest(&key(), &other)
        .await
        .expect("other writer");
    let written = kernel
        .write_decision(&decision(&[("10.0.1.1:80", 1, 7)]))
        .await
        .expect("written");
    assert_eq!(written.weights, 1);
    let now = dest(&ipvs, "10.0.1.1:80").await;
    assert_eq!((now.weight, now.upper_threshold), (7, 50));
}

#[tokio::test]
async fn a_decision_made_stale_by_another_writer_writes_nothing() {
    let (ipvs, kernel) = setup().await;
    kernel
        .turn()
        .await
        .ipvs()
        .set_dest(&key(), &masq("10.0.1.2:80", 3))
        .await
        .expect("other writer");
    let writes = ipvs.writes().len();
    let err = kernel
        .write_decision(&decision(&[("10.0.1.1:80", 1, 7), ("10.0.1.2:80", 1, 9)]))
        .await
        .expect_err("stale");
    assert_eq!(
        err.to_string(),
        "the service changed while the policy ran (real server 10.0.1.2:80 has weight 3, not \
         the 1 it was read with); nothing was written"
    );
    assert_eq!(ipvs.writes().len(), writes);
    assert_eq!(dest(&ipvs, "10.0.1.1:80").await.weight, 1);
}

#[tokio::test]
async fn a_stale_scheduler_is_not_switched() {
    let (ipvs, kernel) = setup().await;
    let mut w = decision(&[]);
    w.scheduler = Some((Scheduler::Rr, Scheduler::Lc));
    let err = kernel.write_decision(&w).await.expect_err("stale");
    assert_eq!(
        err.to_string(),
        "the service changed while the policy ran (the scheduler is wrr, not the rr it was read \
         with); nothing was written"
    );
    w.scheduler = Some((Scheduler::Wrr, Scheduler::Lc));
    kernel.write_decision(&w).await.expect("switched");
    let svc = ipvs.service(&key()).await.expect("read").service;
    assert_eq!(svc.scheduler, Scheduler::Lc);
    // Recorded as the policy's: the effective state keeps it.
    let declared = crate::state::DesiredTable::new(vec![(
        Service::new(key(), Scheduler::Wrr),
        vec![masq("10.0.1.1:80", 1)],
    )])
    .expect("table");
    let eff = kernel
        .ledger()
        .effective(&declared, &ipvs.table().await.expect("table"));
    assert_eq!(
        eff.get(&key()).map(|s| s.service.scheduler.clone()),
        Some(Scheduler::Lc)
    );
}

#[tokio::test]
async fn a_draining_server_keeps_weight_zero_and_a_gone_one_is_skipped() {
    let (ipvs, kernel) = setup().await;
    {
        let turn = kernel.turn().await;
        turn.start_drain(DrainRecord {
            service: key(),
            dest: dk("10.0.1.1:80"),
            keep: false,
            deadline: SystemTime::now() + Duration::from_secs(60),
            poll: Duration::from_secs(1),
            previous: 1,
        })
        .expect("drain kept");
        turn.ipvs()
            .set_dest(&key(), &masq("10.0.1.1:80", 0))
            .await
            .expect("zero");
    }
    let written = kernel
        .write_decision(&decision(&[
            ("10.0.1.1:80", 1, 7),
            ("10.0.1.2:80", 1, 9),
            ("10.0.1.3:80", 1, 9),
        ]))
        .await
        .expect("written");
    assert_eq!(
        written,
        Written {
            weights: 1,
            draining: vec![dk("10.0.1.1:80")],
            gone: vec![dk("10.0.1.3:80")],
        }
    );
    assert_eq!(dest(&ipvs, "10.0.1.1:80").await.weight, 0);
    assert_eq!(dest(&ipvs, "10.0.1.2:80").await.weight, 9);
}

#[tokio::test]
async fn only_the_holder_writes_and_a_release_ends_its_hold() {
    let (ipvs, kernel) = setup().await;
    let mut w = decision(&[("10.0.1.1:80", 1, 7)]);
    w.attachment = "a2".into();
    let err = kernel.write_decision(&w).await.expect_err("not held");
    assert_eq!(
        err.to_string(),
        "attachment a2 does not steer service TCP 10.0.0.1:80"
    );
    kernel.release("a1");
    let err = kernel
        .write_decision(&decision(&[("10.0.1.1:80", 1, 7)]))
        .await
        .expect_err("released");
    assert!(matches!(err, DecisionError::NotHolder { .. }), "{err:?}");
    assert!(
        !ipvs
            .writes()
            .iter()
            .any(|w| matches!(w, Write::SetDest(_, d) if d.weight == 7))
    );
}

#[tokio::test(start_paused = true)]
async fn writers_take_turns() {
    let (ipvs, kernel) = setup().await;
    let turn = kernel.turn().await;
    let k = kernel.clone();
    let policy =
        tokio::spawn(async move { k.write_decision(&decision(&[("10.0.1.1:80", 1, 7)])).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!policy.is_finished(), "a policy wrote during another turn");
    assert_eq!(dest(&ipvs, "10.0.1.1:80").await.weight, 1);
    drop(turn);
    policy.await.expect("task").expect("written");
    assert_eq!(dest(&ipvs, "10.0.1.1:80").await.weight, 7);
}

#[tokio::test]
async fn drains_in_progress_are_kept_across_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("drains.pb");
    let ipvs = Arc::new(FakeIpvs::default());
    let record = DrainRecord {
        service: key(),
        dest: dk("10.0.1.1:80"),
        keep: true,
        deadline: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        poll: Duration::from_millis(250),
        previous: 100,
    };
    {
        let kernel = Kernel::open(ipvs.clone(), path.clone()).expect("open");
        kernel
            .turn()
            .await
            .start_drain(record.clone())
            .expect("kept");
    }
    let kernel = Kernel::open(ipvs.clone(), path.clone()).expect("reopen");
    assert_eq!(kernel.drains(), [record]);
    kernel
        .turn()
        .await
        .end_drain(&key(), "10.0.1.1".parse().expect("addr"), 80)
        .expect("ended");
    let kernel = Kernel::open(ipvs, path).expect("reopen");
    assert_eq!(kernel.drains(), []);
}

#[tokio::test]
async fn a_drain_that_cannot_be_kept_is_not_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("drains.pb");
    let kernel = Kernel::open(Arc::new(FakeIpvs::default()), path.clone()).expect("open");
    // The file cannot be replaced: a directory stands in its way.
    std::fs::create_dir(&path).expect("mkdir");
    let err = kernel
        .turn()
        .await
        .start_drain(DrainRecord {
            service: key(),
            dest: dk("10.0.1.1:80"),
            keep: false,
            deadline: SystemTime::UNIX_EPOCH,
            poll: Duration::from_secs(1),
            previous: 1,
        })
        .expect_err("not kept");
    assert_eq!(err.kind(), io::ErrorKind::IsADirectory, "{err}");
    assert_eq!(kernel.drains(), []);
}
