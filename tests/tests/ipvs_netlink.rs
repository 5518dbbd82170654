//! `IpvsHandle` against the real kernel, in a fresh network namespace per test: every
//! operation of `IpvsOps`, read back through netlink and cross-checked with `ipvsadm -Sn`;
//! IPv6, firewall marks and tunnels; counters; a pipelined batch; the kernel's refusals.

use std::future::Future;
use std::io::Write;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ipvs_agent::ipvs::{
    Daemon, DaemonState, Destination, DestinationEntry, Family, ForwardMethod, IpvsError,
    IpvsHandle, IpvsOp, IpvsOps, Protocol, Scheduler, Service, ServiceFlags, ServiceKey, Stats,
    Timeouts, Tunnel, TunnelChecksum, TunnelType,
};
use ipvs_e2e::{Backend, Netns, http_get, run_ok, table_snapshot};

/// Runs `f` with a handle opened in a fresh network namespace (so with an empty IPVS table).
fn in_netns<F, Fut>(f: F) -> Result<()>
where
    F: FnOnce(IpvsHandle) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let _ns = Netns::new()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let handle = IpvsHandle::new().await.context("open the IPVS family")?;
        f(handle).await
    })
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn tcp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Endpoint {
        protocol: Protocol::Tcp,
        addr: ip(addr),
        port,
    }
}

fn masq(addr: &str, port: u16, weight: u32) -> Destination {
    let mut d = Destination::new(ip(addr), port);
    d.forward = ForwardMethod::Masquerade;
    d.weight = weight;
    d
}

fn sorted(mut dests: Vec<DestinationEntry>) -> Vec<Destination> {
    dests.sort_by_key(|e| (e.dest.addr, e.dest.port));
    dests.into_iter().map(|e| e.dest).collect()
}

/// `ipvsadm -Sn` lines starting with `prefix`.
fn saved(prefix: &str) -> Result<Vec<String>> {
    Ok(table_snapshot()?
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_owned)
        .collect())
}

#[test]
fn netlink_services_and_destinations_round_trip() -> Result<()> {
    in_netns(|h| async move {
        let info = h.info().await?;
        assert_eq!(info.version, 0x010201);
        assert!(info.conn_tab_size > 0, "{info:?}");
        assert!(h.services().await?.is_empty());

        let key = tcp("192.168.100.1", 80);
        let svc = Service::new(key, Scheduler::Rr);
        h.new_service(&svc).await?;
        let entry = h.service(&key).await?;
        assert_eq!(entry.service, svc);
        assert_eq!(entry.stats, Stats::default());
        assert_eq!(saved("-A")?, ["-A -t 192.168.100.1:80 -s rr"]);

        let mut edited = svc.clone();
        edited.scheduler = Scheduler::Wlc;
        edited.flags = ServiceFlags(ServiceFlags::PERSISTENT);
        edited.timeout = 300;
        edited.netmask = 0xffff_ff00;
        h.set_service(&edited).await?;
        assert_eq!(h.service(&key).await?.service, edited);
        assert_eq!(
            saved("-A")?,
            ["-A -t 192.168.100.1:80 -s wlc -p 300 -M 255.255.255.0"]
        );

        let a = masq("10.0.0.2", 8080, 2);
        let mut b = masq("10.0.0.3", 8080, 0);
        b.upper_threshold = 100;
        b.lower_threshold = 10;
        h.new_dest(&key, &a).await?;
        h.new_dest(&key, &b).await?;
        assert_eq!(sorted(h.destinations(&key).await?), [a, b]);
        let lines = saved("-a")?;
        assert!(
            lines.contains(&"-a -t 192.168.100.1:80 -r 10.0.0.2:8080 -m -w 2".to_owned()),
            "{lines:?}"
        );

        let mut a2 = a;
        a2.weight = 5;
        h.set_dest(&key, &a2).await?;
        h.del_dest(&key, b.addr, b.port).await?;
        assert_eq!(sorted(h.destinations(&key).await?), [a2]);

        let table = h.table().await?;
        assert_eq!(table.len(), 1);
        assert_eq!(table[0].0.service, edited);
        assert_eq!(sorted(table[0].1.clone()), [a2]);

        h.del_service(&key).await?;
        assert!(h.services().await?.is_empty());
        assert!(saved("-A")?.is_empty());
        Ok(())
    })
}

#[test]
fn netlink_ipv6_fwmark_and_tunnels() -> Result<()> {
    in_netns(|h| async move {
        // IPv6, source hashing on the port too.
        let v6 = tcp("2001:db8::1", 443);
        let mut sh = Service::new(v6, Scheduler::Sh);
        sh.flags = ServiceFlags(ServiceFlags::SCHED2);
        h.new_service(&sh).await?;
        let d6 = masq("2001:db8::10", 8443, 1);
        h.new_dest(&v6, &d6).await?;

        // Firewall marks, both families; persistent per /24 and per /64.
        let fwm4 = ServiceKey::fwmark(7, Family::Inet)?;
        let mut p4 = Service::new(fwm4, Scheduler::Rr);
        p4.flags = ServiceFlags(ServiceFlags::PERSISTENT);
        p4.timeout = 60;
        p4.netmask = 0xffff_ff00;
        h.new_service(&p4).await?;
        let dr = Destination::new(ip("10.0.0.5"), 0).normalized_for(&fwm4);
        h.new_dest(&fwm4, &dr).await?;
        let fwm6 = ServiceKey::fwmark(8, Family::Inet6)?;
        let mut p6 = Service::new(fwm6, Scheduler::Wrr);
        p6.flags = ServiceFlags(ServiceFlags::PERSISTENT);
        p6.timeout = 30;
        p6.netmask = 64;
        h.new_service(&p6).await?;

        // An IPv6 GUE tunnel server behind an IPv4 service.
        let v4 = tcp("192.168.100.1", 80);
        h.new_service(&Service::new(v4, Scheduler::Rr)).await?;
        let mut gue = Destination::new(ip("2001:db8::2"), 0);
        gue.forward = ForwardMethod::Tunnel;
        gue.tunnel = Tunnel {
            kind: TunnelType::Gue,
            port: 6080,
            checksum: TunnelChecksum::Csum,
        };
        let gue = gue.normalized_for(&v4);
        h.new_dest(&v4, &gue).await?;

        let mut want = vec![
            sh.clone(),
            p4.clone(),
            p6.clone(),
            Service::new(v4, Scheduler::Rr),
        ];
        want.sort_by_key(|s| s.key);
        let mut got: Vec<Service> = h.services().await?.into_iter().map(|e| e.service).collect();
        got.sort_by_key(|s| s.key);
        assert_eq!(got, want);
        assert_eq!(sorted(h.destinations(&v6).await?), [d6]);
        assert_eq!(sorted(h.destinations(&fwm4).await?), [dr]);
        assert!(h.destinations(&fwm6).await?.is_empty());
        assert_eq!(sorted(h.destinations(&v4).await?), [gue]);
        assert_eq!(saved("-A")?.len(), 4);
        let lines = saved("-a")?;
        assert!(
            lines
                .iter()
                .any(|l| l.contains("[2001:db8::2]:80 -i") && l.contains("gue")),
            "{lines:?}"
        );
        Ok(())
    })
}

#[test]
fn netlink_errors_map_to_ipvs_errors() -> Result<()> {
    in_netns(|h| async move {
        let key = tcp("192.168.100.1", 80);
        let missing = tcp("192.168.100.2", 80);
        let svc = Service::new(key, Scheduler::Rr);
        h.new_service(&svc).await?;
        let d = masq("10.0.0.2", 8080, 1);
        h.new_dest(&key, &d).await?;

        assert_eq!(h.new_service(&svc).await, Err(IpvsError::ServiceExists));
        assert_eq!(h.service(&missing).await, Err(IpvsError::ServiceNotFound));
        assert_eq!(
            h.destinations(&missing).await,
            Err(IpvsError::ServiceNotFound)
        );
        assert_eq!(
            h.del_service(&missing).await,
            Err(IpvsError::ServiceNotFound)
        );
        assert_eq!(
            h.set_service(&Service::new(missing, Scheduler::Rr)).await,
            Err(IpvsError::ServiceNotFound)
        );
        assert_eq!(
            h.zero(Some(&missing)).await,
            Err(IpvsError::ServiceNotFound)
        );
        assert_eq!(
            h.new_dest(&missing, &d).await,
            Err(IpvsError::ServiceNotFound)
        );
        assert_eq!(
            h.new_dest(&key, &d).await,
            Err(IpvsError::DestinationExists)
        );
        let other = masq("10.0.0.9", 8080, 1);
        assert_eq!(
            h.set_dest(&key, &other).await,
            Err(IpvsError::DestinationNotFound)
        );
        assert_eq!(
            h.del_dest(&key, other.addr, other.port).await,
            Err(IpvsError::DestinationNotFound)
        );
        // Debian's 6.1 kernel has no `twos` scheduler module.
        let twos = Service::new(tcp("192.168.100.3", 80), Scheduler::Twos);
        assert_eq!(
            h.new_service(&twos).await,
            Err(IpvsError::SchedulerNotFound("twos".into()))
        );
        // A real server of the other family is only allowed in tunnel mode.
        assert_eq!(
            h.new_dest(&key, &masq("2001:db8::2", 8080, 1)).await,
            Err(IpvsError::Kernel {
                op: "add destination",
                errno: libc::EINVAL,
                message: "Invalid argument".into(),
            })
        );
        assert_eq!(
            h.del_daemon(DaemonState::Backup).await,
            Err(IpvsError::DaemonNotRunning)
        );
        // Nothing of the refused writes reached the table.
        assert_eq!(saved("-A")?.len(), 1);
        assert_eq!(saved("-a")?.len(), 1);
        Ok(())
    })
}

#[test]
fn netlink_stats_zero_and_flush() -> Result<()> {
    in_netns(|h| async move {
        run_ok("ip", &["link", "add", "dummy1", "type", "dummy"])?;
        run_ok("ip", &["addr", "add", "192.168.100.1/32", "dev", "dummy1"])?;
        run_ok("ip", &["link", "set", "dummy1", "up"])?;
        let _backend = Backend::start("127.0.0.1:8081".parse()?, "ok\n")?;
        let key = tcp("192.168.100.1", 80);
        h.new_service(&Service::new(key, Scheduler::Rr)).await?;
        h.new_dest(&key, &masq("127.0.0.1", 8081, 1)).await?;
        for _ in 0..3 {
            assert_eq!(http_get("192.168.100.1:80".parse()?)?, "ok\n");
        }
        // Counters are folded from per-CPU data every 2 s.
        let deadline = Instant::now() + Duration::from_secs(10);
        let stats = loop {
            let s = h.service(&key).await?.stats;
            if s.conns == 3 || Instant::now() > deadline {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        assert_eq!(stats.conns, 3, "{stats:?}");
        assert!(stats.inpkts >= 9 && stats.outpkts >= 6, "{stats:?}");
        assert!(stats.inbytes > 0 && stats.outbytes > 0, "{stats:?}");
        let dests = h.destinations(&key).await?;
        assert_eq!(dests.len(), 1);
        assert_eq!(dests[0].stats.conns, 3);

        h.zero(Some(&key)).await?;
        let s = h.service(&key).await?.stats;
        assert_eq!(
            (s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes),
            (0, 0, 0, 0, 0)
        );
        h.zero(None).await?;
        h.flush().await?;
        assert!(h.services().await?.is_empty());
        Ok(())
    })
}

#[test]
fn netlink_pipelined_batch_of_200_services() -> Result<()> {
    in_netns(|h| async move {
        let keys: Vec<ServiceKey> = (1..=200u8)
            .map(|i| tcp(&format!("10.1.0.{i}"), 80))
            .collect();
        let mut ops: Vec<IpvsOp> = keys
            .iter()
            .map(|k| IpvsOp::NewService(Service::new(*k, Scheduler::Rr)))
            .collect();
        ops.extend(
            keys.iter()
                .map(|k| IpvsOp::NewDest(*k, masq("10.2.0.1", 80, 1))),
        );
        // Two refusals in the middle of the batch do not stop the writes after them.
        ops.insert(
            250,
            IpvsOp::NewService(Service::new(keys[0], Scheduler::Rr)),
        );
        ops.insert(
            300,
            IpvsOp::NewDest(tcp("10.9.0.1", 80), masq("10.2.0.1", 80, 1)),
        );

        let started = Instant::now();
        let results = h.apply(&ops).await;
        let applied = started.elapsed();
        assert_eq!(results.len(), ops.len());
        for (i, r) in results.iter().enumerate() {
            let want = match i {
                250 => Err(IpvsError::ServiceExists),
                300 => Err(IpvsError::ServiceNotFound),
                _ => Ok(()),
            };
            assert_eq!(r, &want, "op {i}: {:?}", ops[i]);
        }

        let started = Instant::now();
        let table = h.table().await?;
        let listed = started.elapsed();
        assert_eq!(table.len(), 200);
        assert!(
            table.iter().all(|(_, d)| d.len() == 1),
            "every service has its server"
        );
        assert_eq!(saved("-A")?.len(), 200);
        assert_eq!(saved("-a")?.len(), 200);
        eprintln!("402 writes applied in {applied:?}; table of 200 services read in {listed:?}");

        let dels: Vec<IpvsOp> = keys.iter().map(|k| IpvsOp::DelService(*k)).collect();
        ensure!(
            h.apply(&dels).await.iter().all(Result::is_ok),
            "deletes failed"
        );
        assert!(h.services().await?.is_empty());

        // Refusals are the largest acks (they quote the request): a whole batch of them
        // must still fit the receive buffer and come back one per request.
        let refused = h.apply(&dels).await;
        assert_eq!(refused, vec![Err(IpvsError::ServiceNotFound); dels.len()]);

        // The same 400 writes through `ipvsadm -R`, for scale.
        let script: String = (1..=200)
            .map(|i| format!("-A -t 10.1.0.{i}:80 -s rr\n-a -t 10.1.0.{i}:80 -r 10.2.0.1:80 -m\n"))
            .collect();
        let started = Instant::now();
        let mut child = std::process::Command::new("ipvsadm")
            .arg("-R")
            .stdin(std::process::Stdio::piped())
            .spawn()?;
        child
            .stdin
            .take()
            .context("ipvsadm stdin")?
            .write_all(script.as_bytes())?;
        ensure!(child.wait()?.success(), "ipvsadm -R failed");
        eprintln!(
            "the same 400 writes through ipvsadm -R: {:?}",
            started.elapsed()
        );
        assert_eq!(saved("-A")?.len(), 200);
        let started = Instant::now();
        run_ok("ipvsadm", &["-Ln"])?;
        let theirs = started.elapsed();
        let started = Instant::now();
        assert_eq!(h.table().await?.len(), 200);
        eprintln!(
            "listing 200 services: ipvsadm -Ln {theirs:?}, table() {:?}",
            started.elapsed()
        );
        Ok(())
    })
}

#[test]
fn netlink_timeouts_and_daemons() -> Result<()> {
    in_netns(|h| async move {
        let t = Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
        };
        h.set_timeouts(&t).await?;
        assert_eq!(h.timeouts().await?, t);
        // 0 leaves a value as it is.
        h.set_timeouts(&Timeouts::default()).await?;
        assert_eq!(h.timeouts().await?, t);
        let shown = run_ok("ipvsadm", &["-L", "--timeout"])?;
        assert!(shown.contains("900 120 300"), "{shown}");

        assert!(h.daemons().await?.is_empty());
        let master = Daemon {
            state: DaemonState::Master,
            mcast_ifn: "lo".into(),
            sync_id: 5,
            sync_maxlen: None,
            mcast_group: None,
            mcast_port: None,
            mcast_ttl: None,
        };
        h.new_daemon(&master).await?;
        let daemons = h.daemons().await?;
        assert_eq!(daemons.len(), 1, "{daemons:?}");
        assert_eq!(
            (
                daemons[0].state,
                daemons[0].mcast_ifn.as_str(),
                daemons[0].sync_id
            ),
            (DaemonState::Master, "lo", 5)
        );
        assert_eq!(h.new_daemon(&master).await, Err(IpvsError::DaemonRunning));
        h.del_daemon(DaemonState::Master).await?;
        assert!(h.daemons().await?.is_empty());
        assert_eq!(
            h.del_daemon(DaemonState::Master).await,
            Err(IpvsError::DaemonNotRunning)
        );
        Ok(())
    })
}
