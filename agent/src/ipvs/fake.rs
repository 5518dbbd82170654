//! An IPVS table in memory, for tests: it answers through [`IpvsOps`] as the real handle over
//! the kernel does, and records every write.
//!
//! Faithful by construction where it matters most: a refusal is the errno the kernel's
//! `ip_vs_ctl.c` returns for the same situation, checked in the kernel's order, and named by
//! the table the real handle uses ([`kernel_error`]), so the same mistake is the same
//! [`IpvsError`] here and on a node. The tests at the end pin each situation to its errno.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Mutex, MutexGuard, PoisonError};

use futures::{Stream, TryStreamExt};

use super::cmd::Cmd;
use super::errno::kernel_error;
use super::{
    Connection, Daemon, DaemonState, Destination, DestinationEntry, Family, ForwardMethod, Info,
    IpvsError, IpvsOp, IpvsOps, ModuleError, Service, ServiceEntry, ServiceFlags, ServiceKey,
    Stats, TableRow, Timeouts, Tunnel,
};

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

impl Write {
    /// The netlink command this write is, and the service a NEW/SET_SERVICE carried (what a
    /// kernel ENOENT is about): what names a refusal, as in the real handle.
    fn cmd(&self) -> (Cmd, Option<&Service>) {
        match self {
            Write::NewService(s) => (Cmd::NewService, Some(s)),
            Write::SetService(s) => (Cmd::SetService, Some(s)),
            Write::DelService(_) => (Cmd::DelService, None),
            Write::NewDest(..) => (Cmd::NewDest, None),
            Write::SetDest(..) => (Cmd::SetDest, None),
            Write::DelDest(..) => (Cmd::DelDest, None),
            Write::Flush => (Cmd::Flush, None),
            Write::Zero(_) => (Cmd::Zero, None),
            Write::SetTimeouts(_) => (Cmd::SetConfig, None),
            Write::NewDaemon(_) => (Cmd::NewDaemon, None),
            Write::DelDaemon(_) => (Cmd::DelDaemon, None),
        }
    }

    /// The write as a value of the real write path.
    pub fn op(&self) -> IpvsOp {
        match self.clone() {
            Write::NewService(s) => IpvsOp::NewService(s),
            Write::SetService(s) => IpvsOp::SetService(s),
            Write::DelService(k) => IpvsOp::DelService(k),
            Write::NewDest(k, d) => IpvsOp::NewDest(k, d),
            Write::SetDest(k, d) => IpvsOp::SetDest(k, d),
            Write::DelDest(service, addr, port) => IpvsOp::DelDest {
                service,
                addr,
                port,
            },
            Write::Flush => IpvsOp::Flush,
            Write::Zero(k) => IpvsOp::Zero(k),
            Write::SetTimeouts(t) => IpvsOp::SetTimeouts(t),
            Write::NewDaemon(d) => IpvsOp::NewDaemon(d),
            Write::DelDaemon(s) => IpvsOp::DelDaemon(s),
        }
    }

    /// The kernel's refusal of this write with `errno`, as the real handle names it.
    pub fn refused(&self, errno: i32) -> IpvsError {
        let (cmd, service) = self.cmd();
        kernel_error(cmd, errno, service)
    }
}

/// In ipvsadm's words: `-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 1`.
impl std::fmt::Display for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.op().fmt(f)
    }
}

/// A kernel refusal: the (positive) errno `ip_vs_ctl.c` returns.
type Errno = i32;

/// What happens behind the back of whoever reads the table, once enough reads were served.
#[derive(Debug)]
enum Later {
    /// Another writer replaces a real server.
    Dest(ServiceKey, Destination),
    /// Clients come and go: a real server's connection counts change.
    Conns {
        key: ServiceKey,
        addr: IpAddr,
        port: u16,
        active: u32,
        inactive: u32,
    },
}

#[derive(Debug)]
struct Table {
    services: BTreeMap<ServiceKey, (ServiceEntry, Vec<DestinationEntry>)>,
    writes: Vec<Write>,
    reads: usize,
    fail_next: Option<IpvsError>,
    /// The next table read hands out this many services, then fails.
    cut_table: Option<(usize, IpvsError)>,
    /// Writes that fail once when they come, whatever the table holds.
    fail_writes: Vec<(Write, IpvsError)>,
    /// Writes that fail when they come, by their number (from 1, counting every write).
    fail_at: Vec<(usize, Errno)>,
    /// Schedulers whose module is not loaded, and those a modprobe could load.
    missing: BTreeSet<String>,
    loadable: BTreeSet<String>,
    /// The persistence engines this kernel has.
    engines: BTreeSet<String>,
    /// Every scheduler a module load was asked for.
    loads: Vec<String>,
    /// Drops tunnel settings and real servers' own address family, as kernels before 3.18 do.
    old_kernel: bool,
    timeouts: Timeouts,
    daemons: Vec<Daemon>,
    connections: Vec<Connection>,
    /// Changes due once this many reads were served.
    behind: Vec<(usize, Later)>,
}

impl Default for Table {
    fn default() -> Self {
        Table {
            services: BTreeMap::new(),
            writes: Vec::new(),
            reads: 0,
            fail_next: None,
            cut_table: None,
            fail_writes: Vec::new(),
            fail_at: Vec::new(),
            missing: BTreeSet::from(["twos".to_owned()]),
            loadable: BTreeSet::new(),
            engines: BTreeSet::from(["sip".to_owned()]),
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

impl Table {
    fn due(&mut self) {
        let now = self.reads;
        let (due, later): (Vec<_>, Vec<_>) = self.behind.drain(..).partition(|(at, _)| *at <= now);
        self.behind = later;
        for (_, change) in due {
            match change {
                Later::Dest(key, dest) => {
                    for d in self.dests_mut(&key, dest.addr, dest.port) {
                        d.dest = dest;
                    }
                }
                Later::Conns {
                    key,
                    addr,
                    port,
                    active,
                    inactive,
                } => {
                    for d in self.dests_mut(&key, addr, port) {
                        d.active_conns = active;
                        d.inactive_conns = inactive;
                    }
                }
            }
        }
    }

    fn dests_mut(
        &mut self,
        key: &ServiceKey,
        addr: IpAddr,
        port: u16,
    ) -> impl Iterator<Item = &mut DestinationEntry> {
        self.services
            .get_mut(key)
            .into_iter()
            .flat_map(|(_, dests)| dests.iter_mut())
            .filter(move |d| same(d, addr, port))
    }
}

/// An IPVS table in memory. Like a kernel without `ip_vs_twos`, it refuses the `twos` scheduler
/// until its module is loaded, which it cannot be unless [`FakeIpvs::make_loadable`] says so;
/// its one persistence engine is `sip`.
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

    /// Every write so far in ipvsadm's words, in order, whether it succeeded or not.
    pub fn written(&self) -> Vec<String> {
        self.table().writes.iter().map(Write::to_string).collect()
    }

    /// The table as `ipvsadm -Sn` would save it: each service's `-A`, then its real servers'
    /// `-a`, without counting a read.
    pub fn rules(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (entry, dests) in self.table().services.values() {
            let s = &entry.service;
            out.push(IpvsOp::NewService(s.clone()).to_string());
            out.extend(
                dests
                    .iter()
                    .map(|d| IpvsOp::NewDest(s.key, d.dest).to_string()),
            );
        }
        out
    }

    /// How many reads (of any kind) were served.
    pub fn reads(&self) -> usize {
        self.table().reads
    }

    /// Every service with its real servers, as a dump shows them, without counting a read.
    pub fn contents(&self) -> Vec<(ServiceEntry, Vec<DestinationEntry>)> {
        self.table().services.values().cloned().collect()
    }

    /// The sync daemons running, without counting a read.
    pub fn running_daemons(&self) -> Vec<Daemon> {
        self.table().daemons.clone()
    }

    /// The timeouts, without counting a read.
    pub fn current_timeouts(&self) -> Timeouts {
        self.table().timeouts
    }

    /// The next call fails with `err`, whatever it is.
    pub fn fail_next(&self, err: IpvsError) {
        self.table().fail_next = Some(err);
    }

    /// The next read of the whole table hands out its first `services`, then fails with
    /// `err`, as a destination dump failing half-way through a listing would.
    pub fn cut_table(&self, services: usize, err: IpvsError) {
        self.table().cut_table = Some((services, err));
    }

    /// `write` fails once with `err` when it comes, before it can change anything.
    pub fn fail_write(&self, write: Write, err: IpvsError) {
        self.table().fail_writes.push((write, err));
    }

    /// `write` is refused once with `errno` when it comes, before it can change anything, as
    /// the real handle reports that errno for it.
    pub fn refuse_write(&self, write: Write, errno: i32) {
        let err = write.refused(errno);
        self.fail_write(write, err);
    }

    /// The `n`th write from now (1 is the next one), whatever it is, is refused with `errno`
    /// before it can change anything, as the real handle reports that errno for it.
    pub fn refuse_nth_write(&self, n: usize, errno: i32) {
        let mut t = self.table();
        let at = t.writes.len() + n;
        t.fail_at.push((at, errno));
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
        for d in self.table().dests_mut(key, addr, port) {
            d.active_conns = active;
        }
    }

    /// Sets a real server's active and inactive connection counts, as clients would.
    pub fn set_conns(&self, key: &ServiceKey, addr: IpAddr, port: u16, active: u32, inactive: u32) {
        for d in self.table().dests_mut(key, addr, port) {
            d.active_conns = active;
            d.inactive_conns = inactive;
        }
    }

    /// Right after the next `reads` reads are served, sets a real server's connection counts,
    /// as clients coming and going would.
    pub fn set_conns_after_reads(
        &self,
        reads: usize,
        key: ServiceKey,
        (addr, port): (IpAddr, u16),
        active: u32,
        inactive: u32,
    ) {
        let mut t = self.table();
        let at = t.reads + reads;
        t.behind.push((
            at,
            Later::Conns {
                key,
                addr,
                port,
                active,
                inactive,
            },
        ));
    }

    /// Right after the next `reads` reads are served, replaces the real server `dest` of `key`
    /// as another writer would, behind the back of whoever read it (no write is recorded).
    pub fn change_after_reads(&self, reads: usize, key: ServiceKey, dest: Destination) {
        let mut t = self.table();
        let at = t.reads + reads;
        t.behind.push((at, Later::Dest(key, dest)));
    }

    /// Sets the counters of a service, as traffic would.
    pub fn set_stats(&self, key: &ServiceKey, stats: Stats) {
        if let Some((entry, _)) = self.table().services.get_mut(key) {
            entry.stats = stats;
        }
    }

    /// Sets the counters of a real server, as traffic would.
    pub fn set_dest_stats(&self, key: &ServiceKey, addr: IpAddr, port: u16, stats: Stats) {
        for d in self.table().dests_mut(key, addr, port) {
            d.stats = stats;
        }
    }

    fn read<T>(&self, f: impl FnOnce(&Table) -> Result<T, IpvsError>) -> Result<T, IpvsError> {
        let mut t = self.table();
        t.reads += 1;
        if let Some(err) = t.fail_next.take() {
            return Err(err);
        }
        let answer = f(&t);
        t.due();
        answer
    }

    fn write(
        &self,
        w: Write,
        f: impl FnOnce(&mut Table) -> Result<(), Errno>,
    ) -> Result<(), IpvsError> {
        let mut t = self.table();
        t.writes.push(w.clone());
        if let Some(err) = t.fail_next.take() {
            return Err(err);
        }
        if let Some(i) = t.fail_writes.iter().position(|(f, _)| *f == w) {
            return Err(t.fail_writes.remove(i).1);
        }
        let number = t.writes.len();
        if let Some(i) = t.fail_at.iter().position(|(at, _)| *at == number) {
            return Err(w.refused(t.fail_at.remove(i).1));
        }
        f(&mut t).map_err(|errno| w.refused(errno))
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
        (Family::Inet, IpAddr::V6(a)) => {
            let o = a.octets();
            IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], o[3]))
        }
        (Family::Inet6, IpAddr::V4(a)) => {
            let mut o = [0u8; 16];
            o[..4].copy_from_slice(&a.octets());
            IpAddr::V6(Ipv6Addr::from(o))
        }
        (_, a) => a,
    }
}

/// `ip_vs_add_service` and `ip_vs_edit_service`, past the service lookup: the scheduler
/// (ENOENT), the persistence engine (ENOENT), an IPv6 netmask that is no prefix length
/// (EINVAL), in that order.
fn check_service(t: &Table, svc: &Service) -> Result<(), Errno> {
    if t.missing.contains(svc.scheduler.name()) {
        return Err(libc::ENOENT);
    }
    if let Some(pe) = &svc.pe_name
        && !t.engines.contains(pe)
    {
        return Err(libc::ENOENT);
    }
    if svc.key.family() == Family::Inet6 && !(1..=128).contains(&svc.netmask) {
        return Err(libc::EINVAL);
    }
    Ok(())
}

/// The checks of `ip_vs_genl_set_cmd` and `ip_vs_add_dest`/`ip_vs_edit_dest` before the real
/// server is looked up: another address family only in tunnel mode and without a sync
/// daemon (EINVAL), a weight that is negative as the kernel's int (ERANGE), a lower
/// threshold above the upper (ERANGE).
fn check_dest(t: &Table, key: &ServiceKey, dest: &Destination) -> Result<(), Errno> {
    // A kernel before 3.18 has no family of its own for a real server: it takes the service's.
    if !t.old_kernel
        && dest.family() != key.family()
        && (!t.daemons.is_empty() || dest.forward != ForwardMethod::Tunnel)
    {
        return Err(libc::EINVAL);
    }
    if i32::try_from(dest.weight).is_err() || dest.lower_threshold > dest.upper_threshold {
        return Err(libc::ERANGE);
    }
    Ok(())
}

/// `ip_vs_new_dest`: a real server must be a unicast address (`inet_addr_type` of an IPv4
/// broadcast, multicast or 0.0.0.0/8 address, `ipv6_addr_type` of a multicast or unspecified
/// one).
fn check_unicast(addr: IpAddr) -> Result<(), Errno> {
    let unicast = match addr {
        IpAddr::V4(a) => !(a.is_multicast() || a.is_broadcast() || a.octets()[0] == 0),
        IpAddr::V6(a) => !(a.is_multicast() || a.is_unspecified()),
    };
    if unicast { Ok(()) } else { Err(libc::EINVAL) }
}

/// The service the kernel looks up first for every command that names one (ESRCH).
fn find<'a>(
    t: &'a Table,
    key: &ServiceKey,
) -> Result<&'a (ServiceEntry, Vec<DestinationEntry>), Errno> {
    t.services.get(key).ok_or(libc::ESRCH)
}

fn find_mut<'a>(
    t: &'a mut Table,
    key: &ServiceKey,
) -> Result<&'a mut (ServiceEntry, Vec<DestinationEntry>), Errno> {
    t.services.get_mut(key).ok_or(libc::ESRCH)
}

/// A read of one service: the real handle's GET_SERVICE, refused with ESRCH when missing.
fn lookup<'a>(
    t: &'a Table,
    key: &ServiceKey,
) -> Result<&'a (ServiceEntry, Vec<DestinationEntry>), IpvsError> {
    find(t, key).map_err(|errno| kernel_error(Cmd::GetService, errno, None))
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
        self.read(|t| lookup(t, key).map(|(s, _)| s.clone()))
    }

    /// The real handle asks for the service along with its destinations (a destination dump
    /// of a missing service is empty), so a missing one is its GET_SERVICE's ESRCH.
    async fn destinations(&self, key: &ServiceKey) -> Result<Vec<DestinationEntry>, IpvsError> {
        self.read(|t| lookup(t, key).map(|(_, d)| d.clone()))
    }

    async fn table(&self) -> Result<Vec<(ServiceEntry, Vec<DestinationEntry>)>, IpvsError> {
        self.table_stream().try_collect().await
    }

    /// Read at once, handed out a service at a time, cut short by [`FakeIpvs::cut_table`].
    fn table_stream(&self) -> impl Stream<Item = Result<TableRow, IpvsError>> + Send + '_ {
        let rows = self.read(|t| Ok(t.services.values().cloned().collect::<Vec<_>>()));
        let cut = self.table().cut_table.take();
        let rows: Vec<Result<TableRow, IpvsError>> = match (rows, cut) {
            (Err(e), _) => vec![Err(e)],
            (Ok(rows), None) => rows.into_iter().map(Ok).collect(),
            (Ok(rows), Some((n, e))) => rows.into_iter().take(n).map(Ok).chain([Err(e)]).collect(),
        };
        futures::stream::iter(rows)
    }

    /// The kernel looks the service up before it checks the scheduler: `-A` of an existing
    /// service is EEXIST whatever its scheduler.
    async fn new_service(&self, svc: &Service) -> Result<(), IpvsError> {
        self.write(Write::NewService(svc.clone()), |t| {
            if t.services.contains_key(&svc.key) {
                return Err(libc::EEXIST);
            }
            check_service(t, svc)?;
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
            find(t, &svc.key)?;
            check_service(t, svc)?;
            let (entry, _) = find_mut(t, &svc.key)?;
            entry.service = svc.clone();
            entry.service.flags = svc.flags.with(ServiceFlags::HASHED, true);
            Ok(())
        })
    }

    async fn del_service(&self, key: &ServiceKey) -> Result<(), IpvsError> {
        self.write(Write::DelService(*key), |t| {
            t.services.remove(key).map(|_| ()).ok_or(libc::ESRCH)
        })
    }

    async fn new_dest(&self, key: &ServiceKey, dest: &Destination) -> Result<(), IpvsError> {
        self.write(Write::NewDest(*key, *dest), |t| {
            find(t, key)?;
            check_dest(t, key, dest)?;
            let dest = &if t.old_kernel {
                as_old_kernel_sees(key, *dest)
            } else {
                *dest
            };
            let (_, dests) = find_mut(t, key)?;
            if dests.iter().any(|d| same(d, dest.addr, dest.port)) {
                return Err(libc::EEXIST);
            }
            check_unicast(dest.addr)?;
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
            find(t, key)?;
            check_dest(t, key, dest)?;
            let dest = &if t.old_kernel {
                as_old_kernel_sees(key, *dest)
            } else {
                *dest
            };
            let (_, dests) = find_mut(t, key)?;
            let d = dests
                .iter_mut()
                .find(|d| same(d, dest.addr, dest.port))
                .ok_or(libc::ENOENT)?;
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
                return Err(libc::ENOENT);
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
                return Err(libc::EEXIST);
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
                return Err(libc::ESRCH);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::{Protocol, Scheduler};

    fn tcp(addr: &str) -> ServiceKey {
        let a: std::net::SocketAddr = addr.parse().expect("address");
        ServiceKey::Endpoint {
            protocol: Protocol::Tcp,
            addr: a.ip(),
            port: a.port(),
        }
    }

    fn masq(addr: &str) -> Destination {
        let a: std::net::SocketAddr = addr.parse().expect("address");
        Destination {
            forward: ForwardMethod::Masquerade,
            ..Destination::new(a.ip(), a.port())
        }
    }

    /// A table with one service holding one real server, and no daemon.
    async fn seeded() -> FakeIpvs {
        let ipvs = FakeIpvs::default();
        ipvs.new_service(&Service::new(tcp("10.0.0.1:80"), Scheduler::Wlc))
            .await
            .expect("service");
        ipvs.new_dest(&tcp("10.0.0.1:80"), &masq("10.0.1.1:80"))
            .await
            .expect("real server");
        ipvs
    }

    /// Each situation refused with the errno `ip_vs_ctl.c` returns for it, and so with the
    /// error the real handle reports for that errno.
    #[tokio::test]
    async fn refusals_are_the_kernels_errnos() {
        let vip = tcp("10.0.0.1:80");
        let other = tcp("10.0.0.9:80");
        let v6 = tcp("[2001:db8::1]:80");
        let twos = Service::new(vip, Scheduler::Twos);
        let sip = |key, scheduler| Service {
            pe_name: Some("sip".into()),
            ..Service::new(key, scheduler)
        };
        let engine = |name: &str| Service {
            pe_name: Some(name.into()),
            ..Service::new(other, Scheduler::Rr)
        };
        let rip: IpAddr = "10.0.1.1".parse().expect("ip");
        let rip6 = "[2001:db8::2]:80";
        let cases: Vec<(&str, Write, i32)> = vec![
            (
                "-A of an existing service, even with a missing scheduler",
                Write::NewService(twos.clone()),
                libc::EEXIST,
            ),
            (
                "-A with a scheduler whose module is not loaded",
                Write::NewService(Service::new(other, Scheduler::Twos)),
                libc::ENOENT,
            ),
            (
                "-A with a missing scheduler and an engine: the engine is named",
                Write::NewService(sip(other, Scheduler::Twos)),
                libc::ENOENT,
            ),
            (
                "-A with an unknown persistence engine",
                Write::NewService(engine("nosuch")),
                libc::ENOENT,
            ),
            (
                "-A of an IPv6 service whose netmask is no prefix length",
                Write::NewService(Service {
                    netmask: 129,
                    ..Service::new(v6, Scheduler::Rr)
                }),
                libc::EINVAL,
            ),
            (
                "-E of a missing service, even with a missing scheduler",
                Write::SetService(Service::new(other, Scheduler::Twos)),
                libc::ESRCH,
            ),
            (
                "-E with a scheduler whose module is not loaded",
                Write::SetService(twos.clone()),
                libc::ENOENT,
            ),
            (
                "-D of a missing service",
                Write::DelService(other),
                libc::ESRCH,
            ),
            (
                "-Z of a missing service",
                Write::Zero(Some(other)),
                libc::ESRCH,
            ),
            (
                "-a to a missing service",
                Write::NewDest(other, masq("10.0.1.1:80")),
                libc::ESRCH,
            ),
            (
                "-a of an existing real server",
                Write::NewDest(vip, masq("10.0.1.1:80")),
                libc::EEXIST,
            ),
            (
                "-a of a real server of another family, not tunnelled",
                Write::NewDest(vip, masq(rip6)),
                libc::EINVAL,
            ),
            (
                "-a of a multicast real server",
                Write::NewDest(vip, masq("224.0.0.1:80")),
                libc::EINVAL,
            ),
            (
                "-a with the lower threshold above the upper",
                Write::NewDest(
                    vip,
                    Destination {
                        lower_threshold: 9,
                        upper_threshold: 1,
                        ..masq("10.0.1.2:80")
                    },
                ),
                libc::ERANGE,
            ),
            (
                "-a with a weight the kernel reads as negative",
                Write::NewDest(
                    vip,
                    Destination {
                        weight: 1 << 31,
                        ..masq("10.0.1.2:80")
                    },
                ),
                libc::ERANGE,
            ),
            (
                "-e on a missing service",
                Write::SetDest(other, masq("10.0.1.1:80")),
                libc::ESRCH,
            ),
            (
                "-e of a missing real server",
                Write::SetDest(vip, masq("10.0.1.9:80")),
                libc::ENOENT,
            ),
            (
                "-d on a missing service",
                Write::DelDest(other, rip, 80),
                libc::ESRCH,
            ),
            (
                "-d of a missing real server",
                Write::DelDest(vip, rip, 81),
                libc::ENOENT,
            ),
            (
                "--stop-daemon of a daemon that does not run",
                Write::DelDaemon(DaemonState::Backup),
                libc::ESRCH,
            ),
        ];
        for (what, write, errno) in cases {
            let ipvs = seeded().await;
            let got = ipvs.write_one(&write).await;
            assert_eq!(got, Err(write.refused(errno)), "{what}");
            assert_eq!(
                ipvs.contents(),
                seeded().await.contents(),
                "{what}: unchanged"
            );
        }

        // A daemon already running, and a real server of another family while one runs.
        let ipvs = seeded().await;
        let master = Daemon {
            state: DaemonState::Master,
            mcast_ifn: "eth0".into(),
            sync_id: 0,
            sync_maxlen: None,
            mcast_group: None,
            mcast_port: None,
            mcast_ttl: None,
        };
        ipvs.new_daemon(&master).await.expect("first daemon");
        let again = Write::NewDaemon(master);
        assert_eq!(
            ipvs.write_one(&again).await,
            Err(again.refused(libc::EEXIST))
        );
        let tunnelled = Write::NewDest(
            vip,
            Destination {
                forward: ForwardMethod::Tunnel,
                ..masq(rip6)
            },
        );
        assert_eq!(
            ipvs.write_one(&tunnelled).await,
            Err(tunnelled.refused(libc::EINVAL)),
            "mixed families while a sync daemon runs"
        );
    }

    /// The errnos above are the named errors of the real handle, libipvs's words.
    #[tokio::test]
    async fn refusals_have_the_real_handles_names() {
        let ipvs = seeded().await;
        let vip = tcp("10.0.0.1:80");
        let other = tcp("10.0.0.9:80");
        let rip: IpAddr = "10.0.1.1".parse().expect("ip");
        let sip_twos = Service {
            pe_name: Some("sip".into()),
            ..Service::new(other, Scheduler::Twos)
        };
        let cases: Vec<(IpvsError, IpvsError)> = vec![
            (
                ipvs.new_service(&Service::new(vip, Scheduler::Twos))
                    .await
                    .expect_err("exists"),
                IpvsError::ServiceExists,
            ),
            (
                ipvs.new_service(&Service::new(other, Scheduler::Twos))
                    .await
                    .expect_err("no scheduler"),
                IpvsError::SchedulerNotFound("twos".into()),
            ),
            (
                ipvs.new_service(&sip_twos).await.expect_err("no scheduler"),
                IpvsError::PersistenceEngineNotFound("sip".into()),
            ),
            (
                ipvs.set_service(&Service::new(other, Scheduler::Rr))
                    .await
                    .expect_err("missing"),
                IpvsError::ServiceNotFound,
            ),
            (
                ipvs.service(&other).await.expect_err("missing"),
                IpvsError::ServiceNotFound,
            ),
            (
                ipvs.destinations(&other).await.expect_err("missing"),
                IpvsError::ServiceNotFound,
            ),
            (
                ipvs.new_dest(&vip, &masq("10.0.1.1:80"))
                    .await
                    .expect_err("exists"),
                IpvsError::DestinationExists,
            ),
            (
                ipvs.del_dest(&vip, rip, 81).await.expect_err("missing"),
                IpvsError::DestinationNotFound,
            ),
            (
                ipvs.new_dest(&vip, &masq("255.255.255.255:80"))
                    .await
                    .expect_err("broadcast"),
                IpvsError::Kernel {
                    op: "add destination",
                    errno: libc::EINVAL,
                    message: "Invalid argument".into(),
                },
            ),
            (
                ipvs.del_daemon(DaemonState::Master)
                    .await
                    .expect_err("none"),
                IpvsError::DaemonNotRunning,
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[tokio::test]
    async fn refusals_can_be_injected_by_errno() {
        let ipvs = seeded().await;
        let vip = tcp("10.0.0.1:80");
        ipvs.refuse_nth_write(2, libc::ENOMEM);
        ipvs.zero(None).await.expect("first write");
        assert_eq!(
            ipvs.new_dest(&vip, &masq("10.0.1.2:80")).await,
            Err(IpvsError::Kernel {
                op: "add destination",
                errno: libc::ENOMEM,
                message: "Cannot allocate memory".into(),
            })
        );
        ipvs.new_dest(&vip, &masq("10.0.1.2:80"))
            .await
            .expect("only once");
        let del = Write::DelService(vip);
        ipvs.refuse_write(del, libc::EPERM);
        assert_eq!(
            ipvs.del_service(&vip).await,
            Err(IpvsError::PermissionDenied)
        );
        assert_eq!(ipvs.contents().len(), 1);
    }

    #[tokio::test]
    async fn writes_and_the_table_read_as_ipvsadm_lines() {
        let ipvs = seeded().await;
        let _ = ipvs
            .del_dest(&tcp("10.0.0.1:80"), "10.0.1.9".parse().expect("ip"), 80)
            .await;
        assert_eq!(
            ipvs.written(),
            [
                "-A -t 10.0.0.1:80 -s wlc",
                "-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1",
                "-d -t 10.0.0.1:80 -r 10.0.1.9:80",
            ]
        );
        assert_eq!(
            ipvs.rules(),
            [
                "-A -t 10.0.0.1:80 -s wlc",
                "-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1"
            ]
        );
    }

    impl FakeIpvs {
        async fn write_one(&self, w: &Write) -> Result<(), IpvsError> {
            match w.clone() {
                Write::NewService(s) => self.new_service(&s).await,
                Write::SetService(s) => self.set_service(&s).await,
                Write::DelService(k) => self.del_service(&k).await,
                Write::NewDest(k, d) => self.new_dest(&k, &d).await,
                Write::SetDest(k, d) => self.set_dest(&k, &d).await,
                Write::DelDest(k, a, p) => self.del_dest(&k, a, p).await,
                Write::Flush => self.flush().await,
                Write::Zero(k) => self.zero(k.as_ref()).await,
                Write::SetTimeouts(t) => self.set_timeouts(&t).await,
                Write::NewDaemon(d) => self.new_daemon(&d).await,
                Write::DelDaemon(s) => self.del_daemon(s).await,
            }
        }
    }
}
