//! In-memory cores for unit tests of the API layer: an IPVS table and a set of links that
//! answer as the kernel does (the same errors for the same mistakes), and record every write.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::ipvs::{
    Connection, Daemon, DaemonState, Destination, DestinationEntry, Info, IpvsError, IpvsOps,
    ModuleError, Service, ServiceEntry, ServiceFlags, ServiceKey, Stats, Timeouts, Tunnel,
};
use crate::link::LinkOps;
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
    SetTimeouts(Timeouts),
    NewDaemon(Daemon),
    DelDaemon(DaemonState),
}

#[derive(Debug)]
struct Table {
    services: BTreeMap<ServiceKey, (ServiceEntry, Vec<DestinationEntry>)>,
    writes: Vec<Write>,
    reads: usize,
    fail_next: Option<IpvsError>,
    /// Writes that fail once when they come, whatever the table holds.
    fail_writes: Vec<(Write, IpvsError)>,
    /// Schedulers whose module is not loaded, and those a modprobe could load.
    missing: BTreeSet<String>,
    loadable: BTreeSet<String>,
    /// Every scheduler a module load was asked for.
    loads: Vec<String>,
    /// Drops tunnel settings and real servers' own address family, as kernels before 3.18 do.
    old_kernel: bool,
    timeouts: Timeouts,
    daemons: Vec<Daemon>,
    connections: Vec<Connection>,
    /// Real servers another writer replaces once this many reads were served.
    behind: Vec<(usize, ServiceKey, Destination)>,
}

impl Default for Table {
    fn default() -> Self {
        Table {
            services: BTreeMap::new(),
            writes: Vec::new(),
            reads: 0,
            fail_next: None,
            fail_writes: Vec::new(),
            missing: BTreeSet::from(["twos".to_owned()]),
            loadable: BTreeSet::new(),
            loads: Vec::new(),
            old_kernel: false,
            timeouts: Timeouts {
                tcp: 900,
                tcp_fin: 120,
                udp: 300,
            },
            daemons: Vec::new(),
            connections: Vec::new(),
            behind: Vec::new(),
        }
    }
}

/// An IPVS table in memory. Like a kernel without `ip_vs_twos`, it refuses the `twos` scheduler
/// until its module is loaded, which it cannot be unless [`FakeIpvs::make_loadable`] says so.
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

    /// `write` fails once with `err` when it comes, before it can change anything.
    pub fn fail_write(&self, write: Write, err: IpvsError) {
        self.table().fail_writes.push((write, err));
    }

    /// A modprobe of scheduler `name` will work.
    pub fn make_loadable(&self, name: &str) {
        self.table().loadable.insert(name.to_owned());
    }

    /// The schedulers whose module was asked for, in order.
    pub fn loads(&self) -> Vec<String> {
        self.table().loads.clone()
    }

    /// From now on, behave like a kernel before 3.18: drop tunnel settings, and read a real
    /// server's address in its service's family.
    pub fn behave_like_an_old_kernel(&self) {
        self.table().old_kernel = true;
    }

    /// The connection table's entries.
    pub fn set_connections(&self, connections: Vec<Connection>) {
        self.table().connections = connections;
    }

    /// Sets a real server's active connection count, as clients would.
    pub fn set_active(&self, key: &ServiceKey, addr: IpAddr, port: u16, active: u32) {
        if let Some((_, dests)) = self.table().services.get_mut(key) {
            for d in dests.iter_mut().filter(|d| same(d, addr, port)) {
                d.active_conns = active;
            }
        }
    }

    /// Right after the next `reads` reads are served, replaces the real server `dest` of `key`
    /// as another writer would, behind the back of whoever read it (no write is recorded).
    pub fn change_after_reads(&self, reads: usize, key: ServiceKey, dest: Destination) {
        let mut t = self.table();
        let at = t.reads + reads;
        t.behind.push((at, key, dest));
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
        let answer = f(&t);
        let now = t.reads;
        let (due, later): (Vec<_>, Vec<_>) = t.behind.drain(..).partition(|(at, _, _)| *at <= now);
        t.behind = later;
        for (_, key, dest) in due {
            if let Some((_, dests)) = t.services.get_mut(&key) {
                for d in dests.iter_mut().filter(|d| same(d, dest.addr, dest.port)) {
                    d.dest = dest;
                }
            }
        }
        answer
    }

    fn write(
        &self,
        w: Write,
        f: impl FnOnce(&mut Table) -> Result<(), IpvsError>,
    ) -> Result<(), IpvsError> {
        let mut t = self.table();
        t.writes.push(w.clone());
        if let Some(err) = t.fail_next.take() {
            return Err(err);
        }
        if let Some(i) = t.fail_writes.iter().position(|(f, _)| *f == w) {
            return Err(t.fail_writes.remove(i).1);
        }
        f(&mut t)
    }
}

/// What an old kernel makes of a real server: no tunnel settings, and its address read as
/// the service's family (the first 4 of 16 bytes, or 4 bytes padded with zeros).
fn as_old_kernel_sees(key: &ServiceKey, mut dest: Destination) -> Destination {
    dest.tunnel = Tunnel::default();
    dest.addr = old_kernel_addr(key, dest.addr);
    dest
}

fn old_kernel_addr(key: &ServiceKey, addr: IpAddr) -> IpAddr {
    match (key.family(), addr) {
        (crate::ipvs::Family::Inet, IpAddr::V6(a)) => {
            let o = a.octets();
            IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], o[3]))
        }
        (crate::ipvs::Family::Inet6, IpAddr::V4(a)) => {
            let mut o = [0u8; 16];
            o[..4].copy_from_slice(&a.octets());
            IpAddr::V6(Ipv6Addr::from(o))
        }
        (_, a) => a,
    }
}

fn scheduler_missing(t: &Table, svc: &Service) -> Result<(), IpvsError> {
    let name = svc.scheduler.name();
    if t.missing.contains(name) {
        return Err(IpvsError::SchedulerNotFound(name.to_owned()));
    }
    Ok(())
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
    /// Not counted in [`FakeIpvs::reads`]: the health probe asks for it on its own clock.
    async fn info(&self) -> Result<Info, IpvsError> {
        if let Some(err) = self.table().fail_next.take() {
            return Err(err);
        }
        Ok(Info {
            version: 0x010201,
            conn_tab_size: 4096,
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
            scheduler_missing(t, svc)?;
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
            scheduler_missing(t, svc)?;
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
            let dest = &if t.old_kernel {
                as_old_kernel_sees(key, *dest)
            } else {
                *dest
            };
            // The real handle names the kernel's ESRCH (`ipvs::errno::kernel_error`).
            let (_, dests) = find_mut(t, key)?;
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
            let dest = &if t.old_kernel {
                as_old_kernel_sees(key, *dest)
            } else {
                *dest
            };
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
            let addr = if t.old_kernel {
                old_kernel_addr(key, addr)
            } else {
                addr
            };
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
        self.read(|t| Ok(t.timeouts))
    }

    /// 0 leaves a value unchanged, as in the kernel.
    async fn set_timeouts(&self, new: &Timeouts) -> Result<(), IpvsError> {
        self.write(Write::SetTimeouts(*new), |t| {
            let keep = |new: u32, old: u32| if new == 0 { old } else { new };
            t.timeouts = Timeouts {
                tcp: keep(new.tcp, t.timeouts.tcp),
                tcp_fin: keep(new.tcp_fin, t.timeouts.tcp_fin),
                udp: keep(new.udp, t.timeouts.udp),
            };
            Ok(())
        })
    }

    async fn daemons(&self) -> Result<Vec<Daemon>, IpvsError> {
        self.read(|t| Ok(t.daemons.clone()))
    }

    /// Fills in the kernel's defaults, as a kernel dump reports them.
    async fn new_daemon(&self, d: &Daemon) -> Result<(), IpvsError> {
        self.write(Write::NewDaemon(d.clone()), |t| {
            if t.daemons.iter().any(|r| r.state == d.state) {
                return Err(IpvsError::DaemonRunning);
            }
            t.daemons.push(Daemon {
                sync_maxlen: d.sync_maxlen.or(Some(1472)),
                mcast_group: d
                    .mcast_group
                    .or(Some(IpAddr::V4(Ipv4Addr::new(224, 0, 0, 81)))),
                mcast_port: d.mcast_port.or(Some(8848)),
                mcast_ttl: d.mcast_ttl.or(Some(1)),
                ..d.clone()
            });
            Ok(())
        })
    }

    async fn del_daemon(&self, state: DaemonState) -> Result<(), IpvsError> {
        self.write(Write::DelDaemon(state), |t| {
            let before = t.daemons.len();
            t.daemons.retain(|d| d.state != state);
            if t.daemons.len() == before {
                return Err(IpvsError::DaemonNotRunning);
            }
            Ok(())
        })
    }

    async fn connections(&self) -> Result<Vec<Connection>, IpvsError> {
        self.read(|t| Ok(t.connections.clone()))
    }

    async fn load_scheduler(&self, name: &str) -> Result<(), ModuleError> {
        let mut t = self.table();
        t.loads.push(name.to_owned());
        if !t.loadable.contains(name) {
            return Err(ModuleError::Failed {
                module: format!("ip_vs_{name}"),
                status: "exit status: 1".into(),
                stderr: format!("modprobe: module ip_vs_{name} not found in modules.dep"),
            });
        }
        t.missing.remove(name);
        Ok(())
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
