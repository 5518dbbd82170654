//! `-h` and `-v` text: ipvsadm's help with ipvsctl's additions.

use crate::client::{AGENT_ENV, DEFAULT_AGENT};
use crate::exit;

/// `-v`/`--version`.
pub fn version() -> String {
    format!(
        "ipvsctl v{} (ipvsadm v1.31 command line, IPVS through ipvs-agent)\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// `-h`/`--help`, naming the program as invoked, as ipvsadm does.
pub fn help(program: &str) -> String {
    let p = program;
    format!(
        "{version}Usage:
  {p} -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]
  {p} -D virtual-service
  {p} -C
  {p} -R [--replace] [--dry-run]
  {p} -S [-n]
  {p} -a|e virtual-service -r server-address [options]
  {p} -d virtual-service -r server-address
  {p} -L|l [virtual-service] [options]
  {p} -Z [virtual-service]
  {p} --set tcp tcpfin udp
  {p} --start-daemon {{master|backup}} [daemon-options]
  {p} --stop-daemon {{master|backup}}
  {p} -h
  {p} link add NAME type dummy | link del NAME | link set NAME up|down | link show [NAME]
  {p} addr add CIDR dev NAME | addr del CIDR dev NAME | addr show [dev NAME]
  {p} apply -f FILE [--prune] [--dry-run] [--revision N] | diff -f FILE [--prune]
  {p} export [-f FILE] [--format yaml|toml]
  {p} state | state revisions | state rollback [REVISION] [--dry-run] | state events
  {p} health
  {p} drain -t|-u|--sctp-service|-f service -r server[:port] [--timeout 5m] [--keep]

Commands:
Either long or short options are allowed.
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options
  --delete-service  -D        delete virtual service
  --clear           -C        clear the whole table
  --restore         -R        restore rules from stdin, on top of the current table: the
                              input is checked whole against the table first, then only
                              what its lines change is changed (--dry-run: print the changes)
  --save            -S        save rules to stdout
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options
  --delete-server   -d        delete real server
  --list            -L|-l     list the table
  --zero            -Z        zero counters in a service or all services
  --set tcp tcpfin udp        set connection timeout values
  --start-daemon              start connection sync daemon
  --stop-daemon               stop connection sync daemon
  --help            -h        display this help message
  --version         -v        display the version

virtual-service:
  --tcp-service|-t  service-address   service-address is host[:port]
  --udp-service|-u  service-address   service-address is host[:port]
  --sctp-service    service-address   service-address is host[:port]
  --fwmark-service|-f fwmark          fwmark is an integer greater than zero

Options:
  --ipv6         -6                   fwmark entry uses IPv6
  --scheduler    -s scheduler         one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh|twos,
                                      the default scheduler is wlc.
  --pe            engine              alternate persistence engine may be sip,
                                      not set by default.
  --persistent   -p [timeout]         persistent service
  --netmask      -M netmask           persistent granularity mask
  --real-server  -r server-address    server-address is host (and port)
  --gatewaying   -g                   gatewaying (direct routing) (default)
  --ipip         -i                   ipip encapsulation (tunneling)
  --masquerading -m                   masquerading (NAT)
  --tun-type      type                one of ipip|gue|gre,
                                      the default tunnel type is ipip.
  --tun-port      port                tunnel destination port
  --tun-nocsum                        tunnel encapsulation without checksum
  --tun-csum                          tunnel encapsulation with checksum
  --tun-remcsum                       tunnel encapsulation with remote checksum
  --weight       -w weight            capacity of real server (0-65535)
  --u-threshold  -x uthreshold        upper threshold of connections
  --l-threshold  -y lthreshold        lower threshold of connections
  --connection   -c                   output of current IPVS connections
  --timeout                           output of timeout (tcp tcpfin udp)
  --daemon                            output of daemon information
  --stats                             output of statistics information
  --rate                              output of rate information
  --exact                             expand numbers (display exact values)
  --thresholds                        output of thresholds information
  --persistent-conn                   output of persistent connection info
  --tun-info                          output of tunnel information
  --nosort                            disable sorting output of service/server entries
  --sort                              does nothing, for backwards compatibility
  --ops          -o                   one-packet scheduling
  --numeric      -n                   numeric output of addresses and ports
  --sched-flags  -b flags             scheduler flags (comma-separated)
Daemon Options:
  --syncid sid                        syncid for connection sync (default=0)
  --sync-maxlen length                Max sync message length (default=1472)
  --mcast-interface interface         multicast interface for connection sync
  --mcast-group address               IPv4/IPv6 group (default=224.0.0.81)
  --mcast-port port                   UDP port (default=8848)
  --mcast-ttl ttl                     Multicast TTL (default=1)

ipvsctl options (anywhere on the line):
  --agent ADDRESS                     unix:/path or http://host:port; default ${AGENT_ENV},
                                      else {DEFAULT_AGENT}
  --output|-o text|json               output of listings and -R (-o json; a bare -o is --ops)
  --dry-run                           -R: print the changes, make none
  --replace                           -R: the input is the whole table (as ipvsadm-restore,
                                      also run as ipvsctl-restore): services it does not
                                      leave are deleted, what it keeps is not touched

{fleet}
{exit}",
        version = version(),
        fleet = crate::fleet::HELP,
        exit = exit::HELP,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_names_the_program_and_documents_exit_codes() {
        let h = help("/usr/local/bin/ipvsctl");
        assert!(h.starts_with("ipvsctl v"), "{h}");
        assert!(
            h.contains("\n  /usr/local/bin/ipvsctl -D virtual-service\n"),
            "{h}"
        );
        assert!(
            h.contains("\n  255  the agent refused an IPVS change;"),
            "{h}"
        );
        assert!(h.contains("default $IPVSCTL_AGENT"), "{h}");
        assert!(h.contains("\n  --fleet FILE "), "{h}");
        assert!(h.contains("\n  5    fleet apply:"), "{h}");
        assert!(
            h.contains("\n  /usr/local/bin/ipvsctl -R [--replace] [--dry-run]\n"),
            "{h}"
        );
        assert!(h.contains("\n  --replace  "), "{h}");
        for command in [
            "apply -f FILE",
            "export [-f FILE]",
            "state | state revisions",
            "drain -t",
            "health",
        ] {
            assert!(
                h.contains(&format!("\n  /usr/local/bin/ipvsctl {command}")),
                "{command}: {h}"
            );
        }
    }
}
