//! Controllers together on the real kernel, checked with `ipvsadm`: drift enforcement and an
//! enforcing policy on the same service leave the weights steady; a drain survives a `kill -9`
//! of the agent; a policy whose evaluation outlasts another writer's edit does not revert it.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ipvs_e2e::api::{duration, endpoint, masq, real_server, seconds};
use ipvs_e2e::component::component;
use ipvs_e2e::{Agent, Backend, Netns, ipvsadm, stdout, wait_for};
use ipvs_proto::v1::state_service_client::StateServiceClient;
use ipvs_proto::v1::{
    ApplyStateRequest, AttachmentSpec, DrainPhase, DrainRequest, DriftMode, GetStateRequest,
    LinkSpec, ListRevisionsRequest, NodeSpec, PolicyMode, Prefix, Protocol, Scheduler, Service,
    ServiceKey,
};
use tonic::transport::Channel;

const VIP: &str = "192.168.100.1:80";
const B1: &str = "127.0.0.1:8081";
const B2: &str = "127.0.0.1:8082";
const POLICY_DIR: &str = "/opt/ipvs/policies";

fn key() -> Option<ServiceKey> {
    endpoint(Protocol::Tcp, VIP)
}

/// dummy1 holding the VIP, one wrr service over both backends.
fn spec(w1: u32, w2: u32, attachments: Vec<AttachmentSpec>) -> NodeSpec {
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
            scheduler: Scheduler::Wrr.into(),
            destinations: vec![masq(B1, w1), masq(B2, w2)],
            ..Default::default()
        }],
        attachments,
        drift: DriftMode::Unspecified.into(),
        checks: vec![],
    }
}

async fn apply(c: &mut StateServiceClient<Channel>, spec: NodeSpec) -> Result<u64> {
    let r = c
        .apply_state(ApplyStateRequest {
            spec: Some(spec),
            prune: false,
            dry_run: false,
            expected_revision: None,
        })
        .await?
        .into_inner();
    Ok(r.revision)
}

fn state_dir(name: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ipvs-e2e-owners-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn start_agent(state: &Path, extra: &[&str]) -> Result<Agent> {
    let mut args = vec!["--state-dir", state.to_str().context("state dir")?];
    args.extend_from_slice(extra);
    Agent::start_with(&args)
}

/// The value in column `col` of real server `rs`'s line in `ipvsadm -Ln [view]`.
fn column(view: &[&str], rs: &str, col: usize) -> Result<Option<u32>> {
    let mut args = vec!["-Ln", "-t", VIP];
    args.extend_from_slice(view);
    let out = ipvsadm(&args)?;
    ensure!(out.status.success(), "ipvsadm failed: {out:?}");
    Ok(stdout(&out).lines().find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        (cols.len() > col && cols[0] == "->" && cols[1] == rs)
            .then(|| cols[col].parse().ok())
            .flatten()
    }))
}

/// Weight and upper threshold of real server `rs`.
fn kernel_dest(rs: &str) -> Result<Option<(u32, u32)>> {
    // `-> addr Forward Weight ...` and `-> addr Uthreshold Lthreshold ...`
    Ok(column(&[], rs, 3)?.zip(column(&["--thresholds"], rs, 2)?))
}

fn weights() -> Result<(Option<u32>, Option<u32>)> {
    Ok((column(&[], B1, 3)?, column(&[], B2, 3)?))
}

/// Silent connections through the VIP: busybox httpd waits for a request, so they stay open.
fn hold(n: usize) -> Result<Vec<TcpStream>> {
    let vip: SocketAddr = VIP.parse()?;
    (0..n)
        .map(|_| TcpStream::connect_timeout(&vip, Duration::from_secs(5)))
        .collect::<std::io::Result<Vec<_>>>()
        .context("connecting through the VIP")
}

#[tokio::test]
async fn drift_enforcement_and_an_enforcing_policy_leave_the_weights_steady() -> Result<()> {
    let _ns = Netns::new()?;
    let state = state_dir("steady")?;
    let _b1 = Backend::start(B1.parse()?, "one\n")?;
    let _b2 = Backend::start(B2.parse()?, "two\n")?;
    let agent = start_agent(
        &state,
        &[
            "--drift",
            "enforce",
            "--drift-interval",
            "1",
            "--policy-deadline-ms",
            "5000",
        ],
    )?;
    let lc = Path::new(POLICY_DIR).join("least_connections.wasm");
    ensure!(lc.exists(), "{} is missing", lc.display());
    agent.ipvsctl_ok(&[
        "policy",
        "add",
        lc.to_str().context("path")?,
        "--name",
        "lc",
    ])?;
    let mut c = StateServiceClient::new(agent.channel().await?);
    // Backend 1 takes the six long-lived connections, then the policy is declared.
    apply(&mut c, spec(100, 0, vec![])).await?;
    let _held = hold(6)?;
    let attachment = AttachmentSpec {
        policy: "lc".into(),
        services: vec![key().context("key")?],
        params: vec![],
        interval: duration(Duration::from_secs(1)),
        mode: PolicyMode::Enforce.into(),
        quarantine_after: 3,
    };
    apply(&mut c, spec(100, 1, vec![attachment])).await?;

    // Ten seconds of samples: ten drift checks and ten evaluations.
    let mut seen: Vec<(Option<u32>, Option<u32>)> = Vec::new();
    for _ in 0..20 {
        let w = weights()?;
        if seen.last() != Some(&w) {
            seen.push(w);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("owners: weights over 10 s with drift enforcement and lc: {seen:?}");
    let last = *seen.last().context("samples")?;
    ensure!(
        matches!(last, (Some(w1), Some(100)) if w1 < 100),
        "the policy steered away from the busy backend: {seen:?}\nagent log:\n{}",
        agent.log()
    );
    for (i, w) in seen.iter().enumerate() {
        ensure!(
            !seen[i + 1..].contains(w) || seen[i + 1..].iter().all(|x| x == w),
            "the weights went back and forth: {seen:?}\nagent log:\n{}",
            agent.log()
        );
    }
    ensure!(seen.len() <= 3, "too many changes: {seen:?}");
    let st = c.get_state(GetStateRequest {}).await?.into_inner();
    ensure!(
        st.drift.is_empty(),
        "a policy's weights are not drift: {st:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_drain_survives_a_kill_of_the_agent() -> Result<()> {
    let _ns = Netns::new()?;
    let state = state_dir("drain")?;
    let _b1 = Backend::start(B1.parse()?, "one\n")?;
    let _b2 = Backend::start(B2.parse()?, "two\n")?;
    let flags = ["--drift", "enforce", "--drift-interval", "1"];
    let agent = start_agent(&state, &flags)?;
    let mut c = StateServiceClient::new(agent.channel().await?);
    // The held connection goes to backend 1.
    apply(&mut c, spec(100, 0, vec![])).await?;
    let held = hold(1)?;
    apply(&mut c, spec(100, 1, vec![])).await?;

    let mut stream = c
        .drain(DrainRequest {
            service: key(),
            destination: Some(real_server(B1)),
            timeout: seconds(120),
            keep: false,
            expected_revision: None,
        })
        .await?
        .into_inner();
    let first = stream.message().await?.context("first progress")?;
    ensure!(
        first.phase() == DrainPhase::WeightZero && first.previous_weight == 100,
        "{first:?}"
    );
    let waiting = stream.message().await?.context("waiting")?;
    ensure!(
        waiting.phase() == DrainPhase::Waiting && waiting.active_connections == 1,
        "{waiting:?}"
    );
    // kill -9 in the middle of the drain.
    drop(stream);
    drop(c);
    drop(agent);
    ensure!(weights()?.0 == Some(0), "drained: {:?}", weights()?);

    let agent = start_agent(&state, &flags)?;
    // Several drift checks later, the server is still drained.
    tokio::time::sleep(Duration::from_secs(4)).await;
    ensure!(
        weights()?.0 == Some(0),
        "a restart gave the drained server its weight back: {:?}\nagent log:\n{}",
        weights()?,
        agent.log()
    );
    ensure!(
        agent.log().contains("drain resumed"),
        "agent log:\n{}",
        agent.log()
    );
    // The drain carries on: once the connection ends, the server goes, and stays gone.
    drop(held);
    wait_for(Duration::from_secs(30), || {
        Ok(weights()?.0.is_none().then_some(()))
    })
    .with_context(|| format!("agent log:\n{}", agent.log()))?;
    let mut c = StateServiceClient::new(agent.channel().await?);
    let revs = c
        .list_revisions(ListRevisionsRequest {})
        .await?
        .into_inner()
        .revisions;
    ensure!(
        revs.first()
            .is_some_and(|r| r.revision == 3 && r.origin == "drain"),
        "the drain recorded a revision: {revs:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    ensure!(weights()? == (None, Some(1)), "{:?}", weights()?);
    Ok(())
}

#[test]
fn a_policy_write_keeps_what_another_writer_changed_while_it_ran() -> Result<()> {
    let _ns = Netns::new()?;
    let state = state_dir("cas")?;
    // A slow policy: a generous fuel and deadline, so only the race is tested.
    let agent = start_agent(
        &state,
        &[
            "--policy-deadline-ms",
            "60000",
            "--policy-fuel",
            "100000000000",
        ],
    )?;
    agent.ipvsctl_ok(&["-A", "-t", VIP, "-s", "wrr"])?;
    agent.ipvsctl_ok(&["-a", "-t", VIP, "-r", B1, "-m", "-w", "1"])?;
    agent.ipvsctl_ok(&["-a", "-t", VIP, "-r", B2, "-m", "-w", "1"])?;
    let file = state.join("slow.wasm");
    std::fs::write(&file, slow_weight_component(B1, 7, 150_000_000)?)?;
    let hash = agent
        .ipvsctl_ok(&["policy", "add", file.to_str().context("path")?])?
        .trim()
        .to_owned();
    let id = agent
        .ipvsctl_ok(&["policy", "attach", &hash, "-t", VIP, "--interval", "30m"])?
        .trim()
        .to_owned();

    let start = Instant::now();
    let eval = std::thread::scope(|s| -> Result<(String, Duration, Duration)> {
        let running = s.spawn(|| {
            let out = agent.ipvsctl_ok(&["policy", "eval", &id]);
            (out, start.elapsed())
        });
        std::thread::sleep(Duration::from_millis(500));
        // Another writer sets backend 1's upper threshold while the policy runs.
        agent.ipvsctl_ok(&["-e", "-t", VIP, "-r", B1, "-m", "-w", "1", "-x", "50"])?;
        let edited = start.elapsed();
        let (out, evaluated) = running.join().map_err(|_| anyhow::anyhow!("eval thread"))?;
        Ok((out?, edited, evaluated))
    })?;
    let (out, edited, evaluated) = eval;
    eprintln!("owners: edit done after {edited:?}, evaluation after {evaluated:?}: {out}");
    if edited >= evaluated {
        bail!(
            "the evaluation ({evaluated:?}) ended before the edit ({edited:?}): the policy \
             must spin longer for this test to race"
        );
    }
    ensure!(out.contains("(applied)"), "eval: {out}");
    let b1 = kernel_dest(B1)?;
    ensure!(
        b1 == Some((7, 50)),
        "backend 1 should have the policy's weight and the other writer's threshold: {b1:?}\n{}",
        agent.log()
    );
    Ok(())
}

/// A component whose `evaluate` counts to `spin`, then sets `server`'s weight.
fn slow_weight_component(server: &str, weight: u32, spin: u32) -> Result<Vec<u8>> {
    // result<decision, string> at RET: ok, one weight at LIST, no scheduler, no state, a
    // reason; the weight entry is (name pointer, name length, weight).
    const RET: u32 = 1024;
    const LIST: u32 = 2048;
    const NAME: u32 = 2048 + 64;
    const REASON: u32 = 2048 + 128;
    let reason = "slow";
    let mut ret = [0u8; 44];
    for (off, v) in [(4, LIST), (8, 1), (36, REASON), (40, 4)] {
        ret[off..off + 4].copy_from_slice(&u32::to_le_bytes(v));
    }
    let mut list = [0u8; 12];
    for (off, v) in [(0, NAME), (4, u32::try_from(server.len())?), (8, weight)] {
        list[off..off + 4].copy_from_slice(&u32::to_le_bytes(v));
    }
    let escape = |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("\\{b:02x}")).collect() };
    let core = format!(
        r#"(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $ptr) (local.get 3)))
    (local.get $ptr))
  (func (export "evaluate") (param i32) (result i32)
    (local $i i32)
    (block $done
      (loop $spin
        (br_if $done (i32.ge_u (local.get $i) (i32.const {spin})))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $spin)))
    (i32.const {RET}))
  (data (i32.const {RET}) "{}")
  (data (i32.const {LIST}) "{}")
  (data (i32.const {NAME}) "{}")
  (data (i32.const {REASON}) "{}"))"#,
        escape(&ret),
        escape(&list),
        escape(server.as_bytes()),
        escape(reason.as_bytes())
    );
    component(&core)
}
