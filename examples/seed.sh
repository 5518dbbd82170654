#!/usr/bin/env bash
# The seed scenario (shared/seed), run from the host against the lab node started by
# `cargo xtask lab up`: every step goes through ipvsctl and the agent's gRPC API; traffic and
# the ipvsadm oracle run inside the guest through `cargo xtask lab exec`.
# Exits non-zero if any ipvsctl listing differs from ipvsadm's on the node.
set -euo pipefail
cd "$(dirname "$0")/.."

export IPVSCTL_AGENT="${IPVSCTL_AGENT:-http://127.0.0.1:50051}"
cargo build -q -p ipvsctl
ipvsctl() { echo "\$ ipvsctl $*" >&2; target/debug/ipvsctl "$@"; }
guest() { echo "\$ (node) $*" >&2; cargo xtask lab exec -- "$@"; }

same_as_ipvsadm() {
  local ours theirs
  ours=$(target/debug/ipvsctl "$@"; echo x)
  theirs=$(cargo xtask lab exec -- ipvsadm "$@"; echo x)
  if [ "$ours" != "$theirs" ]; then
    echo "ipvsctl $* differs from ipvsadm $* on the node:" >&2
    diff <(printf '%s' "$theirs") <(printf '%s' "$ours") >&2 || true
    exit 1
  fi
  echo "(byte-identical to ipvsadm $* on the node)" >&2
}

ipvsctl link add dummy1 type dummy
ipvsctl addr add 192.168.100.1/32 dev dummy1
ipvsctl link set dummy1 up
ipvsctl addr show dev dummy1

ipvsctl -A -t 192.168.100.1:80 -s rr
ipvsctl -a -t 192.168.100.1:80 -r 127.0.0.1:8081 -m
ipvsctl -a -t 192.168.100.1:80 -r 127.0.0.1:8082 -m

ipvsctl -ln
same_as_ipvsadm -ln

for _ in 1 2 3 4 5 6; do
  guest wget -qO- http://192.168.100.1/
done

echo "(waiting 3 s for the kernel to fold its per-CPU counters)" >&2
sleep 3
ipvsctl -ln --stats
same_as_ipvsadm -ln --stats
