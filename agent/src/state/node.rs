//! A whole node's declared state: links with their addresses, the IPVS table, policy
//! attachments, and what to do about drift. Checked as a whole before anything is compared.

use std::net::SocketAddr;

use ipvs_health::Check;
use ipvs_proto::v1 as pb;

use super::desired::{DesiredTable, DestKey, TableError};
use crate::ipvs::{Destination, ServiceKey};
use crate::link::{Cidr, LinkName};
use std::collections::{BTreeMap, BTreeSet};

/// What the agent does when the node no longer matches its declared state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriftMode {
    /// Report it, change nothing.
    Report,
    /// Report it and restore the declared state.
    Enforce,
}

/// A policy attachment as declared: the attach core's own spec, with the policy named by
/// name or hash until an apply resolves it to the hash.
pub type AttachmentSpec = crate::attach::Spec;

/// A checked node spec.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeSpec {
    pub links: BTreeMap<LinkName, BTreeSet<Cidr>>,
    pub table: DesiredTable,
    pub attachments: Vec<AttachmentSpec>,
    /// `None`: the agent's default.
    pub drift: Option<DriftMode>,
    /// Health checks of the table's real servers.
    pub checks: Vec<CheckDecl>,
}

/// A declared health check: as it runs, and as it was given (to give it back unchanged).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckDecl {
    pub service: ServiceKey,
    /// One real server; `None`: every real server of the service without a check of its own.
    pub server: Option<DestKey>,
    pub check: Check,
    /// The service's sorry server (default checks only).
    pub sorry: Option<Destination>,
    /// The least healthy weight the service needs (default checks only); at least 1.
    pub quorum: u32,
    pub spec: pb::CheckSpec,
}

// `spec` holds no floating point.
impl Eq for CheckDecl {}

/// One real server's check, ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckTarget<'a> {
    pub service: ServiceKey,
    pub server: DestKey,
    pub decl: &'a CheckDecl,
    /// Where the probe goes.
    pub addr: SocketAddr,
}

/// Why a node spec is refused; nothing has been compared or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("link {0} is listed more than once")]
    DuplicateLink(LinkName),
    #[error("address {address} is listed on both {first} and {second}")]
    AddressTwice {
        address: Cidr,
        first: LinkName,
        second: LinkName,
    },
    #[error("checks[{index}]: service {service} is not declared in the spec")]
    CheckUndeclared { index: usize, service: ServiceKey },
    #[error("checks[{index}]: {server} is not a real server of service {service} in the spec")]
    CheckUnknownServer {
        index: usize,
        service: ServiceKey,
        server: String,
    },
    #[error("checks[{index}]: {what} already has a check, at checks[{first}]")]
    CheckTwice {
        index: usize,
        first: usize,
        what: String,
    },
    #[error(
        "checks[{index}]: real server {server} has no port to probe: give the check a connect_port"
    )]
    CheckNoPort { index: usize, server: String },
    #[error(
        "checks[{index}].sorry_server: {server} is a declared real server of service {service}"
    )]
    SorryDeclared {
        index: usize,
        service: ServiceKey,
        server: String,
    },
    #[error("attachment {index} ({policy}): it steers no service")]
    AttachmentWithoutService { index: usize, policy: String },
    #[error("attachment {index} ({policy}): service {service} is not declared in the spec")]
    AttachmentUndeclared {
        index: usize,
        policy: String,
        service: ServiceKey,
    },
}

impl NodeSpec {
    /// Checks links, addresses and attachments; the table was checked when it was built.
    pub fn new(
        links: Vec<(LinkName, Vec<Cidr>)>,
        table: DesiredTable,
        attachments: Vec<AttachmentSpec>,
        drift: Option<DriftMode>,
    ) -> Result<Self, SpecError> {
        let mut checked: BTreeMap<LinkName, BTreeSet<Cidr>> = BTreeMap::new();
        let mut owner: BTreeMap<Cidr, LinkName> = BTreeMap::new();
        for (name, addresses) in links {
            if checked.contains_key(&name) {
                return Err(SpecError::DuplicateLink(name));
            }
            let mut set = BTreeSet::new();
            for a in addresses {
                if let Some(first) = owner.get(&a) {
                    return Err(SpecError::AddressTwice {
                        address: a,
                        first: first.clone(),
                        second: name,
                    });
                }
                owner.insert(a, name.clone());
                set.insert(a);
            }
            checked.insert(name, set);
        }
        for (index, a) in attachments.iter().enumerate() {
            if a.services.is_empty() {
                return Err(SpecError::AttachmentWithoutService {
                    index,
                    policy: a.policy.clone(),
                });
            }
            if let Some(service) = a.services.iter().find(|k| table.get(k).is_none()) {
                return Err(SpecError::AttachmentUndeclared {
                    index,
                    policy: a.policy.clone(),
                    service: *service,
                });
            }
        }
        Ok(NodeSpec {
            links: checked,
            table,
            attachments,
            drift,
            checks: Vec::new(),
        })
    }

    /// The spec with `checks`, each of a declared service and real server, at most one per
    /// server and one default per service, each with a port to probe.
    pub fn with_checks(mut self, checks: Vec<CheckDecl>) -> Result<Self, SpecError> {
        let mut seen: BTreeMap<(ServiceKey, Option<DestKey>), usize> = BTreeMap::new();
        for (index, c) in checks.iter().enumerate() {
            let Some(svc) = self.table.get(&c.service) else {
                return Err(SpecError::CheckUndeclared {
                    index,
                    service: c.service,
                });
            };
            if let Some(dk) = c.server
                && !svc.dests.contains_key(&dk)
            {
                return Err(SpecError::CheckUnknownServer {
                    index,
                    service: c.service,
                    server: endpoint(dk),
                });
            }
            if let Some(&first) = seen.get(&(c.service, c.server)) {
                let what = match c.server {
                    Some(dk) => format!("real server {} of {}", endpoint(dk), c.service),
                    None => format!("service {}", c.service),
                };
                return Err(SpecError::CheckTwice { index, first, what });
            }
            seen.insert((c.service, c.server), index);
            if let Some(s) = &c.sorry
                && svc.dests.contains_key(&(s.addr, s.port))
            {
                return Err(SpecError::SorryDeclared {
                    index,
                    service: c.service,
                    server: endpoint((s.addr, s.port)),
                });
            }
        }
        self.checks = checks;
        for t in self.check_targets() {
            if t.addr.port() == 0 {
                let index = self
                    .checks
                    .iter()
                    .position(|c| std::ptr::eq(c, t.decl))
                    .unwrap_or_default();
                return Err(SpecError::CheckNoPort {
                    index,
                    server: endpoint(t.server),
                });
            }
        }
        Ok(self)
    }

    /// Every checked real server with its check: its own, or its service's default.
    pub fn check_targets(&self) -> Vec<CheckTarget<'_>> {
        let mut own: BTreeMap<(ServiceKey, DestKey), &CheckDecl> = BTreeMap::new();
        let mut default: BTreeMap<ServiceKey, &CheckDecl> = BTreeMap::new();
        for c in &self.checks {
            match c.server {
                Some(dk) => own.insert((c.service, dk), c),
                None => default.insert(c.service, c),
            };
        }
        let mut out = Vec::new();
        for svc in self.table.services() {
            let key = svc.service.key;
            for dk in svc.dests.keys() {
                let Some(decl) = own.get(&(key, *dk)).or(default.get(&key)).copied() else {
                    continue;
                };
                let ip = decl.check.connect_ip.unwrap_or(dk.0);
                let port = decl.check.connect_port.unwrap_or(dk.1);
                out.push(CheckTarget {
                    service: key,
                    server: *dk,
                    decl,
                    addr: SocketAddr::new(ip, port),
                });
            }
        }
        out
    }

    /// The default check of `service`, which says its sorry server and quorum.
    pub fn service_check(&self, service: &ServiceKey) -> Option<&CheckDecl> {
        self.checks
            .iter()
            .find(|c| c.service == *service && c.server.is_none())
    }
}

/// "10.0.1.1:8080", "[2001:db8::1]:80".
pub fn endpoint((addr, port): DestKey) -> String {
    SocketAddr::new(addr, port).to_string()
}

/// Objects some revision declared and no prune has removed since: the only ones prune may
/// delete, so objects made by other tools are never touched.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Managed {
    pub services: BTreeSet<ServiceKey>,
    pub dests: BTreeSet<(ServiceKey, DestKey)>,
    pub links: BTreeSet<LinkName>,
    pub addresses: BTreeSet<(LinkName, Cidr)>,
}

impl Managed {
    /// Everything `spec` declares.
    pub fn declared_by(spec: &NodeSpec) -> Self {
        let mut m = Managed::default();
        for s in spec.table.services() {
            m.services.insert(s.service.key);
            m.dests.extend(s.dests.keys().map(|k| (s.service.key, *k)));
        }
        for (name, addresses) in &spec.links {
            m.links.insert(name.clone());
            m.addresses
                .extend(addresses.iter().map(|a| (name.clone(), *a)));
        }
        m
    }

    /// What is managed after applying `spec` on top of `self`: with prune, exactly what `spec`
    /// declares; without, also what was managed before.
    pub fn after(&self, spec: &NodeSpec, prune: bool) -> Self {
        let mut next = Managed::declared_by(spec);
        if !prune {
            next.services.extend(self.services.iter().copied());
            next.dests.extend(self.dests.iter().copied());
            next.links.extend(self.links.iter().cloned());
            next.addresses.extend(self.addresses.iter().cloned());
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, SocketAddr};
    use std::time::Duration;

    use super::*;
    use crate::attach::Mode;
    use crate::ipvs::{Destination, Protocol, Scheduler, Service};

    fn tcp(s: &str) -> ServiceKey {
        let sa: SocketAddr = s.parse().expect("test address");
        ServiceKey::Endpoint {
            protocol: Protocol::Tcp,
            addr: sa.ip(),
            port: sa.port(),
        }
    }

    fn cidr(s: &str) -> Cidr {
        let (a, p) = s.split_once('/').expect("test cidr");
        Cidr::new(a.parse::<IpAddr>().expect("addr"), p.parse().expect("len")).expect("cidr")
    }

    fn name(s: &str) -> LinkName {
        LinkName::new(s).expect("name")
    }

    fn table(keys: &[&str]) -> DesiredTable {
        DesiredTable::new(
            keys.iter()
                .map(|k| {
                    let dest = Destination::new("10.0.1.1".parse().expect("ip"), 80);
                    (Service::new(tcp(k), Scheduler::Rr), vec![dest])
                })
                .collect(),
        )
        .expect("table")
    }

    fn attachment(services: &[&str]) -> AttachmentSpec {
        AttachmentSpec {
            policy: "lc".into(),
            services: services.iter().map(|s| tcp(s)).collect(),
            params: vec![],
            interval: Duration::from_secs(2),
            mode: Mode::Enforce,
            quarantine_after: 3,
        }
    }

    #[test]
    fn refusals_name_the_object() {
        type Links = Vec<(LinkName, Vec<Cidr>)>;
        let cases: Vec<(Links, Vec<AttachmentSpec>, &str)> = vec![
            (
                vec![(name("a"), vec![]), (name("a"), vec![])],
                vec![],
                "link a is listed more than once",
            ),
            (
                vec![
                    (name("a"), vec![cidr("10.0.0.1/32")]),
                    (name("b"), vec![cidr("10.0.0.1/32")]),
                ],
                vec![],
                "address 10.0.0.1/32 is listed on both a and b",
            ),
            (
                vec![],
                vec![attachment(&[])],
                "attachment 0 (lc): it steers no service",
            ),
            (
                vec![],
                vec![attachment(&["10.0.0.1:80", "10.0.0.9:80"])],
                "attachment 0 (lc): service TCP 10.0.0.9:80 is not declared in the spec",
            ),
        ];
        for (links, attachments, want) in cases {
            let err =
                NodeSpec::new(links, table(&["10.0.0.1:80"]), attachments, None).expect_err(want);
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn managed_grows_without_prune_and_is_replaced_with_it() {
        let first = NodeSpec::new(
            vec![(name("ipvs0"), vec![cidr("10.0.0.1/32")])],
            table(&["10.0.0.1:80"]),
            vec![],
            None,
        )
        .expect("spec");
        let second = NodeSpec::new(vec![], table(&["10.0.0.2:80"]), vec![], None).expect("spec");
        let m = Managed::declared_by(&first);
        assert_eq!(m.services.len(), 1);
        assert_eq!(m.dests.len(), 1);
        assert_eq!(m.addresses.len(), 1);
        let kept = m.after(&second, false);
        assert_eq!(kept.services.len(), 2);
        assert!(kept.links.contains(&name("ipvs0")));
        let pruned = m.after(&second, true);
        assert_eq!(
            pruned.services.iter().copied().collect::<Vec<_>>(),
            vec![tcp("10.0.0.2:80")]
        );
        assert!(pruned.links.is_empty());
    }
}
