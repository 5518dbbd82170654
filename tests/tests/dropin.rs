//! ipvsctl as a drop-in for ipvsadm on the same kernel: every option of the save format and
//! every list view, the connection table, timeouts and sync daemons, and `-R` (read whole,
//! applied as a difference, refused whole).

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ipvs_e2e::{
    Agent, Backend, Netns, bin_dir, http_get, ipvsadm, run_ok, stderr, stdout, table_snapshot,
    wait_for,
};

/// A table that uses every option ipvsadm can save.
const EVERY_OPTION: &[&str] = &[
    "-A -t 10.1.0.1:80 -s rr",
    "-a -t 10.1.0.1:80 -r 10.2.0.1:8080 -m -w 3 -x 100 -y 10",
    "-a -t 10.1.0.1:80 -r 10.2.0.2 -g -w 0",
    "-a -t 10.1.0.1:80 -r 10.2.0.3 -i",
    "-a -t 10.1.0.1:80 -r 10.2.0.4 -i --tun-type gue --tun-port 6080 --tun-csum",
    "-a -t 10.1.0.1:80 -r 10.2.0.5 -i --tun-type gre --tun-csum",
    "-a -t 10.1.0.1:80 -r 10.2.0.8 -i --tun-type gue --tun-port 6081 --tun-remcsum",
    "-A -t 10.1.0.2:443 -s wlc -p 600 -M 255.255.255.0",
    "-A -u 10.1.0.3:53 -s sh -o -b sh-fallback,sh-port",
    "-a -u 10.1.0.3:53 -r 10.2.0.9:5353 -m -w 65535",
    "-A -u 10.1.0.4:5060 -s rr -p 60 --pe sip",
    "-A --sctp-service 10.1.0.5:3868 -s lc",
    "-A -t [2001:db8::1]:80 -s mh -b mh-port",
    "-a -t [2001:db8::1]:80 -r [2001:db8::10]:8080 -m -w 5",
    "-a -t [2001:db8::1]:80 -r 10.2.0.6 -i",
    "-A -t [2001:db8::2]:0 -s wrr -p 300 -M 64",
    "-A -f 7 -s wrr",
    "-a -f 7 -r 10.2.0.7 -g -w 2",
    "-A -f 8 -6 -s rr -p 120 -M 96",
    "-a -f 8 -6 -r [2001:db8::20]:80 -m",
    "-A -t 10.1.0.6:22 -s rr -b flag-3",
];

const VIEWS: &[&str] = &[
    "-Sn",
    "-S",
    "-Ln",
    "-L",
    "-Ln --stats",
    "-Ln --rate",
    "-Ln --exact --stats",
    "-Ln --thresholds",
    "-Ln --persistent-conn",
    "-Ln --tun-info",
    "-Ln -t 10.1.0.1:80 --tun-info",
    "-Ln -f 8 -6",
    "-Ln -t [2001:db8::1]:80",
];

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// Runs `ipvsctl` against `agent` with `input` on stdin.
fn ipvsctl_stdin(agent: &Agent, args: &[&str], input: &str) -> Result<Output> {
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

/// Runs the same command line through both tools and requires the same stdout, stderr and
/// exit status.
fn same(agent: &Agent, line: &str) -> Result<Output> {
    let args = words(line);
    let ours = agent.ipvsctl(&args)?;
    let theirs = ipvsadm(&args)?;
    assert_eq!(
        (stdout(&ours), stderr(&ours), ours.status.code()),
        (stdout(&theirs), stderr(&theirs), theirs.status.code()),
        "`{line}`: ipvsctl (left) differs from ipvsadm (right)"
    );
    Ok(ours)
}

#[test]
fn every_option_saves_and_lists_like_ipvsadm() -> Result<()> {
    let _ns = Netns::new()?;
    let agent = Agent::start()?;
    for line in EVERY_OPTION {
        let out = ipvsadm(&words(line))?;
        ensure!(out.status.success(), "ipvsadm {line}: {}", stderr(&out));
    }
    for view in VIEWS {
        same(&agent, view)?;
    }
    Ok(())
}

#[test]
fn what_ipvsctl_saves_it_restores() -> Result<()> {
    let saved = {
        let _ns = Netns::new()?;
        let agent = Agent::start()?;
        for line in EVERY_OPTION {
            agent.ipvsctl_ok(&words(line))?;
        }
        agent.ipvsctl_ok(&["-Sn"])?
    };
    let _ns = Netns::new()?;
    let agent = Agent::start()?;
    let out = ipvsctl_stdin(&agent, &["-R"], &saved)?;
    ensure!(
        out.status.success(),
        "ipvsctl -R: {}\nagent log:\n{}",
        stderr(&out),
        agent.log()
    );
    assert_eq!(table_snapshot()?, saved);
    Ok(())
}

#[test]
fn timeouts_and_sync_daemons_match_ipvsadm() -> Result<()> {
    let _ns = Netns::new()?;
    let agent = Agent::start()?;
    same(&agent, "-L --timeout")?;
    agent.ipvsctl_ok(&words("--set 901 121 301"))?;
    same(&agent, "-L --timeout")?;
    let t = stdout(&ipvsadm(&words("-L --timeout"))?);
    assert_eq!(t, "Timeout (tcp tcpfin udp): 901 121 301\n");
    // 0 leaves a value as it is.
    agent.ipvsctl_ok(&words("--set 0 60 0"))?;
    assert_eq!(
        stdout(&ipvsadm(&words("-L --timeout"))?),
        "Timeout (tcp tcpfin udp): 901 60 301\n"
    );

    run_ok("ip", &["link", "add", "sync0", "type", "dummy"])?;
    run_ok("ip", &["link", "set", "sync0", "multicast", "on", "up"])?;
    same(&agent, "-L --daemon")?;
    agent.ipvsctl_ok(&words(
        "--start-daemon master --mcast-interface sync0 --syncid 7",
    ))?;
    same(&agent, "-L --daemon")?;
    let out = ipvsadm(&words(
        "--start-daemon backup --mcast-interface sync0 --syncid 9 --mcast-port 8850 --mcast-ttl 2",
    ))?;
    ensure!(out.status.success(), "ipvsadm --start-daemon: {out:?}");
    let daemons = same(&agent, "-L --daemon")?;
    ensure!(
        stdout(&daemons).starts_with("master sync daemon (mcast=sync0, syncid=7"),
        "{}",
        stdout(&daemons)
    );
    // The same mistakes, the same words and statuses.
    same(&agent, "--start-daemon master --mcast-interface sync0")?;
    agent.ipvsctl_ok(&words("--stop-daemon master"))?;
    agent.ipvsctl_ok(&words("--stop-daemon backup"))?;
    same(&agent, "-L --daemon")?;
    same(&agent, "--stop-daemon backup")?;
    same(&agent, "--start-daemon master --mcast-interface nosuch0")?;
    Ok(())
}

const VIP: &str = "192.168.100.1:80";
const SEED: &str = "-A -t 192.168.100.1:80 -s rr\n\
                    -a -t 192.168.100.1:80 -r 127.0.0.1:8081 -m -w 1\n\
                    -a -t 192.168.100.1:80 -r 127.0.0.1:8082 -m -w 1\n";

fn vip_link() -> Result<()> {
    run_ok("ip", &["link", "add", "dummy1", "type", "dummy"])?;
    run_ok("ip", &["addr", "add", "192.168.100.1/32", "dev", "dummy1"])?;
    run_ok("ip", &["link", "set", "dummy1", "up"])?;
    Ok(())
}

/// The Conns column of the service row in `-ln --stats`.
fn service_conns(agent: &Agent) -> Result<u64> {
    let out = agent.ipvsctl_ok(&["-ln", "--stats"])?;
    let line = out
        .lines()
        .find(|l| l.starts_with("TCP  192.168.100.1:80"))
        .with_context(|| format!("no service row in {out}"))?;
    Ok(line
        .split_whitespace()
        .nth(2)
        .context("no Conns column")?
        .parse()?)
}

#[test]
fn connection_table_matches_ipvsadm() -> Result<()> {
    let _ns = Netns::new()?;
    let agent = Agent::start()?;
    let _b1 = Backend::start("127.0.0.1:8081".parse()?, "one\n")?;
    let _b2 = Backend::start("127.0.0.1:8082".parse()?, "two\n")?;
    vip_link()?;
    let out = ipvsctl_stdin(&agent, &["-R"], SEED)?;
    ensure!(out.status.success(), "ipvsctl -R: {}", stderr(&out));
    let vip: SocketAddr = VIP.parse()?;
    for _ in 0..3 {
        http_get(vip)?;
    }
    for view in ["-Lcn", "-Lc", "-Lcn --persistent-conn"] {
        // Entries count down once a second: read ipvsadm just before and just after ipvsctl,
        // so that ours matches one of the two even when a second boundary falls in between.
        let mut last = None;
        for _ in 0..10 {
            let args = words(view);
            let before = ipvsadm(&args)?;
            let ours = agent.ipvsctl(&args)?;
            let after = ipvsadm(&args)?;
            let theirs = if stdout(&ours) == stdout(&before) {
                before
            } else {
                after
            };
            if stdout(&ours) == stdout(&theirs) {
                last = None;
                ensure!(
                    stdout(&ours).lines().count() >= 5,
                    "{view}: no connections listed\n{}",
                    stdout(&ours)
                );
                break;
            }
            last = Some((stdout(&ours), stdout(&theirs)));
        }
        if let Some((ours, theirs)) = last {
            assert_eq!(ours, theirs, "{view}");
        }
    }
    Ok(())
}

#[test]
fn restore_changes_only_what_differs() -> Result<()> {
    let _ns = Netns::new()?;
    let agent = Agent::start()?;
    let _b1 = Backend::start("127.0.0.1:8081".parse()?, "one\n")?;
    let _b2 = Backend::start("127.0.0.1:8082".parse()?, "two\n")?;
    vip_link()?;
    let out = ipvsctl_stdin(&agent, &["-R"], SEED)?;
    ensure!(out.status.success(), "ipvsctl -R: {}", stderr(&out));
    assert_eq!(table_snapshot()?, SEED);
    let vip: SocketAddr = VIP.parse()?;
    for _ in 0..4 {
        http_get(vip)?;
    }
    wait_for(Duration::from_secs(15), || {
        Ok((service_conns(&agent)? == 4).then_some(()))
    })?;

    // On top of the table, one more service: the plan is that one service.
    let one = "-A -u 10.9.9.8:53 -s wlc\n";
    let plan = ipvsctl_stdin(&agent, &["-R", "--dry-run"], one)?;
    ensure!(plan.status.success(), "dry run: {}", stderr(&plan));
    assert_eq!(stdout(&plan), one);
    assert_eq!(table_snapshot()?, SEED);

    // Replacing the table with the same table plus one service: the plan is that one
    // service, and nothing changes.
    let more = format!("{SEED}-A -u 10.9.9.9:53 -s wlc\n");
    let plan = ipvsctl_stdin(&agent, &["-R", "--replace", "--dry-run"], &more)?;
    ensure!(plan.status.success(), "dry run: {}", stderr(&plan));
    let plan = stdout(&plan);
    assert_eq!(plan, "-A -u 10.9.9.9:53 -s wlc\n");
    assert_eq!(table_snapshot()?, SEED);

    // Applied: the new service is there, the old one kept its counters.
    let out = ipvsctl_stdin(&agent, &["-R", "--replace"], &more)?;
    ensure!(out.status.success(), "ipvsctl -R: {}", stderr(&out));
    assert_eq!(
        table_snapshot()?,
        format!("{SEED}-A -u 10.9.9.9:53 -s wlc\n")
    );
    assert_eq!(service_conns(&agent)?, 4);

    // A real server dropped from the input is pruned; a weight changed is edited.
    let fewer = "-A -t 192.168.100.1:80 -s rr\n-a -t 192.168.100.1:80 -r 127.0.0.1:8081 -m -w 5\n";
    let out = ipvsctl_stdin(&agent, &["-R", "--replace"], fewer)?;
    ensure!(out.status.success(), "ipvsctl -R: {}", stderr(&out));
    assert_eq!(table_snapshot()?, fewer);
    assert_eq!(service_conns(&agent)?, 4);
    Ok(())
}

#[test]
fn a_bad_restore_touches_nothing() -> Result<()> {
    let _ns = Netns::new()?;
    let agent = Agent::start()?;
    let out = ipvsctl_stdin(&agent, &["-R"], SEED)?;
    ensure!(out.status.success(), "ipvsctl -R: {}", stderr(&out));
    let before = table_snapshot()?;
    let cases: &[(&str, i32, &str)] = &[
        (
            "-A -t 10.5.0.1:80\n-a -t 10.5.0.1:80 -r 10.6.0.1 -w 70000\n",
            2,
            "line 2: illegal weight specified\n",
        ),
        (
            "-A -t 10.5.0.1:80\n-a -t 10.5.0.2:80 -r 10.6.0.1\n",
            255,
            "line 2: Service not defined\n",
        ),
    ];
    for (input, status, message) in cases {
        let out = ipvsctl_stdin(&agent, &["-R"], input)?;
        assert_eq!(
            (out.status.code(), stderr(&out)),
            (Some(*status), message.to_string()),
            "{input}"
        );
        assert_eq!(table_snapshot()?, before, "{input}");
    }
    // A change the kernel refuses (Debian's kernel has no twos scheduler) is undone with the
    // changes made before it.
    let refused = "-A -t 10.5.0.1:80 -s rr\n-A -t 10.5.0.2:80 -s twos\n";
    let out = ipvsctl_stdin(&agent, &["-R"], refused)?;
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    // The agent's account names the change and the undo.
    let message = stderr(&out);
    ensure!(
        message.contains("-A -t 10.5.0.2:80 -s twos") && message.contains("undone"),
        "{message}"
    );
    assert_eq!(table_snapshot()?, before, "{}", stderr(&out));
    Ok(())
}
