//! Makes a plan's changes, or none of them: on a kernel refusal the changes already made are
//! undone in reverse order, and the error says which change failed and whether the table is
//! back to what it was.
//!
//! Changes go to the kernel pipelined, [`CHUNK`] at a time; the kernel attempts every write
//! of a chunk even after one fails, so everything that took effect is undone, not only what
//! came before the failure. A scheduler the kernel refuses as missing gets its module loaded
//! once, and the refused writes of that chunk are tried again (a plan touches each service
//! and real server once, so running them after their neighbours changes nothing).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::plan::Change;
use super::readback::{self, Ignored};
use crate::ipvs::handle::BATCH;
use crate::ipvs::{Destination, IpvsError, IpvsOp, IpvsOps, ServiceKey, module};

/// Writes sent together; the next chunk goes only if this one was accepted whole.
pub const CHUNK: usize = BATCH;

/// What undoing the changes made came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undo {
    /// No change had taken effect.
    NotNeeded,
    /// Every change made was taken back.
    Restored { changes: usize },
    /// Some writes that take changes back failed: the table is partly changed.
    Failed {
        changes: usize,
        failures: usize,
        first: String,
        error: IpvsError,
    },
}

impl Undo {
    /// Whether the table is as it was before the call.
    pub fn restored(&self) -> bool {
        !matches!(self, Undo::Failed { .. })
    }
}

/// "the 1 change made", "the 3 changes made".
fn made(n: usize) -> String {
    if n == 1 {
        "the 1 change made".to_owned()
    } else {
        format!("the {n} changes made")
    }
}

impl fmt::Display for Undo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Undo::NotNeeded => f.write_str("nothing was changed"),
            Undo::Restored { changes } => write!(
                f,
                "{} {} undone: the table is as it was",
                made(*changes),
                if *changes == 1 { "was" } else { "were" }
            ),
            Undo::Failed {
                changes,
                failures,
                first,
                error,
            } => write!(
                f,
                "undoing {} failed {failures} time(s), first at \"{first}\": {error}: the table \
                 is left partly changed",
                made(*changes)
            ),
        }
    }
}

/// Why a plan was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The kernel refused a change.
    #[error("change {number} of {total} failed: \"{change}\": {error}; {undo}")]
    Refused {
        /// 1-based position of the change in the plan.
        number: usize,
        total: usize,
        change: String,
        error: IpvsError,
        undo: Undo,
    },
    /// The kernel accepted a change but dropped part of it.
    #[error("{ignored}; {undo}")]
    Ignored { ignored: Ignored, undo: Undo },
}

/// Makes `changes` in order; on any failure, takes back what was made.
pub async fn apply<I: IpvsOps>(ipvs: &I, changes: &[Change]) -> Result<(), ApplyError> {
    let ops: Vec<IpvsOp> = changes.iter().map(Change::op).collect();
    // Indices of the changes that took effect, in the order they did.
    let mut made: Vec<usize> = Vec::new();
    let mut loaded: BTreeSet<String> = BTreeSet::new();
    for (n, chunk) in ops.chunks(CHUNK).enumerate() {
        let base = n * CHUNK;
        let mut results = ipvs.apply(chunk).await;
        made.extend(ok_indices(&results).map(|i| base + i));
        if load_schedulers(ipvs, &results, &mut loaded).await {
            let failed: Vec<usize> = results
                .iter()
                .enumerate()
                .filter(|(_, r)| r.is_err())
                .map(|(i, _)| i)
                .collect();
            let again: Vec<IpvsOp> = failed.iter().map(|&i| chunk[i].clone()).collect();
            for (&i, r) in failed.iter().zip(ipvs.apply(&again).await) {
                if r.is_ok() {
                    made.push(base + i);
                }
                results[i] = r;
            }
        }
        let refused = results
            .into_iter()
            .enumerate()
            .find_map(|(i, r)| r.err().map(|e| (i, e)));
        if let Some((i, error)) = refused {
            let undo = undo(ipvs, changes, &made).await;
            return Err(ApplyError::Refused {
                number: base + i + 1,
                total: changes.len(),
                change: ops[base + i].to_string(),
                error,
                undo,
            });
        }
    }
    if let Err(ignored) = verify(ipvs, changes).await {
        let undo = undo(ipvs, changes, &made).await;
        return Err(ApplyError::Ignored { ignored, undo });
    }
    for op in &ops {
        tracing::debug!(change = %op, "applied");
    }
    Ok(())
}

fn ok_indices(results: &[Result<(), IpvsError>]) -> impl Iterator<Item = usize> + '_ {
    results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| i)
}

/// Loads the module of each scheduler the kernel refused as missing and not tried yet;
/// whether any loaded.
async fn load_schedulers<I: IpvsOps>(
    ipvs: &I,
    results: &[Result<(), IpvsError>],
    tried: &mut BTreeSet<String>,
) -> bool {
    let mut any = false;
    for r in results {
        if let Err(IpvsError::SchedulerNotFound(name)) = r
            && tried.insert(name.clone())
        {
            any |= module::load(ipvs, name).await;
        }
    }
    any
}

/// Takes back the changes `made`, last first. Every undo write is attempted.
async fn undo<I: IpvsOps>(ipvs: &I, changes: &[Change], made: &[usize]) -> Undo {
    if made.is_empty() {
        return Undo::NotNeeded;
    }
    let ops: Vec<IpvsOp> = made.iter().rev().flat_map(|&i| changes[i].undo()).collect();
    let mut failures = 0;
    let mut first = None;
    for chunk in ops.chunks(CHUNK) {
        for (op, r) in chunk.iter().zip(ipvs.apply(chunk).await) {
            if let Err(e) = r {
                failures += 1;
                first.get_or_insert((op.to_string(), e));
            }
        }
    }
    match first {
        None => Undo::Restored {
            changes: made.len(),
        },
        Some((first, error)) => {
            tracing::error!(%first, %error, failures, "undoing a refused plan failed");
            Undo::Failed {
                changes: made.len(),
                failures,
                first,
                error,
            }
        }
    }
}

/// Reads back the real servers whose writes an older kernel may have cut short.
async fn verify<I: IpvsOps>(ipvs: &I, changes: &[Change]) -> Result<(), Ignored> {
    let mut wanted: BTreeMap<ServiceKey, Vec<&Destination>> = BTreeMap::new();
    for c in changes {
        if let Change::AddDestination { service, dest }
        | Change::UpdateDestination {
            service, to: dest, ..
        } = c
            && readback::needs_readback(service, dest)
        {
            wanted.entry(*service).or_default().push(dest);
        }
    }
    for (service, dests) in wanted {
        match ipvs.destinations(&service).await {
            Ok(back) => {
                for d in dests {
                    readback::check(&service, d, &back)?;
                }
            }
            // The writes were accepted; a read failing now proves nothing either way.
            Err(e) => tracing::warn!(%service, error = %e, "cannot read back real servers"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::ipvs::fake::{FakeIpvs, Write};
    use crate::ipvs::{
        DestinationEntry, ForwardMethod, Protocol, Scheduler, Service, ServiceEntry, Tunnel,
        TunnelType,
    };
    use crate::state::{DesiredTable, plan};

    fn tcp(s: &str) -> ServiceKey {
        let sa: SocketAddr = s.parse().expect("test address");
        ServiceKey::Endpoint {
            protocol: Protocol::Tcp,
            addr: sa.ip(),
            port: sa.port(),
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

    async fn table(ipvs: &FakeIpvs) -> Vec<(ServiceEntry, Vec<DestinationEntry>)> {
        ipvs.table().await.expect("fake table")
    }

    /// A fake holding TCP 10.0.0.1:80 (rr, two real servers) and TCP 10.0.0.2:80 (wrr).
    async fn seeded() -> FakeIpvs {
        let ipvs = FakeIpvs::default();
        let a = tcp("10.0.0.1:80");
        let ops = vec![
            IpvsOp::NewService(Service::new(a, Scheduler::Rr)),
            IpvsOp::NewDest(a, masq("10.0.1.1:8080", 1)),
            IpvsOp::NewDest(a, masq("10.0.1.2:8080", 1)),
            IpvsOp::NewService(Service::new(tcp("10.0.0.2:80"), Scheduler::Wrr)),
        ];
        assert!(ipvs.apply(&ops).await.iter().all(Result::is_ok));
        ipvs
    }

    async fn planned(
        ipvs: &FakeIpvs,
        want: Vec<(Service, Vec<Destination>)>,
        prune: bool,
    ) -> Vec<Change> {
        let desired = DesiredTable::new(want).expect("valid desired table");
        plan(&table(ipvs).await, &desired, prune)
    }

    #[tokio::test]
    async fn a_plan_is_made_and_then_there_is_nothing_left_to_do() {
        let ipvs = seeded().await;
        let want = vec![
            (
                Service::new(tcp("10.0.0.1:80"), Scheduler::Wlc),
                vec![masq("10.0.1.1:8080", 3), masq("10.0.1.3:8080", 1)],
            ),
            (Service::new(tcp("10.0.0.3:80"), Scheduler::Rr), vec![]),
        ];
        let changes = planned(&ipvs, want.clone(), true).await;
        assert_eq!(changes.len(), 6, "{changes:#?}");
        assert_eq!(apply(&ipvs, &changes).await, Ok(()));
        assert_eq!(planned(&ipvs, want, true).await, vec![]);
    }

    #[tokio::test]
    async fn a_refusal_undoes_everything_made_in_reverse() {
        let ipvs = seeded().await;
        let before = table(&ipvs).await;
        let want = vec![
            (
                Service::new(tcp("10.0.0.1:80"), Scheduler::Wlc),
                vec![masq("10.0.1.1:8080", 3)],
            ),
            // The fake kernel, like Debian's 6.1, has no twos.
            (Service::new(tcp("10.0.0.3:80"), Scheduler::Twos), vec![]),
            (Service::new(tcp("10.0.0.4:80"), Scheduler::Rr), vec![]),
        ];
        let changes = planned(&ipvs, want, true).await;
        let descriptions: Vec<String> = changes.iter().map(Change::description).collect();
        assert_eq!(
            descriptions,
            vec![
                "-E -t 10.0.0.1:80 -s wlc",
                "-e -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 3",
                "-d -t 10.0.0.1:80 -r 10.0.1.2:8080",
                "-A -t 10.0.0.3:80 -s twos",
                "-A -t 10.0.0.4:80 -s rr",
                "-D -t 10.0.0.2:80",
            ]
        );
        let err = apply(&ipvs, &changes).await.expect_err("twos is refused");
        assert_eq!(
            err.to_string(),
            "change 4 of 6 failed: \"-A -t 10.0.0.3:80 -s twos\": Scheduler not found: twos; \
             the 5 changes made were undone: the table is as it was"
        );
        assert_eq!(table(&ipvs).await, before);
        assert_eq!(ipvs.loads(), vec!["twos".to_owned()], "one modprobe");
        // The five that took effect (even those after the refusal), undone last first.
        let undo: Vec<Write> = ipvs.writes()[4 + 6..].to_vec();
        let a = tcp("10.0.0.1:80");
        assert_eq!(
            undo,
            vec![
                Write::NewService(Service {
                    flags: crate::ipvs::ServiceFlags(crate::ipvs::ServiceFlags::HASHED),
                    ..Service::new(tcp("10.0.0.2:80"), Scheduler::Wrr)
                }),
                Write::DelService(tcp("10.0.0.4:80")),
                Write::NewDest(a, masq("10.0.1.2:8080", 1)),
                Write::SetDest(a, masq("10.0.1.1:8080", 1)),
                Write::SetService(Service {
                    flags: crate::ipvs::ServiceFlags(crate::ipvs::ServiceFlags::HASHED),
                    ..Service::new(a, Scheduler::Rr)
                }),
            ]
        );
    }

    #[tokio::test]
    async fn a_missing_scheduler_is_loaded_once_and_the_plan_goes_on() {
        let ipvs = seeded().await;
        ipvs.make_loadable("twos");
        let b = tcp("10.0.0.3:80");
        let want = vec![(
            Service::new(b, Scheduler::Twos),
            vec![masq("10.0.1.1:8080", 1)],
        )];
        let changes = planned(&ipvs, want.clone(), false).await;
        assert_eq!(apply(&ipvs, &changes).await, Ok(()));
        assert_eq!(ipvs.loads(), vec!["twos".to_owned()]);
        assert_eq!(planned(&ipvs, want, false).await, vec![]);
        // Refused, its real server refused after it, then both again after the modprobe.
        assert_eq!(
            ipvs.writes()[4..].to_vec(),
            vec![
                Write::NewService(Service::new(b, Scheduler::Twos)),
                Write::NewDest(b, masq("10.0.1.1:8080", 1)),
                Write::NewService(Service::new(b, Scheduler::Twos)),
                Write::NewDest(b, masq("10.0.1.1:8080", 1)),
            ]
        );
    }

    #[tokio::test]
    async fn a_failed_undo_says_the_table_is_partly_changed() {
        let ipvs = seeded().await;
        let a = tcp("10.0.0.1:80");
        let want = vec![
            (
                Service::new(a, Scheduler::Rr),
                vec![
                    masq("10.0.1.1:8080", 1),
                    masq("10.0.1.2:8080", 1),
                    masq("10.0.1.3:8080", 1),
                ],
            ),
            (
                Service::new(tcp("10.0.0.2:80"), Scheduler::Wrr),
                vec![masq("10.0.1.4:8080", 1)],
            ),
        ];
        let changes = planned(&ipvs, want, false).await;
        ipvs.refuse_write(
            Write::NewDest(tcp("10.0.0.2:80"), masq("10.0.1.4:8080", 1)),
            libc::ENOMEM,
        );
        ipvs.fail_write(
            Write::DelDest(a, "10.0.1.3".parse().expect("ip"), 8080),
            IpvsError::Netlink("connection closed".into()),
        );
        let err = apply(&ipvs, &changes).await.expect_err("refused");
        assert!(matches!(&err, ApplyError::Refused { undo, .. } if !undo.restored()));
        assert_eq!(
            err.to_string(),
            "change 2 of 2 failed: \"-a -t 10.0.0.2:80 -r 10.0.1.4:8080 -m -w 1\": add \
             destination: Cannot allocate memory (errno 12); undoing the 1 change made failed 1 \
             time(s), first at \"-d -t 10.0.0.1:80 -r 10.0.1.3:8080\": netlink: connection \
             closed: the table is left partly changed"
        );
    }

    #[tokio::test]
    async fn tunnel_settings_a_kernel_drops_are_caught_and_undone() {
        let ipvs = seeded().await;
        ipvs.behave_like_an_old_kernel();
        let before = table(&ipvs).await;
        let gue = Destination {
            forward: ForwardMethod::Tunnel,
            tunnel: Tunnel {
                kind: TunnelType::Gue,
                port: 6080,
                ..Tunnel::default()
            },
            ..Destination::new("10.0.1.9".parse().expect("ip"), 80)
        };
        let want = vec![(
            Service::new(tcp("10.0.0.1:80"), Scheduler::Rr),
            vec![masq("10.0.1.1:8080", 1), masq("10.0.1.2:8080", 1), gue],
        )];
        let changes = planned(&ipvs, want, false).await;
        let err = apply(&ipvs, &changes).await.expect_err("dropped");
        assert_eq!(
            err.to_string(),
            "the kernel ignored the tunnel settings of real server 10.0.1.9:80 of service TCP \
             10.0.0.1:80 (GUE and GRE tunnels need Linux 5.2 or later); the 1 change made was \
             undone: the table is as it was"
        );
        assert_eq!(table(&ipvs).await, before);
    }

    #[tokio::test]
    async fn a_dropped_address_family_is_caught() {
        let ipvs = seeded().await;
        ipvs.behave_like_an_old_kernel();
        let v6 = Destination {
            forward: ForwardMethod::Tunnel,
            ..Destination::new("2001:db8::9".parse().expect("ip"), 80)
        };
        let want = vec![(Service::new(tcp("10.0.0.5:80"), Scheduler::Rr), vec![v6])];
        let changes = planned(&ipvs, want, false).await;
        let err = apply(&ipvs, &changes).await.expect_err("dropped");
        assert_eq!(
            err,
            ApplyError::Ignored {
                ignored: Ignored::Family {
                    service: tcp("10.0.0.5:80"),
                    dest: "[2001:db8::9]:80".parse().expect("addr"),
                },
                undo: Undo::Restored { changes: 2 },
            }
        );
        assert!(ipvs.service(&tcp("10.0.0.5:80")).await.is_err(), "undone");
    }
}
