//! The guest's `/init`: a shell script with a common prelude (mounts, modules, loopback) and
//! one body per mode. Results reach the host as marker lines on the serial console.

use std::fmt::Write as _;

use crate::image::{GUEST_BIN_DIR, GUEST_LAB_DIR, GUEST_TEST_DIR};

/// The guest's address on the user-mode NIC; the host reaches it only through `hostfwd`.
pub const GUEST_IP: &str = "10.0.2.15";
/// Guest port of the agent in `lab up`.
pub const AGENT_PORT: u16 = 50051;
/// Guest port of the exec server in `lab up`.
pub const EXEC_PORT: u16 = 5555;

pub const PASS: &str = "LAB-RESULT: pass";
pub const FAIL_PREFIX: &str = "LAB-RESULT: fail";
pub const READY: &str = "LAB-READY";
pub const CAPTURE_STATUS: &str = "LAB-CAPTURE-STATUS:";
pub const PCAP_BEGIN: &str = "LAB-PCAP-BEGIN";
pub const PCAP_END: &str = "LAB-PCAP-END";

/// Written by `/init` when the agent of `lab up` exits: its exit status.
pub const AGENT_EXIT_FILE: &str = "/run/lab-agent.exit";

#[derive(Debug, Clone)]
pub enum Mode {
    /// Run every test executable with `args`, then print PASS or FAIL and power off.
    Test { args: Vec<String> },
    /// Serve: agent, exec server and the two seed backends; never powers off.
    Up { agent_args: Vec<String> },
    /// Run `command` while tcpdump records netlink on `nl0`, dump the pcap, power off.
    Capture { command: Vec<String> },
    /// Run the shipped xtask binary with `args` (`bench-guest ...`), which prints the
    /// benchmark's records; power off.
    Bench { args: Vec<String> },
}

const PRELUDE: &str = r#"#!/bin/sh
export PATH=__BIN__:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root NO_COLOR=1 IPVS_LAB=1 IPVS_E2E_BIN_DIR=__BIN__
# Backtraces for panics, not for every anyhow error.
export RUST_BACKTRACE=1 RUST_LIB_BACKTRACE=0
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /run/netns
echo 1 > /proc/sys/kernel/printk
hostname lab
ip link set lo up
while read -r m args; do
  modprobe "$m" $args || echo "lab: modprobe $m failed"
done < /lab/modules
cd /tmp
"#;

const TEST: &str = r#"failed=0
for t in __TESTS__/*; do
  [ -x "$t" ] || continue
  echo "lab: running ${t##*/}"
  "$t" __ARGS__ || failed=$((failed + 1))
done
if [ "$failed" -eq 0 ]; then echo "__PASS__"; else echo "__FAIL__ $failed"; fi
sync
poweroff -f
"#;

const UP: &str = r#"ip link set eth0 up
ip addr add __IP__/24 dev eth0
httpd -p 127.0.0.1:8081 -h /srv/backend1
httpd -p 127.0.0.1:8082 -h /srv/backend2
__LAB__/xtask lab exec-server --listen __IP__:__EXEC__ &
cat > /lab/agent-status <<'EOS'
#!/bin/sh
if [ -e __EXITFILE__ ]; then echo "exited $(cat __EXITFILE__)"; exit 0; fi
if grep -q ":__PORTHEX__ [0-9A-F:]* 0A " /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
  echo listening
else
  echo starting
fi
EOS
chmod +x /lab/agent-status
(
  ipvs-agent --listen __IP__:__AGENT__ --insecure __ARGS__
  st=$?
  echo "$st" > __EXITFILE__
  echo "lab: ipvs-agent exited with status $st"
) &
echo "__READY__"
while :; do sleep 3600; done
"#;

const CAPTURE: &str = r#"ip link add nl0 type nlmon
ip link set nl0 up
tcpdump -Z root -U --immediate-mode -s 0 -i nl0 -w /tmp/lab.pcap 2>/tmp/tcpdump.log &
tpid=$!
i=0
while [ ! -s /tmp/lab.pcap ] && [ "$i" -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
[ -s /tmp/lab.pcap ] || { echo "lab: tcpdump did not start"; cat /tmp/tcpdump.log; }
__ARGS__
st=$?
sleep 1
kill -INT "$tpid"
wait "$tpid"
echo "__STATUS__ $st"
echo "__PCAP_BEGIN__"
xxd -p /tmp/lab.pcap
echo "__PCAP_END__"
sync
poweroff -f
"#;

const BENCH: &str = r#"__LAB__/xtask __ARGS__
st=$?
[ "$st" -eq 0 ] || echo "bench: error the guest's xtask exited with status $st"
sync
poweroff -f
"#;

pub fn script(mode: &Mode) -> String {
    let mut s = PRELUDE.replace("__BIN__", GUEST_BIN_DIR);
    let body = match mode {
        Mode::Test { args } => TEST
            .replace("__TESTS__", GUEST_TEST_DIR)
            .replace("__ARGS__", &quote_all(args))
            .replace("__PASS__", PASS)
            .replace("__FAIL__", FAIL_PREFIX),
        Mode::Up { agent_args } => UP
            .replace("__IP__", GUEST_IP)
            .replace("__EXEC__", &EXEC_PORT.to_string())
            .replace("__AGENT__", &AGENT_PORT.to_string())
            .replace("__PORTHEX__", &format!("{AGENT_PORT:04X}"))
            .replace("__LAB__", GUEST_LAB_DIR)
            .replace("__EXITFILE__", AGENT_EXIT_FILE)
            .replace("__READY__", READY)
            .replace("__ARGS__", &quote_all(agent_args)),
        Mode::Capture { command } => CAPTURE
            .replace("__ARGS__", &quote_all(command))
            .replace("__STATUS__", CAPTURE_STATUS)
            .replace("__PCAP_BEGIN__", PCAP_BEGIN)
            .replace("__PCAP_END__", PCAP_END),
        Mode::Bench { args } => BENCH
            .replace("__LAB__", GUEST_LAB_DIR)
            .replace("__ARGS__", &quote_all(args)),
    };
    s.push_str(&body);
    s
}

/// Quotes one word for a POSIX shell.
pub fn quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        return word.to_string();
    }
    let mut out = String::from("'");
    for c in word.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

fn quote_all(words: &[String]) -> String {
    let mut out = String::new();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let _ = write!(out, "{}", quote(w));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        let cases = [
            ("ipvsadm", "ipvsadm"),
            ("--test-threads=1", "--test-threads=1"),
            ("", "''"),
            ("a b", "'a b'"),
            ("it's", "'it'\\''s'"),
            ("$HOME;rm", "'$HOME;rm'"),
        ];
        for (input, want) in cases {
            assert_eq!(quote(input), want, "{input}");
        }
    }

    #[test]
    fn test_mode_passes_arguments_and_markers() {
        let s = script(&Mode::Test {
            args: vec!["smoke".into(), "--test-threads=1".into()],
        });
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains("\"$t\" smoke --test-threads=1 || failed"), "{s}");
        assert!(s.contains("echo \"LAB-RESULT: pass\""));
        assert!(s.contains("echo \"LAB-RESULT: fail $failed\""));
        assert!(s.contains("for t in /opt/ipvs/tests/*; do"));
        assert!(!s.contains("__"), "unreplaced placeholder in {s}");
    }

    #[test]
    fn up_mode_serves_agent_exec_and_backends() {
        let s = script(&Mode::Up {
            agent_args: vec!["--state".into(), "/tmp/s".into()],
        });
        assert!(s.contains("ipvs-agent --listen 10.0.2.15:50051 --insecure --state /tmp/s"));
        assert!(s.contains("/opt/ipvs/lab/xtask lab exec-server --listen 10.0.2.15:5555 &"));
        assert!(s.contains("httpd -p 127.0.0.1:8081 -h /srv/backend1"));
        assert!(s.contains("grep -q \":C383 [0-9A-F:]* 0A \""));
        assert!(
            !s.contains("ip route"),
            "the guest must have no default route"
        );
        assert!(!s.contains("__"), "unreplaced placeholder in {s}");
    }

    #[test]
    fn bench_mode_runs_the_guest_half_and_powers_off() {
        let s = script(&Mode::Bench {
            args: vec!["bench-guest".into(), "--size".into(), "200x4".into()],
        });
        assert!(
            s.contains("\n/opt/ipvs/lab/xtask bench-guest --size 200x4\nst=$?\n"),
            "{s}"
        );
        assert!(s.contains("echo \"bench: error the guest's xtask exited with status $st\""));
        assert!(s.ends_with("poweroff -f\n"));
        assert!(!s.contains("__"), "unreplaced placeholder in {s}");
    }

    #[test]
    fn capture_mode_quotes_the_command() {
        let s = script(&Mode::Capture {
            command: vec!["sh".into(), "-c".into(), "ipvsadm -ln; echo 'x'".into()],
        });
        assert!(
            s.contains("\nsh -c 'ipvsadm -ln; echo '\\''x'\\'''\nst=$?"),
            "{s}"
        );
        assert!(!s.contains("__"), "unreplaced placeholder in {s}");
    }
}
