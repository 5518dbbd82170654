//! `StateService` against the real kernel: a declared node is built, a second apply and an
//! agent restart disturb nothing (a live connection and the counters survive), drift behind
//! the agent's back is repaired, concurrent writers are serialised by revision, and a drain
//! waits for a real connection to end.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ipvs_e2e::api::{endpoint, masq, real_server, seconds};
use ipvs_e2e::{Agent, Backend, Netns, http_get, ipvsadm, stdout, wait_for};
use ipvs_proto::v1::state_service_client::StateServiceClient;
use ipvs_proto::v1::{
    ApplyStateRequest, DrainPhase, DrainRequest, DriftMode, GetStateRequest, LinkSpec, NodeSpec,
    Prefix, Protocol, Scheduler, Service, ServiceKey,
};
use tonic::Code;
use tonic::transport::Channel;

const VIP: &str = "192.168.100.1:80";
const B1: &str = "127.0.0.1:8081";
const B2: &str = "127.0.0.1:8082";

fn key() -> Option<ServiceKey> {
    endpoint(Protocol::Tcp, VIP)
}

/// The seed scenario, declared: dummy1 holding the VIP, rr over two backends.
fn seed_spec(drift: DriftMode) -> NodeSpec {
    NodeSpec {
        links: vec![LinkSpec {
            name: "dummy1".into(),
            addresses: vec![Prefix {
                address: "192.168.100.1".into(),
                prefix_length: 32,
            }],
        }],
        services: vec![Service {
            key: key(),
            scheduler: Scheduler::Rr.into(),
            destinations: vec![masq(B1, 1), masq(B2, 1)],
            ..Default::default()
        }],
        attachments: vec![],
        drift: drift.into(),
        checks: vec![],
    }
}

async fn client(agent: &Agent) -> Result<StateServiceClient<Channel>> {
    Ok(StateServiceClient::new(agent.channel().await?))
}

async fn apply(
    c: &mut StateServiceClient<Channel>,
    spec: NodeSpec,
    expected: Option<u64>,
) -> Result<ipvs_proto::v1::ApplyStateResponse, tonic::Status> {
    c.apply_state(ApplyStateRequest {
        spec: Some(spec),
        prune: false,
        dry_run: false,
        expected_revision: expected,
    })
    .await
    .map(|r| r.into_inner())
}

/// The service's total connection count from `ipvsadm -Ln --stats`.
fn conns() -> Result<u64> {
    let out = stdout(&ipvsadm(&["-Ln", "--stats", "-t", VIP])?);
    out.lines()
        .find_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            match cols.as_slice() {
                ["TCP", addr, n, ..] if *addr == VIP => n.parse().ok(),
                _ => None,
            }
        })
        .with_context(|| format!("no service line in:\n{out}"))
}

fn start_agent(state: &Path, extra: &[&str]) -> Result<Agent> {
    let dir = state.to_str().context("state dir")?;
    let mut args = vec!["--state-dir", dir];
    args.extend_from_slice(extra);
    Agent::start_with(&args)
}

#[tokio::test]
async fn apply_restart_and_reapply_disturb_nothing() -> Result<()> {
    let _ns = Netns::new()?;
    let state = tempdir("restart")?;
    let _b1 = Backend::start(B1.parse()?, "backend 1")?;
    let _b2 = Backend::start(B2.parse()?, "backend 2")?;
    let vip: SocketAddr = VIP.parse()?;

    let agent = start_agent(&state, &[])?;
    let mut c = client(&agent).await?;
    let first = apply(&mut c, seed_spec(DriftMode::Report), None).await?;
    ensure!(first.revision == 1 && first.changes.len() == 6, "{first:?}");
    ensure!(http_get(vip)?.starts_with("backend"), "traffic flows");
    let again = apply(&mut c, seed_spec(DriftMode::Report), None).await?;
    ensure!(again.changes.is_empty() && again.revision == 1, "{again:?}");

    // A connection through the VIP, silent so it stays open across the restart.
    let mut held = TcpStream::connect_timeout(&vip, Duration::from_secs(5))?;
    let before = conns()?;
    let table_before = stdout(&ipvsadm(&["-Ln"])?);
    drop(c);
    drop(agent);

    let agent = start_agent(&state, &[])?;
    let mut c = client(&agent).await?;
    let st = c.get_state(GetStateRequest {}).await?.into_inner();
    ensure!(
        st.revision == 1,
        "the revision survives the restart: {st:?}"
    );
    let reapplied = apply(&mut c, seed_spec(DriftMode::Report), Some(1)).await?;
    ensure!(reapplied.changes.is_empty(), "{reapplied:?}");
    ensure!(
        stdout(&ipvsadm(&["-Ln"])?) == table_before,
        "the table is unchanged"
    );
    ensure!(
        conns()? >= before,
        "counters survive: {} < {before}",
        conns()?
    );
    // The held connection still works.
    held.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(held, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")?;
    let mut resp = String::new();
    held.read_to_string(&mut resp)?;
    ensure!(
        resp.contains("backend"),
        "held connection answered: {resp:?}"
    );
    Ok(())
}

#[tokio::test]
async fn drift_is_repaired_and_stale_writers_are_refused() -> Result<()> {
    let _ns = Netns::new()?;
    let state = tempdir("drift")?;
    let agent = start_agent(&state, &["--drift", "enforce", "--drift-interval", "1"])?;
    let mut c = client(&agent).await?;
    apply(&mut c, seed_spec(DriftMode::Unspecified), None).await?;
    let want = stdout(&ipvsadm(&["-Ln"])?);

    ensure!(ipvsadm(&["-C"])?.status.success());
    ensure!(
        ipvsadm(&["-d", "-t", VIP, "-r", B1])?
            .status
            .code()
            .is_some()
    );
    let repaired = wait_for(Duration::from_secs(30), || {
        let now = stdout(&ipvsadm(&["-Ln"])?);
        Ok((now == want).then_some(now))
    })
    .with_context(|| format!("agent log:\n{}", agent.log()))?;
    ensure!(repaired.contains("127.0.0.1:8081"));

    // Two writers based on revision 1: one wins, the other is told the revision moved.
    let mut c2 = client(&agent).await?;
    let weighted = |w| {
        let mut spec = seed_spec(DriftMode::Unspecified);
        spec.services[0].destinations[0].weight = Some(w);
        spec
    };
    let (a, b) = tokio::join!(
        apply(&mut c, weighted(5), Some(1)),
        apply(&mut c2, weighted(7), Some(1))
    );
    let (ok, refused) = match (a, b) {
        (Ok(ok), Err(e)) | (Err(e), Ok(ok)) => (ok, e),
        other => anyhow::bail!("exactly one writer should win: {other:?}"),
    };
    ensure!(ok.revision == 2, "{ok:?}");
    ensure!(refused.code() == Code::FailedPrecondition, "{refused:?}");
    ensure!(
        refused.message() == "the revision moved: expected 1, the current one is 2",
        "{}",
        refused.message()
    );
    Ok(())
}

#[tokio::test]
async fn drain_waits_for_a_live_connection() -> Result<()> {
    let _ns = Netns::new()?;
    let state = tempdir("drain")?;
    let _b1 = Backend::start(B1.parse()?, "backend 1")?;
    let _b2 = Backend::start(B2.parse()?, "backend 2")?;
    let agent = start_agent(&state, &["--drift", "enforce", "--drift-interval", "1"])?;
    let mut c = client(&agent).await?;
    let mut spec = seed_spec(DriftMode::Unspecified);
    // Only backend 1 takes new connections while the held one opens.
    spec.services[0].destinations[1].weight = Some(0);
    apply(&mut c, spec, None).await?;
    let vip: SocketAddr = VIP.parse()?;
    let held = TcpStream::connect_timeout(&vip, Duration::from_secs(5))?;

    let mut stream = c
        .drain(DrainRequest {
            service: key(),
            destination: Some(real_server(B1)),
            timeout: seconds(60),
            keep: false,
            expected_revision: None,
        })
        .await?
        .into_inner();
    let first = stream.message().await?.context("first progress")?;
    ensure!(
        first.phase() == DrainPhase::WeightZero && first.previous_weight == 1,
        "{first:?}"
    );
    let waiting = stream.message().await?.context("waiting")?;
    ensure!(
        waiting.phase() == DrainPhase::Waiting && waiting.active_connections == 1,
        "{waiting:?}"
    );
    let listing = stdout(&ipvsadm(&["-Ln", "-t", VIP])?);
    ensure!(
        listing.contains("127.0.0.1:8081")
            && listing
                .lines()
                .any(|l| l.contains("8081") && l.contains(" 0 ")),
        "weight 0 while draining:\n{listing}"
    );
    drop(held);
    let done = loop {
        let p = stream.message().await?.context("stream ended early")?;
        if p.phase() == DrainPhase::Done {
            break p;
        }
    };
    ensure!(
        done.removed && !done.timed_out && done.revision == 2,
        "{done:?}"
    );
    let listing = stdout(&ipvsadm(&["-Ln", "-t", VIP])?);
    ensure!(!listing.contains("8081"), "removed:\n{listing}");
    // Drift enforcement does not bring it back: the revision no longer declares it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let listing = stdout(&ipvsadm(&["-Ln", "-t", VIP])?);
    ensure!(!listing.contains("8081"), "stays removed:\n{listing}");
    Ok(())
}

fn tempdir(name: &str) -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("ipvs-e2e-state-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
