#!/usr/bin/env bash
# The agent's gRPC API from the shell with `buf curl`, through gRPC server reflection: no .proto
# files needed to call it. Runs the seed scenario (README "First example"; examples/seed.sh)
# with JSON requests, reads the details of a refused request, drains a real server, checks each
# result with jq, and removes what it made again (also when a step fails).
#
#   examples/buf-curl.sh [HOST:PORT]        # default 127.0.0.1:50051, as the lab node listens
#
# Needs buf (npm install @bufbuild/buf@1.75.0; or set BUF to its path) and jq. The agent has no
# TLS yet, hence http://. Exits non-zero on any unexpected result.
set -euo pipefail
cd "$(dirname "$0")/.."

AGENT="${1:-127.0.0.1:50051}"
BUF="${BUF:-buf}"
command -v "$BUF" >/dev/null || {
  echo "buf-curl.sh: no buf: npm install @bufbuild/buf@1.75.0, or set BUF" >&2
  exit 2
}
command -v jq >/dev/null || { echo "buf-curl.sh: needs jq" >&2; exit 2; }

# Our own notes go to fd 3 (stderr), so that capturing a call's stderr gets only buf's.
exec 3>&2
# rpc Service/Method [JSON]: one call; prints the reply (a stream: one JSON document each).
# Requests are protobuf JSON: field names in lowerCamelCase (the .proto's snake_case names work
# too), enums by name, addresses as strings, durations as "30s". Replies leave zero values out.
rpc() {
  local method=$1
  shift
  # shellcheck disable=SC2016 # $1 does expand: the single quotes are inside double ones
  echo "\$ buf curl .../ipvs.agent.v1.$method ${1:+-d '$1'}" >&3
  "$BUF" curl --protocol grpc --http2-prior-knowledge "http://$AGENT/ipvs.agent.v1.$method" \
    ${1:+-d "$1"}
}
fail() { echo "buf-curl.sh: unexpected: $*" >&2; exit 1; }
# expect JSON JQ_FILTER WHAT: fails unless the filter is true of the JSON.
expect() { jq -e "$2" >/dev/null <<<"$1" || fail "$3: $1"; }

# What this script made, undone newest first on exit.
made=()
schema=$(mktemp -d)
clean_up() {
  local rc=$? i
  rm -rf "$schema"
  echo "== clean up" >&2
  for ((i = ${#made[@]} - 1; i >= 0; i--)); do
    eval "rpc ${made[i]}" >/dev/null || rc=1
  done
  if [ "$rc" -eq 0 ]; then echo "buf-curl.sh: ok"; else echo "buf-curl.sh: FAILED" >&2; fi
  exit "$rc"
}
trap clean_up EXIT

VIP=192.168.100.1
KEY='{"address": "192.168.100.1", "port": 80}' # protocol left out: TCP

echo "== what the agent serves, by reflection" >&2
"$BUF" curl --protocol grpc --http2-prior-knowledge --list-services "http://$AGENT"

echo "== link dummy1 holding $VIP/32" >&2
rpc LinkService/CreateDummy '{"name": "dummy1"}' >/dev/null
made+=("LinkService/DeleteLink '{\"name\": \"dummy1\"}'")
# prefixLength left out: 0, the whole address (/32).
rpc LinkService/AddAddress "{\"link\": \"dummy1\", \"address\": \"$VIP\"}" >/dev/null
made+=("LinkService/DeleteAddress '{\"link\": \"dummy1\", \"address\": \"$VIP\"}'")
rpc LinkService/SetLinkState '{"name": "dummy1", "up": true}' >/dev/null
addrs=$(rpc LinkService/ListAddresses '{"link": "dummy1"}')
echo "$addrs"
expect "$addrs" "[.addresses[] | select(.address == \"$VIP\") | .prefixLength] == [32]" \
  "dummy1 does not hold $VIP/32"

echo "== service TCP $VIP:80, rr, with its two real servers in one call" >&2
# The scheduler is given (left out it would be wlc); each real server's weight is left out (1,
# ipvsadm's default), its forwarding method given (left out it would be direct routing).
rpc IpvsService/CreateService "{\"service\": {
  \"key\": $KEY,
  \"scheduler\": \"SCHEDULER_RR\",
  \"destinations\": [
    {\"address\": \"127.0.0.1\", \"port\": 8081, \"forwarding\": \"FORWARDING_METHOD_MASQUERADE\"},
    {\"address\": \"127.0.0.1\", \"port\": 8082, \"forwarding\": \"FORWARDING_METHOD_MASQUERADE\"}
  ]}}" >/dev/null
made+=("IpvsService/DeleteService '{\"key\": $KEY}'")

# Our service in a listing; replies fill in what requests left out (protocol, family).
ours=".services[] | select(.key.address == \"$VIP\" and .key.port == 80)"
listed=$(rpc IpvsService/ListServices | jq "$ours")
echo "$listed"
expect "$listed" '.key.protocol == "PROTOCOL_TCP" and .key.family == "ADDRESS_FAMILY_INET"
  and .scheduler == "SCHEDULER_RR"' "the service as listed"
expect "$listed" '[.destinations[] | "\(.address):\(.port) \(.forwarding) \(.weight)"] | sort
  == ["127.0.0.1:8081 FORWARDING_METHOD_MASQUERADE 1",
      "127.0.0.1:8082 FORWARDING_METHOD_MASQUERADE 1"]' "the real servers as listed"

echo "== a bad request: port 70000" >&2
# A refusal exits with the gRPC code shifted left by 3 (INVALID_ARGUMENT, 3: 24) and prints
# the status, its details as type and base64 value.
rc=0
err=$(rpc IpvsService/CreateService \
  "{\"service\": {\"key\": {\"address\": \"$VIP\", \"port\": 70000}}}" 2>&1) || rc=$?
echo "$err"
[ "$rc" -eq 24 ] || fail "exit status $rc, not 24 (INVALID_ARGUMENT)"
expect "$err" '.code == "invalid_argument"' "the refusal"
# The details are plain protobuf: buf convert decodes them with any schema that has the type.
# ErrorDetail is in the repository's proto/; for google.rpc.BadRequest, its two fields do.
detail() {
  local v
  v=$(jq -r --arg t "$1" '.details[] | select(.type == $t) | .value' <<<"$err")
  while [ $((${#v} % 4)) -ne 0 ]; do v="$v="; done
  base64 -d <<<"$v" | "$BUF" convert "$2" --type "$1" --from -#format=binpb --to -#format=json
}
error_detail=$(detail ipvs.agent.v1.ErrorDetail proto/ipvs/agent/v1/errors.proto)
echo "ErrorDetail: $error_detail"
expect "$error_detail" '.reason == "INVALID_ARGUMENT"' "the ErrorDetail"
cat >"$schema/bad_request.proto" <<'PROTO'
syntax = "proto3";
package google.rpc;
message BadRequest {
  message FieldViolation { string field = 1; string description = 2; }
  repeated FieldViolation field_violations = 1;
}
PROTO
bad_request=$(detail google.rpc.BadRequest "$schema/bad_request.proto")
echo "BadRequest: $bad_request"
expect "$bad_request" '[.fieldViolations[].field] | index("service.key.port") != null' \
  "no field violation on service.key.port"

echo "== drain 127.0.0.1:8082" >&2
# A server stream: one JSON document per progress message, shown as they come.
progress=$(rpc StateService/Drain "{\"service\": $KEY,
  \"destination\": {\"address\": \"127.0.0.1\", \"port\": 8082}, \"timeout\": \"30s\"}" |
  while IFS= read -r line; do echo "$line" >&3; echo "$line"; done)
last=$(jq -s 'last' <<<"$progress")
expect "$last" '.phase == "DRAIN_PHASE_DONE" and .removed == true and (.timedOut | not)' \
  "the drain's last message"
listed=$(rpc IpvsService/ListServices | jq "$ours")
echo "$listed"
expect "$listed" '[.destinations[] | "\(.address):\(.port)"] == ["127.0.0.1:8081"]' \
  "after the drain"
