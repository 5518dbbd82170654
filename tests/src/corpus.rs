//! A seeded, deterministic corpus of ipvsadm command lines for the differential test: each
//! sequence goes once through the real `ipvsadm` and once through `ipvsctl`, and everything
//! they print must be the same.
//!
//! Sequences are grouped in batches; a batch runs in one network namespace. Sequences of a
//! batch use disjoint addresses and firewall marks, so they do not step on each other; the
//! few that touch the whole table (`-C`) or global state (sync daemons, whose presence
//! makes the kernel refuse mixed-family real servers) sit first and last in their batch.
//! The generator is pure: the same seed gives the same corpus on every machine.

use std::fmt;

/// SplitMix64: small, fast, and stable across platforms and releases.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

/// The generator's state: randomness, and how far the walk through the refusals has come.
#[derive(Debug, Clone)]
pub struct Gen {
    rng: Rng,
    refusal: usize,
    /// The space of the batch's refusal target: `-t VIP(1):80` with `RS(1):80 -m`.
    target: Space,
}

impl std::ops::Deref for Gen {
    type Target = Rng;
    fn deref(&self) -> &Rng {
        &self.rng
    }
}

impl std::ops::DerefMut for Gen {
    fn deref_mut(&mut self) -> &mut Rng {
        &mut self.rng
    }
}

/// Refused commands per `refusals` sequence.
const REFUSALS_PER_SEQUENCE: usize = 8;

/// One command line, without the program name.
pub type Args = Vec<String>;

/// Splits a command written with single spaces into its words.
pub fn words(line: &str) -> Args {
    line.split_whitespace().map(str::to_owned).collect()
}

/// Commands that build on each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    pub name: String,
    pub commands: Vec<Args>,
}

/// Sequences sharing one network namespace, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub sequences: Vec<Sequence>,
}

impl Batch {
    pub fn commands(&self) -> impl Iterator<Item = (&Sequence, &Args)> {
        self.sequences
            .iter()
            .flat_map(|s| s.commands.iter().map(move |c| (s, c)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corpus {
    pub seed: u64,
    pub batches: Vec<Batch>,
}

/// The differential test's corpus: its seed, and batches of ordinary sequences (each batch
/// also gets the four global ones). Sized for the lab VM: every command runs once through
/// each tool, and each batch's views through both.
pub const SEED: u64 = 0x1b5;
pub const BATCHES: usize = 6;
pub const PER_BATCH: usize = 50;
/// Sequences the differential test runs at the least (see the test below).
pub const MIN_SEQUENCES: usize = 300;

impl Corpus {
    /// The corpus the differential test runs.
    pub fn differential() -> Self {
        Corpus::generate(SEED, BATCHES, PER_BATCH)
    }

    /// `batches` batches of `per_batch` ordinary sequences, plus the global ones.
    pub fn generate(seed: u64, batches: usize, per_batch: usize) -> Self {
        let mut rng = Gen {
            rng: Rng::new(seed),
            refusal: 0,
            target: Space(0),
        };
        let mut next_space = 0usize;
        let mut space = || {
            next_space += 1;
            Space(next_space)
        };
        let mut out = Vec::with_capacity(batches);
        for b in 0..batches {
            let target = space();
            rng.target = target;
            let mut sequences = vec![clear_sequence(&mut rng, target)];
            // The fixed scenarios once each over the corpus, spread over the batches; the
            // rest drawn from the randomized templates.
            let fixed = FIXED.iter().skip(b).step_by(batches.max(1));
            let mut middle: Vec<Sequence> = Vec::new();
            for (name, make) in fixed {
                let sp = space();
                let mut s = make(&mut rng, sp);
                s.name = format!("{name}#{}", sp.0);
                middle.push(s);
            }
            for k in 0..per_batch.saturating_sub(middle.len()) {
                // Every randomized template in every batch, then weighted draws.
                let (name, make) = match RANDOM.get(k) {
                    Some(t) => *t,
                    None => DRAWN[rng.below(DRAWN.len())],
                };
                let sp = space();
                let mut s = make(&mut rng, sp);
                s.name = format!("{name}#{}", sp.0);
                middle.push(s);
            }
            middle.push(zero_sequence(&mut rng, space()));
            middle.push(timeout_sequence(&mut rng, b));
            // A fixed shuffle keeps the global-state sequences away from the edges.
            for i in (1..middle.len()).rev() {
                let j = rng.below(i + 1);
                middle.swap(i, j);
            }
            sequences.extend(middle);
            sequences.push(daemon_sequence(&mut rng, space(), b));
            out.push(Batch { sequences });
        }
        Corpus { seed, batches: out }
    }

    pub fn sequence_count(&self) -> usize {
        self.batches.iter().map(|b| b.sequences.len()).sum()
    }

    pub fn command_count(&self) -> usize {
        self.batches.iter().map(|b| b.commands().count()).sum()
    }

    /// Every word of every command, for coverage checks.
    pub fn all_words(&self) -> impl Iterator<Item = &str> {
        self.batches
            .iter()
            .flat_map(|b| b.commands())
            .flat_map(|(_, c)| c.iter().map(String::as_str))
    }
}

impl fmt::Display for Corpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "differential corpus: {} sequences, {} commands in {} batches (seed {:#x})",
            self.sequence_count(),
            self.command_count(),
            self.batches.len(),
            self.seed
        )
    }
}

/// Schedulers of Debian's 6.1 kernel (`twos` is not built there).
pub const SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh",
];

const SERVICE_PORTS: &[u16] = &[80, 443, 53, 8080, 25, 5060, 3306, 1, 65535, 22, 8443, 123];
const WEIGHTS: &[u32] = &[0, 1, 2, 3, 5, 10, 100, 1000, 65535];
const PERSISTENCE: &[&str] = &["1", "60", "360", "3600", "2678400"];
/// Persistence masks drawn at random; edge cases have their own scenario in [`masks`].
const MASKS_V4: &[&str] = &[
    "255.255.255.0",
    "255.255.0.0",
    "255.255.255.255",
    "255.255.255.128",
    "128.0.0.0",
    "0.0.0.0",
];
const MASKS_V6: &[&str] = &["64", "48", "128", "1", "96"];

/// The addresses and marks one sequence may use: its own virtual IPs (IPv4 and IPv6) and
/// firewall marks. Real-server addresses are shared: they are unique per service only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space(pub usize);

impl Space {
    /// Third and fourth octet of this sequence's IPv4 network `10.a.b.0/24`.
    fn ab(self) -> (usize, usize) {
        (1 + self.0 / 250, self.0 % 250)
    }

    pub fn v4(self, k: usize) -> String {
        let (a, b) = self.ab();
        format!("10.{a}.{b}.{k}")
    }

    pub fn v6(self, k: usize) -> String {
        format!("2001:db8:{:x}::{k:x}", self.0)
    }

    pub fn mark(self, k: usize) -> u32 {
        (self.0 * 16 + k + 1) as u32
    }

    /// A loopback port of this sequence, for services on 127.0.0.1 (listed as `localhost`).
    pub fn local_port(self, k: usize) -> u16 {
        (20000 + self.0 * 4 + k) as u16
    }
}

fn rs4(j: usize) -> String {
    format!("172.16.{}.{}", j / 200, j % 200 + 1)
}

fn rs6(j: usize) -> String {
    format!("2001:db8:ff::{:x}", j + 1)
}

/// `-t`, `-u` or `--sctp-service`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    fn flag(self) -> &'static str {
        match self {
            Proto::Tcp => "-t",
            Proto::Udp => "-u",
            Proto::Sctp => "--sctp-service",
        }
    }

    fn long(self) -> &'static str {
        match self {
            Proto::Tcp => "--tcp-service",
            Proto::Udp => "--udp-service",
            Proto::Sctp => "--sctp-service",
        }
    }

    fn random(rng: &mut Rng) -> Self {
        *rng.pick(&[Proto::Tcp, Proto::Tcp, Proto::Udp, Proto::Udp, Proto::Sctp])
    }
}

/// A virtual service as a command line names it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Svc {
    Addr {
        proto: Proto,
        /// `10.1.2.3:80`, `[2001:db8::1]:80`, or a spelling of it.
        text: String,
        v6: bool,
        port: u16,
    },
    Mark {
        mark: u32,
        v6: bool,
    },
}

impl Svc {
    fn v4(proto: Proto, addr: &str, port: u16) -> Self {
        Svc::Addr {
            proto,
            text: format!("{addr}:{port}"),
            v6: false,
            port,
        }
    }

    fn v6(proto: Proto, addr: &str, port: u16) -> Self {
        Svc::Addr {
            proto,
            text: format!("[{addr}]:{port}"),
            v6: true,
            port,
        }
    }

    fn is_v6(&self) -> bool {
        match self {
            Svc::Addr { v6, .. } | Svc::Mark { v6, .. } => *v6,
        }
    }

    fn is_mark(&self) -> bool {
        matches!(self, Svc::Mark { .. })
    }

    fn proto(&self) -> Option<Proto> {
        match self {
            Svc::Addr { proto, .. } => Some(*proto),
            Svc::Mark { .. } => None,
        }
    }

    /// The words naming this service.
    fn spec(&self) -> String {
        match self {
            Svc::Addr { proto, text, .. } => format!("{} {text}", proto.flag()),
            Svc::Mark { mark, v6: false } => format!("-f {mark}"),
            Svc::Mark { mark, v6: true } => format!("-f {mark} -6"),
        }
    }

    fn long_spec(&self) -> String {
        match self {
            Svc::Addr { proto, text, .. } => format!("{} {text}", proto.long()),
            Svc::Mark { mark, v6: false } => format!("--fwmark-service {mark}"),
            Svc::Mark { mark, v6: true } => format!("--fwmark-service {mark} --ipv6"),
        }
    }
}

fn cmd(line: impl AsRef<str>) -> Args {
    words(line.as_ref())
}

/// Scheduler and service options for `-A`/`-E`; never an invalid combination.
fn service_options(rng: &mut Rng, svc: &Svc) -> String {
    let mut o = String::new();
    let sched = if rng.chance(85) {
        let s = *rng.pick(SCHEDULERS);
        o.push_str(&format!(" -s {s}"));
        s
    } else {
        "wlc"
    };
    let port0 = matches!(svc, Svc::Addr { port: 0, .. });
    let persistent = port0 || rng.chance(30);
    if persistent {
        match rng.below(4) {
            0 => o.push_str(" -p"),
            1 => o.push_str(&format!(" -p {}", rng.pick(PERSISTENCE))),
            2 => o.push_str(&format!(" --persistent {}", rng.pick(PERSISTENCE))),
            _ => o.push_str(&format!(" -p {}", rng.range(1, 86400))),
        }
    }
    if rng.chance(if persistent { 50 } else { 10 }) {
        let mask = if svc.is_v6() {
            *rng.pick(MASKS_V6)
        } else {
            *rng.pick(MASKS_V4)
        };
        o.push_str(&format!(" -M {mask}"));
    }
    if rng.chance(12) {
        o.push_str(" --pe sip");
    }
    let udp_or_mark = svc.is_mark() || svc.proto() == Some(Proto::Udp);
    if udp_or_mark && rng.chance(35) {
        o.push_str(if rng.chance(50) { " -o" } else { " --ops" });
    }
    let flags: &[&str] = match sched {
        "sh" => &[
            "sh-fallback",
            "sh-port",
            "sh-fallback,sh-port",
            "sh-port,sh-fallback",
        ],
        "mh" => &[
            "mh-fallback",
            "mh-port",
            "mh-fallback,mh-port",
            "mh-port,mh-fallback",
        ],
        _ => &["flag-1", "flag-2", "flag-3", "flag-1,flag-3"],
    };
    if rng.chance(if matches!(sched, "sh" | "mh") { 60 } else { 8 }) {
        o.push_str(&format!(" -b {}", rng.pick(flags)));
    }
    // A bare -p must not swallow what follows: keep it last sometimes, first other times.
    if o.ends_with(" -p") && rng.chance(50) {
        o.truncate(o.len() - 3);
        o.insert_str(0, " -p");
    }
    o
}

/// Tunnel options for an `-i` real server.
fn tunnel_options(rng: &mut Rng) -> String {
    match rng.below(8) {
        0 | 1 => String::new(),
        2 => " --tun-type ipip".into(),
        3 | 4 => {
            let csum = *rng.pick(&["", " --tun-nocsum", " --tun-csum", " --tun-remcsum"]);
            format!(
                " --tun-type gue --tun-port {}{csum}",
                rng.pick(&[6080u16, 5555, 1, 65535])
            )
        }
        _ => {
            let csum = *rng.pick(&["", " --tun-nocsum", " --tun-csum"]);
            format!(" --tun-type gre{csum}")
        }
    }
}

/// `-x`/`-y` that the kernel accepts (lower at most upper).
fn thresholds(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 => {
            let x = rng.range(1, 10000);
            format!(" -x {x} -y {}", rng.range(0, x))
        }
        1 => format!(" -x {}", rng.range(1, 2_147_483_647)),
        2 => " -x 2147483647 -y 2147483647".into(),
        _ => String::new(),
    }
}

/// A real server of `svc` and the options to add it with.
struct Dest {
    /// What `-r` gets.
    text: String,
    /// What `-d` and `-e` use to find it again.
    find: String,
    forward: &'static str,
}

fn dest(rng: &mut Rng, svc: &Svc, j: usize, forward: &'static str) -> Dest {
    // Only tunnels may cross address families.
    let v6 = if forward == "-i" && rng.chance(30) {
        !svc.is_v6()
    } else {
        svc.is_v6()
    };
    let with_port = rng.chance(70);
    let port = *rng.pick(&[80u16, 8080, 443, 53, 0, 1, 65535, 5060]);
    let text = match (v6, with_port) {
        (false, true) => format!("{}:{port}", rs4(j)),
        (false, false) => rs4(j),
        (true, true) => format!("[{}]:{port}", rs6(j)),
        (true, false) => rs6(j),
    };
    // -g and -i real servers of a port service take the service's port; so does a
    // real server given without one.
    let svc_port = match svc {
        Svc::Addr { port, .. } => Some(*port),
        Svc::Mark { .. } => None,
    };
    let effective = match (forward, svc_port, with_port) {
        ("-m", _, true) | ("-g" | "-i", None, true) => Some(port),
        (_, Some(p), _) => Some(p),
        (_, None, false) => Some(0),
        _ => None,
    };
    let find = match (v6, effective) {
        (false, Some(p)) => format!("{}:{p}", rs4(j)),
        (true, Some(p)) => format!("[{}]:{p}", rs6(j)),
        (false, None) => rs4(j),
        (true, None) => rs6(j),
    };
    Dest {
        text,
        find,
        forward,
    }
}

fn forward(rng: &mut Rng) -> &'static str {
    const FORWARDS: [&str; 6] = ["-g", "-i", "-m", "-m", "", "-i"];
    FORWARDS[rng.below(FORWARDS.len())]
}

/// `-a` for `d` with random weight, thresholds and tunnel options.
fn add_dest(rng: &mut Rng, svc: &Svc, d: &Dest) -> Args {
    let mut line = format!("-a {} -r {}", svc.spec(), d.text);
    if !d.forward.is_empty() {
        line.push(' ');
        line.push_str(d.forward);
    }
    if rng.chance(70) {
        line.push_str(&format!(" -w {}", rng.pick(WEIGHTS)));
    }
    line.push_str(&thresholds(rng));
    if d.forward == "-i" {
        line.push_str(&tunnel_options(rng));
    }
    cmd(line)
}

/// A virtual service of `sp`, numbered `k`.
fn new_service(rng: &mut Rng, sp: Space, k: usize) -> Svc {
    match rng.below(10) {
        0..=5 => Svc::v4(Proto::random(rng), &sp.v4(k), *rng.pick(SERVICE_PORTS)),
        6..=7 => Svc::v6(Proto::random(rng), &sp.v6(k), *rng.pick(SERVICE_PORTS)),
        _ => Svc::Mark {
            mark: sp.mark(k),
            v6: rng.chance(35),
        },
    }
}

/// Adds services with real servers, then edits, zeroes, lists and deletes some of them.
fn service_life(rng: &mut Gen, sp: Space) -> Sequence {
    let mut c = Vec::new();
    let n = if rng.chance(30) { 2 } else { 1 };
    for k in 1..=n {
        let svc = new_service(rng, sp, k);
        c.push(cmd(format!(
            "-A {}{}",
            svc.spec(),
            service_options(rng, &svc)
        )));
        let mut dests = Vec::new();
        for j in 0..rng.below(4) {
            let fwd = forward(rng);
            let d = dest(rng, &svc, 10 * k + j, fwd);
            c.push(add_dest(rng, &svc, &d));
            dests.push(d);
        }
        if rng.chance(30) {
            c.push(cmd(format!(
                "-E {}{}",
                svc.spec(),
                service_options(rng, &svc)
            )));
        }
        if let Some(d) = dests.first()
            && rng.chance(50)
        {
            let fwd = if d.forward == "-i" || d.text.contains('[') != svc.is_v6() {
                "-i"
            } else {
                *rng.pick(&["-g", "-m", "-i"])
            };
            let mut line = format!(
                "-e {} -r {} {fwd} -w {}",
                svc.spec(),
                d.find,
                rng.pick(WEIGHTS)
            );
            line.push_str(&thresholds(rng));
            if fwd == "-i" {
                line.push_str(&tunnel_options(rng));
            }
            c.push(cmd(line));
        }
        if dests.len() > 1 && rng.chance(30) {
            c.push(cmd(format!("-d {} -r {}", svc.spec(), dests[1].find)));
        }
        if rng.chance(20) {
            c.push(cmd(format!("-Ln {}", svc.spec())));
        }
        if rng.chance(10) {
            c.push(cmd(format!("-Z {}", svc.spec())));
        }
        if rng.chance(10) {
            c.push(cmd(format!("-D {}", svc.spec())));
        }
    }
    Sequence {
        name: String::new(),
        commands: c,
    }
}

/// Firewall-mark services, IPv4 and IPv6 (`-f N -6`), with `-M` on either side of `-6`.
fn fwmark_services(rng: &mut Gen, sp: Space) -> Sequence {
    let mut c = Vec::new();
    let v4 = Svc::Mark {
        mark: sp.mark(1),
        v6: false,
    };
    let v6 = Svc::Mark {
        mark: sp.mark(2),
        v6: true,
    };
    c.push(cmd(format!(
        "-A {}{}",
        v4.spec(),
        service_options(rng, &v4)
    )));
    c.push(cmd(format!(
        "-A -f {} -6 -s {} -p {} -M {}",
        sp.mark(2),
        rng.pick(SCHEDULERS),
        rng.pick(PERSISTENCE),
        rng.pick(MASKS_V6)
    )));
    // -M read before -6 is an IPv4 mask; -6 then resets it to 128.
    c.push(cmd(format!(
        "-A -f {} -M 64 -6 -p -s {}",
        sp.mark(3),
        rng.pick(SCHEDULERS)
    )));
    for (svc, n) in [(&v4, 2), (&v6, 1)] {
        for j in 0..n {
            let fwd = forward(rng);
            let d = dest(rng, svc, j, fwd);
            c.push(add_dest(rng, svc, &d));
        }
    }
    c.push(cmd(format!(
        "-a -f {} -6 -r [{}]:443 -m -w 4",
        sp.mark(3),
        rs6(7)
    )));
    // The same mark without -6 is another (missing or IPv4) service.
    c.push(cmd(format!("-a -f {} -r {}:80 -m", sp.mark(2), rs4(3))));
    c.push(cmd(format!("-E -f {} -6 -s rr -o", sp.mark(2))));
    c.push(cmd(format!("-L -n -f {} -6", sp.mark(2))));
    if rng.chance(50) {
        c.push(cmd(format!("-D -f {} -6", sp.mark(3))));
    }
    Sequence {
        name: String::new(),
        commands: c,
    }
}

/// Tunnel real servers of every encapsulation, across address families.
fn tunnels(rng: &mut Gen, sp: Space) -> Sequence {
    let mut c = Vec::new();
    let s4 = Svc::v4(Proto::random(rng), &sp.v4(1), *rng.pick(SERVICE_PORTS));
    let s6 = Svc::v6(Proto::random(rng), &sp.v6(1), 80);
    c.push(cmd(format!("-A {} -s {}", s4.spec(), rng.pick(SCHEDULERS))));
    c.push(cmd(format!("-A {} -s {}", s6.spec(), rng.pick(SCHEDULERS))));
    let variants = [
        "",
        " --tun-type ipip",
        " --tun-type gue --tun-port 6080",
        " --tun-type gue --tun-port 6080 --tun-csum",
        " --tun-type gue --tun-port 5555 --tun-remcsum",
        " --tun-type gue --tun-port 1 --tun-nocsum",
        " --tun-type gre",
        " --tun-type gre --tun-csum",
        " --tun-type gre --tun-nocsum",
    ];
    // Three encapsulations per sequence, in turn over the corpus; two of them also across
    // address families (IPv6 real servers behind the IPv4 service, and the reverse).
    for k in 0..3 {
        let j = (sp.0 * 3 + k) % variants.len();
        let v = variants[j];
        c.push(cmd(format!(
            "-a {} -r {}:8080 -i -w {j}{v}",
            s4.spec(),
            rs4(j)
        )));
        if k < 2 {
            c.push(cmd(format!("-a {} -r [{}]:8080 -i{v}", s4.spec(), rs6(j))));
            c.push(cmd(format!(
                "-a {} -r {} --ipip{v}",
                s6.spec(),
                rs4(j + 20)
            )));
        }
    }
    c.push(cmd(format!(
        "-a {} -r [{}] --ipip --tun-type gue --tun-port 6081 --tun-csum",
        s4.spec(),
        rs6(30)
    )));
    c.push(cmd(format!(
        "-e {} -r [{}]:{} -i --tun-type gre --tun-csum -w 9",
        s4.spec(),
        rs6(30),
        match &s4 {
            Svc::Addr { port, .. } => *port,
            Svc::Mark { .. } => 0,
        }
    )));
    c.push(cmd(format!("-Ln --tun-info {}", s4.spec())));
    Sequence {
        name: String::new(),
        commands: c,
    }
}

/// `-g` and `-i` real servers take the service's port; `-m` keeps its own.
fn port_forcing(rng: &mut Gen, sp: Space) -> Sequence {
    let svc = Svc::v4(Proto::Tcp, &sp.v4(1), 80);
    let mark = Svc::Mark {
        mark: sp.mark(1),
        v6: false,
    };
    let mut c = vec![
        cmd(format!("-A {} -s {}", svc.spec(), rng.pick(SCHEDULERS))),
        cmd(format!("-a {} -r {}:8080 -g", svc.spec(), rs4(1))),
        cmd(format!("-a {} -r {}:8080 -i", svc.spec(), rs4(2))),
        cmd(format!("-a {} -r {}:8080 -m", svc.spec(), rs4(3))),
        cmd(format!("-a {} -r {}", svc.spec(), rs4(4))),
        // The forced port is what finds it again.
        cmd(format!("-e {} -r {}:8080 -g -w 7", svc.spec(), rs4(1))),
        cmd(format!("-e {} -r {}:80 -g -w 7", svc.spec(), rs4(1))),
        cmd(format!("-e {} -r {}:8080 -g -w 2", svc.spec(), rs4(3))),
        cmd(format!("-A {} -s rr", mark.spec())),
        cmd(format!("-a {} -r {}:8080 -g", mark.spec(), rs4(1))),
        cmd(format!("-a {} -r {} -i", mark.spec(), rs4(2))),
        cmd(format!("-d {} -r {}:8080", svc.spec(), rs4(2))),
    ];
    if rng.chance(50) {
        c.push(cmd(format!("-d {} -r {}", svc.spec(), rs4(2))));
    }
    Sequence {
        name: String::new(),
        commands: c,
    }
}

/// Host and service names in, names out (`-L` without `-n` prints them).
fn names(rng: &mut Gen, sp: Space) -> Sequence {
    let lp = sp.local_port(0);
    let c = vec![
        cmd(format!("-A -t localhost:{lp} -s {}", rng.pick(SCHEDULERS))),
        cmd(format!("-a -t 127.0.0.1:{lp} -r localhost:http -m")),
        cmd(format!("-a -t localhost:{lp} -r 127.0.0.1:https -m -w 2")),
        cmd(format!("-a -t localhost:{lp} -r {}:domain -m", rs4(1))),
        cmd(format!("-A -u {}:domain -s rr", sp.v4(1))),
        cmd(format!("-a -u {}:53 -r localhost:5353 -m", sp.v4(1))),
        cmd(format!("-A -t {}:http", sp.v4(2))),
        cmd(format!("-a -t {}:www -r {}:http-alt -m", sp.v4(2), rs4(2))),
        cmd(format!(
            "-A --sctp-service [::1]:{} -s sh -b sh-port",
            lp + 1
        )),
        cmd(format!("-a --sctp-service [::1]:{} -r [::1]:80 -m", lp + 1)),
        cmd(format!("-A -u [{}]:sip -s mh", sp.v6(1))),
        cmd(format!("-Ln -t localhost:{lp}")),
        cmd(format!("-L -t localhost:{lp}")),
        cmd(format!("-L -u {}:domain --stats", sp.v4(1))),
        cmd(format!("-A -t {}:nosuchport", sp.v4(3))),
        cmd("-A -t nosuchhost.invalid:80 -s rr"),
        cmd(format!("-a -t {}:http -r nosuchhost.invalid -m", sp.v4(2))),
    ];
    Sequence {
        name: String::new(),
        commands: c,
    }
}

/// The same changes spelled with long options, `--opt=value`, and bundled short options.
fn spellings(rng: &mut Gen, sp: Space) -> Sequence {
    let svc = Svc::v4(Proto::Tcp, &sp.v4(1), 443);
    let udp = Svc::v4(Proto::Udp, &sp.v4(2), 53);
    let v6 = Svc::v6(Proto::Tcp, &sp.v6(1), 80);
    let (a, b) = sp.ab();
    let c = vec![
        cmd(format!(
            "--add-service {} --scheduler {} --persistent 600 --netmask 255.255.255.0",
            svc.long_spec(),
            rng.pick(SCHEDULERS)
        )),
        cmd(format!(
            "--add-server {} --real-server {}:443 --masquerading --weight 3 --u-threshold 100 --l-threshold 10",
            svc.long_spec(),
            rs4(1)
        )),
        cmd(format!(
            "--add-server {} --real-server {} --gatewaying --weight=4",
            svc.long_spec(),
            rs4(2)
        )),
        cmd(format!("-at {}:443 -r {} -i -w5", sp.v4(1), rs4(3))),
        cmd(format!(
            "--add-service {} --scheduler=sh --sched-flags=sh-port --ops",
            udp.long_spec()
        )),
        cmd(format!("-Au [{}]:53 -s rr", sp.v6(2))),
        cmd(format!(
            "--add-service --tcp-service=[{}]:80 --scheduler=lc",
            sp.v6(1)
        )),
        cmd(format!(
            "--add-server {} --real-server=[{}]:80 --ipip",
            v6.long_spec(),
            rs6(1)
        )),
        cmd(format!(
            "--edit-server {} --real-server {}:443 --masquerading --weight 9",
            svc.long_spec(),
            rs4(1)
        )),
        cmd(format!(
            "--edit-service {} --scheduler wrr",
            svc.long_spec()
        )),
        cmd(format!("--list --numeric {}", svc.long_spec())),
        cmd(format!("-ln {}", v6.spec())),
        cmd(format!("--zero {}", udp.long_spec())),
        cmd(format!(
            "--delete-server {} --real-server {}",
            svc.long_spec(),
            rs4(2)
        )),
        // inet_aton's other spellings of 10.a.b.3: 10.a.(b*256+3) and hexadecimal.
        cmd(format!("-A -t 10.{a}.{}:80 -s rr", b * 256 + 3)),
        cmd(format!("-a -t 0x0a.{a}.{b}.3:80 -r {} -m", rs4(5))),
        cmd(format!("-A -t 012.{a}.{b}.4:80 -s rr")),
        cmd(format!("--delete-service {}", udp.long_spec())),
    ];
    Sequence {
        name: String::new(),
        commands: c,
    }
}

/// Changing services and real servers in place, and the refusals that come with it.
fn edits(rng: &mut Gen, sp: Space) -> Sequence {
    let udp = Svc::v4(Proto::Udp, &sp.v4(1), 53);
    let tcp = Svc::v6(Proto::Tcp, &sp.v6(1), 8080);
    let c = vec![
        cmd(format!(
            "-A {} -s sh -b sh-fallback,sh-port -p 100 -o",
            udp.spec()
        )),
        cmd(format!("-E {} -s mh -b mh-fallback,mh-port", udp.spec())),
        cmd(format!("-E {} -s mh -b mh-port", udp.spec())),
        cmd(format!("-E {} -s rr", udp.spec())),
        cmd(format!(
            "-E {} -s sh -p -M 255.255.0.0 --pe sip",
            udp.spec()
        )),
        cmd(format!("-a {} -r {} -m -w 1", udp.spec(), rs4(1))),
        cmd(format!("-e {} -r {}:53 -g -w 0", udp.spec(), rs4(1))),
        cmd(format!(
            "-e {} -r {}:53 -i --tun-type gue --tun-port 7000",
            udp.spec(),
            rs4(1)
        )),
        cmd(format!("-e {} -r {}:53 -m -x 10 -y 5", udp.spec(), rs4(1))),
        cmd(format!("-e {} -r {}:53 -m -y 5", udp.spec(), rs4(1))),
        cmd(format!(
            "-A {} -s {} -p 30 -M 64",
            tcp.spec(),
            rng.pick(SCHEDULERS)
        )),
        cmd(format!("-a {} -r [{}]:80 -m", tcp.spec(), rs6(1))),
        cmd(format!("-a {} -r [{}]:80 -m", tcp.spec(), rs6(1))),
        cmd(format!("-E {} -s wlc", tcp.spec())),
        cmd(format!(
            "-E {} -s {} -p 30 -M 128",
            tcp.spec(),
            rng.pick(SCHEDULERS)
        )),
        cmd(format!("-e {} -r [{}]:80 -m -w 65535", tcp.spec(), rs6(1))),
        cmd(format!("-e {} -r [{}]:81 -m", tcp.spec(), rs6(1))),
        cmd(format!("-d {} -r [{}]:80", tcp.spec(), rs6(1))),
        cmd(format!("-d {} -r [{}]:80", tcp.spec(), rs6(1))),
        cmd(format!("-D {}", tcp.spec())),
        cmd(format!("-D {}", tcp.spec())),
        cmd(format!("-A {} -s rr", tcp.spec())),
    ];
    Sequence {
        name: String::new(),
        commands: c,
    }
}

/// Persistence masks at their edges: every service is deleted again, so a refusal of one of
/// them cannot make later commands differ.
fn masks(_: &mut Gen, sp: Space) -> Sequence {
    let mut c = Vec::new();
    for (k, (svc, opts)) in [
        (format!("-t {}:80", sp.v4(1)), "-p 60 -M 255.255.255.0"),
        // 0.0.0.0: one persistence template for all clients; the kernel takes any IPv4 mask.
        (format!("-t {}:80", sp.v4(2)), "-p 60 -M 0.0.0.0"),
        (format!("-u {}:53", sp.v4(5)), "-p -M 0"),
        (format!("-f {}", sp.mark(4)), "-M 0.0.0.0 -p 30"),
        (format!("-t {}:80", sp.v4(3)), "-p -M 255.255.255.255"),
        (format!("-t {}:80", sp.v4(4)), "-p -M 255.0.255.0"),
        (format!("-t [{}]:80", sp.v6(1)), "-p -M 1"),
        (format!("-f {} -6", sp.mark(2)), "-p -M 128"),
        // IPv6 takes a prefix length of 1..128: ipvsadm refuses 0.
        (format!("-t [{}]:80", sp.v6(2)), "-p -M 0"),
        (format!("-f {} -6", sp.mark(5)), "-p 10 -M 0"),
    ]
    .iter()
    .enumerate()
    {
        c.push(cmd(format!(
            "-A {svc} -s {} {opts}",
            SCHEDULERS[(sp.0 + k) % 13]
        )));
        c.push(cmd(format!("-Ln {svc}")));
        match k {
            0 => {
                c.push(cmd(format!("-E {svc} -s rr -p 30 -M 255.255.0.0")));
                c.push(cmd(format!("-Ln {svc}")));
                c.push(cmd(format!("-E {svc} -s rr -p 30 -M 0.0.0.0")));
                c.push(cmd(format!("-Ln {svc}")));
            }
            // -E without -M puts the default back, as ipvsadm sends /32.
            1 => {
                c.push(cmd(format!("-E {svc} -s rr -p 30")));
                c.push(cmd(format!("-Ln {svc}")));
                c.push(cmd(format!("-E {svc} -s rr -M 0.0.0.0")));
                c.push(cmd(format!("-Ln {svc}")));
            }
            _ => {}
        }
        c.push(cmd(format!("-D {svc}")));
    }
    // -M read before -6 is an IPv4 mask; -6 then resets it to 128.
    let m = sp.mark(6);
    c.push(cmd(format!("-A -f {m} -M 0.0.0.0 -6 -p 10 -s rr")));
    c.push(cmd(format!("-Ln -f {m} -6")));
    c.push(cmd(format!("-D -f {m} -6")));
    Sequence {
        name: String::new(),
        commands: c,
    }
}

/// Port-zero services (all ports, persistent only), IPv4 and IPv6.
fn port_zero(rng: &mut Gen, sp: Space) -> Sequence {
    let c = vec![
        cmd(format!(
            "-A -t {}:0 -p -s {}",
            sp.v4(1),
            rng.pick(SCHEDULERS)
        )),
        cmd(format!("-A -u {} -p 60", sp.v4(2))),
        cmd(format!("-A -t {} -p 120 -M 48", sp.v6(1))),
        cmd(format!("-a -t {}:0 -r {} -g", sp.v4(1), rs4(1))),
        cmd(format!("-a -t {}:0 -r {}:8080 -m", sp.v4(1), rs4(2))),
        cmd(format!("-a -u {} -r {} -i", sp.v4(2), rs4(3))),
        cmd(format!("-a -t [{}]:0 -r {} -g", sp.v6(1), rs6(1))),
        cmd(format!("-E -t {}:0 -s rr", sp.v4(1))),
        cmd(format!("-A -t {}:0 -s rr", sp.v4(3))),
        cmd(format!("-A -t {} -s rr", sp.v6(2))),
    ];
    Sequence {
        name: String::new(),
        commands: c,
    }
}

/// Malformed or refused commands naming `sp`'s addresses, where `-t VIP(1):80` exists with
/// one masquerading real server `RS(1):80`.
pub fn refusal_pool(sp: Space) -> Vec<String> {
    let svc = Svc::v4(Proto::Tcp, &sp.v4(1), 80);
    let s = svc.spec();
    let v = sp.v4(9);
    let r = rs4(1);
    vec![
        // addresses and ports
        format!("-A -t 10.1.0.300:80 -s rr"),
        format!("-A -t {v}:65536 -s rr"),
        format!("-A -t {v}:-1 -s rr"),
        format!("-A -t {v}: -s rr"),
        format!("-A -t :80 -s rr"),
        format!("-A -t {v}:80:90 -s rr"),
        format!("-A -t [{}]80 -s rr", sp.v6(9)),
        format!("-A -t [{}:80 -s rr", sp.v6(9)),
        format!("-A -t [2001:db8::zz]:80 -s rr"),
        format!("-A -t {} -s rr", sp.v6(9)),
        format!("-A -t 80 -s rr"),
        format!("-A -t {v}:0 -s rr"),
        format!("-E {s} -p 0"),
        format!("-a {s} -r {r}:70000 -m"),
        format!("-a {s} -r 10.1.0.300 -m"),
        format!("-a {s} -r 224.0.0.1 -m"),
        format!("-a {s} -r 0.0.0.0 -m"),
        format!("-a {s} -r 255.255.255.255 -m"),
        format!("-a {s} -r [fe80::1]:80 -i"),
        format!("-a {s} -r [ff02::1]:80 -i"),
        // weights and thresholds
        format!("-a {s} -r {r} -m -w -1"),
        format!("-a {s} -r {r} -m -w abc"),
        format!("-a {s} -r {r} -m -w 1.5"),
        format!("-a {s} -r {r} -m -w 0x10"),
        format!("-a {s} -r {r} -m -x -1"),
        format!("-a {s} -r {r} -m -y abc"),
        format!("-a {s} -r {r} -m -x 2147483648"),
        format!("-a {s} -r {r} -m -x 10 -y 20"),
        format!("-a {s} -r {r} -m -y 1"),
        // schedulers and their flags
        format!("-A -t {v}:80 -s bogus"),
        format!("-A -t {v}:80 -s twos"),
        format!("-A -t {v}:80 -s RR"),
        format!("-A -t {v}:80 -s averyveryverylongschedulername"),
        format!("-E {s} -s twos"),
        format!("-A -t {v}:80 -s rr -b bogus"),
        format!("-A -t {v}:80 -s rr -b sh-port"),
        format!("-A -t {v}:80 -s sh -b mh-port"),
        format!("-A -t {v}:80 -b sh-fallback"),
        format!("-A -t {v}:80 -s sh -b sh-port,bogus"),
        format!("-A -t {v}:80 -s mh -b mh-fallback,sh-port"),
        // persistence
        format!("-A -t {v}:80 -p abc"),
        format!("-A -t {v}:80 -p 2678401"),
        format!("-A -t {v}:80 -p -5"),
        format!("-A -t {v}:80 -p 10 -M 255.255.0.300"),
        format!("-A -t {v}:80 -p 10 -M bogus.invalid"),
        format!("-A -t [{}]:80 -p 10 -M 0", sp.v6(9)),
        format!("-A -t [{}]:80 -p 10 -M 129", sp.v6(9)),
        format!("-A -t {v}:80 --pe bogus"),
        format!("-A -t {v}:80 -p --pe nosuchpe"),
        // one-packet scheduling
        format!("-A -t {v}:80 -o"),
        format!("-A --sctp-service {v}:80 --ops"),
        format!("-E {s} -o"),
        // firewall marks
        format!("-A -f 0 -s rr"),
        format!("-A -f abc -s rr"),
        format!("-A -f -1 -s rr"),
        format!("-A -f 4294967296 -s rr"),
        format!("-A -t {v}:80 -6"),
        format!("-A -6 -f {}", sp.mark(9)),
        format!("-D -f {}", sp.mark(9)),
        // tunnels
        format!("-a {s} -r {r} -i --tun-type bogus"),
        format!("-a {s} -r {r} -i --tun-type gue"),
        format!("-a {s} -r {r} -i --tun-type gre --tun-remcsum"),
        format!("-a {s} -r {r} -i --tun-type ipip --tun-csum"),
        format!("-a {s} -r {r} -i --tun-type ipip --tun-port 6080"),
        format!("-a {s} -r {r} -i --tun-type gue --tun-port 0"),
        format!("-a {s} -r {r} -i --tun-type gue --tun-port 70000"),
        format!("-a {s} -r {r} -i --tun-type gue --tun-port 6080 --tun-nocsum --tun-csum"),
        format!("-a {s} -r {r} -i --tun-type gre --tun-csum --tun-nocsum"),
        format!("-a {s} -r {r} -m --tun-type gre"),
        format!("-a {s} -r {r} -g --tun-port 6080"),
        format!("-a {s} -r {r} --tun-csum"),
        // families
        format!("-a {s} -r [{}]:80 -m", rs6(1)),
        format!("-a {s} -r [{}]:80 -g", rs6(1)),
        format!("-a {s} -r {} -m", rs6(1)),
        // duplicates and missing things
        format!("-A {s} -s rr"),
        format!("-a {s} -r {r}:80 -m"),
        format!("-E -t {v}:80 -s rr"),
        format!("-D -t {v}:80"),
        format!("-a -t {v}:80 -r {r} -m"),
        format!("-e {s} -r {}:80 -m", rs4(99)),
        format!("-e -t {v}:80 -r {r} -m"),
        format!("-d {s} -r {}:80", rs4(99)),
        format!("-d -t {v}:80 -r {r}"),
        format!("-Z -t {v}:80"),
        format!("-Ln -t {v}:80"),
        format!("-L -u {v}:80 --stats"),
        // options in the wrong command, conflicts, and command-line shape
        format!("-A -t {v}:80 -r {r}"),
        format!("-A -t {v}:80 -w 1"),
        format!("-A -t {v}:80 -m"),
        format!("-a {s} -r {r} -s rr"),
        format!("-a {s} -r {r} -p"),
        format!("-a {s} -r {r} -o"),
        format!("-D {s} -s rr"),
        format!("-d {s} -r {r} -w 3"),
        format!("-C -t {v}:80"),
        format!("-C -n"),
        format!("-L -s rr"),
        format!("-L -n -r {r}"),
        format!("-Z -n"),
        format!("-S -c"),
        format!("-S {s}"),
        format!("-S --stats"),
        format!("-L -c --stats"),
        format!("-L -c {s}"),
        format!("-L --timeout --persistent-conn"),
        format!("-L --timeout --daemon"),
        format!("-L --daemon --rate"),
        format!("-L -c --thresholds"),
        format!("-A -t {v}:80 --mcast-interface lo"),
        format!("-A -a -t {v}:80"),
        format!("-L -A"),
        format!("-t {v}:80 -s rr"),
        format!("-A"),
        format!("-a {s}"),
        format!("-a -r {r}"),
        format!("-A -t"),
        format!("-A -t {v}:80 -s"),
        format!("-A -t {v}:80 extra"),
        format!("-A -t {v}:80 --bogus"),
        format!("-A -t {v}:80 -q"),
        format!("-A -t {v}:80 -t {}:80", sp.v4(8)),
        format!("-A -t {v}:80 -s rr -s wrr"),
        format!("-a {s} -r {r} -m -g"),
        format!("-a {s} -r {r} -m -w 1 -w 2"),
        format!("--list --stats --rate {s}"),
        format!("-L --stats --thresholds {s}"),
        format!("-Ln --sort --nosort {s}"),
        // the daemons' own checks, before anything is started
        format!("--start-daemon bogus"),
        format!("--stop-daemon bogus"),
        format!("--start-daemon master --syncid 256"),
        format!("--start-daemon master --syncid abc"),
        format!("--start-daemon master --mcast-port 0"),
        format!("--start-daemon master --mcast-ttl 0"),
        format!("--start-daemon master --mcast-ttl 256"),
        format!("--start-daemon master --sync-maxlen 65508"),
        format!("--start-daemon master --mcast-group 10.0.0.1"),
        format!("--start-daemon master --mcast-group ff02::zz"),
        format!("--start-daemon master --mcast-group 2001:db8::1"),
        format!("--start-daemon master -n"),
        format!("--stop-daemon master --mcast-interface lo"),
        format!("--start-daemon"),
        // --set's own checks
        format!("--set 1 2"),
        format!("--set"),
        format!("--set a b c"),
        format!("--set 1 2 3 4"),
        format!("--set 2678401 1 1"),
        format!("--set 1 2 3 -n"),
        format!("--set -1 2 3"),
    ]
}

/// The next few refusals of the pool, about the batch's target service. Every one fails
/// whatever the order, so the target stays as the batch's first sequence left it.
fn refusals(rng: &mut Gen, _: Space) -> Sequence {
    let pool = refusal_pool(rng.target);
    let mut c = Vec::new();
    // Each sequence takes the next handful, so the corpus walks the whole pool in turn.
    for _ in 0..REFUSALS_PER_SEQUENCE {
        c.push(cmd(&pool[rng.refusal % pool.len()]));
        rng.refusal += 1;
    }
    Sequence {
        name: String::new(),
        commands: c,
    }
}

/// Clears everything in the middle: first in its batch, so nothing else is lost.
fn clear_sequence(rng: &mut Rng, sp: Space) -> Sequence {
    let before = Svc::v4(Proto::Tcp, &sp.v4(1), 80);
    let after = Svc::v4(Proto::Udp, &sp.v4(2), 53);
    let mut c = vec![
        cmd(format!("-A {} -s {}", before.spec(), rng.pick(SCHEDULERS))),
        cmd(format!("-a {} -r {} -m", before.spec(), rs4(1))),
        cmd(format!("-A -f {} -s rr", sp.mark(1))),
        cmd(if rng.chance(50) { "-C" } else { "--clear" }),
        cmd(format!("-a {} -r {} -m", before.spec(), rs4(2))),
        cmd(format!("-A {} -s rr", after.spec())),
        cmd(format!("-a {} -r {} -m", after.spec(), rs4(3))),
    ];
    if rng.chance(30) {
        c.push(cmd("-C"));
        c.push(cmd(format!("-A {} -s rr", after.spec())));
    }
    // The target of the batch's refusals (see `refusal_pool`).
    c.push(cmd(format!("-A {} -s rr", before.spec())));
    c.push(cmd(format!("-a {} -r {}:80 -m", before.spec(), rs4(1))));
    Sequence {
        name: format!("clear#{}", sp.0),
        commands: c,
    }
}

/// `-Z` of everything and of single services.
fn zero_sequence(rng: &mut Rng, sp: Space) -> Sequence {
    let svc = Svc::v4(Proto::Tcp, &sp.v4(1), 80);
    let c = vec![
        cmd(format!("-A {} -s rr", svc.spec())),
        cmd(if rng.chance(50) { "-Z" } else { "--zero" }),
        cmd(format!("-Z {}", svc.spec())),
        cmd(format!("-Z -t {}:81", sp.v4(1))),
        cmd(format!("-Z -f {} -6", sp.mark(1))),
    ];
    Sequence {
        name: format!("zero#{}", sp.0),
        commands: c,
    }
}

/// `--set tcp tcpfin udp` and `-L --timeout`.
fn timeout_sequence(rng: &mut Rng, b: usize) -> Sequence {
    let mut c = Vec::new();
    let sets = [
        "--set 900 120 300",
        "--set 0 0 0",
        "--set 3600 60 120",
        "--set 1 1 1",
        "--set 2678400 0 5",
        "--set 0 30 0",
    ];
    c.push(cmd(sets[b % sets.len()]));
    c.push(cmd(rng.pick(&sets)));
    c.push(cmd("-L --timeout"));
    c.push(cmd("-L -n --timeout"));
    Sequence {
        name: format!("timeouts#b{b}"),
        commands: c,
    }
}

/// Sync daemons: started, listed, refused, stopped; some stay up for the final views. Last
/// in its batch: while a daemon runs the kernel refuses mixed-family real servers.
fn daemon_sequence(rng: &mut Rng, sp: Space, b: usize) -> Sequence {
    let svc = Svc::v4(Proto::Tcp, &sp.v4(1), 80);
    let mut c = vec![
        cmd(format!("-A {} -s rr", svc.spec())),
        cmd(format!(
            "--start-daemon master --mcast-interface lo --syncid {}",
            rng.range(0, 255)
        )),
        cmd("--start-daemon master --mcast-interface lo"),
        cmd("-L --daemon"),
        // Mixed families are refused while a daemon runs.
        cmd(format!("-a {} -r [{}]:80 -i", svc.spec(), rs6(1))),
        cmd(
            "--start-daemon backup --mcast-interface lo --syncid 9 --mcast-group 224.0.0.100 --mcast-port 9000 --mcast-ttl 3 --sync-maxlen 1400",
        ),
        cmd("-L --daemon"),
        cmd("--stop-daemon backup"),
        cmd("--stop-daemon backup"),
        cmd("--start-daemon backup"),
    ];
    match b % 4 {
        0 => {
            c.push(cmd("--stop-daemon master"));
            c.push(cmd(
                "--start-daemon backup --mcast-interface lo --syncid 200",
            ));
        }
        1 => {
            c.push(cmd(
                "--start-daemon backup --mcast-interface lo --mcast-group ff02::1:81 --mcast-port 8848",
            ));
        }
        2 => {
            c.push(cmd("--stop-daemon master --syncid 3"));
            c.push(cmd("--stop-daemon master"));
        }
        _ => {
            c.push(cmd(
                "--start-daemon backup --mcast-interface lo --sync-maxlen 65507",
            ));
            c.push(cmd("--stop-daemon master"));
            c.push(cmd(
                "--start-daemon master --mcast-interface lo --mcast-ttl 255",
            ));
        }
    }
    c.push(cmd("-L --daemon"));
    Sequence {
        name: format!("daemons#{}", sp.0),
        commands: c,
    }
}

type Template = (&'static str, fn(&mut Gen, Space) -> Sequence);

/// Scenarios whose value is in their exact content: run once per corpus.
const FIXED: &[Template] = &[
    ("port-forcing", port_forcing),
    ("names", names),
    ("spellings", spellings),
    ("edits", edits),
    ("port-zero", port_zero),
    ("masks", masks),
];

/// Randomized templates, repeated; the list's multiplicity is the draw's weight.
const RANDOM: &[Template] = &[
    ("services", service_life),
    ("refusals", refusals),
    ("fwmark", fwmark_services),
    ("tunnels", tunnels),
];

/// Templates drawn after each batch has had every one of [`RANDOM`]; the multiplicity is
/// the draw's weight.
const DRAWN: &[Template] = &[
    ("services", service_life),
    ("services", service_life),
    ("services", service_life),
    ("refusals", refusals),
];

/// A table using every feature once, for save/restore round trips: all protocols, IPv6,
/// firewall marks of both families, every scheduler, flags, persistence with masks and the
/// SIP engine, one-packet scheduling, every forwarding method and tunnel encapsulation,
/// mixed-family tunnels, weights and thresholds.
pub fn rich_table() -> Vec<Args> {
    let mut c = Vec::new();
    for (i, s) in SCHEDULERS.iter().enumerate() {
        c.push(cmd(format!("-A -t 10.9.0.{}:80 -s {s}", i + 1)));
        c.push(cmd(format!(
            "-a -t 10.9.0.{}:80 -r 172.16.9.{}:8080 -m -w {}",
            i + 1,
            i + 1,
            i * 7
        )));
    }
    for line in [
        "-A -u 10.9.1.1:53 -s sh -b sh-fallback,sh-port -o",
        "-a -u 10.9.1.1:53 -r 172.16.9.1:5353 -m -w 3 -x 100 -y 10",
        "-a -u 10.9.1.1:53 -r 172.16.9.2 -g -w 0",
        "-A --sctp-service 10.9.1.2:3868 -s mh -b mh-port",
        "-a --sctp-service 10.9.1.2:3868 -r 172.16.9.3:3868 -m",
        "-A -t 10.9.1.3:443 -s wlc -p 600 -M 255.255.255.0",
        "-a -t 10.9.1.3:443 -r 172.16.9.4 -i --tun-type gue --tun-port 6080 --tun-csum",
        "-a -t 10.9.1.3:443 -r 172.16.9.5 -i --tun-type gre --tun-nocsum -w 2",
        "-a -t 10.9.1.3:443 -r 172.16.9.6 -i --tun-type ipip -w 65535",
        "-a -t 10.9.1.3:443 -r [2001:db8:ff::6]:443 -i --tun-type gue --tun-port 5555 --tun-remcsum",
        "-A -u 10.9.1.4:5060 -s rr -p 30 --pe sip",
        "-a -u 10.9.1.4:5060 -r 172.16.9.7:5060 -m",
        "-A -t 10.9.1.6:80 -s rr -p 60 -M 0.0.0.0",
        "-a -t 10.9.1.6:80 -r 172.16.9.12 -g",
        "-A -t 10.9.1.5:0 -s lc -p",
        "-a -t 10.9.1.5:0 -r 172.16.9.8 -g",
        "-A -t [2001:db8:9::1]:80 -s wrr -p 120 -M 64",
        "-a -t [2001:db8:9::1]:80 -r [2001:db8:ff::1]:8080 -m -w 5",
        "-a -t [2001:db8:9::1]:80 -r 172.16.9.9 -i",
        "-A -u [2001:db8:9::2]:53 -s sh -o",
        "-a -u [2001:db8:9::2]:53 -r [2001:db8:ff::2]:53 -g",
        "-A --sctp-service [2001:db8:9::3]:9 -s nq",
        "-A -f 7 -s rr -p 60 -M 255.255.0.0",
        "-a -f 7 -r 172.16.9.10:80 -m -w 4",
        "-a -f 7 -r 172.16.9.11 -g",
        "-A -f 8 -6 -s sh -b sh-port -M 96 -p 90",
        "-a -f 8 -6 -r [2001:db8:ff::8]:80 -m",
        "-A -f 9 -s ovf -o",
        "-A -t 127.0.0.1:80 -s rr",
        "-a -t 127.0.0.1:80 -r 127.0.0.1:8080 -m",
    ] {
        c.push(cmd(line));
    }
    c
}

/// `ipvsadm -R` input restored onto a table that is not empty: `base` makes the table (one
/// command line each), then `input` goes to `-R` on stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreCase {
    pub name: String,
    pub base: Vec<Args>,
    pub input: String,
    /// The input's line (1-based) that fails at its point, if one does. It is always the
    /// last line: ipvsadm carries on after a line the kernel refuses and exits with the status
    /// of its last line, so only then is its exit status that line's.
    pub failing: Option<usize>,
}

impl RestoreCase {
    /// The input without its failing line: what ipvsadm applied before failing.
    pub fn applied_part(&self) -> String {
        let lines: Vec<&str> = self.input.lines().collect();
        let keep = self.failing.map_or(lines.len(), |n| n - 1);
        lines[..keep].iter().map(|l| format!("{l}\n")).collect()
    }
}

/// One restore scenario in space `sp`: its base, its input lines, and whether the last line
/// fails.
type RestoreTemplate = (&'static str, fn(Space) -> (Vec<String>, Vec<String>, bool));

/// The base most scenarios start from: `VIP(1):80` (rr) with real servers `RS(1):80` (masq)
/// and `RS(2)` (direct routing, so it takes port 80).
fn restore_base(sp: Space) -> Vec<String> {
    let v = sp.v4(1);
    vec![
        format!("-A -t {v}:80 -s rr"),
        format!("-a -t {v}:80 -r {}:80 -m", rs4(1)),
        format!("-a -t {v}:80 -r {} -g -w 2", rs4(2)),
    ]
}

/// A scenario on [`restore_base`]: `lines` with `{v1}`, `{v2}`, `{v9}` (a missing service),
/// `{r1}`, `{r2}`, `{r3}`, `{r9}` (a missing real server) filled in.
fn on_base(sp: Space, lines: &[&str], fails: bool) -> (Vec<String>, Vec<String>, bool) {
    let fill = |l: &&str| {
        l.replace("{v1}", &sp.v4(1))
            .replace("{v2}", &sp.v4(2))
            .replace("{v9}", &sp.v4(9))
            .replace("{r1}", &rs4(1))
            .replace("{r2}", &rs4(2))
            .replace("{r3}", &rs4(3))
            .replace("{r9}", &rs4(9))
    };
    (restore_base(sp), lines.iter().map(fill).collect(), fails)
}

/// Restores that succeed on top of the table, then restores whose last line the table (or
/// ipvsadm's own checks) refuses: every kind of refusal, some caused by an earlier line of
/// the same input.
const RESTORES: &[RestoreTemplate] = &[
    // Without a failing line: ipvsadm and ipvsctl must leave the same table.
    ("cleared first", |sp| {
        on_base(
            sp,
            &["-C", "-A -t {v1}:80 -s wrr", "-a -t {v1}:80 -r {r1}:80 -m"],
            false,
        )
    }),
    ("added beside", |sp| {
        on_base(
            sp,
            &["-A -t {v2}:80 -s wrr", "-a -t {v2}:80 -r {r3}:80 -m"],
            false,
        )
    }),
    ("edited in place", |sp| {
        on_base(
            sp,
            &[
                "-E -t {v1}:80 -s wlc -p 60",
                "-e -t {v1}:80 -r {r1}:80 -m -w 5",
                "-d -t {v1}:80 -r {r2}:80",
                "-a -t {v1}:80 -r {r3} -g -w 0",
            ],
            false,
        )
    }),
    ("deleted and made again", |sp| {
        on_base(
            sp,
            &[
                "-A -u {v2}:53 -s wlc",
                "-D -t {v1}:80",
                "-A -t {v1}:80 -s sh -b sh-port",
                "-a -t {v1}:80 -r {r2}:8080 -m",
                "-D -u {v2}:53",
            ],
            false,
        )
    }),
    ("zeroed at its point", |sp| {
        on_base(
            sp,
            &[
                "-a -t {v1}:80 -r {r3}:80 -m",
                "-Z -t {v1}:80",
                "-e -t {v1}:80 -r {r3}:80 -m -w 3",
            ],
            false,
        )
    }),
    ("fwmark and IPv6 beside", |sp| {
        let (m, v6) = (sp.mark(1), sp.v6(1));
        (
            vec![
                format!("-A -f {m} -s rr"),
                format!("-a -f {m} -r {}:80 -m", rs4(1)),
            ],
            vec![
                format!("-E -f {m} -s lc -p 30"),
                format!("-a -f {m} -r {} -g", rs4(2)),
                format!("-A -t [{v6}]:80 -s wrr"),
                format!("-a -t [{v6}]:80 -r [{}]:80 -m", rs6(1)),
            ],
            false,
        )
    }),
    // The last line fails.
    ("-A of an existing service", |sp| {
        on_base(sp, &["-A -t {v2}:80", "-A -t {v1}:80 -s wrr"], true)
    }),
    ("-A of an existing service, unknown scheduler", |sp| {
        on_base(sp, &["-A -t {v2}:80", "-A -t {v1}:80 -s nosuch"], true)
    }),
    ("-A of a service an earlier line made", |sp| {
        on_base(sp, &["-A -t {v2}:80", "-A -t {v2}:80 -s rr"], true)
    }),
    ("-E of a missing service", |sp| {
        on_base(
            sp,
            &["-a -t {v1}:80 -r {r3}:80 -m", "-E -t {v9}:80 -s rr"],
            true,
        )
    }),
    ("-E with an unknown scheduler", |sp| {
        on_base(sp, &["-A -t {v2}:80", "-E -t {v1}:80 -s nosuch"], true)
    }),
    ("-D of a missing service", |sp| {
        on_base(sp, &["-A -t {v2}:80", "-D -t {v9}:80"], true)
    }),
    ("-Z of a missing service", |sp| {
        on_base(sp, &["-A -t {v2}:80", "-Z -t {v9}:80"], true)
    }),
    ("-a of an existing real server", |sp| {
        on_base(
            sp,
            &["-A -t {v2}:80", "-a -t {v1}:80 -r {r1}:80 -m -w 3"],
            true,
        )
    }),
    ("-a to a missing service", |sp| {
        on_base(sp, &["-A -t {v2}:80", "-a -t {v9}:80 -r {r1}:80 -m"], true)
    }),
    ("-a to a service an earlier line deleted", |sp| {
        on_base(sp, &["-D -t {v1}:80", "-a -t {v1}:80 -r {r1}:80 -m"], true)
    }),
    ("-e of a missing real server", |sp| {
        on_base(
            sp,
            &["-a -t {v1}:80 -r {r3}:80 -m", "-e -t {v1}:80 -r {r9}:80 -m"],
            true,
        )
    }),
    ("-e on a missing service", |sp| {
        on_base(sp, &["-A -t {v2}:80", "-e -t {v9}:80 -r {r1}:80 -m"], true)
    }),
    ("-d of a missing real server", |sp| {
        on_base(sp, &["-A -t {v2}:80", "-d -t {v1}:80 -r {r9}:80"], true)
    }),
    ("-d of a direct-routing server by another port", |sp| {
        on_base(sp, &["-A -t {v2}:80", "-d -t {v1}:80 -r {r2}:8080"], true)
    }),
    ("-d on a missing service", |sp| {
        on_base(sp, &["-A -t {v2}:80", "-d -t {v9}:80 -r {r1}:80"], true)
    }),
    ("ipvsadm's own check after valid lines", |sp| {
        on_base(sp, &["-A -t {v2}:80", "-A -t {v9}:0"], true)
    }),
];

/// The restores onto non-empty tables that the differential test runs, each in its own
/// address space (starting after `first_space`, away from any other sequence's).
pub fn restore_cases(first_space: usize) -> Vec<RestoreCase> {
    RESTORES
        .iter()
        .enumerate()
        .map(|(i, (name, make))| {
            let sp = Space(first_space + i);
            let (base, input, fails) = make(sp);
            RestoreCase {
                name: format!("{name}#{}", sp.0),
                base: base.iter().map(cmd).collect(),
                failing: fails.then_some(input.len()),
                input: input.iter().map(|l| format!("{l}\n")).collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restores_cover_every_refusal_on_a_non_empty_table() {
        let cases = restore_cases(1000);
        assert!(cases.iter().all(|c| !c.base.is_empty()));
        let last_words = |c: &RestoreCase| {
            c.input
                .lines()
                .last()
                .map(|l| l.split(' ').next().unwrap_or_default().to_owned())
                .unwrap_or_default()
        };
        let failing: Vec<String> = cases
            .iter()
            .filter(|c| c.failing.is_some())
            .map(last_words)
            .collect();
        for option in ["-A", "-E", "-D", "-Z", "-a", "-e", "-d"] {
            assert!(
                failing.iter().any(|w| w == option),
                "no restore fails on {option}: {failing:?}"
            );
        }
        assert!(cases.iter().filter(|c| c.failing.is_none()).count() >= 5);
        for c in &cases {
            // The failing line is the last; what ipvsadm applied is the rest.
            if let Some(n) = c.failing {
                assert_eq!(n, c.input.lines().count(), "{}", c.name);
                assert_eq!(c.applied_part().lines().count(), n - 1, "{}", c.name);
            } else {
                assert_eq!(c.applied_part(), c.input, "{}", c.name);
            }
        }
        // Disjoint addresses: each case's base names only its own space.
        let a = &cases[1].base[0];
        assert!(a.iter().any(|w| w.starts_with(&Space(1001).v4(1))), "{a:?}");
    }

    #[test]
    fn the_same_seed_gives_the_same_corpus() {
        assert_eq!(Corpus::generate(7, 3, 20), Corpus::generate(7, 3, 20));
        assert_ne!(Corpus::generate(7, 3, 20), Corpus::generate(8, 3, 20));
    }

    #[test]
    fn batches_start_with_clear_and_end_with_daemons() {
        let corpus = Corpus::generate(1, 4, 15);
        for b in &corpus.batches {
            let first = &b.sequences[0];
            let last = &b.sequences[b.sequences.len() - 1];
            assert!(first.name.starts_with("clear#"), "{}", first.name);
            assert!(last.name.starts_with("daemons#"), "{}", last.name);
            // Nothing but the last sequence starts a daemon.
            for s in &b.sequences[..b.sequences.len() - 1] {
                for c in &s.commands {
                    let starts = c.first().is_some_and(|w| w == "--start-daemon");
                    let valid_start = starts && c.iter().any(|w| w == "--mcast-interface");
                    assert!(!valid_start, "{}: {c:?}", s.name);
                }
            }
        }
    }

    #[test]
    fn sequences_keep_to_their_own_addresses() {
        let corpus = Corpus::generate(3, 2, 30);
        let mut seen = std::collections::HashMap::new();
        for b in &corpus.batches {
            for s in &b.sequences {
                for c in &s.commands {
                    if c.first().is_some_and(|w| w == "-A")
                        && let Some(i) = c.iter().position(|w| w == "-t")
                        && let Some(addr) = c.get(i + 1)
                        && addr.starts_with("10.")
                        && addr.split('.').count() == 4
                    {
                        let net: String =
                            addr.rsplit_once('.').map(|x| x.0).unwrap_or("").to_owned();
                        let owner = seen.entry(net.clone()).or_insert_with(|| s.name.clone());
                        // Refusals name their batch's target, and change nothing.
                        if !s.name.starts_with("refusals") {
                            assert_eq!(owner, &s.name, "{net} used by two sequences");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_option_and_scheduler_appears() {
        let corpus = Corpus::differential();
        let words: std::collections::HashSet<&str> = corpus.all_words().collect();
        let wanted = [
            "-A",
            "-E",
            "-D",
            "-C",
            "-a",
            "-e",
            "-d",
            "-Z",
            "-L",
            "-Ln",
            "-t",
            "-u",
            "--sctp-service",
            "-f",
            "-6",
            "-s",
            "-p",
            "-M",
            "-b",
            "-o",
            "--pe",
            "-r",
            "-g",
            "-i",
            "-m",
            "-w",
            "-x",
            "-y",
            "--tun-type",
            "--tun-port",
            "--tun-nocsum",
            "--tun-csum",
            "--tun-remcsum",
            "--set",
            "--start-daemon",
            "--stop-daemon",
            "--mcast-interface",
            "--syncid",
            "--mcast-group",
            "--mcast-port",
            "--mcast-ttl",
            "--sync-maxlen",
            "--timeout",
            "--daemon",
            "twos",
            "bogus",
            "sh-fallback,sh-port",
            "mh-fallback,mh-port",
            "gue",
            "gre",
            "ipip",
            "sip",
            "--stats",
            "--tun-info",
        ];
        for w in wanted.iter().chain(SCHEDULERS) {
            assert!(words.contains(w), "{w} never appears");
        }
    }

    #[test]
    fn zero_persistence_masks_appear() {
        let corpus = Corpus::differential();
        let lines: Vec<String> = corpus
            .batches
            .iter()
            .flat_map(|b| b.commands())
            .map(|(_, c)| c.join(" "))
            .collect();
        let has = |what: &str, ok: &dyn Fn(&str) -> bool| {
            assert!(lines.iter().any(|l| ok(l)), "no {what}");
        };
        has("IPv4 -A with -M 0.0.0.0", &|l| {
            l.starts_with("-A -t 10.") && l.contains("-M 0.0.0.0")
        });
        has("-E to -M 0.0.0.0", &|l| {
            l.starts_with("-E ") && l.contains("-M 0.0.0.0")
        });
        has("IPv4 -M 0", &|l| {
            l.starts_with("-A -u 10.") && l.ends_with("-M 0")
        });
        has("IPv6 -M 0", &|l| {
            l.starts_with("-A -t [") && l.ends_with("-M 0")
        });
        has("fwmark -M 0.0.0.0 before -6", &|l| {
            l.contains("-M 0.0.0.0 -6")
        });
        assert!(
            rich_table()
                .iter()
                .any(|c| c.join(" ").contains("-p 60 -M 0.0.0.0"))
        );
    }

    #[test]
    fn ipv6_and_mixed_family_tunnels_appear() {
        let corpus = Corpus::differential();
        let mixed = corpus
            .batches
            .iter()
            .flat_map(|b| b.commands())
            .any(|(_, c)| {
                c.first().is_some_and(|w| w == "-a")
                    && c.get(2).is_some_and(|a| a.starts_with("10."))
                    && c.iter().any(|w| w.starts_with("[2001:db8:ff::"))
                    && c.iter().any(|w| w == "-i")
            });
        assert!(mixed, "no IPv6 real server behind an IPv4 tunnel service");
        assert!(corpus.all_words().any(|w| w.starts_with("[2001:db8:")));
    }

    #[test]
    fn corpus_size_is_hundreds_of_sequences() {
        let corpus = Corpus::differential();
        println!("{corpus}");
        assert_eq!(corpus.sequence_count(), BATCHES * (PER_BATCH + 4));
        assert!(corpus.sequence_count() >= MIN_SEQUENCES, "{corpus}");
        assert!(
            corpus.command_count() > 5 * corpus.sequence_count(),
            "{corpus}"
        );
    }

    #[test]
    fn every_refusal_is_walked() {
        let corpus = Corpus::differential();
        let refusals = corpus
            .batches
            .iter()
            .flat_map(|b| &b.sequences)
            .filter(|s| s.name.starts_with("refusals#"))
            .count();
        let pool = refusal_pool(Space(1)).len();
        assert!(
            refusals * REFUSALS_PER_SEQUENCE >= pool,
            "{refusals} sequences cannot walk {pool} refusals"
        );
    }

    #[test]
    fn no_weight_above_65535() {
        // Debian's ipvsadm takes up to 2^31-1 where ipvsctl keeps 65535: not comparable.
        let corpus = Corpus::differential();
        for b in &corpus.batches {
            for (s, c) in b.commands() {
                for w in c.windows(2) {
                    if w[0] == "-w"
                        && let Ok(n) = w[1].parse::<i64>()
                    {
                        assert!(n <= 65535, "{}: {c:?}", s.name);
                    }
                }
            }
        }
    }

    #[test]
    fn rich_table_covers_every_scheduler_and_tunnel() {
        let lines: Vec<String> = rich_table().iter().map(|c| c.join(" ")).collect();
        for s in SCHEDULERS {
            assert!(lines.iter().any(|l| l.ends_with(&format!("-s {s}"))), "{s}");
        }
        for t in [
            "gue",
            "gre",
            "ipip",
            "--pe sip",
            "-f 8 -6",
            "--sctp-service",
            "-o",
        ] {
            assert!(lines.iter().any(|l| l.contains(t)), "{t}");
        }
    }

    #[test]
    fn words_split_on_spaces() {
        assert_eq!(words(" -A  -t 1.2.3.4:80 "), ["-A", "-t", "1.2.3.4:80"]);
        assert!(words("").is_empty());
    }
}
