//! PolicyService over the fake IPVS core, with WAT fixture components.

use std::sync::Arc;
use std::time::Duration;

use ipvs_proto::v1 as pb;
use pb::policy_service_server::PolicyService;
use tonic::{Code, Request};

use super::policy::PolicyApi;
use crate::attach::{Attachments, PolicyStore, SavedAttachments};
use crate::convert::ipvs::key_to_proto;
use crate::ipvs::IpvsOps;
use crate::ipvs::fake::{FakeIpvs, Write};
use crate::ipvs::schedulers::KernelSchedulers;
use crate::ipvs::types::{Destination, Protocol, Scheduler, Service, ServiceKey};
use crate::policy::{Limits, PolicyEngine};
use tempfile::TempDir;

/// Result area and heap of the fixture modules (see `policy-engine/tests/support/fixtures.rs` for
/// the layout of `result<decision, string>`).
const RET: u32 = 1024;
const HEAP: u32 = 2048;

fn escape(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// A component whose `evaluate` runs `body`, then answers `ok` with one weight and a reason.
pub(crate) fn fixture(body: &str, server: &str, weight: u32, reason: &str) -> Vec<u8> {
    fixture_with(body, server, weight, None, reason)
}

/// [`fixture`] whose answer may also name a scheduler.
fn fixture_with(
    body: &str,
    server: &str,
    weight: u32,
    scheduler: Option<&str>,
    reason: &str,
) -> Vec<u8> {
    let mut heap = Vec::new();
    let server_at = HEAP;
    heap.extend_from_slice(server.as_bytes());
    let scheduler_at = HEAP + heap.len() as u32;
    heap.extend_from_slice(scheduler.unwrap_or("").as_bytes());
    while !heap.len().is_multiple_of(4) {
        heap.push(0);
    }
    let list_at = HEAP + heap.len() as u32;
    for v in [server_at, server.len() as u32, weight] {
        heap.extend_from_slice(&v.to_le_bytes());
    }
    let reason_at = HEAP + heap.len() as u32;
    heap.extend_from_slice(reason.as_bytes());
    let mut ret = vec![0u8; 44];
    for (off, v) in [
        (4, list_at),
        (8, 1),
        (12, u32::from(scheduler.is_some())),
        (16, scheduler_at),
        (20, scheduler.map_or(0, |s| s.len() as u32)),
        (36, reason_at),
        (40, reason.len() as u32),
    ] {
        ret[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    let wat = format!(
        r#"(module
  (import "ipvs:policy/host@1.0.0" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 65536))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $ptr) (local.get 3)))
    (local.get $ptr))
  (func (export "evaluate") (param i32) (result i32)
    {body}
    (i32.const {RET}))
  (data (i32.const {RET}) "{}")
  (data (i32.const {HEAP}) "{}")
)"#,
        escape(&ret),
        escape(&heap)
    );
    // A component of the first contract, 1.0.0, as uploaded before 1.1.0: still accepted.
    let wit = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/wit/v1.0.0");
    let mut resolve = wit_parser::Resolve::default();
    let (pkg, _) = resolve.push_dir(&wit).expect("the policy WIT parses");
    let world = resolve
        .select_world(&[pkg], Some("policy"))
        .expect("world policy");
    let mut module = wat::parse_str(&wat).expect("fixture WAT parses");
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .expect("metadata embeds");
    wit_component::ComponentEncoder::default()
        .module(&module)
        .expect("module accepted")
        .validate(true)
        .encode()
        .expect("component encodes")
}

fn key() -> ServiceKey {
    ServiceKey::Endpoint {
        protocol: Protocol::Tcp,
        addr: "10.0.0.1".parse().expect("addr"),
        port: 80,
    }
}

struct Fixture {
    ipvs: Arc<FakeIpvs>,
    attachments: Arc<Attachments<FakeIpvs>>,
    api: PolicyApi<FakeIpvs>,
    _dir: TempDir,
}

async fn setup_in(dir: TempDir) -> Fixture {
    let ipvs = Arc::new(FakeIpvs::default());
    ipvs.new_service(&Service::new(key(), Scheduler::Wlc))
        .await
        .expect("service");
    for host in ["10.0.0.2", "10.0.0.3"] {
        let dest = Destination::new(host.parse().expect("addr"), 80);
        ipvs.new_dest(&key(), &dest).await.expect("dest");
    }
    let attachments = Arc::new(attachments_in(dir.path(), ipvs.clone()).await);
    Fixture {
        ipvs,
        api: PolicyApi::new(attachments.clone()),
        attachments,
        _dir: dir,
    }
}

/// Attachments as the agent opens them on state directory `dir`, saved ones restored.
async fn attachments_in(dir: &std::path::Path, ipvs: Arc<FakeIpvs>) -> Attachments<FakeIpvs> {
    let engine = PolicyEngine::new(Limits::default(), None).expect("engine");
    let store = PolicyStore::open(Some(dir.join("policies")), &engine)
        .await
        .expect("store");
    // The fake kernel has twos only once its module is loaded (FakeIpvs::make_loadable).
    let offered = KernelSchedulers::fixed(vec![Scheduler::Rr, Scheduler::Wlc, Scheduler::Twos]);
    let kernel = Arc::new(crate::kernel::Kernel::new(ipvs));
    let attachments = Attachments::with_schedulers(engine, store, kernel, offered)
        .with_saved(SavedAttachments::new(dir.join("attachments.pb")));
    attachments.restore().await.expect("restore");
    attachments
}

async fn upload(api: &PolicyApi<FakeIpvs>, bytes: Vec<u8>, name: &str) -> pb::Policy {
    api.upload_policy(Request::new(pb::UploadPolicyRequest {
        component: bytes,
        name: name.into(),
    }))
    .await
    .expect("upload")
    .into_inner()
    .policy
    .expect("the stored policy")
}

fn attach_request(hash: &str, mode: pb::PolicyMode) -> pb::AttachRequest {
    pb::AttachRequest {
        policy_hash: hash.into(),
        services: vec![key_to_proto(&key())],
        params: vec![],
        // Long enough that only on-demand evaluations run in these tests.
        interval: Some(prost_types::Duration {
            seconds: 3600,
            nanos: 0,
        }),
        mode: mode.into(),
        quarantine_after: 2,
    }
}

async fn attach(api: &PolicyApi<FakeIpvs>, req: pb::AttachRequest) -> pb::Attachment {
    api.attach(Request::new(req))
        .await
        .expect("attach")
        .into_inner()
        .attachment
        .expect("the attachment")
}

fn set_dest_writes(ipvs: &FakeIpvs) -> Vec<(String, u32)> {
    ipvs.writes()
        .into_iter()
        .filter_map(|w| match w {
            Write::SetDest(_, d) => Some((d.addr.to_string(), d.weight)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn enforce_writes_only_changed_weights_and_reports_them() {
    let f = setup_in(tempfile::tempdir().expect("temp dir")).await;
    let p = upload(&f.api, fixture("", "10.0.0.3:80", 5, "busy"), "five").await;
    assert_eq!(p.name, "five");
    assert_eq!(p.hash.len(), 64);
    let a = attach(&f.api, attach_request(&p.hash, pb::PolicyMode::Enforce)).await;
    assert_eq!(a.id, "a1");
    let mut events = f
        .api
        .watch_policy_events(Request::new(pb::WatchPolicyEventsRequest {
            id: String::new(),
        }))
        .await
        .expect("watch")
        .into_inner();

    let eval = |id: String| f.api.evaluate(Request::new(pb::EvaluateRequest { id }));
    let first = eval(a.id.clone()).await.expect("evaluate").into_inner();
    let Some(pb::evaluation_result::Outcome::Decision(d)) =
        first.results.first().and_then(|r| r.outcome.clone())
    else {
        panic!("no decision: {first:?}");
    };
    assert_eq!(
        d.weights,
        vec![pb::WeightChange {
            server: "10.0.0.3:80".into(),
            from: 1,
            to: 5
        }]
    );
    assert!(d.applied);
    assert_eq!(d.reason, "busy");
    assert_eq!(set_dest_writes(&f.ipvs), vec![("10.0.0.3".into(), 5)]);

    // The kernel now has weight 5: nothing changes, nothing is written.
    let second = eval(a.id.clone()).await.expect("evaluate").into_inner();
    let Some(pb::evaluation_result::Outcome::Decision(d)) =
        second.results.first().and_then(|r| r.outcome.clone())
    else {
        panic!("no decision: {second:?}");
    };
    assert!(d.weights.is_empty() && !d.applied, "{d:?}");
    assert_eq!(set_dest_writes(&f.ipvs).len(), 1);

    use futures::StreamExt;
    let event = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("an event in time")
        .expect("stream open")
        .expect("event");
    assert_eq!(event.attachment_id, "a1");
    assert!(!event.quarantined);

    let status = f
        .api
        .get_status(Request::new(pb::GetStatusRequest { id: a.id.clone() }))
        .await
        .expect("status")
        .into_inner()
        .status
        .expect("a status");
    assert_eq!(status.evaluations, 2);
    assert_eq!(status.consecutive_failures, 0);
    assert!(!status.quarantined);

    // Attached: cannot be deleted; detached: it can.
    let err = f
        .api
        .delete_policy(Request::new(pb::DeletePolicyRequest {
            hash: p.hash.clone(),
        }))
        .await
        .expect_err("attached");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        err.message(),
        format!("policy {} is attached (a1); detach it first", p.hash)
    );
    f.api
        .detach(Request::new(pb::DetachRequest { id: a.id.clone() }))
        .await
        .expect("detach");
    f.api
        .delete_policy(Request::new(pb::DeletePolicyRequest { hash: p.hash }))
        .await
        .expect("delete");
    let list = f
        .api
        .list_policies(Request::new(pb::ListPoliciesRequest {}))
        .await
        .expect("list")
        .into_inner();
    assert!(list.policies.is_empty());
}

/// The outcome of evaluating attachment `id` once now.
async fn evaluate_once(api: &PolicyApi<FakeIpvs>, id: &str) -> pb::evaluation_result::Outcome {
    let r = api
        .evaluate(Request::new(pb::EvaluateRequest { id: id.into() }))
        .await
        .expect("evaluate")
        .into_inner();
    r.results
        .first()
        .and_then(|r| r.outcome.clone())
        .expect("one result")
}

#[tokio::test]
async fn schedulers_are_those_the_kernel_offers_loaded_on_demand() {
    let f = setup_in(tempfile::tempdir().expect("temp dir")).await;
    f.ipvs.make_loadable("twos");
    let twos = upload(
        &f.api,
        fixture_with("", "10.0.0.2:80", 1, Some("twos"), "switch"),
        "",
    )
    .await;
    let lc = upload(
        &f.api,
        fixture_with("", "10.0.0.2:80", 1, Some("lc"), "switch"),
        "",
    )
    .await;
    let attach = |hash: String| {
        f.api
            .attach(Request::new(attach_request(&hash, pb::PolicyMode::Enforce)))
    };
    let a = attach(twos.hash)
        .await
        .expect("attach")
        .into_inner()
        .attachment
        .expect("the attachment");
    let outcome = evaluate_once(&f.api, &a.id).await;
    let pb::evaluation_result::Outcome::Decision(d) = outcome else {
        panic!("no decision: {outcome:?}");
    };
    assert_eq!((d.scheduler.as_str(), d.applied), ("twos", true));
    assert_eq!(f.ipvs.loads(), ["twos"]);
    assert_eq!(
        f.ipvs
            .service(&key())
            .await
            .expect("service")
            .service
            .scheduler,
        Scheduler::Twos
    );

    // One enforcing attachment per service: the first goes before the second comes.
    f.api
        .detach(Request::new(pb::DetachRequest { id: a.id.clone() }))
        .await
        .expect("detach");
    let b = attach(lc.hash)
        .await
        .expect("attach")
        .into_inner()
        .attachment
        .expect("the attachment");
    let outcome = evaluate_once(&f.api, &b.id).await;
    assert_eq!(
        outcome,
        pb::evaluation_result::Outcome::Failure(pb::PolicyFailure {
            service: Some(key_to_proto(&key())),
            kind: "invalid-output".into(),
            message: "invalid output: scheduler \"lc\" is not available in the kernel".into(),
        })
    );
    assert_eq!(
        f.ipvs.loads(),
        ["twos"],
        "no module load for a refused scheduler"
    );
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let f = setup_in(tempfile::tempdir().expect("temp dir")).await;
    let p = upload(&f.api, fixture("", "10.0.0.2:80", 9, "dry"), "").await;
    let a = attach(&f.api, attach_request(&p.hash, pb::PolicyMode::DryRun)).await;
    let r = f
        .api
        .evaluate(Request::new(pb::EvaluateRequest { id: a.id }))
        .await
        .expect("evaluate")
        .into_inner();
    let Some(pb::evaluation_result::Outcome::Decision(d)) =
        r.results.first().and_then(|r| r.outcome.clone())
    else {
        panic!("no decision: {r:?}");
    };
    assert_eq!(d.weights.len(), 1);
    assert!(!d.applied);
    assert!(set_dest_writes(&f.ipvs).is_empty());
}

#[tokio::test]
async fn a_trapping_policy_is_quarantined_and_the_weights_stay() {
    let f = setup_in(tempfile::tempdir().expect("temp dir")).await;
    let p = upload(
        &f.api,
        fixture("unreachable", "10.0.0.2:80", 9, "x"),
        "trap",
    )
    .await;
    let a = attach(&f.api, attach_request(&p.hash, pb::PolicyMode::Enforce)).await;
    for n in 1..=2u32 {
        let r = f
            .api
            .evaluate(Request::new(pb::EvaluateRequest { id: a.id.clone() }))
            .await
            .expect("evaluate")
            .into_inner();
        let Some(pb::evaluation_result::Outcome::Failure(fail)) =
            r.results.first().and_then(|r| r.outcome.clone())
        else {
            panic!("no failure: {r:?}");
        };
        assert_eq!(fail.kind, "trap", "evaluation {n}");
    }
    let status = f
        .api
        .get_status(Request::new(pb::GetStatusRequest { id: a.id.clone() }))
        .await
        .expect("status")
        .into_inner()
        .status
        .expect("a status");
    assert!(status.quarantined);
    assert_eq!(status.consecutive_failures, 2);
    let err = f
        .api
        .evaluate(Request::new(pb::EvaluateRequest { id: a.id.clone() }))
        .await
        .expect_err("quarantined");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        err.message(),
        "attachment a1 is quarantined; detach and attach it again"
    );
    assert!(set_dest_writes(&f.ipvs).is_empty());
}

#[tokio::test]
async fn bad_requests_get_exact_errors() {
    let f = setup_in(tempfile::tempdir().expect("temp dir")).await;
    let err = f
        .api
        .upload_policy(Request::new(pb::UploadPolicyRequest {
            component: b"not wasm".to_vec(),
            name: "junk".into(),
        }))
        .await
        .expect_err("junk");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "not WebAssembly: the file does not start with \"\\0asm\""
    );
    let core = wat::parse_str("(module)").expect("wat");
    let err = f
        .api
        .upload_policy(Request::new(pb::UploadPolicyRequest {
            component: core,
            name: String::new(),
        }))
        .await
        .expect_err("core module");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("not a component"), "{err:?}");

    let err = f
        .api
        .attach(Request::new(attach_request("00", pb::PolicyMode::Enforce)))
        .await
        .expect_err("unknown policy");
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "no policy with hash \"00\"");

    let p = upload(&f.api, fixture("", "10.0.0.2:80", 2, "r"), "p").await;
    let mut req = attach_request(&p.hash, pb::PolicyMode::Enforce);
    req.interval = Some(prost_types::Duration {
        seconds: 0,
        nanos: 1_000,
    });
    let err = f.api.attach(Request::new(req)).await.expect_err("interval");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "interval 1µs is shorter than the minimum of 100ms"
    );
    let mut req = attach_request(&p.hash, pb::PolicyMode::Enforce);
    req.services.clear();
    let err = f.api.attach(Request::new(req)).await.expect_err("services");
    assert_eq!(err.message(), "an attachment needs at least one service");

    for id in ["a9", "x"] {
        let err = f
            .api
            .get_status(Request::new(pb::GetStatusRequest { id: id.into() }))
            .await
            .expect_err("unknown");
        assert_eq!(err.code(), Code::NotFound);
        assert_eq!(err.message(), format!("no attachment {id:?}"));
    }
}

#[tokio::test]
async fn uploads_reload_from_the_state_dir() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_owned();
    let bytes = fixture("", "10.0.0.2:80", 3, "kept");
    let f = setup_in(dir).await;
    let p = upload(&f.api, bytes.clone(), "kept").await;
    // The same bytes again, without a name: the same policy, its name kept.
    let again = upload(&f.api, bytes, "").await;
    assert_eq!((&again.hash, again.name.as_str()), (&p.hash, "kept"));
    // A second agent on the same directory.
    let engine = PolicyEngine::new(Limits::default(), None).expect("engine");
    let store = PolicyStore::open(Some(path.join("policies")), &engine)
        .await
        .expect("store");
    let listed: Vec<(String, String, u64)> = store
        .list()
        .into_iter()
        .map(|s| (s.hash, s.name, s.size))
        .collect();
    assert_eq!(listed, vec![(p.hash, "kept".to_owned(), p.size)]);
}

#[tokio::test(start_paused = true)]
async fn the_interval_task_applies_on_its_own() {
    let f = setup_in(tempfile::tempdir().expect("temp dir")).await;
    let p = upload(&f.api, fixture("", "10.0.0.2:80", 4, "tick"), "tick").await;
    let mut req = attach_request(&p.hash, pb::PolicyMode::Enforce);
    req.interval = Some(prost_types::Duration {
        seconds: 0,
        nanos: 100_000_000,
    });
    f.api.attach(Request::new(req)).await.expect("attach");
    assert_eq!(
        set_dest_writes(&f.ipvs),
        vec![],
        "written before its interval"
    );
    // Paused time: the interval passes (the clock stands still while the policy runs on a
    // blocking thread), and the task has applied the decision.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(set_dest_writes(&f.ipvs), vec![("10.0.0.2".into(), 4)]);
    let dests = f.ipvs.destinations(&key()).await.expect("dests");
    let weights: Vec<u32> = dests.iter().map(|d| d.dest.weight).collect();
    assert_eq!(weights, vec![4, 1]);
}

async fn listed(api: &PolicyApi<FakeIpvs>) -> Vec<pb::Attachment> {
    api.list_attachments(Request::new(pb::ListAttachmentsRequest {}))
        .await
        .expect("list")
        .into_inner()
        .attachments
}

#[tokio::test]
async fn attachments_made_through_the_api_survive_a_restart() {
    let f = setup_in(tempfile::tempdir().expect("temp dir")).await;
    let p = upload(&f.api, fixture("", "10.0.0.2:80", 3, "kept"), "kept").await;
    let gone = attach(&f.api, attach_request(&p.hash, pb::PolicyMode::Enforce)).await;
    let mut req = attach_request(&p.hash, pb::PolicyMode::DryRun);
    req.params = vec![pb::PolicyParam {
        key: "floor".into(),
        value: "2".into(),
    }];
    let kept = attach(&f.api, req).await;
    assert_eq!((gone.id.as_str(), kept.id.as_str()), ("a1", "a2"));
    f.api
        .detach(Request::new(pb::DetachRequest { id: gone.id }))
        .await
        .expect("detach");
    // One a node file declares is not saved: its revision brings it back.
    let spec = f.attachments.list().await[0].1.clone();
    assert_eq!(f.attachments.attach(spec).await.expect("declared"), "a3");

    // A second agent on the same state directory.
    let again = Arc::new(attachments_in(f._dir.path(), f.ipvs.clone()).await);
    let api = PolicyApi::new(again.clone());
    assert_eq!(listed(&api).await, vec![kept.clone()]);
    let next = api
        .attach(Request::new(attach_request(
            &p.hash,
            pb::PolicyMode::Enforce,
        )))
        .await
        .expect("attach after the restart")
        .into_inner()
        .attachment
        .expect("the attachment");
    assert_eq!(next.id, "a3");
    // It evaluates as before.
    let status = api
        .evaluate(Request::new(pb::EvaluateRequest {
            id: kept.id.clone(),
        }))
        .await
        .expect("evaluate")
        .into_inner();
    assert_eq!(status.results.len(), 1);
}

#[tokio::test]
async fn an_attachment_that_cannot_be_saved_is_not_made() {
    let f = setup_in(tempfile::tempdir().expect("temp dir")).await;
    let p = upload(&f.api, fixture("", "10.0.0.2:80", 3, "r"), "r").await;
    let kept = attach(&f.api, attach_request(&p.hash, pb::PolicyMode::Enforce)).await;
    // The file cannot be replaced: a directory stands in its way.
    let path = f._dir.path().join("attachments.pb");
    std::fs::remove_file(&path).expect("rm");
    std::fs::create_dir(&path).expect("mkdir");
    let err = f
        .api
        .attach(Request::new(attach_request(
            &p.hash,
            pb::PolicyMode::DryRun,
        )))
        .await
        .expect_err("unsaved");
    assert_eq!(err.code(), Code::Internal);
    assert_eq!(
        err.message(),
        format!(
            "cannot save the policy attachments in {}: Is a directory (os error 21)",
            path.display()
        )
    );
    let err = f
        .api
        .detach(Request::new(pb::DetachRequest {
            id: kept.id.clone(),
        }))
        .await
        .expect_err("detach unsaved");
    assert_eq!(err.code(), Code::Internal);
    assert_eq!(listed(&f.api).await, vec![kept], "both refused: as it was");
}

/// Another writer changes the service between the policy's read and its write (the fake
/// applies the change right after the evaluation's two reads, as an apply running meanwhile
/// would): a field the policy does not own survives its write; a weight it owns that moved
/// makes the decision stale, and nothing is written.
#[tokio::test]
async fn a_write_during_an_evaluation_is_not_reverted() {
    let f = setup_in(tempfile::tempdir().expect("temp dir")).await;
    let p = upload(&f.api, fixture("", "10.0.0.2:80", 5, "r"), "five").await;
    let a = attach(&f.api, attach_request(&p.hash, pb::PolicyMode::Enforce)).await;
    let server = |ipvs: &FakeIpvs| {
        let dests = futures::executor::block_on(ipvs.destinations(&key())).expect("read");
        dests
            .into_iter()
            .find(|d| d.dest.addr.to_string() == "10.0.0.2")
            .expect("server")
            .dest
    };

    let mut threshold = server(&f.ipvs);
    threshold.upper_threshold = 40;
    f.ipvs.change_after_reads(2, key(), threshold);
    let outcome = evaluate_once(&f.api, &a.id).await;
    assert!(
        matches!(&outcome, pb::evaluation_result::Outcome::Decision(d) if d.applied),
        "{outcome:?}"
    );
    let now = server(&f.ipvs);
    assert_eq!((now.weight, now.upper_threshold), (5, 40));

    let mut weight = now;
    weight.weight = 9;
    f.ipvs.set_dest(&key(), &weight).await.expect("set");
    let writes = f.ipvs.writes().len();
    // The policy reads 9 and wants 5; meanwhile 9 became 7.
    let mut moved = weight;
    moved.weight = 7;
    f.ipvs.change_after_reads(2, key(), moved);
    let outcome = evaluate_once(&f.api, &a.id).await;
    assert_eq!(
        outcome,
        pb::evaluation_result::Outcome::Failure(pb::PolicyFailure {
            service: Some(key_to_proto(&key())),
            kind: "stale".into(),
            message: "the service changed while the policy ran (real server 10.0.0.2:80 has \
                      weight 7, not the 9 it was read with); nothing was written"
                .into(),
        })
    );
    assert_eq!(f.ipvs.writes().len(), writes);
    assert_eq!(server(&f.ipvs).weight, 7);
}
