//! The declared-state commands as a user runs them: the real `ipvsctl` binary against real
//! agents on the real kernel. An exported table (built with ipvsadm itself, every option it
//! has) applies back as no change and rebuilds the same table on an empty node; apply's
//! options behave as documented; a drain waits for a held connection; revisions roll back;
//! events stream; and a fleet rollout stops at the first node that cannot apply.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use ipvs_e2e::{Agent, Backend, ChildGuard, Netns, bin_dir, ipvsadm, stderr, stdout, wait_for};

/// The table, in ipvsadm's own command lines: every protocol, fwmark services of both
/// families, an IPv6 service, persistence with netmasks (0.0.0.0 included), the sip
/// persistence engine, one-packet scheduling, sh and mh flags, every forwarding method and
/// tunnel type, thresholds and weights.
const RICH: &[&str] = &[
    "-A -t 10.10.0.1:80 -s wrr",
    "-a -t 10.10.0.1:80 -r 10.20.0.1:8080 -m -w 5 -x 100 -y 10",
    "-a -t 10.10.0.1:80 -r 10.20.0.2:80 -g -w 0",
    "-a -t 10.10.0.1:80 -r 10.20.0.3:80 -i -w 2 --tun-type gue --tun-port 6080 --tun-nocsum",
    "-a -t 10.10.0.1:80 -r 10.20.0.4:80 -i -w 3 --tun-type gre",
    "-a -t 10.10.0.1:80 -r 10.20.0.5:80 -i",
    "-A -t 10.10.0.1:443 -s sh -b sh-fallback,sh-port -p 600 -M 255.255.255.0",
    "-a -t 10.10.0.1:443 -r 10.20.0.1:443 -m -x 50",
    "-a -t 10.10.0.1:443 -r 10.20.0.2:443 -m -w 4 -x 20 -y 5",
    "-A -u 10.10.0.1:5060 -s rr -p 120 --pe sip",
    "-a -u 10.10.0.1:5060 -r 10.20.0.1:5060 -m",
    "-A -u 10.10.0.1:53 -s lc -o",
    "-a -u 10.10.0.1:53 -r 10.20.0.6:53 -g -w 3",
    "-A -t 10.10.0.2:0 -s wlc -p -M 0.0.0.0",
    "-a -t 10.10.0.2:0 -r 10.20.0.7 -g",
    "-A --sctp-service 10.10.0.1:3868 -s mh -b mh-fallback,mh-port",
    "-a --sctp-service 10.10.0.1:3868 -r 10.20.0.8:3868 -m -w 4",
    "-A -t [2001:db8:10::1]:80 -s wlc -p 300 -M 64",
    "-a -t [2001:db8:10::1]:80 -r [2001:db8:20::1]:8080 -m -w 2 -x 1000 -y 100",
    "-a -t [2001:db8:10::1]:80 -r [2001:db8:20::2]:80 -g",
    "-a -t [2001:db8:10::1]:80 -r 10.20.0.9 -i --tun-type gue --tun-port 6081 --tun-remcsum",
    "-A -f 1 -s rr",
    "-a -f 1 -r 10.20.0.10 -g",
    "-a -f 1 -r 10.20.0.11:8080 -m -w 2",
    "-A -f 1 -6 -s sed -p 60",
    "-a -f 1 -6 -r [2001:db8:20::3]:0 -g -w 7",
    "-A -f 2 -s dh",
    "-a -f 2 -r 10.20.0.12 -i --tun-type gre --tun-csum",
];

/// The links of the rich node, made with ipvsctl's iproute2-style commands.
const RICH_LINKS: &[&str] = &[
    "link add vip0 type dummy",
    "link set vip0 up",
    "addr add 10.10.0.1/32 dev vip0",
    "addr add 10.10.0.2 dev vip0",
    "addr add 2001:db8:10::1/64 dev vip0",
    "link add vip1 type dummy",
    "link set vip1 up",
    "addr add 10.30.0.1/24 dev vip1",
    // Left down.
    "link add vip2 type dummy",
    "addr add 10.40.0.1/32 dev vip2",
];

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

fn ipvsadm_ok(line: &str) -> Result<String> {
    let out = ipvsadm(&words(line))?;
    ensure!(
        out.status.success(),
        "ipvsadm {line} failed ({}): {}",
        out.status,
        stderr(&out)
    );
    Ok(stdout(&out))
}

/// A directory of its own for a test's files and agent states.
fn scratch(name: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ipvs-e2e-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// An agent keeping its revisions in `dir/state-NAME`.
fn agent(dir: &Path, name: &str, extra: &[&str]) -> Result<Agent> {
    let state = dir.join(format!("state-{name}"));
    let state = state.to_str().context("state dir")?;
    let mut args = vec!["--state-dir", state];
    args.extend_from_slice(extra);
    Agent::start_with(&args)
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().context("path")
}

fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let p = dir.join(name);
    std::fs::write(&p, text)?;
    Ok(p)
}

/// The listings that say everything the kernel keeps of a table: `-S` leaves out thresholds,
/// and names a tunnel's type but not all of its settings.
fn full_table() -> Result<String> {
    let mut out = ipvsadm_ok("-Sn")?;
    out.push_str(&ipvsadm_ok("-Ln --thresholds")?);
    out.push_str(&ipvsadm_ok("-Ln --tun-info")?);
    Ok(out)
}

fn status_of(o: &Output) -> Option<i32> {
    o.status.code()
}

/// `ipvsctl` against `agent` with `input` on its standard input.
fn ipvsctl_with_input(agent: &Agent, args: &[&str], input: &str) -> Result<Output> {
    let mut child = Command::new(bin_dir().join("ipvsctl"))
        .args(args)
        .env("IPVSCTL_AGENT", agent.address())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawn ipvsctl")?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(input.as_bytes())?;
    Ok(child.wait_with_output()?)
}

#[test]
fn export_round_trip_on_a_rich_table() -> Result<()> {
    let dir = scratch("export")?;
    let original;
    let exported_yaml;
    let exported_toml;
    {
        let _ns = Netns::new()?;
        let a = agent(&dir, "a", &[])?;
        for line in RICH_LINKS {
            a.ipvsctl_ok(&words(line))?;
        }
        for line in RICH {
            ipvsadm_ok(line)?;
        }
        original = full_table()?;
        let saved = ipvsadm_ok("-Sn")?;
        ensure!(
            saved.lines().count() == RICH.len(),
            "every line is in the table:\n{saved}"
        );

        let yaml = dir.join("node.yaml");
        let out = a.ipvsctl_ok(&["export", "-f", path_str(&yaml)?])?;
        ensure!(out.is_empty(), "export -f prints nothing: {out:?}");
        exported_yaml = std::fs::read_to_string(&yaml)?;
        // The same node on stdout, and in TOML.
        ensure!(
            a.ipvsctl_ok(&["export"])? == exported_yaml,
            "stdout export differs from the file"
        );
        exported_toml = a.ipvsctl_ok(&["export", "--format", "toml"])?;
        let json = a.ipvsctl_ok(&["export", "-o", "json"])?;
        ensure!(
            json.starts_with("{\n  \"links\": [") && json.contains("\"netmask\": \"0.0.0.0\""),
            "{json}"
        );
        let toml = write(&dir, "node.toml", &exported_toml)?;
        for want in ["vip0", "vip1", "10.30.0.1/24", "2001:db8:10::1/64"] {
            ensure!(
                exported_yaml.contains(want) && exported_toml.contains(want),
                "{want} exported:\n{exported_yaml}\n{exported_toml}"
            );
        }
        // A declared link is brought up: a link that is down cannot be declared as it is.
        ensure!(
            !exported_yaml.contains("vip2") && !exported_toml.contains("vip2"),
            "the down link is not exported:\n{exported_yaml}"
        );

        // Applying the node's own export changes nothing, in either format: the first apply
        // only records the declaration, a second one has nothing to do at all.
        let applied = a.ipvsctl_ok(&["apply", "-f", path_str(&yaml)?])?;
        ensure!(
            applied == "no changes to the node; the declaration is recorded as revision 1\n",
            "apply of the export:\n{applied}\nfile:\n{exported_yaml}"
        );
        let again = a.ipvsctl_ok(&["apply", "-f", path_str(&toml)?])?;
        ensure!(again == "no changes (revision 1)\n", "{again}");
        for file in [&yaml, &toml] {
            let diff = a.ipvsctl_ok(&["diff", "-f", path_str(file)?, "-o", "json"])?;
            ensure!(
                diff == "{\n  \"revision\": 1,\n  \"changes\": []\n}\n",
                "diff of {file:?}:\n{diff}"
            );
        }
        ensure!(
            full_table()? == original,
            "the table is byte-identical after the apply"
        );
        ensure!(
            a.ipvsctl_ok(&["export"])? == exported_yaml,
            "a second export is the same file"
        );
    }

    // The exported file builds the same node on an empty one.
    let _ns = Netns::new()?;
    ensure!(ipvsadm_ok("-Sn")?.is_empty(), "a fresh namespace is empty");
    let b = agent(&dir, "b", &[])?;
    let toml = dir.join("node.toml");
    let applied = b.ipvsctl_ok(&["apply", "-f", path_str(&toml)?])?;
    ensure!(
        applied.ends_with("\nrevision 1\n"),
        "a fresh node is built:\n{applied}"
    );
    let rebuilt = full_table()?;
    ensure!(
        rebuilt == original,
        "the same table on the fresh node:\n{rebuilt}\nwanted:\n{original}"
    );
    let yaml = dir.join("node.yaml");
    let diff = b.ipvsctl_ok(&["diff", "-f", path_str(&yaml)?])?;
    ensure!(diff == "no changes (revision 1)\n", "{diff}");
    ensure!(
        b.ipvsctl_ok(&["export"])? == exported_yaml,
        "the fresh node exports the same file"
    );
    Ok(())
}

const V1: &str = "\
links:
  - name: dummy1
    addresses: [192.168.100.1/32]
services:
  - tcp: 192.168.100.1:80
    scheduler: rr
    servers:
      - address: 10.1.1.1:80
        forward: masq
      - address: 10.1.1.2:80
        forward: masq
        weight: 2
  - udp: 192.168.100.1:53
    servers:
      - address: 10.1.1.3
";

/// V1 without the UDP service and the second real server.
const V2: &str = "\
links:
  - name: dummy1
    addresses: [192.168.100.1/32]
services:
  - tcp: 192.168.100.1:80
    scheduler: rr
    servers:
      - address: 10.1.1.1:80
        forward: masq
";

#[test]
fn apply_dry_run_prune_stale_revision_and_a_bad_file() -> Result<()> {
    let dir = scratch("apply")?;
    let _ns = Netns::new()?;
    let a = agent(&dir, "a", &[])?;
    let v1 = write(&dir, "v1.yaml", V1)?;
    let v2 = write(&dir, "v2.yaml", V2)?;
    let v1 = path_str(&v1)?;
    let v2 = path_str(&v2)?;

    // A dry run prints the plan and makes none of it.
    let dry = a.ipvsctl_ok(&["apply", "-f", v1, "--dry-run"])?;
    // The same file on standard input.
    let piped = ipvsctl_with_input(&a, &["apply", "-f", "-", "--dry-run"], V1)?;
    ensure!(piped.status.success() && stdout(&piped) == dry, "{piped:?}");
    ensure!(
        dry == "would: ip link add dummy1 type dummy\n\
                would: ip link set dummy1 up\n\
                would: ip addr add 192.168.100.1/32 dev dummy1\n\
                would: -A -t 192.168.100.1:80 -s rr\n\
                would: -a -t 192.168.100.1:80 -r 10.1.1.1:80 -m -w 1\n\
                would: -a -t 192.168.100.1:80 -r 10.1.1.2:80 -m -w 2\n\
                would: -A -u 192.168.100.1:53 -s wlc\n\
                would: -a -u 192.168.100.1:53 -r 10.1.1.3:53 -g -w 1\n\
                dry run against revision 0\n",
        "{dry}"
    );
    ensure!(ipvsadm_ok("-Sn")?.is_empty(), "the dry run made no service");
    ensure!(
        a.ipvsctl(&["link", "show", "dummy1"])?.status.code() != Some(0),
        "the dry run made no link"
    );
    ensure!(
        a.ipvsctl_ok(&["state"])?
            .starts_with("revision 0 (nothing applied yet)\n"),
        "the dry run recorded no revision"
    );

    let applied = a.ipvsctl_ok(&["apply", "-f", v1])?;
    ensure!(applied.ends_with("\nrevision 1\n"), "{applied}");
    // What other tools add is not the declaration's: a service and a real server.
    ipvsadm_ok("-A -t 192.168.100.1:8080 -s rr")?;
    ipvsadm_ok("-a -t 192.168.100.1:8080 -r 10.1.1.9:8080 -m")?;
    ipvsadm_ok("-a -t 192.168.100.1:80 -r 10.1.1.8:80 -m")?;

    // Without --prune nothing is removed (the file is still recorded); with it, only what
    // an earlier revision declared.
    let kept = a.ipvsctl_ok(&["apply", "-f", v2])?;
    ensure!(
        kept == "no changes to the node; the declaration is recorded as revision 2\n",
        "{kept}"
    );
    ensure!(
        ipvsadm_ok("-Sn")?.contains("-A -u 192.168.100.1:53"),
        "no prune, no removal"
    );
    let pruned = a.ipvsctl_ok(&["apply", "-f", v2, "--prune"])?;
    ensure!(
        pruned
            == "-d -t 192.168.100.1:80 -r 10.1.1.2:80\n\
                -D -u 192.168.100.1:53\n\
                revision 3\n",
        "{pruned}"
    );
    let table = ipvsadm_ok("-Sn")?;
    ensure!(
        table
            == "-A -t 192.168.100.1:80 -s rr\n\
                -a -t 192.168.100.1:80 -r 10.1.1.1:80 -m -w 1\n\
                -a -t 192.168.100.1:80 -r 10.1.1.8:80 -m -w 1\n\
                -A -t 192.168.100.1:8080 -s rr\n\
                -a -t 192.168.100.1:8080 -r 10.1.1.9:8080 -m -w 1\n",
        "what ipvsadm made survives the prune:\n{table}"
    );

    // A writer based on an old revision is refused, and nothing changes.
    let stale = a.ipvsctl(&["apply", "-f", v1, "--revision", "2"])?;
    ensure!(
        status_of(&stale) == Some(255)
            && stderr(&stale) == "ipvsctl: the revision moved: expected 2, the current one is 3\n"
            && stdout(&stale).is_empty(),
        "{stale:?}"
    );
    ensure!(ipvsadm_ok("-Sn")? == table, "a stale apply changes nothing");
    let current = a.ipvsctl_ok(&["apply", "-f", v2, "--revision", "3"])?;
    ensure!(current == "no changes (revision 3)\n", "{current}");

    // A bad file is refused before anything is sent.
    let bad = write(
        &dir,
        "bad.yaml",
        "services:\n  - tcp: 192.168.100.1:80\n    servers:\n      - address: 10.1.1.1:80\n        weight: 70000\n",
    )?;
    let bad = path_str(&bad)?;
    let refused = a.ipvsctl(&["apply", "-f", bad])?;
    ensure!(
        status_of(&refused) == Some(2)
            && stderr(&refused)
                == format!(
                    "ipvsctl: {bad}: services[0].servers[0].weight: 70000 is out of range 0..65535\n"
                ),
        "{refused:?}"
    );
    ensure!(ipvsadm_ok("-Sn")? == table, "a bad file changes nothing");
    ensure!(
        a.ipvsctl_ok(&["state"])?
            .starts_with("revision 3, applied "),
        "no revision for a bad file"
    );
    Ok(())
}

/// Lines of a child's stdout as they come.
struct Lines {
    rx: mpsc::Receiver<String>,
    stderr: std::thread::JoinHandle<String>,
    child: ChildGuard,
}

impl Lines {
    fn spawn(agent: &Agent, args: &[&str]) -> Result<Self> {
        let mut child = Command::new(bin_dir().join("ipvsctl"))
            .args(args)
            .env("IPVSCTL_AGENT", agent.address())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawn ipvsctl")?;
        let out = child.stdout.take().context("stdout")?;
        let mut err = child.stderr.take().context("stderr")?;
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            text
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Lines {
            rx,
            stderr,
            child: ChildGuard(child),
        })
    }

    fn next(&self, within: Duration) -> Result<String> {
        self.rx
            .recv_timeout(within)
            .with_context(|| format!("no line within {within:?}"))
    }

    /// The exit status, the lines not read yet, and stderr, once stdout has ended.
    fn finish(mut self) -> Result<(Option<i32>, Vec<String>, String)> {
        let mut rest = Vec::new();
        while let Ok(line) = self.rx.recv_timeout(Duration::from_secs(30)) {
            rest.push(line);
        }
        let code = self.child.0.wait()?.code();
        let stderr = self
            .stderr
            .join()
            .map_err(|_| anyhow::anyhow!("the stderr reader panicked"))?;
        Ok((code, rest, stderr))
    }
}

const VIP: &str = "192.168.100.1:80";

fn drain_spec(b2_weight: u32) -> String {
    format!(
        "\
links:
  - name: dummy1
    addresses: [192.168.100.1/32]
services:
  - tcp: {VIP}
    scheduler: rr
    servers:
      - address: 127.0.0.1:8081
        forward: masq
      - address: 127.0.0.1:8082
        forward: masq
        weight: {b2_weight}
"
    )
}

/// The weight of real server `rip` in `ipvsadm -Ln`, if it is listed.
fn listed_weight(rip: &str) -> Result<Option<u32>> {
    let out = ipvsadm_ok(&format!("-Ln -t {VIP}"))?;
    Ok(out.lines().find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        match cols.as_slice() {
            ["->", addr, _, weight, ..] if *addr == rip => weight.parse().ok(),
            _ => None,
        }
    }))
}

#[test]
fn drain_waits_for_a_held_connection_then_removes_or_keeps() -> Result<()> {
    let dir = scratch("drain")?;
    let _ns = Netns::new()?;
    let _b1 = Backend::start("127.0.0.1:8081".parse()?, "backend 1")?;
    let _b2 = Backend::start("127.0.0.1:8082".parse()?, "backend 2")?;
    let a = agent(&dir, "a", &[])?;
    // Only backend 1 takes new connections while the held one opens.
    let spec = write(&dir, "drain.yaml", &drain_spec(0))?;
    a.ipvsctl_ok(&["apply", "-f", path_str(&spec)?])?;
    let vip: SocketAddr = VIP.parse()?;
    // Connected and silent: established until it is closed.
    let held = TcpStream::connect_timeout(&vip, Duration::from_secs(5))?;

    let drain = Lines::spawn(
        &a,
        &[
            "drain",
            "-t",
            VIP,
            "-r",
            "127.0.0.1:8081",
            "--timeout",
            "30s",
        ],
    )?;
    let first = drain.next(Duration::from_secs(30))?;
    ensure!(
        first == "draining 127.0.0.1:8081: weight 0 (was 1)",
        "{first}"
    );
    let waiting = drain.next(Duration::from_secs(30))?;
    ensure!(
        waiting.starts_with("127.0.0.1:8081: 1 active, ") && waiting.ends_with(" s"),
        "{waiting}"
    );
    ensure!(
        listed_weight("127.0.0.1:8081")? == Some(0),
        "weight 0 while draining"
    );
    drop(held);
    let done = loop {
        let line = drain.next(Duration::from_secs(30))?;
        if !line.contains(" active, ") {
            break line;
        }
    };
    ensure!(
        done.starts_with("127.0.0.1:8081: drained in ")
            && done.ends_with(" s, removed (revision 2)"),
        "{done}"
    );
    let (code, rest, err) = drain.finish()?;
    ensure!(
        code == Some(0) && rest.is_empty() && err.is_empty(),
        "drain exits 0: {rest:?} {err}"
    );
    ensure!(
        listed_weight("127.0.0.1:8081")?.is_none(),
        "removed:\n{}",
        ipvsadm_ok("-Ln")?
    );
    let revisions = a.ipvsctl_ok(&["state", "revisions"])?;
    ensure!(
        revisions
            .lines()
            .nth(1)
            .is_some_and(|l| { l.trim_start().starts_with("2 ") && l.ends_with("  drain") }),
        "{revisions}"
    );

    // --keep leaves the server at weight 0; the revision says so too.
    let spec = write(&dir, "drain2.yaml", &drain_spec(2))?;
    let spec = path_str(&spec)?;
    a.ipvsctl_ok(&["apply", "-f", spec])?;
    let kept = Lines::spawn(
        &a,
        &[
            "drain",
            "-t",
            VIP,
            "-r",
            "127.0.0.1:8082",
            "--timeout",
            "30s",
            "--keep",
            "-o",
            "json",
        ],
    )?;
    let first = kept.next(Duration::from_secs(30))?;
    ensure!(
        first.starts_with('{')
            && first.contains("\"server\":\"127.0.0.1:8082\"")
            && first.contains("\"phase\":\"weight-zero\"")
            && first.contains("\"previous_weight\":2"),
        "{first}"
    );
    let done = kept.next(Duration::from_secs(30))?;
    ensure!(
        done.contains("\"phase\":\"done\"")
            && done.contains("\"removed\":false")
            && done.contains("\"timed_out\":false")
            && done.contains("\"revision\":4"),
        "{done}"
    );
    let (code, rest, err) = kept.finish()?;
    ensure!(
        code == Some(0) && rest.is_empty() && err.is_empty(),
        "drain --keep exits 0: {rest:?} {err}"
    );
    ensure!(listed_weight("127.0.0.1:8082")? == Some(0), "kept at 0");
    let diff = a.ipvsctl_ok(&["diff", "-f", spec])?;
    ensure!(
        diff == "-e -t 192.168.100.1:80 -r 127.0.0.1:8082 -m -w 2\n",
        "revision 4 declares weight 0:\n{diff}"
    );

    // A server the service does not have.
    let missing = a.ipvsctl(&["drain", "-t", VIP, "-r", "127.0.0.1:8089"])?;
    ensure!(
        status_of(&missing) == Some(255)
            && stderr(&missing)
                == "ipvsctl: real server 127.0.0.1:8089 of service TCP 192.168.100.1:80 not found\n",
        "{missing:?}"
    );
    Ok(())
}

#[test]
fn a_drain_that_times_out_removes_the_server_anyway() -> Result<()> {
    let dir = scratch("drain-timeout")?;
    let _ns = Netns::new()?;
    let _b1 = Backend::start("127.0.0.1:8081".parse()?, "backend 1")?;
    let a = agent(&dir, "a", &[])?;
    let spec = write(&dir, "drain.yaml", &drain_spec(0))?;
    a.ipvsctl_ok(&["apply", "-f", path_str(&spec)?])?;
    let _held = TcpStream::connect_timeout(&VIP.parse()?, Duration::from_secs(5))?;
    let drain = Lines::spawn(
        &a,
        &[
            "drain",
            "-t",
            VIP,
            "-r",
            "127.0.0.1:8081",
            "--timeout",
            "2s",
        ],
    )?;
    let first = drain.next(Duration::from_secs(30))?;
    ensure!(
        first == "draining 127.0.0.1:8081: weight 0 (was 1)",
        "{first}"
    );
    let (code, rest, err) = drain.finish()?;
    let (last, waiting) = rest.split_last().context("a last line")?;
    ensure!(
        !waiting.is_empty()
            && waiting
                .iter()
                .all(|l| l.starts_with("127.0.0.1:8081: 1 active, ")),
        "{rest:?}"
    );
    ensure!(
        last == "127.0.0.1:8081: timed out after 2 s with 1 active; removed (revision 2)"
            && code == Some(0)
            && err.is_empty(),
        "{code:?} {rest:?} {err}"
    );
    ensure!(listed_weight("127.0.0.1:8081")?.is_none(), "removed");
    Ok(())
}

#[test]
fn a_drain_that_cannot_be_recorded_fails() -> Result<()> {
    let dir = scratch("drain-lost")?;
    let _ns = Netns::new()?;
    let _b1 = Backend::start("127.0.0.1:8081".parse()?, "backend 1")?;
    let a = agent(&dir, "a", &[])?;
    let spec = write(&dir, "drain.yaml", &drain_spec(0))?;
    a.ipvsctl_ok(&["apply", "-f", path_str(&spec)?])?;
    let held = TcpStream::connect_timeout(&VIP.parse()?, Duration::from_secs(5))?;
    let drain = Lines::spawn(&a, &["drain", "-t", VIP, "-r", "127.0.0.1:8081"])?;
    ensure!(
        drain
            .next(Duration::from_secs(30))?
            .starts_with("draining ")
    );
    ensure!(drain.next(Duration::from_secs(30))?.contains(" 1 active, "));
    // The revisions can no longer be written (as with a full or read-only disk).
    let revisions = dir.join("state-a").join("revisions");
    std::fs::remove_dir_all(&revisions)?;
    drop(held);
    let (code, rest, err) = drain.finish()?;
    ensure!(
        rest.iter().all(|l| l.contains(" active, ")),
        "no drained line: {rest:?}"
    );
    ensure!(
        code == Some(255)
            && err
                == format!(
                    "ipvsctl: the changes were made but revision 2 could not be recorded in {}: \
                     No such file or directory (os error 2)\n",
                    revisions.display()
                ),
        "{code:?} {err}"
    );
    Ok(())
}

const S1: &str = "\
links:
  - name: dummy1
    addresses: [192.168.100.1/32]
services:
  - tcp: 192.168.100.1:80
    scheduler: rr
    servers:
      - address: 10.1.1.1:80
        forward: masq
";

const S2: &str = "\
links:
  - name: dummy1
    addresses: [192.168.100.1/32]
services:
  - tcp: 192.168.100.1:80
    scheduler: rr
    servers:
      - address: 10.1.1.1:80
        forward: masq
        weight: 3
      - address: 10.1.1.2:80
        forward: masq
  - udp: 192.168.100.1:53
    scheduler: rr
    servers:
      - address: 10.1.1.3:53
";

#[test]
fn state_revisions_rollback_and_events() -> Result<()> {
    let dir = scratch("state")?;
    let _ns = Netns::new()?;
    let a = agent(&dir, "a", &["--drift-interval", "1"])?;
    let s1 = write(&dir, "s1.yaml", S1)?;
    let s2 = write(&dir, "s2.yaml", S2)?;
    let (s1, s2) = (path_str(&s1)?, path_str(&s2)?);

    let none = a.ipvsctl(&["state", "rollback"])?;
    ensure!(
        status_of(&none) == Some(255)
            && stderr(&none) == "ipvsctl: there is no earlier revision to roll back to\n",
        "{none:?}"
    );
    a.ipvsctl_ok(&["apply", "-f", s1])?;
    let first = ipvsadm_ok("-Sn")?;
    a.ipvsctl_ok(&["apply", "-f", s2])?;

    let state = a.ipvsctl_ok(&["state"])?;
    let lines: Vec<&str> = state.lines().collect();
    ensure!(
        lines.len() == 4
            && lines[0].starts_with("revision 2, applied ")
            && lines[0].ends_with('Z')
            && lines[1] == "declared: 1 link, 2 services, 0 attachments"
            && lines[2] == "drift mode: report"
            && lines[3].starts_with("last check: "),
        "{state}"
    );
    let revisions = a.ipvsctl_ok(&["state", "revisions"])?;
    let rows: Vec<Vec<&str>> = revisions
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    ensure!(
        rows.len() == 3
            && rows[0] == ["REVISION", "APPLIED", "AT", "ORIGIN"]
            && rows[1].first() == Some(&"2")
            && rows[1].last() == Some(&"apply")
            && rows[2].first() == Some(&"1"),
        "{revisions}"
    );

    // Back to revision 1: its changes are printed and the table is revision 1's again.
    let rolled = a.ipvsctl_ok(&["state", "rollback"])?;
    ensure!(
        rolled
            == "-e -t 192.168.100.1:80 -r 10.1.1.1:80 -m -w 1\n\
                -d -t 192.168.100.1:80 -r 10.1.1.2:80\n\
                -D -u 192.168.100.1:53\n\
                revision 3\n",
        "{rolled}"
    );
    ensure!(ipvsadm_ok("-Sn")? == first, "the table is revision 1's");
    let revisions = a.ipvsctl_ok(&["state", "revisions"])?;
    ensure!(
        revisions
            .lines()
            .nth(1)
            .is_some_and(|l| l.trim_start().starts_with("3 ") && l.ends_with("  rollback to 1")),
        "{revisions}"
    );
    let json = a.ipvsctl_ok(&["state", "-o", "json"])?;
    ensure!(json.contains("\"revision\": 3,"), "{json}");
    // Forward again to a named revision, as a dry run first.
    let would = a.ipvsctl_ok(&["state", "rollback", "2", "--dry-run"])?;
    ensure!(
        would
            == "would: -a -t 192.168.100.1:80 -r 10.1.1.2:80 -m -w 1\n\
                would: -e -t 192.168.100.1:80 -r 10.1.1.1:80 -m -w 3\n\
                would: -A -u 192.168.100.1:53 -s rr\n\
                would: -a -u 192.168.100.1:53 -r 10.1.1.3:53 -g -w 1\n\
                dry run against revision 3\n",
        "{would}"
    );
    ensure!(ipvsadm_ok("-Sn")? == first, "a dry run changes nothing");
    let stale = a.ipvsctl(&["state", "rollback", "2", "--revision", "2"])?;
    ensure!(
        status_of(&stale) == Some(255)
            && stderr(&stale) == "ipvsctl: the revision moved: expected 2, the current one is 3\n",
        "{stale:?}"
    );
    let forward = a.ipvsctl_ok(&["state", "rollback", "2", "--revision", "3"])?;
    ensure!(
        forward.ends_with("\nrevision 4\n")
            && ipvsadm_ok("-Sn")?.contains("-A -u 192.168.100.1:53"),
        "{forward}"
    );

    // Events: a watcher sees each apply as it happens.
    let events = Lines::spawn(&a, &["state", "events"])?;
    // The watcher subscribes on its own time: apply until it has seen one.
    let mut made = Vec::new();
    let line = wait_for(Duration::from_secs(60), || {
        let file = if made.len() % 2 == 0 { s1 } else { s2 };
        let out = a.ipvsctl_ok(&["apply", "-f", file])?;
        let revision = out
            .lines()
            .last()
            .and_then(|l| l.strip_prefix("revision "))
            .with_context(|| format!("no new revision: {out}"))?;
        made.push(revision.to_owned());
        Ok(events.next(Duration::from_secs(2)).ok())
    })?;
    let (time, what) = line.split_once(' ').context("a time first")?;
    ensure!(time.ends_with('Z') && time.contains('T'), "{line}");
    ensure!(
        made.iter()
            .any(|r| what == format!("applied revision {r} (apply)")),
        "{line} is one of revisions {made:?}"
    );

    // Drift behind the agent's back: reported (the agent's default), in events and state.
    a.ipvsctl_ok(&["apply", "-f", s1, "--prune"])?;
    ensure!(
        ipvsadm_ok("-Sn")? == first,
        "pruned back to revision 1's table"
    );
    ipvsadm_ok("-d -t 192.168.100.1:80 -r 10.1.1.1:80")?;
    let missing = "-a -t 192.168.100.1:80 -r 10.1.1.1:80 -m -w 1";
    let found = loop {
        let line = events.next(Duration::from_secs(30))?;
        if line.contains(" drift ") {
            break line;
        }
    };
    ensure!(
        found.split_once(' ').map(|(_, what)| what) == Some(&format!("drift found: {missing}")),
        "{found}"
    );
    let state = a.ipvsctl_ok(&["state"])?;
    ensure!(
        state
            .lines()
            .nth(3)
            .is_some_and(|l| l.starts_with("last check: ") && l.ends_with(": 1 difference"))
            && state.lines().nth(4) == Some(&format!("  {missing}")),
        "{state}"
    );
    let repaired = a.ipvsctl_ok(&["apply", "-f", s1])?;
    ensure!(
        repaired.starts_with(&format!("{missing}\nrevision ")),
        "{repaired}"
    );
    ensure!(ipvsadm_ok("-Sn")? == first, "repaired");
    drop(events);
    Ok(())
}

const FLEET_SPEC: &str = "\
links:
  - name: dummy1
    addresses: [192.168.100.1/32, \"2001:db8::1/128\"]
services:
  - tcp: 192.168.100.1:80
    scheduler: rr
    servers:
      - address: 10.1.1.1:80
        forward: masq
";

#[test]
fn fleet_rollout_stops_at_the_node_that_cannot_apply() -> Result<()> {
    let dir = scratch("fleet")?;
    let mut agents = Vec::new();
    for i in 0..3 {
        let _ns = Netns::new()?;
        if i == 1 {
            // New links on this node get no IPv6: the kernel refuses the IPv6 address.
            std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1")
                .context("disable IPv6 on new links")?;
        }
        agents.push(agent(&dir, &format!("lb{i}"), &[])?);
    }
    let spec = write(&dir, "node.yaml", FLEET_SPEC)?;
    let mut inv = String::from("agents:\n");
    for (i, a) in agents.iter().enumerate() {
        inv.push_str(&format!(
            "  - name: lb{i}\n    address: {}\n    labels: {{role: lb}}\n",
            a.address()
        ));
    }
    let inv = write(&dir, "fleet.yaml", &inv)?;
    let out = Command::new(bin_dir().join("ipvsctl"))
        .args([
            "--fleet",
            path_str(&inv)?,
            "--selector",
            "role=lb",
            "--max-parallel",
            "1",
            "apply",
            "-f",
            path_str(&spec)?,
        ])
        .env_remove("IPVSCTL_AGENT")
        .stdin(Stdio::null())
        .output()?;
    let report = stderr(&out);
    let lines: Vec<&str> = report.lines().collect();
    ensure!(status_of(&out) == Some(255), "exit status: {out:?}");
    let [head, lb0, lb1, lb2, sum] = lines.as_slice() else {
        bail!("a table of three nodes and a summary:\n{report}");
    };
    ensure!(
        *head == "NODE  ROLLOUT"
            && *lb0 == "lb0   applied"
            && *lb2 == "lb2   not started"
            && *sum == "fleet: rollout stopped after batch 2 of 3: 1 of 3 nodes applied",
        "{report}"
    );
    ensure!(
        *lb1 == ("lb1   failed: apply exited 255: change 4 of 6 failed: \
             \"ip addr add 2001:db8::1/128 dev dummy1\": \
             cannot add address 2001:db8::1/128: IPv6 is disabled on link \"dummy1\"; \
             the 3 earlier change(s) were undone: the node is as it was"),
        "{report}"
    );
    ensure!(
        stdout(&out).lines().all(|l| l.starts_with("lb0 ")),
        "only lb0 printed changes:\n{}",
        stdout(&out)
    );

    // lb0 has it all; lb1 is as it was; lb2 was never touched.
    let saved = |a: &Agent| a.ipvsctl_ok(&["-Sn"]);
    ensure!(
        saved(&agents[0])?
            == "-A -t 192.168.100.1:80 -s rr\n-a -t 192.168.100.1:80 -r 10.1.1.1:80 -m -w 1\n",
        "lb0 applied"
    );
    for a in &agents[1..] {
        ensure!(saved(a)?.is_empty(), "no service on {}", a.address());
        let links = a.ipvsctl_ok(&["link", "show"])?;
        ensure!(!links.contains("dummy1"), "no link:\n{links}");
        ensure!(
            a.ipvsctl_ok(&["state"])?
                .starts_with("revision 0 (nothing applied yet)"),
            "no revision on {}",
            a.address()
        );
    }
    Ok(())
}
