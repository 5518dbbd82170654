#!/bin/sh
# Regenerates ../*.txt: runs the real ipvsadm (Debian's 1.31) against a fake IPVS kernel.
#
# fake-kernel.c is preloaded into ipvsadm: it makes the generic-netlink lookup fail, so
# ipvsadm falls back to its [gs]etsockopt interface, and answers those calls from a table
# file (one "S proto addr port fwmark sched flags timeout netmask <10 stats>" line per
# service, then "D addr port conn_flags weight uthr lthr active inact persist <10 stats>"
# per real server). The sockopt interface is IPv4-only and has no tunnel details, which
# bounds what can be captured this way. unshare -n keeps name lookups off the network.
# Needs root, gcc and the ipvsadm package.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=$here/..
lib=$(mktemp -d)/fake-kernel.so
gcc -shared -fPIC -O1 -o "$lib" "$here/fake-kernel.c" -ldl
run() { FAKE_IPVS="$here/$1" LD_PRELOAD="$lib" unshare -n /usr/sbin/ipvsadm $2; }
run seed.table "-ln" > "$out/seed-ln.txt"
run seed.table "-ln --stats" > "$out/seed-ln-stats.txt"
run many.table "-ln" > "$out/many-ln.txt"
run many.table "-ln --stats" > "$out/many-ln-stats.txt"
run many.table "-ln --stats --exact" > "$out/many-ln-stats-exact.txt"
run many.table "-ln --rate" > "$out/many-ln-rate.txt"
run many.table "-ln --rate --exact" > "$out/many-ln-rate-exact.txt"
run many.table "-ln --thresholds" > "$out/many-ln-thresholds.txt"
run many.table "-ln --persistent-conn" > "$out/many-ln-persistent-conn.txt"
run many.table "-ln --tun-info" > "$out/many-ln-tun-info.txt"
run many.table "-ln --nosort" > "$out/many-ln-nosort.txt"
run many.table "-Ln -t 10.0.0.1:443" > "$out/many-Ln-t.txt"
run many.table "-l" > "$out/many-l.txt"
run many.table "-L --stats" > "$out/many-L-stats.txt"
# The requests ipvsadm builds for each line of requests.lines: "LINE<TAB>what it sent".
while IFS= read -r line; do
  printf '%s\t%s\n' "$line" "$(run seed.table "$line" 2>&1)"
done < "$here/requests.lines" > "$out/requests.tsv"
# The sockopt interface leaves ipvsadm's persistence-engine field uninitialised; the netlink
# interface (what the kernel and the agent use) zeroes it. Drop the noise from -S's first line.
run many.table "-Sn" | sed '1s/ --pe .*//' > "$out/many-Sn.txt"
run many.table "-S" | sed '1s/ --pe .*//' > "$out/many-S.txt"
# The connection table (conn.table is /proc/net/ip_vs_conn as the kernel prints it), the
# timeouts and the sync daemons (the sockopt interface knows only state, interface and syncid).
conn() { FAKE_CONN="$here/conn.table" run seed.table "$1"; }
conn "-Lcn" > "$out/conn-Lcn.txt"
conn "-Lc" > "$out/conn-Lc.txt"
conn "-Lcn --persistent-conn" > "$out/conn-Lcn-persistent.txt"
FAKE_TIMEOUT="900 120 300" run seed.table "-L --timeout" > "$out/timeout.txt"
FAKE_DAEMON="1 eth0 5 2 dummy1 255" run seed.table "-L --daemon" > "$out/daemon.txt"
