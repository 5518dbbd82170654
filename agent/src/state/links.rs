//! The changes that give the node its declared links and addresses. Pure.
//!
//! Links are created as dummy interfaces and brought up; an existing link of any kind may be
//! declared to hold addresses, but only dummy links are ever deleted. Additions come before the
//! IPVS changes (a virtual IP exists before its service) and deletions after them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::link::{Cidr, LinkName};

/// One link as the node has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    pub up: bool,
    pub dummy: bool,
    pub addresses: BTreeSet<Cidr>,
}

/// One change to links or addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkChange {
    Create(LinkName),
    SetUp(LinkName),
    SetDown(LinkName),
    AddAddress(LinkName, Cidr),
    DeleteAddress(LinkName, Cidr),
    /// The addresses go with the link; they are kept to undo it.
    Delete {
        name: LinkName,
        addresses: Vec<Cidr>,
    },
}

impl fmt::Display for LinkChange {
    /// iproute2's words: `ip link add ipvs0 type dummy`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkChange::Create(n) => write!(f, "ip link add {} type dummy", n.as_str()),
            LinkChange::SetUp(n) => write!(f, "ip link set {} up", n.as_str()),
            LinkChange::SetDown(n) => write!(f, "ip link set {} down", n.as_str()),
            LinkChange::AddAddress(n, a) => write!(f, "ip addr add {a} dev {}", n.as_str()),
            LinkChange::DeleteAddress(n, a) => write!(f, "ip addr del {a} dev {}", n.as_str()),
            LinkChange::Delete { name, .. } => write!(f, "ip link del {}", name.as_str()),
        }
    }
}

impl LinkChange {
    /// The changes that take this one back, in order.
    pub fn undo(&self) -> Vec<LinkChange> {
        match self {
            LinkChange::Create(n) => vec![LinkChange::Delete {
                name: n.clone(),
                addresses: vec![],
            }],
            LinkChange::SetUp(n) => vec![LinkChange::SetDown(n.clone())],
            LinkChange::SetDown(n) => vec![LinkChange::SetUp(n.clone())],
            LinkChange::AddAddress(n, a) => vec![LinkChange::DeleteAddress(n.clone(), *a)],
            LinkChange::DeleteAddress(n, a) => vec![LinkChange::AddAddress(n.clone(), *a)],
            LinkChange::Delete { name, addresses } => {
                let mut v = vec![
                    LinkChange::Create(name.clone()),
                    LinkChange::SetUp(name.clone()),
                ];
                v.extend(
                    addresses
                        .iter()
                        .map(|a| LinkChange::AddAddress(name.clone(), *a)),
                );
                v
            }
        }
    }
}

/// Link changes in two groups: what goes before the IPVS changes, and what after.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkPlan {
    pub before: Vec<LinkChange>,
    pub after: Vec<LinkChange>,
}

/// The changes from `current` to `desired`. Links and addresses not desired are deleted only
/// where `deletable(link, address)` says so (`address` is `None` for the link itself).
pub fn plan_links(
    current: &BTreeMap<LinkName, LinkState>,
    desired: &BTreeMap<LinkName, BTreeSet<Cidr>>,
    deletable: impl Fn(&LinkName, Option<&Cidr>) -> bool,
) -> LinkPlan {
    let mut plan = LinkPlan::default();
    for (name, want) in desired {
        match current.get(name) {
            None => {
                plan.before.push(LinkChange::Create(name.clone()));
                plan.before.push(LinkChange::SetUp(name.clone()));
                plan.before.extend(
                    want.iter()
                        .map(|a| LinkChange::AddAddress(name.clone(), *a)),
                );
            }
            Some(have) => {
                if !have.up {
                    plan.before.push(LinkChange::SetUp(name.clone()));
                }
                plan.before.extend(
                    want.difference(&have.addresses)
                        .map(|a| LinkChange::AddAddress(name.clone(), *a)),
                );
                plan.after.extend(
                    have.addresses
                        .difference(want)
                        .filter(|a| deletable(name, Some(a)))
                        .map(|a| LinkChange::DeleteAddress(name.clone(), *a)),
                );
            }
        }
    }
    for (name, have) in current {
        if desired.contains_key(name) {
            continue;
        }
        if have.dummy && deletable(name, None) {
            plan.after.push(LinkChange::Delete {
                name: name.clone(),
                addresses: have.addresses.iter().copied().collect(),
            });
        } else {
            plan.after.extend(
                have.addresses
                    .iter()
                    .filter(|a| deletable(name, Some(a)))
                    .map(|a| LinkChange::DeleteAddress(name.clone(), *a)),
            );
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> LinkName {
        LinkName::new(s).expect("name")
    }

    fn cidr(s: &str) -> Cidr {
        let (a, p) = s.split_once('/').expect("cidr");
        Cidr::new(a.parse().expect("addr"), p.parse().expect("len")).expect("cidr")
    }

    fn have(up: bool, dummy: bool, addrs: &[&str]) -> LinkState {
        LinkState {
            up,
            dummy,
            addresses: addrs.iter().map(|a| cidr(a)).collect(),
        }
    }

    fn want(links: &[(&str, &[&str])]) -> BTreeMap<LinkName, BTreeSet<Cidr>> {
        links
            .iter()
            .map(|(n, a)| (name(n), a.iter().map(|a| cidr(a)).collect()))
            .collect()
    }

    fn words(v: &[LinkChange]) -> Vec<String> {
        v.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn plans() {
        type Case<'a> = (
            &'a str,
            Vec<(&'a str, LinkState)>,
            Vec<(&'a str, &'a [&'a str])>,
            bool,
            &'a [&'a str],
            &'a [&'a str],
        );
        let cases: Vec<Case> = vec![
            (
                "missing link is created, brought up and given its addresses",
                vec![],
                vec![("ipvs0", &["10.0.0.1/32"])],
                false,
                &[
                    "ip link add ipvs0 type dummy",
                    "ip link set ipvs0 up",
                    "ip addr add 10.0.0.1/32 dev ipvs0",
                ],
                &[],
            ),
            (
                "matching link: nothing",
                vec![("ipvs0", have(true, true, &["10.0.0.1/32"]))],
                vec![("ipvs0", &["10.0.0.1/32"])],
                true,
                &[],
                &[],
            ),
            (
                "down link is brought up, missing address added, extra kept without prune",
                vec![("ipvs0", have(false, true, &["10.0.0.9/32"]))],
                vec![("ipvs0", &["10.0.0.1/32"])],
                false,
                &["ip link set ipvs0 up", "ip addr add 10.0.0.1/32 dev ipvs0"],
                &[],
            ),
            (
                "extra address and undeclared dummy link go with prune",
                vec![
                    ("ipvs0", have(true, true, &["10.0.0.1/32", "10.0.0.9/32"])),
                    ("old0", have(true, true, &["10.0.0.5/32"])),
                ],
                vec![("ipvs0", &["10.0.0.1/32"])],
                true,
                &[],
                &["ip addr del 10.0.0.9/32 dev ipvs0", "ip link del old0"],
            ),
            (
                "a link that is not dummy only loses its addresses",
                vec![("eth0", have(true, false, &["192.0.2.1/24"]))],
                vec![],
                true,
                &[],
                &["ip addr del 192.0.2.1/24 dev eth0"],
            ),
        ];
        for (what, current, desired, prune, before, after) in cases {
            let current = current
                .into_iter()
                .map(|(n, s)| (name(n), s))
                .collect::<BTreeMap<_, _>>();
            let plan = plan_links(&current, &want(&desired), |_, _| prune);
            assert_eq!(words(&plan.before), before, "{what}");
            assert_eq!(words(&plan.after), after, "{what}");
        }
    }

    #[test]
    fn undo_takes_each_change_back() {
        let n = name("ipvs0");
        let a = cidr("10.0.0.1/32");
        let deleted = LinkChange::Delete {
            name: n.clone(),
            addresses: vec![a],
        };
        assert_eq!(
            words(&deleted.undo()),
            [
                "ip link add ipvs0 type dummy",
                "ip link set ipvs0 up",
                "ip addr add 10.0.0.1/32 dev ipvs0"
            ]
        );
        assert_eq!(
            words(&LinkChange::AddAddress(n.clone(), a).undo()),
            ["ip addr del 10.0.0.1/32 dev ipvs0"]
        );
        assert_eq!(words(&LinkChange::Create(n).undo()), ["ip link del ipvs0"]);
    }
}
