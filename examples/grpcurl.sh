#!/usr/bin/env bash
# The agent's gRPC API from the shell with grpcurl, through gRPC server reflection: no .proto
# files needed on this side. Run the agent with `--listen 127.0.0.1:50051` (as the lab node
# does); the agent has no TLS yet, hence -plaintext. For the Unix socket instead, replace the
# address with `-unix /run/ipvs-agent/agent.sock`.
#
#   examples/grpcurl.sh [HOST:PORT] [WEIGHT]
#
# With WEIGHT, also sets the seed scenario's real server 127.0.0.1:8081 of TCP
# 192.168.100.1:80 (see README.md) to that weight.
set -euo pipefail

AGENT="${1:-127.0.0.1:50051}"
WEIGHT="${2:-}"
rpc() { grpcurl -plaintext "$@"; }

# What the agent serves, and the shape of a service and a message.
rpc "$AGENT" list
rpc "$AGENT" describe ipvs.agent.v1.IpvsService
rpc "$AGENT" describe ipvs.agent.v1.Destination

# Reads take an empty request.
rpc "$AGENT" ipvs.agent.v1.IpvsService/GetInfo
rpc "$AGENT" ipvs.agent.v1.IpvsService/ListServices
rpc "$AGENT" ipvs.agent.v1.LinkService/ListAddresses

# A write. Requests are protobuf JSON: enums by name, `bytes` in base64, so the IPv4 address
# 192.168.100.1 is "wKhkAQ==" and 127.0.0.1 is "fwAAAQ==". UpdateDestination replaces the
# server's forwarding method, weight and thresholds, so the forwarding method is given too.
if [ -n "$WEIGHT" ]; then
  rpc -d @ "$AGENT" ipvs.agent.v1.IpvsService/UpdateDestination <<JSON
{
  "service": {"endpoint": {"protocol": "PROTOCOL_TCP", "address": {"v4": "wKhkAQ=="}, "port": 80}},
  "destination": {
    "address": {"v4": "fwAAAQ=="}, "port": 8081,
    "forwarding": "FORWARDING_METHOD_MASQUERADE", "weight": $WEIGHT
  }
}
JSON
  rpc -d '{"service": {"endpoint": {"protocol": "PROTOCOL_TCP", "address": {"v4": "wKhkAQ=="}, "port": 80}}}' \
    "$AGENT" ipvs.agent.v1.IpvsService/ListDestinations
fi
