//! ipvsctl as a drop-in for ipvsadm on the same kernel: every option of the save format and
//! every list view.

use std::process::Output;

use anyhow::{Result, ensure};
use ipvs_e2e::{Agent, Netns, ipvsadm, stderr, stdout};

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
