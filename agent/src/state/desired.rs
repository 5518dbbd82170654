//! A desired table, checked as a whole before anything is compared or written: every service
//! and real server passes ipvsadm's rules, real servers are normalised as the kernel will hold
//! them (direct-routing and tunnel servers take the service's port), and no key appears twice.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use crate::ipvs::{Destination, Service, ServiceKey, ValidationError};

/// A real server's identity within its service.
pub type DestKey = (IpAddr, u16);

/// One desired service and its real servers, keyed and sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredService {
    pub service: Service,
    pub dests: BTreeMap<DestKey, Destination>,
}

/// A checked desired table, sorted by service key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DesiredTable {
    services: BTreeMap<ServiceKey, DesiredService>,
}

/// Why a desired table is refused; nothing has been compared or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("service {key}: {source}")]
    Service {
        key: ServiceKey,
        source: ValidationError,
    },
    #[error("real server {dest} of service {key}: {source}")]
    Destination {
        key: ServiceKey,
        dest: SocketAddr,
        source: ValidationError,
    },
    #[error("service {0} is listed more than once")]
    DuplicateService(ServiceKey),
    #[error(
        "real server {dest} of service {key} is listed more than once{}",
        if *.port_forced { " (direct-routing and tunnel real servers take the service's port)" } else { "" }
    )]
    DuplicateDestination {
        key: ServiceKey,
        dest: SocketAddr,
        /// The listed port was replaced by the service's.
        port_forced: bool,
    },
}

impl DesiredTable {
    /// Checks every service and real server; the first problem found is the error.
    pub fn new(services: Vec<(Service, Vec<Destination>)>) -> Result<Self, TableError> {
        let mut table = BTreeMap::new();
        for (service, dests) in services {
            let key = service.key;
            service
                .validate()
                .map_err(|source| TableError::Service { key, source })?;
            let mut checked = BTreeMap::new();
            for given in dests {
                let dest = given.normalized_for(&key);
                let at = SocketAddr::new(dest.addr, dest.port);
                dest.validate_for(&key)
                    .map_err(|source| TableError::Destination {
                        key,
                        dest: at,
                        source,
                    })?;
                if checked.insert((dest.addr, dest.port), dest).is_some() {
                    return Err(TableError::DuplicateDestination {
                        key,
                        dest: at,
                        port_forced: given.port != dest.port,
                    });
                }
            }
            let entry = DesiredService {
                service,
                dests: checked,
            };
            if table.insert(key, entry).is_some() {
                return Err(TableError::DuplicateService(key));
            }
        }
        Ok(DesiredTable { services: table })
    }

    /// A table whose services and real servers were checked as they were put in (or are the
    /// kernel's own, which need no check: they are kept as they are).
    pub(crate) fn from_checked(services: BTreeMap<ServiceKey, DesiredService>) -> Self {
        DesiredTable { services }
    }

    /// The services in key order.
    pub fn services(&self) -> impl Iterator<Item = &DesiredService> {
        self.services.values()
    }

    /// The services in key order, for values that are not keys (weights, the scheduler): a
    /// changed key would break the table's order.
    pub fn services_mut(&mut self) -> impl Iterator<Item = &mut DesiredService> {
        self.services.values_mut()
    }

    pub fn get(&self, key: &ServiceKey) -> Option<&DesiredService> {
        self.services.get(key)
    }

    pub fn len(&self) -> usize {
        self.services.len()
    }

    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::{ForwardMethod, Protocol, Scheduler};

    fn tcp(s: &str) -> ServiceKey {
        let sa: SocketAddr = s.parse().expect("test address");
        ServiceKey::Endpoint {
            protocol: Protocol::Tcp,
            addr: sa.ip(),
            port: sa.port(),
        }
    }

    fn dest(s: &str, forward: ForwardMethod) -> Destination {
        let sa: SocketAddr = s.parse().expect("test address");
        Destination {
            forward,
            ..Destination::new(sa.ip(), sa.port())
        }
    }

    fn rr(key: &str) -> Service {
        Service::new(tcp(key), Scheduler::Rr)
    }

    #[test]
    fn real_servers_are_normalised_and_sorted() {
        let table = DesiredTable::new(vec![
            (
                rr("10.0.0.2:80"),
                vec![
                    dest("10.0.1.2:8080", ForwardMethod::DirectRoute),
                    dest("10.0.1.1:8080", ForwardMethod::Masquerade),
                ],
            ),
            (rr("10.0.0.1:80"), vec![]),
        ])
        .expect("valid table");
        let keys: Vec<String> = table
            .services()
            .map(|s| s.service.key.to_string())
            .collect();
        assert_eq!(keys, vec!["TCP 10.0.0.1:80", "TCP 10.0.0.2:80"]);
        let dests: Vec<SocketAddr> = table
            .get(&tcp("10.0.0.2:80"))
            .map(|s| {
                s.dests
                    .values()
                    .map(|d| SocketAddr::new(d.addr, d.port))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            dests,
            vec![
                "10.0.1.1:8080".parse().expect("addr"),
                "10.0.1.2:80".parse().expect("addr")
            ],
            "DR takes the service port"
        );
        assert_eq!(table.len(), 2);
        assert!(DesiredTable::new(vec![]).expect("empty").is_empty());
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let mut heavy = dest("10.0.1.1:8080", ForwardMethod::Masquerade);
        heavy.weight = 70000;
        type Input = Vec<(Service, Vec<Destination>)>;
        let cases: Vec<(Input, TableError, &str)> = vec![
            (
                vec![(rr("10.0.0.1:80"), vec![]), (rr("10.0.0.1:0"), vec![])],
                TableError::Service {
                    key: tcp("10.0.0.1:0"),
                    source: ValidationError::ZeroPortNotPersistent,
                },
                "service TCP 10.0.0.1:0: a service with port 0 must be persistent",
            ),
            (
                vec![(rr("10.0.0.1:80"), vec![heavy])],
                TableError::Destination {
                    key: tcp("10.0.0.1:80"),
                    dest: "10.0.1.1:8080".parse().expect("addr"),
                    source: ValidationError::Weight(70000),
                },
                "real server 10.0.1.1:8080 of service TCP 10.0.0.1:80: weight 70000 is out of \
                 range 0..65535",
            ),
            (
                vec![
                    (rr("10.0.0.1:80"), vec![]),
                    (rr("10.0.0.2:80"), vec![]),
                    (rr("10.0.0.1:80"), vec![]),
                ],
                TableError::DuplicateService(tcp("10.0.0.1:80")),
                "service TCP 10.0.0.1:80 is listed more than once",
            ),
            (
                vec![(
                    rr("10.0.0.1:80"),
                    vec![
                        dest("10.0.1.1:8080", ForwardMethod::Masquerade),
                        dest("10.0.1.1:8080", ForwardMethod::Masquerade),
                    ],
                )],
                TableError::DuplicateDestination {
                    key: tcp("10.0.0.1:80"),
                    dest: "10.0.1.1:8080".parse().expect("addr"),
                    port_forced: false,
                },
                "real server 10.0.1.1:8080 of service TCP 10.0.0.1:80 is listed more than once",
            ),
            (
                vec![(
                    rr("10.0.0.1:80"),
                    vec![
                        dest("10.0.1.1:8080", ForwardMethod::DirectRoute),
                        dest("10.0.1.1:8081", ForwardMethod::DirectRoute),
                    ],
                )],
                TableError::DuplicateDestination {
                    key: tcp("10.0.0.1:80"),
                    dest: "10.0.1.1:80".parse().expect("addr"),
                    port_forced: true,
                },
                "real server 10.0.1.1:80 of service TCP 10.0.0.1:80 is listed more than once \
                 (direct-routing and tunnel real servers take the service's port)",
            ),
        ];
        for (input, want, message) in cases {
            let got = DesiredTable::new(input);
            assert_eq!(got, Err(want));
            assert_eq!(got.map_err(|e| e.to_string()), Err(message.to_owned()));
        }
    }
}
