//! Real traffic through services made with `ipvsctl`: a client namespace, a director
//! namespace (IPVS and the agent) and two real-server namespaces, joined by veth pairs and a
//! bridge. TCP and UDP flow in NAT (masquerading), direct-routing and IP-in-IP tunnel modes;
//! the bytes come back intact, and the counters (through ipvsctl and ipvsadm alike) show
//! each connection on the real server the scheduler chose.
//!
//! ```text
//!  client ──veth── director ──────────── br0 (10.30.0.1) ─┬── real server 1 (10.30.0.11)
//!  10.10.0.2       10.10.0.1   VIPs on vip0               ├── real server 2 (10.30.0.12)
//!  10.30.0.2 ───────────────────────────────────────────────┘  (client's second leg)
//! ```
//! NAT traffic goes through the client's first leg and back through the director; DR and
//! tunnel replies go straight from the real servers to the client's leg on the bridge.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ipvs_e2e::{Agent, ipvsadm, require_lab, run_ok, stdout};
use nix::sched::{CloneFlags, setns};

/// A named network namespace (`ip netns add`), deleted on drop.
#[derive(Debug)]
struct NetNs {
    name: String,
}

impl NetNs {
    fn add(tag: &str) -> Result<Self> {
        require_lab();
        let name = format!("dp{}-{tag}", std::process::id());
        run_ok("ip", &["netns", "add", &name])?;
        let ns = NetNs { name };
        ns.ip("link set lo up")?;
        Ok(ns)
    }

    /// `ip -n NAME ARGS...`
    fn ip(&self, args: &str) -> Result<String> {
        let mut argv = vec!["-n", self.name.as_str()];
        argv.extend(args.split_whitespace());
        run_ok("ip", &argv)
    }

    /// Moves the calling thread into this namespace until the guard drops.
    fn enter(&self) -> Result<Entered> {
        let previous = File::open("/proc/thread-self/ns/net")?;
        let target = File::open(format!("/run/netns/{}", self.name))?;
        setns(&target, CloneFlags::CLONE_NEWNET).context("setns")?;
        Ok(Entered { previous })
    }

    /// Writes `/proc/sys/net/KEY` inside this namespace.
    fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let _in = self.enter()?;
        let path = format!("/proc/sys/net/{}", key.replace('.', "/"));
        std::fs::write(&path, value).with_context(|| format!("{path} = {value}"))
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = run_ok("ip", &["netns", "del", &self.name]);
    }
}

/// The calling thread is in another namespace; the previous one comes back on drop.
#[derive(Debug)]
struct Entered {
    previous: File,
}

impl Drop for Entered {
    fn drop(&mut self) {
        if let Err(e) = setns(&self.previous, CloneFlags::CLONE_NEWNET) {
            eprintln!("restoring the network namespace failed: {e}");
        }
    }
}

const NAT_VIP: &str = "10.20.0.1";
const DR_VIP: &str = "10.20.0.2";
const TUN_VIP: &str = "10.20.0.3";
const REAL_SERVERS: [&str; 2] = ["10.30.0.11", "10.30.0.12"];

struct Lab {
    client: NetNs,
    director: NetNs,
    servers: Vec<NetNs>,
}

/// Builds the namespaces, links, addresses, routes and sysctls of the picture above.
fn topology() -> Result<Lab> {
    let client = NetNs::add("client")?;
    let director = NetNs::add("director")?;
    let servers = vec![NetNs::add("rs1")?, NetNs::add("rs2")?];

    director.ip(&format!(
        "link add cl0 type veth peer name eth0 netns {}",
        client.name
    ))?;
    director.ip("addr add 10.10.0.1/24 dev cl0")?;
    director.ip("link set cl0 up")?;
    client.ip("addr add 10.10.0.2/24 dev eth0")?;
    client.ip("link set eth0 up")?;

    director.ip("link add br0 type bridge")?;
    director.ip("addr add 10.30.0.1/24 dev br0")?;
    director.ip("link set br0 up")?;
    let legs = [(&client, "10.30.0.2")]
        .into_iter()
        .chain(servers.iter().zip(REAL_SERVERS));
    for (i, (ns, addr)) in legs.enumerate() {
        director.ip(&format!(
            "link add p{i} type veth peer name eth1 netns {}",
            ns.name
        ))?;
        director.ip(&format!("link set p{i} master br0"))?;
        director.ip(&format!("link set p{i} up"))?;
        ns.ip(&format!("addr add {addr}/24 dev eth1"))?;
        ns.ip("link set eth1 up")?;
    }
    // Encapsulated packets are 20 bytes longer: the client's segments leave room for it.
    client.ip("link set eth1 mtu 1400")?;
    director.sysctl("ipv4.ip_forward", "1")?;

    client.ip(&format!("route add {NAT_VIP}/32 via 10.10.0.1 dev eth0"))?;
    for vip in [DR_VIP, TUN_VIP] {
        client.ip(&format!("route add {vip}/32 via 10.30.0.1 dev eth1"))?;
    }
    for rs in &servers {
        // NAT replies go back through the director.
        rs.ip("route add 10.10.0.0/24 via 10.30.0.1 dev eth1")?;
        // Direct routing: the VIP on lo, never announced or answered for in ARP.
        rs.ip(&format!("addr add {DR_VIP}/32 dev lo"))?;
        for dev in ["all", "eth1"] {
            rs.sysctl(&format!("ipv4.conf.{dev}.arp_ignore"), "1")?;
            rs.sysctl(&format!("ipv4.conf.{dev}.arp_announce"), "2")?;
        }
        // Tunnel: the VIP on the IP-in-IP fallback device; the inner source arrives on a
        // device it is not routed through, so reverse-path filtering must be off.
        rs.ip(&format!("addr add {TUN_VIP}/32 dev tunl0"))?;
        rs.ip("link set tunl0 up")?;
        for dev in ["all", "default", "eth1", "tunl0"] {
            rs.sysctl(&format!("ipv4.conf.{dev}.rp_filter"), "0")?;
        }
    }
    Ok(Lab {
        client,
        director,
        servers,
    })
}

/// Echo servers (TCP and UDP) in a real server's namespace, stopped on drop.
struct Echo {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Result<()>>>,
}

impl Echo {
    fn start(ns: &NetNs, tcp: &[SocketAddr], udp: &[SocketAddr]) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        for (addr, is_tcp) in tcp
            .iter()
            .map(|a| (*a, true))
            .chain(udp.iter().map(|a| (*a, false)))
        {
            let target = File::open(format!("/run/netns/{}", ns.name))?;
            let stop = stop.clone();
            let ready = ready_tx.clone();
            threads.push(std::thread::spawn(move || {
                // This thread lives in the real server's namespace for good.
                setns(&target, CloneFlags::CLONE_NEWNET)?;
                if is_tcp {
                    let listener = TcpListener::bind(addr)?;
                    listener.set_nonblocking(true)?;
                    let _ = ready.send(Ok(()));
                    serve_tcp(&listener, &stop)
                } else {
                    let socket = UdpSocket::bind(addr)?;
                    socket.set_read_timeout(Some(Duration::from_millis(50)))?;
                    let _ = ready.send(Ok(()));
                    serve_udp(&socket, &stop)
                }
            }));
        }
        let echo = Echo { stop, threads };
        for _ in 0..echo.threads.len() {
            ready_rx
                .recv_timeout(Duration::from_secs(10))
                .context("an echo server did not start")??;
        }
        Ok(echo)
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            match t.join() {
                Ok(Err(e)) => eprintln!("echo server: {e:#}"),
                Err(_) => eprintln!("echo server panicked"),
                Ok(Ok(())) => {}
            }
        }
    }
}

fn serve_tcp(listener: &TcpListener, stop: &AtomicBool) -> Result<()> {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((mut s, _)) => {
                s.set_nonblocking(false)?;
                s.set_read_timeout(Some(Duration::from_secs(10)))?;
                let mut buf = [0u8; 4096];
                loop {
                    let n = s.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    s.write_all(&buf[..n])?;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn serve_udp(socket: &UdpSocket, stop: &AtomicBool) -> Result<()> {
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::SeqCst) {
        match socket.recv_from(&mut buf) {
            Ok((n, peer)) => {
                socket.send_to(&buf[..n], peer)?;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Known bytes, different for every connection.
fn payload(len: usize, salt: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 7 + salt * 13) % 251) as u8)
        .collect()
}

const TCP_CONNECTIONS: usize = 4;
const TCP_BYTES: usize = 6000;
const UDP_SOCKETS: usize = 4;
const UDP_DATAGRAMS: usize = 3;
const UDP_BYTES: usize = 1000;

/// From the client's namespace: TCP connections that send known bytes and read them back,
/// and UDP sockets that do the same per datagram. Returns what failed.
fn exchange(lab: &Lab, tcp: SocketAddr, udp: SocketAddr) -> Result<Vec<String>> {
    let target = File::open(format!("/run/netns/{}", lab.client.name))?;
    let worker = std::thread::spawn(move || -> Result<Vec<String>> {
        setns(&target, CloneFlags::CLONE_NEWNET)?;
        let mut failures = Vec::new();
        for c in 0..TCP_CONNECTIONS {
            let sent = payload(TCP_BYTES, c);
            let got = (|| -> Result<Vec<u8>> {
                let mut s = TcpStream::connect_timeout(&tcp, Duration::from_secs(5))?;
                s.set_read_timeout(Some(Duration::from_secs(10)))?;
                s.write_all(&sent)?;
                s.shutdown(Shutdown::Write)?;
                let mut got = Vec::new();
                s.read_to_end(&mut got)?;
                Ok(got)
            })();
            match got {
                Ok(got) if got == sent => {}
                Ok(got) => failures.push(format!(
                    "TCP {tcp} #{c}: {} bytes back of {}, first difference at {:?}",
                    got.len(),
                    sent.len(),
                    got.iter().zip(&sent).position(|(a, b)| a != b)
                )),
                Err(e) => failures.push(format!("TCP {tcp} #{c}: {e:#}")),
            }
        }
        for c in 0..UDP_SOCKETS {
            let r = (|| -> Result<()> {
                let s = UdpSocket::bind("0.0.0.0:0")?;
                s.connect(udp)?;
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                for d in 0..UDP_DATAGRAMS {
                    let sent = payload(UDP_BYTES, 100 + c * UDP_DATAGRAMS + d);
                    s.send(&sent)?;
                    let mut buf = [0u8; 2048];
                    let n = s.recv(&mut buf)?;
                    ensure!(
                        buf[..n] == sent[..],
                        "datagram {d}: {n} bytes, not the same"
                    );
                }
                Ok(())
            })();
            if let Err(e) = r {
                failures.push(format!("UDP {udp} socket {c}: {e:#}"));
            }
        }
        Ok(failures)
    });
    worker
        .join()
        .map_err(|_| anyhow::anyhow!("client thread panicked"))?
}

/// One `--stats --exact` row: Conns, InPkts, OutPkts, InBytes, OutBytes.
type Counters = [u64; 5];

/// The counters of the row whose address column is `addr`, under the service `service`.
fn counters(listing: &str, service: &str, dest: Option<&str>) -> Result<Counters> {
    let mut in_service = false;
    for line in listing.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if !line.starts_with(' ') {
            in_service = cols.len() > 1 && format!("{} {}", cols[0], cols[1]) == service;
            if in_service && dest.is_none() {
                return numbers(&cols[2..]);
            }
        } else if in_service && cols.first() == Some(&"->") && cols.get(1).copied() == dest {
            return numbers(&cols[2..]);
        }
    }
    bail!("no row for {service} {dest:?} in\n{listing}")
}

fn numbers(cols: &[&str]) -> Result<Counters> {
    let mut out = [0u64; 5];
    ensure!(cols.len() == 5, "not five counters: {cols:?}");
    for (o, c) in out.iter_mut().zip(cols) {
        *o = c.parse()?;
    }
    Ok(out)
}

/// Runs `args` through ipvsadm in `ns`.
fn ipvsadm_in(ns: &NetNs, args: &[&str]) -> Result<String> {
    let _in = ns.enter()?;
    let out = ipvsadm(args)?;
    ensure!(out.status.success(), "ipvsadm {args:?}: {out:?}");
    Ok(stdout(&out))
}

/// `ipvsctl -Ln --stats --exact`, once two readings 2.5 s apart agree.
fn settled_stats(agent: &Agent) -> Result<String> {
    let mut last = agent.ipvsctl_ok(&["-Ln", "--stats", "--exact"])?;
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(2500));
        let now = agent.ipvsctl_ok(&["-Ln", "--stats", "--exact"])?;
        if now == last {
            return Ok(now);
        }
        last = now;
    }
    bail!("counters did not settle:\n{last}")
}

#[test]
fn traffic_flows_in_nat_direct_routing_and_tunnel_modes() -> Result<()> {
    let started = Instant::now();
    let lab = topology()?;
    let agent = {
        let _in = lab.director.enter()?;
        Agent::start()?
    };
    // The VIPs, on a dummy link the agent makes.
    agent.ipvsctl_ok(&["link", "add", "vip0", "type", "dummy"])?;
    for vip in [NAT_VIP, DR_VIP, TUN_VIP] {
        agent.ipvsctl_ok(&["addr", "add", &format!("{vip}/32"), "dev", "vip0"])?;
    }
    agent.ipvsctl_ok(&["link", "set", "vip0", "up"])?;

    // (VIP, forwarding flag, real-server TCP port, real-server UDP port)
    let modes = [
        (NAT_VIP, "-m", 8080u16, 5353u16),
        (DR_VIP, "-g", 80, 53),
        (TUN_VIP, "-i", 80, 53),
    ];
    for (vip, fwd, tcp_port, udp_port) in modes {
        for (proto, vport, rport) in [("-t", 80, tcp_port), ("-u", 53, udp_port)] {
            let svc = format!("{vip}:{vport}");
            agent.ipvsctl_ok(&["-A", proto, &svc, "-s", "rr"])?;
            for rs in REAL_SERVERS {
                agent.ipvsctl_ok(&["-a", proto, &svc, "-r", &format!("{rs}:{rport}"), fwd])?;
            }
        }
    }
    let listing = agent.ipvsctl_ok(&["-Ln"])?;
    ensure!(
        listing == ipvsadm_in(&lab.director, &["-Ln"])?,
        "ipvsctl and ipvsadm list differently:\n{listing}"
    );

    let mut echoes = Vec::new();
    for (ns, rs) in lab.servers.iter().zip(REAL_SERVERS) {
        let tcp: Vec<SocketAddr> = ["0.0.0.0:8080", "0.0.0.0:80"]
            .iter()
            .map(|a| a.parse())
            .collect::<Result<_, _>>()?;
        // UDP replies leave from the address the request went to: bind each one.
        let udp: Vec<SocketAddr> = [
            format!("{rs}:5353"),
            format!("{DR_VIP}:53"),
            format!("{TUN_VIP}:53"),
        ]
        .iter()
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
        echoes.push(Echo::start(ns, &tcp, &udp)?);
    }

    let mut failures = Vec::new();
    for (vip, fwd, _, _) in modes {
        let tcp: SocketAddr = format!("{vip}:80").parse()?;
        let udp: SocketAddr = format!("{vip}:53").parse()?;
        let t = Instant::now();
        let f = exchange(&lab, tcp, udp)?;
        println!(
            "{fwd} {vip}: {} failures in {:.1} s",
            f.len(),
            t.elapsed().as_secs_f64()
        );
        failures.extend(f);
    }

    let stats = settled_stats(&agent)?;
    println!("{stats}");
    let theirs = ipvsadm_in(&lab.director, &["-Ln", "--stats", "--exact"])?;
    if theirs != stats {
        failures.push(format!(
            "ipvsadm -Ln --stats --exact differs from ipvsctl's:\n{theirs}"
        ));
    }
    for (vip, fwd, tcp_port, udp_port) in modes {
        let masq = fwd == "-m";
        for (proto, vport, rport, conns, bytes, header) in [
            ("TCP", 80, tcp_port, TCP_CONNECTIONS, TCP_BYTES, 0),
            ("UDP", 53, udp_port, UDP_SOCKETS, UDP_BYTES, 28),
        ] {
            let service = format!("{proto}  {vip}:{vport}");
            let service = service.split_whitespace().collect::<Vec<_>>().join(" ");
            let [c, in_pkts, out_pkts, in_bytes, out_bytes] = counters(&stats, &service, None)?;
            let payload = (conns * bytes) as u64;
            let mut check = |ok: bool, what: String| {
                if !ok {
                    failures.push(format!("{service} ({fwd}): {what}"));
                }
            };
            check(c == conns as u64, format!("{c} connections, not {conns}"));
            if proto == "UDP" {
                let datagrams = (UDP_SOCKETS * UDP_DATAGRAMS) as u64;
                let on_wire = datagrams * (header + UDP_BYTES) as u64;
                check(
                    in_pkts == datagrams,
                    format!("InPkts {in_pkts}, not {datagrams}"),
                );
                check(
                    in_bytes == on_wire,
                    format!("InBytes {in_bytes}, not {on_wire}"),
                );
                let (want_pkts, want_bytes) = if masq { (datagrams, on_wire) } else { (0, 0) };
                check(
                    out_pkts == want_pkts && out_bytes == want_bytes,
                    format!(
                        "OutPkts {out_pkts} OutBytes {out_bytes}, not {want_pkts} {want_bytes}"
                    ),
                );
            } else {
                check(
                    in_bytes > payload,
                    format!("InBytes {in_bytes} ≤ {payload} sent"),
                );
                if masq {
                    check(
                        out_bytes > payload,
                        format!("OutBytes {out_bytes} ≤ {payload} echoed"),
                    );
                } else {
                    // Replies go straight to the client, never through the director.
                    check(
                        out_pkts == 0 && out_bytes == 0,
                        format!("OutPkts {out_pkts} OutBytes {out_bytes} for {fwd}"),
                    );
                }
            }
            // Round robin: each real server got half.
            for rs in REAL_SERVERS {
                let dest = format!("{rs}:{rport}");
                let [dc, ..] = counters(&stats, &service, Some(&dest))?;
                check(
                    dc == (conns / 2) as u64,
                    format!("{dest} has {dc} connections, not {}", conns / 2),
                );
            }
        }
    }

    // The connection table through both tools. Each entry's expiry ticks down once a second
    // at its own phase, so two readings a moment apart can differ by a tick in any row: the
    // same bytes, or else the same but for expiries one tick apart (retried first).
    let mut same = false;
    let mut last = (String::new(), String::new());
    for attempt in 0..5 {
        let ours = agent.ipvsctl(&["-Lnc"])?;
        let theirs = ipvsadm_in(&lab.director, &["-Lnc"])?;
        same = stdout(&ours) == theirs
            || (attempt == 4 && same_but_for_a_tick(&stdout(&ours), &theirs));
        last = (stdout(&ours), theirs);
        if same {
            break;
        }
    }
    if !same {
        failures.push(format!(
            "-Lnc differs:\nipvsctl:\n{}\nipvsadm:\n{}",
            last.0, last.1
        ));
    }
    let entries = last.1.lines().skip(2).count();
    if entries < 3 * (TCP_CONNECTIONS + UDP_SOCKETS) {
        failures.push(format!("only {entries} connection entries:\n{}", last.1));
    }
    drop(echoes);
    println!(
        "data plane: {} modes checked in {:.1} s",
        modes.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

/// `-Lnc` listings alike but for expiries (`mm:ss`, the second column) one second apart.
fn same_but_for_a_tick(a: &str, b: &str) -> bool {
    fn seconds(expire: &str) -> Option<i64> {
        let (m, s) = expire.split_once(':')?;
        Some(m.parse::<i64>().ok()? * 60 + s.parse::<i64>().ok()?)
    }
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    a.len() == b.len()
        && a.iter().zip(&b).all(|(x, y)| {
            if x == y {
                return true;
            }
            let (Some((px, rx)), Some((py, ry))) = (x.split_at_checked(4), y.split_at_checked(4))
            else {
                return false;
            };
            let (Some((ex, tx)), Some((ey, ty))) = (rx.split_at_checked(5), ry.split_at_checked(5))
            else {
                return false;
            };
            px == py
                && tx == ty
                && matches!((seconds(ex), seconds(ey)), (Some(u), Some(v)) if (u - v).abs() <= 1)
        })
}

#[test]
fn listings_one_tick_apart_count_as_the_same() {
    let a = "IPVS connection entries\npro expire state       source\nUDP 04:50  UDP         10.10.0.2:49269\nTCP 01:00  FIN_WAIT    10.30.0.2:51750\n";
    let b = "IPVS connection entries\npro expire state       source\nUDP 04:49  UDP         10.10.0.2:49269\nTCP 00:59  FIN_WAIT    10.30.0.2:51750\n";
    assert!(same_but_for_a_tick(a, b));
    assert!(same_but_for_a_tick(a, a));
    let two_ticks = b.replace("04:49", "04:48");
    assert!(!same_but_for_a_tick(a, &two_ticks));
    let other_state = b.replace("FIN_WAIT   ", "TIME_WAIT  ");
    assert!(!same_but_for_a_tick(a, &other_state));
    let other_port = b.replace("49269", "49260");
    assert!(!same_but_for_a_tick(a, &other_port));
    assert!(!same_but_for_a_tick(a, "IPVS connection entries\n"));
}

#[test]
fn counters_are_read_by_column() -> Result<()> {
    let listing = "IP Virtual Server version 1.2.1 (size=4096)\n\
        Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n  \
        -> RemoteAddress:Port\n\
        TCP  10.20.0.1:80                        4       40       32     6000     7000\n  \
        -> 10.30.0.11:8080                   2       20       16     3000     3500\n\
        UDP  10.20.0.1:53                        1        2        3        4        5\n  \
        -> 10.30.0.11:8080                   9        9        9        9        9\n";
    assert_eq!(
        counters(listing, "TCP 10.20.0.1:80", None)?,
        [4, 40, 32, 6000, 7000]
    );
    assert_eq!(
        counters(listing, "TCP 10.20.0.1:80", Some("10.30.0.11:8080"))?,
        [2, 20, 16, 3000, 3500]
    );
    assert_eq!(
        counters(listing, "UDP 10.20.0.1:53", Some("10.30.0.11:8080"))?,
        [9; 5]
    );
    assert!(counters(listing, "TCP 10.20.0.1:81", None).is_err());
    Ok(())
}
