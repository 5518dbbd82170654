//! The node's declared state, kept as numbered revisions: applied with the minimal ordered
//! changes (or none at all on a refusal), recorded on disk, reconciled after a restart,
//! checked for drift, rolled back, and used by [`drain`] to take real servers out.
//!
//! One write at a time: applies, rollbacks, drift repairs and the short steps of a drain hold
//! the revisions' lock and then a turn of the node core ([`Kernel`]), so a plan is always made
//! against the table it is applied to and no other writer (a policy, an RPC) comes between.
//! Plans and drift are measured against the *effective* state ([`crate::kernel::Ledger`]):
//! the declared values, with the weights an enforcing policy or a drain owns in their place.

pub mod drain;
pub mod health;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use ipvs_proto::v1 as pb;
use prost::Message;
use tokio::sync::{Mutex, broadcast};

use crate::attach::Attachments;
use crate::convert::state as conv;
use crate::ipvs::{IpvsError, IpvsOps, ServiceFlags, ServiceKey};
use crate::kernel::Kernel;
use crate::kernel::ledger::HealthHold;
use crate::link::LinkOps;
use crate::link::{Cidr, LinkError, LinkName};
use crate::state::{
    self, ApplyError, AttachmentSpec, Change, DesiredTable, DriftMode, LinkChange, LinkState,
    Managed, NodeSpec,
};
use health::{Checks, HealthView, QuorumView};
use store::RevisionStore;

/// One recorded revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    pub number: u64,
    pub spec: NodeSpec,
    pub applied_at: SystemTime,
    /// "apply", "rollback to 3", "drain".
    pub origin: String,
    pub managed: Managed,
}

/// One change of a node plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Link(LinkChange),
    Ipvs(Change),
    /// The spec's policy is the resolved hash.
    Attach(AttachmentSpec),
    Detach {
        id: String,
        spec: AttachmentSpec,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Link(c) => c.fmt(f),
            Step::Ipvs(c) => f.write_str(&c.description()),
            Step::Attach(s) => write!(f, "policy attach {} to {}", s.policy, services(s)),
            Step::Detach { id, spec } => {
                write!(
                    f,
                    "policy detach {id} ({} from {})",
                    spec.policy,
                    services(spec)
                )
            }
        }
    }
}

fn services(s: &AttachmentSpec) -> String {
    s.services
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What an apply did or would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub steps: Vec<Step>,
    pub applied: bool,
    pub revision: u64,
    /// `revision` is new: this request recorded it.
    pub recorded: bool,
}

/// How an apply runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApplyOptions {
    pub prune: bool,
    pub dry_run: bool,
    /// Refuse unless the current revision is this one.
    pub expected: Option<u64>,
}

/// Why a state operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("the revision moved: expected {expected}, the current one is {current}")]
    Stale { expected: u64, current: u64 },
    #[error("revision {0} is not kept")]
    NoRevision(u64),
    #[error("there is no earlier revision to roll back to")]
    NothingBefore,
    #[error("cannot read the IPVS table: {0}")]
    ReadIpvs(#[from] IpvsError),
    #[error("cannot read the links: {0}")]
    ReadLinks(LinkError),
    #[error("policy {} is not uploaded", ipvs_types::quote(.0))]
    PolicyUnknown(String),
    #[error("policy name {} names more than one uploaded policy; use its hash", ipvs_types::quote(.0))]
    PolicyAmbiguous(String),
    #[error("this agent runs without policies")]
    NoPolicies,
    /// Change `number` of `total` was refused; `message` says which, why, and what undoing
    /// came to.
    #[error("{message}")]
    Refused {
        number: usize,
        total: usize,
        message: String,
    },
    /// A drain's write was refused.
    #[error("\"{op}\" failed: {error}")]
    DrainRefused { op: String, error: IpvsError },
    #[error(
        "the changes were made but revision {revision} could not be recorded in {dir}: {error}"
    )]
    Persist {
        revision: u64,
        dir: String,
        error: std::io::Error,
    },
    #[error("the drain could not be kept in the state directory: {error}")]
    DrainNotKept { error: std::io::Error },
    #[error("the node cannot be exported: {0}")]
    Export(String),
    #[error("service {0} not found")]
    ServiceNotFound(ServiceKey),
    #[error("real server {addr}:{port} of service {service} not found")]
    DestNotFound {
        service: ServiceKey,
        addr: std::net::IpAddr,
        port: u16,
    },
}

/// What happened, for `WatchEvents`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Applied {
        revision: u64,
        origin: String,
    },
    DriftFound(Vec<String>),
    DriftRepaired(Vec<String>),
    /// A real server's health changed.
    Health(HealthView),
    /// A service lost its quorum of healthy servers, or got it back.
    Quorum(QuorumView),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub time: SystemTime,
    pub kind: EventKind,
}

/// The state as `GetState` shows it.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub current: Option<Revision>,
    pub drift_mode: DriftMode,
    pub last_check: Option<SystemTime>,
    pub drift: Vec<String>,
    /// Every checked real server.
    pub health: Vec<HealthView>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Kept revisions, newest last; the last is current.
    history: BTreeMap<u64, Revision>,
    /// Attachments this state made, by id; their policy is the hash.
    attached: BTreeMap<String, AttachmentSpec>,
    last_check: Option<SystemTime>,
    drift: Vec<String>,
}

impl Inner {
    fn current(&self) -> Option<&Revision> {
        self.history.values().next_back()
    }

    fn number(&self) -> u64 {
        self.current().map_or(0, |r| r.number)
    }

    fn check(&self, expected: Option<u64>) -> Result<(), StateError> {
        match expected {
            Some(e) if e != self.number() => Err(StateError::Stale {
                expected: e,
                current: self.number(),
            }),
            _ => Ok(()),
        }
    }
}

/// The node as it is.
struct Observed {
    table: Vec<(
        crate::ipvs::ServiceEntry,
        Vec<crate::ipvs::DestinationEntry>,
    )>,
    links: BTreeMap<LinkName, LinkState>,
    /// Live attachments by id.
    attachments: BTreeMap<String, AttachmentSpec>,
}

/// The declared state of one node.
#[derive(Debug)]
pub struct Declared<I, L> {
    kernel: Arc<Kernel<I>>,
    links: Arc<L>,
    policies: Option<Arc<Attachments<I>>>,
    store: Option<RevisionStore>,
    default_drift: DriftMode,
    inner: Mutex<Inner>,
    events: broadcast::Sender<Event>,
    checks: Checks,
}

/// One revision as the agent keeps it in its state directory: private to the agent (not in
/// the published API), built from the API's own messages, field numbers as they always were.
#[derive(Clone, PartialEq, prost::Message)]
struct RevisionRecord {
    #[prost(message, optional, tag = "1")]
    revision: Option<pb::Revision>,
    #[prost(message, optional, tag = "2")]
    spec: Option<pb::NodeSpec>,
    /// What prune may remove: the objects declared by this and earlier revisions since the
    /// last prune (links with addresses, services with real servers).
    #[prost(message, optional, tag = "3")]
    managed: Option<pb::NodeSpec>,
}

fn encode(r: &Revision) -> Vec<u8> {
    RevisionRecord {
        revision: Some(revision_info(r)),
        spec: Some(conv::node_spec_to_proto(&r.spec)),
        managed: Some(conv::managed_to_proto(&r.managed)),
    }
    .encode_to_vec()
}

fn decode(bytes: &[u8]) -> Result<Revision, String> {
    let rec = RevisionRecord::decode(bytes).map_err(|e| e.to_string())?;
    let info = rec.revision.unwrap_or_default();
    Ok(Revision {
        number: info.revision,
        spec: conv::node_spec(&rec.spec.unwrap_or_default()).map_err(|e| e.to_string())?,
        applied_at: conv::time(info.applied_at.as_ref()),
        origin: info.origin,
        managed: conv::managed(&rec.managed.unwrap_or_default()).map_err(|e| e.to_string())?,
    })
}

pub fn revision_info(r: &Revision) -> pb::Revision {
    pb::Revision {
        revision: r.number,
        applied_at: Some(conv::time_to_proto(r.applied_at)),
        origin: r.origin.clone(),
    }
}

/// "the 3 earlier changes were undone", or why they could not all be.
fn undo_words(n: usize, failures: &[String]) -> String {
    match (n, failures.first()) {
        (0, _) => "no earlier change had been made".to_owned(),
        (n, None) => format!("the {n} earlier change(s) were undone: the node is as it was"),
        (n, Some(first)) => format!(
            "undoing the {n} earlier change(s) failed {} time(s), first: {first}: the node is \
             left partly changed",
            failures.len()
        ),
    }
}

/// A change already made, and how to take it back.
enum Done {
    Link(LinkChange),
    Ipvs(Vec<Change>),
    Attached(String),
    Detached(AttachmentSpec),
}

impl<I: IpvsOps, L: LinkOps> Declared<I, L> {
    /// Loads the kept revisions from `dir` (none kept in memory only when `None`).
    pub fn open(
        kernel: Arc<Kernel<I>>,
        links: Arc<L>,
        policies: Option<Arc<Attachments<I>>>,
        dir: Option<PathBuf>,
        default_drift: DriftMode,
    ) -> Result<Self, std::io::Error> {
        let mut inner = Inner::default();
        let store = dir.map(RevisionStore::open).transpose()?;
        if let Some(store) = &store {
            for n in store.revisions()? {
                match store
                    .load(n)
                    .map_err(|e| e.to_string())
                    .and_then(|b| decode(&b))
                {
                    Ok(r) => {
                        inner.history.insert(r.number, r);
                    }
                    Err(e) => {
                        tracing::warn!(revision = n, error = %e, "unreadable revision skipped")
                    }
                }
            }
        }
        let kernel_board = kernel.health().clone();
        Ok(Declared {
            kernel,
            links,
            policies,
            store,
            default_drift,
            inner: Mutex::new(inner),
            events: broadcast::channel(256).0,
            checks: Checks::new(kernel_board),
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// How many receivers of [`Declared::subscribe`] are open: a test knows when a client's
    /// watch has started, so the events it causes next reach it.
    #[cfg(any(test, feature = "test-support"))]
    pub fn watchers(&self) -> usize {
        self.events.receiver_count()
    }

    fn emit(&self, kind: EventKind) {
        // No subscriber is fine.
        let _ = self.events.send(Event {
            time: SystemTime::now(),
            kind,
        });
    }

    pub async fn snapshot(&self) -> Snapshot {
        let inner = self.inner.lock().await;
        let current = inner.current().cloned();
        Snapshot {
            drift_mode: current
                .as_ref()
                .and_then(|r| r.spec.drift)
                .unwrap_or(self.default_drift),
            current,
            last_check: inner.last_check,
            drift: inner.drift.clone(),
            health: self.health(),
        }
    }

    /// Kept revisions, newest first.
    pub async fn revisions(&self) -> Vec<Revision> {
        self.inner
            .lock()
            .await
            .history
            .values()
            .rev()
            .cloned()
            .collect()
    }

    async fn observe(&self) -> Result<Observed, StateError> {
        let table = self.kernel.read().table().await?;
        let mut links: BTreeMap<LinkName, LinkState> = BTreeMap::new();
        for l in self.links.list().await.map_err(StateError::ReadLinks)? {
            if let Ok(name) = LinkName::new(l.name.clone()) {
                links.insert(
                    name,
                    LinkState {
                        up: l.up,
                        dummy: l.kind.as_deref() == Some("dummy"),
                        addresses: BTreeSet::new(),
                    },
                );
            }
        }
        for a in self
            .links
            .list_addresses(None)
            .await
            .map_err(StateError::ReadLinks)?
        {
            let (Ok(name), Ok(cidr)) = (
                LinkName::new(a.link.clone()),
                Cidr::new(a.address, a.prefix_len),
            ) else {
                continue;
            };
            // IPv6 link-local addresses are the kernel's, not anyone's declaration.
            if matches!(a.address, std::net::IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
            {
                continue;
            }
            if let Some(l) = links.get_mut(&name) {
                l.addresses.insert(cidr);
            }
        }
        let attachments = match &self.policies {
            Some(p) => p.list().await.into_iter().collect(),
            None => BTreeMap::new(),
        };
        Ok(Observed {
            table,
            links,
            attachments,
        })
    }

    /// The attachments with their policy named by hash.
    async fn resolve(&self, wanted: &[AttachmentSpec]) -> Result<Vec<AttachmentSpec>, StateError> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let policies = self.policies.as_ref().ok_or(StateError::NoPolicies)?;
        let uploaded = policies.policies().await;
        wanted
            .iter()
            .map(|a| {
                let by_hash = uploaded.iter().find(|p| p.hash == a.policy);
                let by_name: Vec<_> = uploaded.iter().filter(|p| p.name == a.policy).collect();
                let hash = match (by_hash, by_name.as_slice()) {
                    (Some(p), _) => p.hash.clone(),
                    (None, [p]) => p.hash.clone(),
                    (None, []) => return Err(StateError::PolicyUnknown(a.policy.clone())),
                    (None, _) => return Err(StateError::PolicyAmbiguous(a.policy.clone())),
                };
                Ok(AttachmentSpec {
                    policy: hash,
                    ..a.clone()
                })
            })
            .collect()
    }

    /// The ordered steps from `obs` to `spec`; deletions only of `managed` objects, with prune.
    fn plan(
        obs: &Observed,
        inner: &Inner,
        spec: &NodeSpec,
        table: &DesiredTable,
        attachments: &[AttachmentSpec],
        managed: &Managed,
        prune: bool,
    ) -> Vec<Step> {
        let ipvs = state::plan_with(&obs.table, table, |k, d| {
            prune
                && match d {
                    None => managed.services.contains(k),
                    Some(d) => managed.dests.contains(&(*k, *d)),
                }
        });
        let links = state::plan_links(&obs.links, &spec.links, |n, a| {
            prune
                && match a {
                    None => managed.links.contains(n),
                    Some(a) => managed.addresses.contains(&(n.clone(), *a)),
                }
        });
        // Attachments this state made that are still running.
        let live: Vec<(&String, &AttachmentSpec)> = inner
            .attached
            .iter()
            .filter(|(id, _)| obs.attachments.contains_key(*id))
            .collect();
        let mut steps: Vec<Step> = links.before.into_iter().map(Step::Link).collect();
        steps.extend(ipvs.into_iter().map(Step::Ipvs));
        if prune {
            steps.extend(
                live.iter()
                    .filter(|(_, s)| !attachments.contains(s))
                    .map(|(id, s)| Step::Detach {
                        id: (*id).clone(),
                        spec: (*s).clone(),
                    }),
            );
        }
        steps.extend(
            attachments
                .iter()
                .filter(|a| !live.iter().any(|(_, s)| s == a))
                .cloned()
                .map(Step::Attach),
        );
        steps.extend(links.after.into_iter().map(Step::Link));
        steps
    }

    async fn link_change(&self, c: &LinkChange) -> Result<(), LinkError> {
        match c {
            LinkChange::Create(n) => self.links.create_dummy(n).await.map(drop),
            LinkChange::SetUp(n) => self.links.set_up(n, true).await.map(drop),
            LinkChange::SetDown(n) => self.links.set_up(n, false).await.map(drop),
            LinkChange::AddAddress(n, a) => {
                self.links.add_address(n, a.address(), a.prefix_len()).await
            }
            LinkChange::DeleteAddress(n, a) => {
                self.links
                    .delete_address(n, a.address(), a.prefix_len())
                    .await
            }
            LinkChange::Delete { name, .. } => self.links.delete(name).await,
        }
    }

    /// Takes back what was made, newest first; the failures, in words.
    async fn undo(&self, ipvs: &I, inner: &mut Inner, done: Vec<Done>) -> Vec<String> {
        let mut failures = Vec::new();
        for d in done.into_iter().rev() {
            match d {
                Done::Link(c) => {
                    for u in c.undo() {
                        if let Err(e) = self.link_change(&u).await {
                            failures.push(format!("\"{u}\": {e}"));
                        }
                    }
                }
                Done::Ipvs(changes) => {
                    for c in changes.iter().rev() {
                        let ops = c.undo();
                        for (op, r) in ops.iter().zip(ipvs.apply(&ops).await) {
                            if let Err(e) = r {
                                failures.push(format!("\"{op}\": {e}"));
                            }
                        }
                    }
                }
                Done::Attached(id) => {
                    if let Some(p) = &self.policies
                        && let Err(e) = p.detach(&id).await
                    {
                        failures.push(format!("\"policy detach {id}\": {e}"));
                    }
                    inner.attached.remove(&id);
                }
                Done::Detached(spec) => {
                    if let Some(p) = &self.policies {
                        match p.attach(spec.clone()).await {
                            Ok(id) => {
                                inner.attached.insert(id, spec);
                            }
                            Err(e) => {
                                failures.push(format!("\"policy attach {}\": {e}", spec.policy))
                            }
                        }
                    }
                }
            }
        }
        failures
    }

    /// Makes `steps` in order, or takes back what was made and says why.
    async fn execute(&self, ipvs: &I, inner: &mut Inner, steps: &[Step]) -> Result<(), StateError> {
        let total = steps.len();
        let mut done: Vec<Done> = Vec::new();
        let mut made = 0;
        let mut i = 0;
        while i < steps.len() {
            let failure: Option<(usize, String, String)> = match &steps[i] {
                Step::Ipvs(_) => {
                    let changes: Vec<Change> = steps[i..]
                        .iter()
                        .map_while(|s| match s {
                            Step::Ipvs(c) => Some(c.clone()),
                            _ => None,
                        })
                        .collect();
                    let n = changes.len();
                    match state::apply(ipvs, &changes).await {
                        Ok(()) => {
                            made += n;
                            done.push(Done::Ipvs(changes));
                            i += n;
                            None
                        }
                        Err(ApplyError::Refused {
                            number,
                            change,
                            error,
                            undo,
                            ..
                        }) => Some((i + number, change, format!("{error}; {undo}"))),
                        Err(e @ ApplyError::Ignored { .. }) => {
                            Some((i + 1, steps[i].to_string(), e.to_string()))
                        }
                    }
                }
                Step::Link(c) => match self.link_change(c).await {
                    Ok(()) => {
                        made += 1;
                        done.push(Done::Link(c.clone()));
                        i += 1;
                        None
                    }
                    Err(e) => Some((i + 1, c.to_string(), e.to_string())),
                },
                Step::Attach(spec) => {
                    let result = match &self.policies {
                        Some(p) => p.attach(spec.clone()).await.map_err(|e| e.to_string()),
                        None => Err(StateError::NoPolicies.to_string()),
                    };
                    match result {
                        Ok(id) => {
                            inner.attached.insert(id.clone(), spec.clone());
                            made += 1;
                            done.push(Done::Attached(id));
                            i += 1;
                            None
                        }
                        Err(e) => Some((i + 1, steps[i].to_string(), e)),
                    }
                }
                Step::Detach { id, spec } => {
                    let result = match &self.policies {
                        Some(p) => p.detach(id).await.map_err(|e| e.to_string()),
                        None => Ok(()),
                    };
                    match result {
                        Ok(()) => {
                            inner.attached.remove(id);
                            made += 1;
                            done.push(Done::Detached(spec.clone()));
                            i += 1;
                            None
                        }
                        Err(e) => Some((i + 1, steps[i].to_string(), e)),
                    }
                }
            };
            if let Some((number, change, reason)) = failure {
                let failures = self.undo(ipvs, inner, done).await;
                return Err(StateError::Refused {
                    number,
                    total,
                    message: format!(
                        "change {number} of {total} failed: \"{change}\": {reason}; {}",
                        undo_words(made, &failures)
                    ),
                });
            }
        }
        Ok(())
    }

    /// Records a new revision (on disk first, then in memory) and announces it.
    fn commit(
        &self,
        inner: &mut Inner,
        spec: NodeSpec,
        managed: Managed,
        origin: String,
    ) -> Result<u64, StateError> {
        let number = inner.number() + 1;
        let rev = Revision {
            number,
            spec,
            applied_at: SystemTime::now(),
            origin,
            managed,
        };
        if let Some(store) = &self.store {
            store
                .save(number, &encode(&rev))
                .map_err(|error| StateError::Persist {
                    revision: number,
                    dir: store.dir().display().to_string(),
                    error,
                })?;
        }
        self.emit(EventKind::Applied {
            revision: number,
            origin: rev.origin.clone(),
        });
        self.sync_checks(&rev.spec);
        inner.history.insert(number, rev);
        while inner.history.len() > store::KEEP {
            inner.history.pop_first();
        }
        inner.drift.clear();
        Ok(number)
    }

    async fn apply_locked(
        &self,
        inner: &mut Inner,
        spec: NodeSpec,
        opts: ApplyOptions,
        origin: String,
    ) -> Result<Outcome, StateError> {
        inner.check(opts.expected)?;
        let attachments = self.resolve(&spec.attachments).await?;
        let turn = self.kernel.turn().await;
        let obs = self.observe().await?;
        let before = inner
            .current()
            .map(|r| r.managed.clone())
            .unwrap_or_default();
        let table = self.kernel.ledger().effective(&spec.table, &obs.table);
        let steps = Self::plan(
            &obs,
            inner,
            &spec,
            &table,
            &attachments,
            &before,
            opts.prune,
        );
        if opts.dry_run {
            return Ok(Outcome {
                steps,
                applied: false,
                revision: inner.number(),
                recorded: false,
            });
        }
        self.execute(turn.ipvs(), inner, &steps).await?;
        drop(turn);
        let managed = before.after(&spec, opts.prune);
        let unchanged = inner
            .current()
            .is_some_and(|r| r.spec == spec && r.managed == managed);
        let recorded = !(steps.is_empty() && unchanged);
        let revision = if recorded {
            self.commit(inner, spec, managed, origin)?
        } else {
            inner.number()
        };
        Ok(Outcome {
            steps,
            applied: true,
            revision,
            recorded,
        })
    }

    /// Makes the node match `spec` and records it as a new revision.
    pub async fn apply(&self, spec: NodeSpec, opts: ApplyOptions) -> Result<Outcome, StateError> {
        let mut inner = self.inner.lock().await;
        self.apply_locked(&mut inner, spec, opts, "apply".to_owned())
            .await
    }

    /// Applies revision `to` (the one before the current if 0) again, with prune.
    pub async fn rollback(
        &self,
        to: u64,
        dry_run: bool,
        expected: Option<u64>,
    ) -> Result<Outcome, StateError> {
        let mut inner = self.inner.lock().await;
        inner.check(expected)?;
        let current = inner.number();
        let target = if to == 0 {
            inner
                .history
                .range(..current)
                .next_back()
                .map(|(n, _)| *n)
                .ok_or(StateError::NothingBefore)?
        } else {
            to
        };
        let spec = inner
            .history
            .get(&target)
            .ok_or(StateError::NoRevision(target))?
            .spec
            .clone();
        let opts = ApplyOptions {
            prune: true,
            dry_run,
            expected: None,
        };
        self.apply_locked(&mut inner, spec, opts, format!("rollback to {target}"))
            .await
    }

    /// The node as it is: dummy links and the links the current revision declares, every
    /// service, the attachments this state made. Links that are down are left out: a
    /// declared link is brought up, so applying the export back would change them.
    pub async fn export(&self) -> Result<NodeSpec, StateError> {
        let inner = self.inner.lock().await;
        let obs = self.observe().await?;
        let declared = inner.current().map(|r| &r.spec);
        let links = obs
            .links
            .iter()
            .filter(|(n, l)| {
                l.up && (l.dummy || declared.is_some_and(|s| s.links.contains_key(*n)))
            })
            .map(|(n, l)| (n.clone(), l.addresses.iter().copied().collect()))
            .collect();
        // What health holds is the checks' doing, not a declaration: a server it took out
        // is exported as declared, a sorry server it put in is not exported.
        let ledger = self.kernel.ledger();
        let services = obs
            .table
            .iter()
            .map(|(s, dests)| {
                let key = s.service.key;
                let mut svc = s.service.clone();
                svc.flags = ServiceFlags(svc.flags.0 & ServiceFlags::USER_MASK);
                let decl = declared.and_then(|d| d.table.get(&key));
                let sorry = declared
                    .and_then(|d| d.service_check(&key))
                    .and_then(|c| c.sorry)
                    .filter(|_| ledger.sorry(&key).is_some())
                    .map(|d| (d.addr, d.port));
                let mut out: Vec<crate::ipvs::Destination> = dests
                    .iter()
                    .map(|d| d.dest)
                    .filter(|d| Some((d.addr, d.port)) != sorry)
                    .map(|mut d| {
                        let dk = (d.addr, d.port);
                        if ledger.health(&key, dk).is_some()
                            && let Some(w) = decl.and_then(|s| s.dests.get(&dk)).map(|d| d.weight)
                        {
                            d.weight = w;
                        }
                        d
                    })
                    .collect();
                if let Some(decl) = decl {
                    out.extend(
                        decl.dests
                            .iter()
                            .filter(|(dk, _)| {
                                ledger.health(&key, **dk) == Some(HealthHold::Down { remove: true })
                                    && !dests.iter().any(|d| (d.dest.addr, d.dest.port) == **dk)
                            })
                            .map(|(_, d)| *d),
                    );
                }
                (svc, out)
            })
            .collect();
        let table = DesiredTable::new(services).map_err(|e| StateError::Export(e.to_string()))?;
        let attachments = inner
            .attached
            .iter()
            .filter(|(id, _)| obs.attachments.contains_key(*id))
            .map(|(_, s)| s.clone())
            .collect();
        // The declared checks of what the export holds.
        let checks = declared
            .map(|d| {
                d.checks
                    .iter()
                    .filter(|c| {
                        table
                            .get(&c.service)
                            .is_some_and(|s| c.server.is_none_or(|dk| s.dests.contains_key(&dk)))
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        NodeSpec::new(links, table, attachments, declared.and_then(|s| s.drift))
            .and_then(|s| s.with_checks(checks))
            .map_err(|e| StateError::Export(e.to_string()))
    }

    /// Compares the node with the current revision's effective state (the weights a policy
    /// or a drain owns are theirs, not drift); in enforce mode (or when `repair`), restores
    /// what differs. Returns the drift found, in the words of the repairing changes.
    pub async fn check(&self, repair: bool) -> Result<Vec<String>, StateError> {
        let mut inner = self.inner.lock().await;
        let Some(current) = inner.current().cloned() else {
            inner.last_check = Some(SystemTime::now());
            return Ok(Vec::new());
        };
        let attachments = self.resolve(&current.spec.attachments).await?;
        let turn = self.kernel.turn().await;
        let obs = self.observe().await?;
        let table = self
            .kernel
            .ledger()
            .effective(&current.spec.table, &obs.table);
        let steps = Self::plan(
            &obs,
            &inner,
            &current.spec,
            &table,
            &attachments,
            &current.managed,
            false,
        );
        inner.last_check = Some(SystemTime::now());
        let found: Vec<String> = steps.iter().map(ToString::to_string).collect();
        if !found.is_empty() && found != inner.drift {
            tracing::warn!(changes = ?found, "the node drifted from revision {}", current.number);
            self.emit(EventKind::DriftFound(found.clone()));
        }
        inner.drift = found.clone();
        let enforce =
            repair || current.spec.drift.unwrap_or(self.default_drift) == DriftMode::Enforce;
        if !steps.is_empty() && enforce {
            self.execute(turn.ipvs(), &mut inner, &steps).await?;
            tracing::info!(changes = steps.len(), "drift repaired");
            self.emit(EventKind::DriftRepaired(found.clone()));
            inner.drift.clear();
        }
        Ok(found)
    }
}

#[cfg(test)]
mod health_tests;
#[cfg(test)]
mod tests;
