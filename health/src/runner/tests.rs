use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::check::Kind;

fn tcp(interval_ms: u64, rise: u32, fall: u32) -> Check {
    Check {
        kind: Kind::Tcp,
        interval: Duration::from_millis(interval_ms),
        timeout: Duration::from_millis(interval_ms / 2),
        rise,
        fall,
        ..Check::default()
    }
}

/// A port nothing listens on (bound, then closed).
async fn closed_port() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    l.local_addr().expect("addr")
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Transition<u32>>) -> Transition<u32> {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a transition within 5 s")
        .expect("the runner is alive")
}

#[tokio::test]
async fn a_server_that_stops_answering_goes_down_after_fall_results_and_comes_back_after_rise() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (runner, mut rx) = Runner::new(Arc::new(Prober::new(4)), 16);
    runner.set(vec![Target {
        id: 1u32,
        check: tcp(40, 2, 3),
        addr,
    }]);
    // Up at start, and nothing to say while it answers.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(rx.try_recv().is_err(), "no transition while up");
    let s = runner.status(&1).expect("status");
    assert_eq!((s.kind, s.state), ("tcp", State::Up));
    assert!(s.streak >= 3, "{s:?}");
    drop(listener);
    let t = next(&mut rx).await;
    assert_eq!(t.id, 1);
    assert_eq!(
        t.effect,
        Effect::Went {
            to: State::Down,
            weight: None
        }
    );
    assert_eq!(t.result.reason, "connect refused");
    let s = runner.status(&1).expect("status");
    assert_eq!((s.state, s.streak), (State::Down, 3));
    let _listener = tokio::net::TcpListener::bind(addr).await.expect("rebind");
    let t = next(&mut rx).await;
    assert_eq!(
        t.effect,
        Effect::Went {
            to: State::Up,
            weight: None
        }
    );
    assert_eq!(runner.status(&1).map(|s| s.streak), Some(2));
}

#[tokio::test]
async fn set_keeps_unchanged_checks_restarts_changed_ones_and_stops_removed_ones() {
    let down = closed_port().await;
    let (runner, mut rx) = Runner::new(Arc::new(Prober::new(4)), 16);
    let a = Target {
        id: 1u32,
        check: tcp(30, 1, 1),
        addr: down,
    };
    let b = Target {
        id: 2u32,
        check: tcp(30, 1, 1),
        addr: down,
    };
    assert_eq!(sorted(runner.set(vec![a.clone(), b.clone()])), vec![1, 2]);
    let mut downs = vec![next(&mut rx).await.id, next(&mut rx).await.id];
    downs.sort();
    assert_eq!(downs, vec![1, 2]);
    // The same 1, a changed 2 (restarts up, goes down again), no 3.
    let b2 = Target {
        check: tcp(30, 1, 2),
        ..b
    };
    assert_eq!(runner.set(vec![a.clone(), b2.clone()]), vec![2]);
    assert_eq!(runner.status(&1).map(|s| s.state), Some(State::Down));
    assert_eq!(next(&mut rx).await.id, 2);
    assert_eq!(runner.set(vec![b2]), Vec::<u32>::new());
    assert_eq!(runner.status(&1), None);
    assert_eq!(runner.len(), 1);
    runner.set(Vec::new());
    assert!(runner.is_empty());
    // Nothing runs any more: no transition comes.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(rx.try_recv().is_err());
}

fn sorted(mut v: Vec<u32>) -> Vec<u32> {
    v.sort();
    v
}

#[test]
fn spread_stays_within_its_bound_and_differs_between_checks() {
    let max = Duration::from_millis(1000);
    let mut a = Spread::new(&1u32);
    let mut b = Spread::new(&2u32);
    let xs: Vec<Duration> = (0..100).map(|_| a.within(max)).collect();
    let ys: Vec<Duration> = (0..100).map(|_| b.within(max)).collect();
    assert!(xs.iter().chain(&ys).all(|d| *d < max));
    assert_ne!(xs, ys);
    assert!(xs.iter().any(|d| *d > max / 2) && xs.iter().any(|d| *d < max / 2));
    assert_eq!(a.within(Duration::ZERO), Duration::ZERO);
}

#[tokio::test]
async fn checks_run_on_the_runtime_given_and_only_while_it_runs() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    // A runtime nobody drives yet: its tasks do not run.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (runner, _rx) = Runner::new(Arc::new(Prober::new(4)), 16);
    let runner = runner.on_runtime(rt.handle().clone());
    runner.set(vec![Target {
        id: 1u32,
        check: tcp(20, 1, 1),
        addr,
    }]);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        runner.status(&1).map(|s| s.streak),
        Some(0),
        "probed elsewhere"
    );
    // Driven on its own thread: the probes start.
    let driver = std::thread::spawn(move || {
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(400)).await });
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = runner.status(&1).expect("status");
    assert!(s.streak >= 3, "{s:?}");
    driver.join().expect("driver thread");
}
