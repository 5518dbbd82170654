//! Who owns which field of the table, and the effective state that follows. Pure.
//!
//! A real server's weight is wanted by up to three controllers; the highest present wins:
//!
//! | field                      | owners, highest first                                   |
//! |----------------------------|---------------------------------------------------------|
//! | real server weight         | drain > health (down) > enforcing policy attachment > health (an exec check's weight) > declaration |
//! | whether a declared real server is in the table | health (down, `on-failure: remove`) > declaration |
//! | a service's sorry server   | health (while the service is below its quorum)           |
//! | service scheduler          | enforcing policy attachment (once it chose one) > declaration |
//! | every other field, and whether a service or real server exists | declaration  |
//!
//! Drift is measured against the result ([`Ledger::effective`]), so a policy's or a drain's
//! change is never drift and drift repair never undoes it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use crate::ipvs::{Destination, DestinationEntry, Scheduler, ServiceEntry, ServiceKey};
use crate::state::{DesiredTable, desired::DestKey};

/// Who decides a real server's weight right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// The declared revision (or, for what no revision declares, whoever writes last).
    Declaration,
    /// The enforcing policy attachment with this id.
    Policy(String),
    /// A drain in progress: the weight stays 0.
    Drain,
    /// The server's health check: down (weight 0, or out of the table), or an exec check's
    /// weight.
    Health,
}

/// What a health check holds of one real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthHold {
    /// Down: weight 0, or out of the table when `remove`.
    Down { remove: bool },
    /// Up, asking for this weight (an exec check's).
    Weight(u32),
}

/// A drain in progress, kept on disk so a restart neither revives the server nor forgets to
/// remove it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainRecord {
    pub service: ServiceKey,
    pub dest: DestKey,
    /// Leave the server in place at weight 0 when done.
    pub keep: bool,
    /// When the drain stops waiting for active connections.
    pub deadline: SystemTime,
    /// Time between connection counts.
    pub poll: Duration,
    /// The weight before the drain.
    pub previous: u32,
}

/// What an enforcing attachment holds of one service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct PolicyHold {
    attachment: String,
    /// The weights it last wrote. A server it has not written yet keeps the weight it has.
    weights: BTreeMap<DestKey, u32>,
    /// The scheduler it last chose, if it ever did.
    scheduler: Option<Scheduler>,
}

/// The service is held by another enforcing attachment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the weights of service {service} are already steered by attachment {by}")]
pub struct Held {
    pub service: ServiceKey,
    pub by: String,
}

/// The owners of every field that has one besides the declaration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ledger {
    policies: BTreeMap<ServiceKey, PolicyHold>,
    drains: BTreeMap<(ServiceKey, DestKey), DrainRecord>,
    health: BTreeMap<(ServiceKey, DestKey), HealthHold>,
    /// Servers health brought back in a service a policy steers, which the policy has not
    /// written since: they get their declared weight, not the 0 they were left at.
    recovered: BTreeSet<(ServiceKey, DestKey)>,
    /// Sorry servers in use, by service.
    sorry: BTreeMap<ServiceKey, Destination>,
}

impl Ledger {
    /// Gives the weights of `services` to `attachment`; all or none.
    pub fn hold(&mut self, attachment: &str, services: &[ServiceKey]) -> Result<(), Held> {
        for s in services {
            if let Some(h) = self.policies.get(s)
                && h.attachment != attachment
            {
                return Err(Held {
                    service: *s,
                    by: h.attachment.clone(),
                });
            }
        }
        for s in services {
            self.policies.entry(*s).or_insert_with(|| PolicyHold {
                attachment: attachment.to_owned(),
                ..PolicyHold::default()
            });
        }
        Ok(())
    }

    /// Gives back everything `attachment` held: the declaration owns those fields again.
    pub fn release(&mut self, attachment: &str) {
        self.policies.retain(|_, h| h.attachment != attachment);
    }

    /// The attachment holding `service`, if any.
    pub fn holder(&self, service: &ServiceKey) -> Option<&str> {
        self.policies.get(service).map(|h| h.attachment.as_str())
    }

    /// Records a weight the holder of `service` wrote.
    pub fn wrote_weight(&mut self, service: &ServiceKey, dest: DestKey, weight: u32) {
        if let Some(h) = self.policies.get_mut(service) {
            h.weights.insert(dest, weight);
            self.recovered.remove(&(*service, dest));
        }
    }

    /// Sets (or, with `None`, gives back) what health holds of `dest`. A server coming back
    /// up in a service a policy steers gets its declared weight until the policy writes one.
    pub fn set_health(&mut self, service: &ServiceKey, dest: DestKey, hold: Option<HealthHold>) {
        let key = (*service, dest);
        let was_down = matches!(self.health.get(&key), Some(HealthHold::Down { .. }));
        match hold {
            Some(h) => {
                if matches!(h, HealthHold::Down { .. })
                    && let Some(p) = self.policies.get_mut(service)
                {
                    p.weights.remove(&dest);
                }
                self.health.insert(key, h);
            }
            None => {
                self.health.remove(&key);
            }
        }
        let is_down = matches!(self.health.get(&key), Some(HealthHold::Down { .. }));
        if was_down && !is_down && self.policies.contains_key(service) {
            self.recovered.insert(key);
        }
    }

    pub fn health(&self, service: &ServiceKey, dest: DestKey) -> Option<HealthHold> {
        self.health.get(&(*service, dest)).copied()
    }

    /// Every real server health holds something of.
    pub fn health_holds(&self) -> Vec<(ServiceKey, DestKey)> {
        self.health.keys().copied().collect()
    }

    /// Health has taken `dest` out of service (weight 0 or removed).
    pub fn health_down(&self, service: &ServiceKey, dest: DestKey) -> bool {
        matches!(self.health(service, dest), Some(HealthHold::Down { .. }))
    }

    /// Puts `sorry` in `service` (or, with `None`, takes it out) from the next write on.
    pub fn set_sorry(&mut self, service: &ServiceKey, sorry: Option<Destination>) {
        match sorry {
            Some(d) => self.sorry.insert(*service, d),
            None => self.sorry.remove(service),
        };
    }

    pub fn sorry(&self, service: &ServiceKey) -> Option<&Destination> {
        self.sorry.get(service)
    }

    /// Records a scheduler the holder of `service` chose.
    pub fn wrote_scheduler(&mut self, service: &ServiceKey, scheduler: Scheduler) {
        if let Some(h) = self.policies.get_mut(service) {
            h.scheduler = Some(scheduler);
        }
    }

    pub fn start_drain(&mut self, record: DrainRecord) {
        self.drains.insert((record.service, record.dest), record);
    }

    pub fn end_drain(&mut self, service: &ServiceKey, dest: DestKey) -> Option<DrainRecord> {
        self.drains.remove(&(*service, dest))
    }

    pub fn draining(&self, service: &ServiceKey, dest: DestKey) -> bool {
        self.drains.contains_key(&(*service, dest))
    }

    /// Drains in progress, by service and real server.
    pub fn drains(&self) -> impl Iterator<Item = &DrainRecord> {
        self.drains.values()
    }

    /// Who decides the weight of `dest` in `service`.
    pub fn weight_owner(&self, service: &ServiceKey, dest: DestKey) -> Owner {
        if self.draining(service, dest) {
            Owner::Drain
        } else if self.health_down(service, dest) {
            Owner::Health
        } else if let Some(h) = self.policies.get(service) {
            Owner::Policy(h.attachment.clone())
        } else if self.health(service, dest).is_some() {
            Owner::Health
        } else {
            Owner::Declaration
        }
    }

    /// `declared` as its owners want it now, given the table `observed`: a draining server at
    /// weight 0; a held service with the weights and scheduler its policy wrote, and for
    /// servers the policy has not written yet, the weight they have (nobody asks for another).
    pub fn effective(
        &self,
        declared: &DesiredTable,
        observed: &[(ServiceEntry, Vec<DestinationEntry>)],
    ) -> DesiredTable {
        let mut table = declared.clone();
        // The live real servers of held services only, keyed: a scan of `observed` per
        // service would grow with the square of the table.
        let held: BTreeMap<ServiceKey, &[DestinationEntry]> = observed
            .iter()
            .filter(|(s, _)| self.policies.contains_key(&s.service.key))
            .map(|(s, d)| (s.service.key, d.as_slice()))
            .collect();
        for svc in table.services_mut() {
            let key = svc.service.key;
            let hold = self.policies.get(&key);
            if let Some(s) = hold.and_then(|h| h.scheduler.clone()) {
                svc.service.scheduler = s;
            }
            let live = held.get(&key).copied().unwrap_or_default();
            let mut removed = Vec::new();
            for (dk, dest) in svc.dests.iter_mut() {
                let health = self.health(&key, *dk);
                if self.draining(&key, *dk) {
                    dest.weight = 0;
                } else if let Some(HealthHold::Down { remove }) = health {
                    dest.weight = 0;
                    if remove {
                        removed.push(*dk);
                    }
                } else if let Some(h) = hold {
                    let now = live
                        .iter()
                        .find(|d| (d.dest.addr, d.dest.port) == *dk)
                        .map(|d| d.dest.weight);
                    let recovered = self.recovered.contains(&(key, *dk));
                    let declared = match health {
                        Some(HealthHold::Weight(w)) => w,
                        _ => dest.weight,
                    };
                    let w = match h.weights.get(dk).copied() {
                        Some(w) => Some(w),
                        None if recovered => Some(declared),
                        None => now,
                    };
                    if let Some(w) = w {
                        dest.weight = w;
                    }
                } else if let Some(HealthHold::Weight(w)) = health {
                    dest.weight = w;
                }
            }
            for dk in removed {
                svc.dests.remove(&dk);
            }
            if let Some(sorry) = self.sorry.get(&key) {
                svc.dests.entry((sorry.addr, sorry.port)).or_insert(*sorry);
            }
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, SocketAddr};

    use super::*;
    use crate::ipvs::{Destination, ForwardMethod, Protocol, Service, Stats};

    fn key(port: u16) -> ServiceKey {
        ServiceKey::Endpoint {
            protocol: Protocol::Tcp,
            addr: "10.0.0.1".parse().expect("addr"),
            port,
        }
    }

    fn dest(last: u8, weight: u32) -> Destination {
        let sa: SocketAddr = format!("10.0.1.{last}:80").parse().expect("addr");
        Destination {
            forward: ForwardMethod::Masquerade,
            weight,
            ..Destination::new(sa.ip(), sa.port())
        }
    }

    fn dk(last: u8) -> DestKey {
        (IpAddr::from([10, 0, 1, last]), 80)
    }

    fn declared(weights: &[u32]) -> DesiredTable {
        let dests = weights
            .iter()
            .enumerate()
            .map(|(i, w)| dest(i as u8 + 1, *w))
            .collect();
        DesiredTable::new(vec![(Service::new(key(80), Scheduler::Wrr), dests)]).expect("table")
    }

    fn observed(weights: &[u32]) -> Vec<(ServiceEntry, Vec<DestinationEntry>)> {
        let svc = ServiceEntry {
            service: Service::new(key(80), Scheduler::Wrr),
            stats: Stats::default(),
        };
        let dests = weights
            .iter()
            .enumerate()
            .map(|(i, w)| DestinationEntry {
                dest: dest(i as u8 + 1, *w),
                active_conns: 0,
                inactive_conns: 0,
                persistent_conns: 0,
                stats: Stats::default(),
            })
            .collect();
        vec![(svc, dests)]
    }

    fn weights(t: &DesiredTable) -> Vec<u32> {
        t.services()
            .flat_map(|s| s.dests.values().map(|d| d.weight))
            .collect()
    }

    fn drain(last: u8) -> DrainRecord {
        DrainRecord {
            service: key(80),
            dest: dk(last),
            keep: false,
            deadline: SystemTime::UNIX_EPOCH,
            poll: Duration::from_secs(1),
            previous: 100,
        }
    }

    #[test]
    fn effective_weights_follow_the_owner_order() {
        // (what the ledger holds, the kernel's weights, the effective weights)
        type Setup = fn(&mut Ledger);
        let cases: &[(&str, Setup, &[u32], &[u32])] = &[
            ("declaration alone", |_| {}, &[5, 5], &[100, 1]),
            (
                "a policy that has not written keeps what the kernel has",
                |l| l.hold("a1", &[key(80)]).expect("hold"),
                &[5, 6],
                &[5, 6],
            ),
            (
                "a policy's written weight wins over the kernel's and the declaration",
                |l| {
                    l.hold("a1", &[key(80)]).expect("hold");
                    l.wrote_weight(&key(80), dk(1), 20);
                },
                &[5, 6],
                &[20, 6],
            ),
            (
                "a drain wins over the policy",
                |l| {
                    l.hold("a1", &[key(80)]).expect("hold");
                    l.wrote_weight(&key(80), dk(1), 20);
                    l.start_drain(drain(1));
                },
                &[20, 6],
                &[0, 6],
            ),
            (
                "a drain wins over the declaration",
                |l| l.start_drain(drain(2)),
                &[100, 1],
                &[100, 0],
            ),
            (
                "a released policy gives the weights back to the declaration",
                |l| {
                    l.hold("a1", &[key(80)]).expect("hold");
                    l.wrote_weight(&key(80), dk(1), 20);
                    l.release("a1");
                },
                &[20, 1],
                &[100, 1],
            ),
            (
                "an ended drain gives the weight back",
                |l| {
                    l.start_drain(drain(1));
                    l.end_drain(&key(80), dk(1));
                },
                &[0, 1],
                &[100, 1],
            ),
            (
                "health down wins over the declaration",
                |l| l.set_health(&key(80), dk(1), Some(HealthHold::Down { remove: false })),
                &[100, 1],
                &[0, 1],
            ),
            (
                "health down wins over the policy's written weight",
                |l| {
                    l.hold("a1", &[key(80)]).expect("hold");
                    l.wrote_weight(&key(80), dk(1), 20);
                    l.set_health(&key(80), dk(1), Some(HealthHold::Down { remove: false }));
                },
                &[20, 1],
                &[0, 1],
            ),
            (
                "a drain wins over health, up or down",
                |l| {
                    l.set_health(&key(80), dk(1), Some(HealthHold::Weight(7)));
                    l.start_drain(drain(1));
                },
                &[7, 1],
                &[0, 1],
            ),
            (
                "an exec check's weight replaces the declared one",
                |l| l.set_health(&key(80), dk(2), Some(HealthHold::Weight(9))),
                &[100, 1],
                &[100, 9],
            ),
            (
                "a policy's written weight wins over an exec check's weight",
                |l| {
                    l.hold("a1", &[key(80)]).expect("hold");
                    l.set_health(&key(80), dk(2), Some(HealthHold::Weight(9)));
                    l.wrote_weight(&key(80), dk(2), 4);
                },
                &[100, 4],
                &[100, 4],
            ),
            (
                "back up under a policy that has not written since: the declared weight",
                |l| {
                    l.hold("a1", &[key(80)]).expect("hold");
                    l.wrote_weight(&key(80), dk(1), 20);
                    l.set_health(&key(80), dk(1), Some(HealthHold::Down { remove: false }));
                    l.set_health(&key(80), dk(1), None);
                },
                &[0, 1],
                &[100, 1],
            ),
            (
                "health given back: the declaration again",
                |l| {
                    l.set_health(&key(80), dk(1), Some(HealthHold::Down { remove: false }));
                    l.set_health(&key(80), dk(1), None);
                },
                &[0, 1],
                &[100, 1],
            ),
        ];
        for (name, setup, kernel, want) in cases {
            let mut l = Ledger::default();
            setup(&mut l);
            let eff = l.effective(&declared(&[100, 1]), &observed(kernel));
            assert_eq!(weights(&eff), *want, "{name}");
        }
    }

    #[test]
    fn health_removes_a_down_server_and_adds_the_sorry_server() {
        let mut l = Ledger::default();
        l.set_health(&key(80), dk(1), Some(HealthHold::Down { remove: true }));
        l.set_sorry(&key(80), Some(dest(9, 1)));
        let eff = l.effective(&declared(&[100, 1]), &observed(&[100, 1]));
        let servers: Vec<(DestKey, u32)> = eff
            .services()
            .flat_map(|s| s.dests.iter().map(|(k, d)| (*k, d.weight)))
            .collect();
        assert_eq!(servers, [(dk(2), 1), (dk(9), 1)]);
        assert_eq!(l.weight_owner(&key(80), dk(1)), Owner::Health);
        l.set_health(&key(80), dk(1), None);
        l.set_sorry(&key(80), None);
        let eff = l.effective(&declared(&[100, 1]), &observed(&[100, 1]));
        assert_eq!(weights(&eff), [100, 1]);
        assert_eq!(l.weight_owner(&key(80), dk(1)), Owner::Declaration);
    }

    #[test]
    fn a_policy_held_server_missing_from_the_kernel_keeps_its_declared_weight() {
        let mut l = Ledger::default();
        l.hold("a1", &[key(80)]).expect("hold");
        let eff = l.effective(&declared(&[100, 1]), &observed(&[7]));
        assert_eq!(weights(&eff), [7, 1]);
    }

    #[test]
    fn the_scheduler_is_the_policys_once_it_chose_one() {
        let mut l = Ledger::default();
        l.hold("a1", &[key(80)]).expect("hold");
        let sched = |t: &DesiredTable| t.services().next().map(|s| s.service.scheduler.clone());
        let eff = l.effective(&declared(&[1]), &observed(&[1]));
        assert_eq!(sched(&eff), Some(Scheduler::Wrr));
        l.wrote_scheduler(&key(80), Scheduler::Lc);
        let eff = l.effective(&declared(&[1]), &observed(&[1]));
        assert_eq!(sched(&eff), Some(Scheduler::Lc));
    }

    #[test]
    fn one_enforcing_attachment_per_service() {
        let mut l = Ledger::default();
        l.hold("a1", &[key(80)]).expect("hold");
        // The same attachment again is fine.
        l.hold("a1", &[key(80)]).expect("hold again");
        let err = l.hold("a2", &[key(81), key(80)]).expect_err("held");
        assert_eq!(
            err.to_string(),
            "the weights of service TCP 10.0.0.1:80 are already steered by attachment a1"
        );
        // All or none: 81 was not taken either.
        assert_eq!(l.holder(&key(81)), None);
        assert_eq!(l.weight_owner(&key(80), dk(1)), Owner::Policy("a1".into()));
        l.start_drain(drain(1));
        assert_eq!(l.weight_owner(&key(80), dk(1)), Owner::Drain);
        assert_eq!(l.weight_owner(&key(81), dk(1)), Owner::Declaration);
    }
}
