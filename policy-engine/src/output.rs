//! Validating a policy's answer against the live service: pure, so every rule is a table row.
//! Nothing reaches the kernel unless it passes here, and only what changes is kept.

use std::collections::HashMap;

use ipvs_types::{Destination, DestinationEntry, MAX_WEIGHT, Scheduler, ServiceEntry};

use super::bindings::server_name;
use super::error::OutputError;
use super::limits::Limits;

/// A decision as the guest returned it, before validation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawDecision {
    pub weights: Vec<(String, u32)>,
    pub scheduler: Option<String>,
    pub state: Option<Vec<u8>>,
    pub reason: String,
}

/// One real server whose weight changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightChange {
    /// The real server as it is, with the new weight: ready for an edit of the destination.
    pub dest: Destination,
    /// Its weight before.
    pub from: u32,
}

/// A validated decision: only changes, all of them applicable to the live service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    pub weights: Vec<WeightChange>,
    /// A scheduler to switch to, only when it differs from the current one.
    pub scheduler: Option<Scheduler>,
    /// The state for the next evaluation; `None` keeps the current one.
    pub state: Option<Vec<u8>>,
    /// Why, for operators (control characters replaced by spaces).
    pub reason: String,
}

impl Decision {
    /// True when nothing would be written to the kernel.
    pub fn changes_nothing(&self) -> bool {
        self.weights.is_empty() && self.scheduler.is_none()
    }
}

/// Longest server or scheduler name quoted back in an error.
const NAME_BYTES: usize = 256;

/// Replaces control characters (a policy's text ends up in logs and terminals).
pub fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `text` cut to at most `limit` bytes on a character boundary, sanitized.
pub fn clip(text: &str, limit: usize) -> String {
    let mut end = text.len().min(limit);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    sanitize(&text[..end])
}

/// Checks `raw` against the live service and the kernel's schedulers.
pub fn validate(
    raw: RawDecision,
    service: &ServiceEntry,
    servers: &[DestinationEntry],
    schedulers: &[Scheduler],
    limits: &Limits,
) -> Result<Decision, OutputError> {
    let names: Vec<String> = servers.iter().map(|s| server_name(&s.dest)).collect();
    validate_named(raw, service, servers, &names, schedulers, limits)
}

/// [`validate`] with each server's [`server_name`] already known (`names[i]` names
/// `servers[i]`), as the evaluation gave them to the policy.
pub fn validate_named<S: AsRef<str>>(
    raw: RawDecision,
    service: &ServiceEntry,
    servers: &[DestinationEntry],
    names: &[S],
    schedulers: &[Scheduler],
    limits: &Limits,
) -> Result<Decision, OutputError> {
    if raw.reason.len() > limits.reason_bytes {
        return Err(OutputError::ReasonTooLarge {
            len: raw.reason.len(),
            limit: limits.reason_bytes,
        });
    }
    if let Some(state) = &raw.state
        && state.len() > limits.state_bytes
    {
        return Err(OutputError::StateTooLarge {
            len: state.len(),
            limit: limits.state_bytes,
        });
    }
    let mut seen = vec![false; servers.len()];
    let mut weights = Vec::new();
    let mut index = ServerIndex::new(names);
    for (name, weight) in raw.weights {
        let Some(i) = index.find(&name) else {
            return Err(OutputError::UnknownServer(clip(&name, NAME_BYTES)));
        };
        let Some(entry) = servers.get(i) else {
            return Err(OutputError::UnknownServer(clip(&name, NAME_BYTES)));
        };
        if std::mem::replace(&mut seen[i], true) {
            return Err(OutputError::DuplicateServer(name));
        }
        if weight > MAX_WEIGHT {
            return Err(OutputError::Weight {
                server: name,
                weight,
            });
        }
        if weight != entry.dest.weight {
            weights.push(WeightChange {
                dest: Destination {
                    weight,
                    ..entry.dest
                },
                from: entry.dest.weight,
            });
        }
    }
    let scheduler = match raw.scheduler {
        None => None,
        // The service runs it, so the kernel has it, whatever the list says.
        Some(name) if name == service.service.scheduler.name() => None,
        Some(name) => {
            let Some(s) = schedulers.iter().find(|s| s.name() == name) else {
                return Err(OutputError::UnknownScheduler(clip(
                    &name,
                    limits.reason_bytes,
                )));
            };
            Some(s.clone())
        }
    };
    Ok(Decision {
        weights,
        scheduler,
        state: raw.state,
        reason: sanitize(&raw.reason),
    })
}

/// Finds a server by name. Policies mostly answer in the order they were given the servers,
/// so the one after the last match is tried first; a map by name is built only when a
/// decision goes out of order.
struct ServerIndex<'a, S> {
    names: &'a [S],
    next: usize,
    by_name: Option<HashMap<&'a str, usize>>,
}

impl<'a, S: AsRef<str>> ServerIndex<'a, S> {
    fn new(names: &'a [S]) -> Self {
        ServerIndex {
            names,
            next: 0,
            by_name: None,
        }
    }

    fn find(&mut self, name: &str) -> Option<usize> {
        let names = self.names;
        let found = match names.get(self.next) {
            Some(n) if n.as_ref() == name => Some(self.next),
            _ => self
                .by_name
                .get_or_insert_with(|| {
                    names
                        .iter()
                        .enumerate()
                        .map(|(i, n)| (n.as_ref(), i))
                        .collect()
                })
                .get(name)
                .copied(),
        };
        if let Some(i) = found {
            self.next = i + 1;
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipvs_types::{Protocol, Service, ServiceKey, Stats};

    fn service() -> ServiceEntry {
        ServiceEntry {
            service: Service::new(
                ServiceKey::Endpoint {
                    protocol: Protocol::Tcp,
                    addr: "10.0.0.1".parse().expect("addr"),
                    port: 80,
                },
                Scheduler::Wlc,
            ),
            stats: Stats::default(),
        }
    }

    fn dest(addr: &str, weight: u32) -> DestinationEntry {
        let mut dest = Destination::new(addr.parse().expect("addr"), 80);
        dest.weight = weight;
        DestinationEntry {
            dest,
            active_conns: 0,
            inactive_conns: 0,
            persistent_conns: 0,
            stats: Stats::default(),
        }
    }

    fn servers() -> Vec<DestinationEntry> {
        vec![
            dest("10.0.0.2", 5),
            dest("10.0.0.3", 1),
            dest("2001:db8::4", 1),
        ]
    }

    fn run(raw: RawDecision) -> Result<Decision, OutputError> {
        let limits = Limits {
            state_bytes: 4,
            reason_bytes: 8,
            ..Limits::default()
        };
        validate(
            raw,
            &service(),
            &servers(),
            &[Scheduler::Wlc, Scheduler::Lc],
            &limits,
        )
    }

    fn w(pairs: &[(&str, u32)]) -> RawDecision {
        RawDecision {
            weights: pairs.iter().map(|(n, w)| ((*n).to_owned(), *w)).collect(),
            ..RawDecision::default()
        }
    }

    #[test]
    fn rejections_name_the_problem() {
        let cases: Vec<(RawDecision, OutputError)> = vec![
            (
                w(&[("10.9.9.9:80", 1)]),
                OutputError::UnknownServer("10.9.9.9:80".into()),
            ),
            (
                w(&[("10.0.0.2:81", 1)]),
                OutputError::UnknownServer("10.0.0.2:81".into()),
            ),
            (
                w(&[("10.0.0.2:80", 1), ("10.0.0.2:80", 2)]),
                OutputError::DuplicateServer("10.0.0.2:80".into()),
            ),
            (
                w(&[("10.0.0.3:80", 65536)]),
                OutputError::Weight {
                    server: "10.0.0.3:80".into(),
                    weight: 65536,
                },
            ),
            (
                RawDecision {
                    scheduler: Some("rr".into()),
                    ..RawDecision::default()
                },
                OutputError::UnknownScheduler("rr".into()),
            ),
            (
                RawDecision {
                    state: Some(vec![0; 5]),
                    ..RawDecision::default()
                },
                OutputError::StateTooLarge { len: 5, limit: 4 },
            ),
            (
                RawDecision {
                    reason: "123456789".into(),
                    ..RawDecision::default()
                },
                OutputError::ReasonTooLarge { len: 9, limit: 8 },
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(run(raw.clone()), Err(want), "{raw:?}");
        }
    }

    #[test]
    fn only_changes_are_kept() {
        let d = run(RawDecision {
            weights: vec![
                ("10.0.0.2:80".into(), 5),
                ("10.0.0.3:80".into(), 0),
                ("[2001:db8::4]:80".into(), 65535),
            ],
            scheduler: Some("wlc".into()),
            state: Some(vec![1, 2, 3, 4]),
            reason: "a\nb\tc".into(),
        })
        .expect("valid");
        let changed: Vec<(String, u32, u32)> = d
            .weights
            .iter()
            .map(|c| (server_name(&c.dest), c.from, c.dest.weight))
            .collect();
        assert_eq!(
            changed,
            [
                ("10.0.0.3:80".to_owned(), 1, 0),
                ("[2001:db8::4]:80".to_owned(), 1, 65535)
            ]
        );
        assert_eq!(d.scheduler, None, "same scheduler is no change");
        assert_eq!(d.state, Some(vec![1, 2, 3, 4]));
        assert_eq!(d.reason, "a b c");
        assert!(!d.changes_nothing());

        let d = run(RawDecision {
            scheduler: Some("lc".into()),
            ..RawDecision::default()
        })
        .expect("valid");
        assert_eq!(d.scheduler, Some(Scheduler::Lc));
        assert!(run(RawDecision::default()).is_ok_and(|d| d.changes_nothing()));
    }

    #[test]
    fn schedulers_are_the_kernels() {
        let limits = Limits::default();
        let pick = |name: &str, offered: &[Scheduler]| {
            let raw = RawDecision {
                scheduler: Some(name.into()),
                ..RawDecision::default()
            };
            validate(raw, &service(), &servers(), offered, &limits).map(|d| d.scheduler)
        };
        let offered = [Scheduler::Rr, Scheduler::Sed];
        assert_eq!(pick("sed", &offered), Ok(Some(Scheduler::Sed)));
        // The current one (wlc) is no change even when the list does not name it.
        assert_eq!(pick("wlc", &offered), Ok(None));
        assert_eq!(
            pick("twos", &offered),
            Err(OutputError::UnknownScheduler("twos".into()))
        );
        assert_eq!(
            pick("new2", &[Scheduler::Other("new2".into())]),
            Ok(Some(Scheduler::Other("new2".into())))
        );
    }

    #[test]
    fn servers_are_found_in_any_order() {
        let d = run(w(&[
            ("[2001:db8::4]:80", 7),
            ("10.0.0.2:80", 6),
            ("10.0.0.3:80", 8),
        ]))
        .expect("valid");
        let changed: Vec<(String, u32)> = d
            .weights
            .iter()
            .map(|c| (server_name(&c.dest), c.dest.weight))
            .collect();
        assert_eq!(
            changed,
            [
                ("[2001:db8::4]:80".to_owned(), 7),
                ("10.0.0.2:80".to_owned(), 6),
                ("10.0.0.3:80".to_owned(), 8)
            ]
        );
        assert_eq!(
            run(w(&[
                ("10.0.0.3:80", 2),
                ("[2001:db8::4]:80", 2),
                ("10.0.0.3:80", 3)
            ])),
            Err(OutputError::DuplicateServer("10.0.0.3:80".into()))
        );
        // Names given with the servers are what a decision must match.
        let limits = Limits::default();
        let names = ["a", "b", "c"];
        let d = validate_named(
            w(&[("c", 9), ("a", 9)]),
            &service(),
            &servers(),
            &names,
            &[],
            &limits,
        )
        .expect("valid");
        assert_eq!(d.weights.iter().map(|c| c.from).collect::<Vec<_>>(), [1, 5]);
        assert_eq!(
            validate_named(
                w(&[("10.0.0.2:80", 9)]),
                &service(),
                &servers(),
                &names,
                &[],
                &limits
            ),
            Err(OutputError::UnknownServer("10.0.0.2:80".into()))
        );
    }

    #[test]
    fn clip_respects_characters() {
        assert_eq!(clip("héllo", 2), "h");
        assert_eq!(clip("héllo", 3), "hé");
        assert_eq!(clip("a\u{1b}[31m", 10), "a [31m");
    }
}
