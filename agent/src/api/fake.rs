//! In-memory cores for unit tests of the API layer: an IPVS table and a set of links that
//! answer as the kernel does (the same errors for the same mistakes), and record every write.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::api::LinkOps;
use crate::ipvs::{
    Daemon, DaemonState, Destination, DestinationEntry, Info, IpvsError, IpvsOps, Scheduler,
    Service, ServiceEntry, ServiceFlags, ServiceKey, Stats, Timeouts,
};
use crate::link::{Cidr, InterfaceAddress, Link, LinkError, LinkName};

/// A write that reached the fake IPVS core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    NewService(Service),
    SetService(Service),
    DelService(ServiceKey),
    NewDest(ServiceKey, Destination),
    SetDest(ServiceKey, Destination),
    DelDest(ServiceKey, IpAddr, u16),
    Flush,
    Zero(Option<ServiceKey>),
}

#[derive(Debug, Default)]
struct Table {
    services: BTreeMap<ServiceKey, (ServiceEntry, Vec<DestinationEntry>)>,
    writes: Vec<Write>,
    reads: usize,
    fail_next: Option<IpvsError>,
}

/// An IPVS table in memory. Like a kernel without `ip_vs_twos`, it refuses the `twos` scheduler.
#[derive(Debug, Default)]
pub struct FakeIpvs(Mutex<Table>);

impl FakeIpvs {
    fn table(&self) -> MutexGuard<'_, Table> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every write that reached this core so far, in order, whether it succeeded or not.
    pub fn writes(&self) -> Vec<Write> {
        self.table().writes.clone()
    }

    /// How many reads (of any kind) were served.
    pub fn reads(&self) -> usize {
        self.table().reads
    }

    /// The next call fails with `err`, whatever it is.
    pub fn fail_next(&self, err: IpvsError) {
        self.table().fail_next = Some(err);
    }

    /// Sets the counters of a service, as traffic would.
    pub fn set_stats(&self, key: &ServiceKey, stats: Stats) {
        if let Some((entry, _)) = self.table().services.get_mut(key) {
            entry.stats = stats;
        }
    }

    fn read<T>(&self, f: impl FnOnce(&Table) -> Result<T, IpvsError>) -> Result<T, IpvsError> {
        let mut t = self.table();
        t.reads += 1;
        if let Some(err) = t.fail_next.take() {
            return Err(err);
        }
        f(&t)
    }

    fn write(
        &self,
        w: Write,
        f: impl FnOnce(&mut Table) -> Result<(), IpvsError>,
    ) -> Result<(), IpvsError> {
        let mut t = self.table();
        t.writes.push(w);
        if let Some(err) = t.fail_next.take() {
            return Err(err);
        }
        f(&mut t)
    }
}

fn find<'a>(
    t: &'a Table,
    key: &ServiceKey,
) -> Result<&'a (ServiceEntry, Vec<DestinationEntry>), IpvsError> {
    t.services.get(key).ok_or(IpvsError::ServiceNotFound)
}

fn find_mut<'a>(
    t: &'a mut Table,
    key: &ServiceKey,
) -> Result<&'a mut (ServiceEntry, Vec<DestinationEntry>), IpvsError> {
    t.services.get_mut(key).ok_or(IpvsError::ServiceNotFound)
}

fn same(d: &DestinationEntry, addr: IpAddr, port: u16) -> bool {
    d.dest.addr == addr && d.dest.port == port
}

impl IpvsOps for FakeIpvs {
    async fn info(&self) -> Result<Info, IpvsError> {
        self.read(|_| {
            Ok(Info {
                version: 0x010201,
                conn_tab_size: 4096,
            })
        })
    }

    async fn services(&self) -> Result<Vec<ServiceEntry>, IpvsError> {
        self.read(|t| Ok(t.services.values().map(|(s, _)| s.clone()).collect()))
    }

    async fn service(&self, key: &ServiceKey) -> Result<ServiceEntry, IpvsError> {
        self.read(|t| find(t, key).map(|(s, _)| s.clone()))
    }

    async fn destinations(&self, key: &ServiceKey) -> Result<Vec<DestinationEntry>, IpvsError> {
        self.read(|t| find(t, key).map(|(_, d)| d.clone()))
    }

    async fn table(&self) -> Result<Vec<(ServiceEntry, Vec<DestinationEntry>)>, IpvsError> {
        self.read(|t| Ok(t.services.values().cloned().collect()))
    }

    async fn new_service(&self, svc: &Service) -> Result<(), IpvsError> {
        self.write(Write::NewService(svc.clone()), |t| {
            if svc.scheduler == Scheduler::Twos {
                return Err(IpvsError::SchedulerNotFound("twos".into()));
            }
            if t.services.contains_key(&svc.key) {
                return Err(IpvsError::ServiceExists);
            }
            let mut service = svc.clone();
            service.flags = service.flags.with(ServiceFlags::HASHED, true);
            let entry = ServiceEntry {
                service,
                stats: Stats::default(),
            };
            t.services.insert(svc.key, (entry, Vec::new()));
            Ok(())
        })
    }

    async fn set_service(&self, svc: &Service) -> Result<(), IpvsError> {
        self.write(Write::SetService(svc.clone()), |t| {
            let (entry, _) = find_mut(t, &svc.key)?;
            entry.service = svc.clone();
            entry.service.flags = svc.flags.with(ServiceFlags::HASHED, true);
            Ok(())
        })
    }

    async fn del_service(&self, key: &ServiceKey) -> Result<(), IpvsError> {
        self.write(Write::DelService(*key), |t| {
            t.services
                .remove(key)
                .map(|_| ())
                .ok_or(IpvsError::ServiceNotFound)
        })
    }

    async fn new_dest(&self, key: &ServiceKey, dest: &Destination) -> Result<(), IpvsError> {
        self.write(Write::NewDest(*key, *dest), |t| {
            // What the kernel answers, unnamed: the API layer must still say "Service not defined".
            let (_, dests) = t.services.get_mut(key).ok_or(IpvsError::Kernel {
                op: "new_dest",
                errno: libc::ESRCH,
                message: "No such process".into(),
            })?;
            if dests.iter().any(|d| same(d, dest.addr, dest.port)) {
                return Err(IpvsError::DestinationExists);
            }
            dests.push(DestinationEntry {
                dest: *dest,
                active_conns: 0,
                inactive_conns: 0,
                persistent_conns: 0,
                stats: Stats::default(),
            });
            Ok(())
        })
    }

    async fn set_dest(&self, key: &ServiceKey, dest: &Destination) -> Result<(), IpvsError> {
        self.write(Write::SetDest(*key, *dest), |t| {
            let (_, dests) = find_mut(t, key)?;
            let d = dests
                .iter_mut()
                .find(|d| same(d, dest.addr, dest.port))
                .ok_or(IpvsError::DestinationNotFound)?;
            d.dest = *dest;
            Ok(())
        })
    }

    async fn del_dest(&self, key: &ServiceKey, addr: IpAddr, port: u16) -> Result<(), IpvsError> {
        self.write(Write::DelDest(*key, addr, port), |t| {
            let (_, dests) = find_mut(t, key)?;
            let before = dests.len();
            dests.retain(|d| !same(d, addr, port));
            if dests.len() == before {
                return Err(IpvsError::DestinationNotFound);
            }
            Ok(())
        })
    }

    async fn flush(&self) -> Result<(), IpvsError> {
        self.write(Write::Flush, |t| {
            t.services.clear();
            Ok(())
        })
    }

    async fn zero(&self, key: Option<&ServiceKey>) -> Result<(), IpvsError> {
        self.write(Write::Zero(key.copied()), |t| {
            let zero = |(s, dests): &mut (ServiceEntry, Vec<DestinationEntry>)| {
                s.stats = Stats::default();
                dests.iter_mut().for_each(|d| d.stats = Stats::default());
            };
            match key {
                Some(k) => zero(find_mut(t, k)?),
                None => t.services.values_mut().for_each(zero),
            }
            Ok(())
        })
    }

    async fn timeouts(&self) -> Result<Timeouts, IpvsError> {
        self.read(|_| {
            Ok(Timeouts {
                tcp: 900,
                tcp_fin: 120,
                udp: 300,
            })
        })
    }

    async fn set_timeouts(&self, _t: &Timeouts) -> Result<(), IpvsError> {
        Err(IpvsError::PermissionDenied)
    }

    async fn daemons(&self) -> Result<Vec<Daemon>, IpvsError> {
        self.read(|_| Ok(Vec::new()))
    }

    async fn new_daemon(&self, _d: &Daemon) -> Result<(), IpvsError> {
        Err(IpvsError::PermissionDenied)
    }

    async fn del_daemon(&self, _state: DaemonState) -> Result<(), IpvsError> {
        Err(IpvsError::DaemonNotRunning)
    }
}

#[derive(Debug, Default)]
struct Links {
    links: BTreeMap<String, Link>,
    addresses: Vec<InterfaceAddress>,
}

/// Links and addresses in memory, with a loopback link to start from.
#[derive(Debug)]
pub struct FakeLinks(Mutex<Links>);

impl Default for FakeLinks {
    fn default() -> Self {
        let lo = Link {
            index: 1,
            name: "lo".into(),
            kind: None,
            up: true,
            lower_up: true,
            mtu: 65536,
            mac: vec![0; 6],
            flags: 0x10049,
            oper_state: "UNKNOWN".into(),
        };
        FakeLinks(Mutex::new(Links {
            links: BTreeMap::from([("lo".to_owned(), lo)]),
            addresses: Vec::new(),
        }))
    }
}

impl FakeLinks {
    fn state(&self) -> MutexGuard<'_, Links> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn link<'a>(l: &'a mut Links, name: &LinkName) -> Result<&'a mut Link, LinkError> {
    l.links
        .get_mut(name.as_str())
        .ok_or_else(|| LinkError::LinkNotFound(name.to_string()))
}

impl LinkOps for FakeLinks {
    async fn create_dummy(&self, name: &LinkName) -> Result<Link, LinkError> {
        let mut l = self.state();
        if l.links.contains_key(name.as_str()) {
            return Err(LinkError::LinkExists(name.to_string()));
        }
        let index = l.links.values().map(|k| k.index).max().unwrap_or(0) + 1;
        let new = Link {
            index,
            name: name.to_string(),
            kind: Some("dummy".into()),
            up: false,
            lower_up: false,
            mtu: 1500,
            mac: vec![2, 0, 0, 0, 0, 1],
            flags: 0x82,
            oper_state: "DOWN".into(),
        };
        l.links.insert(name.to_string(), new.clone());
        Ok(new)
    }

    async fn delete(&self, name: &LinkName) -> Result<(), LinkError> {
        let mut l = self.state();
        let gone = l
            .links
            .remove(name.as_str())
            .ok_or_else(|| LinkError::LinkNotFound(name.to_string()))?;
        l.addresses.retain(|a| a.link_index != gone.index);
        Ok(())
    }

    async fn set_up(&self, name: &LinkName, up: bool) -> Result<Link, LinkError> {
        let mut l = self.state();
        let link = link(&mut l, name)?;
        link.up = up;
        link.oper_state = if up { "UNKNOWN" } else { "DOWN" }.into();
        Ok(link.clone())
    }

    async fn list(&self) -> Result<Vec<Link>, LinkError> {
        Ok(self.state().links.values().cloned().collect())
    }

    async fn add_address(
        &self,
        name: &LinkName,
        address: IpAddr,
        prefix_len: u8,
    ) -> Result<(), LinkError> {
        let cidr = Cidr::new(address, prefix_len)?;
        let mut l = self.state();
        let index = link(&mut l, name)?.index;
        if l.addresses
            .iter()
            .any(|a| a.address == address && a.link_index == index)
        {
            return Err(LinkError::AddressExists {
                link: name.to_string(),
                cidr,
            });
        }
        l.addresses.push(InterfaceAddress {
            address,
            prefix_len,
            link: name.to_string(),
            link_index: index,
            scope: "global".into(),
        });
        Ok(())
    }

    async fn delete_address(
        &self,
        name: &LinkName,
        address: IpAddr,
        prefix_len: u8,
    ) -> Result<(), LinkError> {
        let cidr = Cidr::new(address, prefix_len)?;
        let mut l = self.state();
        let index = link(&mut l, name)?.index;
        let before = l.addresses.len();
        l.addresses.retain(|a| {
            !(a.address == address && a.prefix_len == prefix_len && a.link_index == index)
        });
        if l.addresses.len() == before {
            return Err(LinkError::AddressNotFound {
                link: name.to_string(),
                cidr,
            });
        }
        Ok(())
    }

    async fn list_addresses(
        &self,
        name: Option<&LinkName>,
    ) -> Result<Vec<InterfaceAddress>, LinkError> {
        let mut l = self.state();
        let only = name.map(|n| link(&mut l, n).map(|k| k.index)).transpose()?;
        Ok(l.addresses
            .iter()
            .filter(|a| only.is_none_or(|i| a.link_index == i))
            .cloned()
            .collect())
    }
}
