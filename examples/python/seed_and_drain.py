#!/usr/bin/env python3
"""The seed scenario (README "First example", examples/seed.sh) from Python, over gRPC only,
then a drain.

    python3 seed_and_drain.py [--agent HOST:PORT] [--node 'cargo xtask lab exec --']

Builds a dummy link dummy1 holding the VIP 192.168.100.1/32, a round-robin TCP service
192.168.100.1:80 with the real servers 127.0.0.1:8081 and 127.0.0.1:8082 (masquerade, weight 1),
checks the listing, sends one deliberately bad request and reads the error's details, drains
127.0.0.1:8082 through StateService.Drain (printing its progress), checks that it is gone, and
removes everything it made again, also when a step fails, so the script can be run again.

With --node CMD (a command that runs its arguments on the agent's node, as `cargo xtask lab
exec --` does for the lab node), it also checks the table against `ipvsadm -ln` on the node and
sends six requests through the VIP, as seed.sh does, and checks the counters.

Needs grpcio, grpcio-tools and grpcio-status (run.sh installs them into a venv). The Python
stubs are generated from proto/ at start, into a temporary directory: nothing generated is kept.
Exits 1 on any unexpected result.
"""

import argparse
import atexit
import importlib.resources
import pathlib
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from grpc_tools import protoc

PROTO_DIR = pathlib.Path(__file__).resolve().parents[2] / "proto"

LINK = "dummy1"
VIP = "192.168.100.1"
PORT = 80
REAL_SERVERS = [("127.0.0.1", 8081), ("127.0.0.1", 8082)]
DRAINED = ("127.0.0.1", 8082)


def generate_stubs():
    """Compiles proto/ipvs/agent/v1/*.proto into a temporary directory and puts it on sys.path.
    The well-known types (google/protobuf/duration.proto, ...) come with grpc_tools."""
    out = tempfile.mkdtemp(prefix="ipvs-api-py-")
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    files = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.glob("ipvs/agent/v1/*.proto"))
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        *files,
    ]
    if protoc.main(args) != 0:
        sys.exit(f"protoc failed on {PROTO_DIR}")
    sys.path.insert(0, out)


generate_stubs()
# Every enum of the API is in types_pb2; the messages are in the module of their service.
from ipvs.agent.v1 import types_pb2 as types  # noqa: E402
from ipvs.agent.v1 import errors_pb2, ipvs_pb2, ipvs_pb2_grpc  # noqa: E402
from ipvs.agent.v1 import link_pb2, link_pb2_grpc, state_pb2, state_pb2_grpc  # noqa: E402


class Unexpected(Exception):
    """A result the scenario did not expect."""


def check(ok, what):
    if not ok:
        raise Unexpected(what)


def step(text):
    print(f"\n== {text}", flush=True)


# ipvsadm's words for the forwarding methods.
FORWARD = {
    types.FORWARDING_METHOD_MASQUERADE: "Masq",
    types.FORWARDING_METHOD_DIRECT_ROUTE: "Route",
    types.FORWARDING_METHOD_TUNNEL: "Tunnel",
    types.FORWARDING_METHOD_LOCAL: "Local",
}


def enum_word(enum, value, prefix):
    """SCHEDULER_RR -> "rr", PROTOCOL_TCP -> "tcp"."""
    return enum.Name(value).removeprefix(prefix).lower()


def show_service(s):
    k = s.key
    print(
        f"{enum_word(types.Protocol, k.protocol, 'PROTOCOL_').upper()}  {k.address}:{k.port} "
        f"{enum_word(types.Scheduler, s.scheduler, 'SCHEDULER_')}"
    )
    for d in s.destinations:
        print(
            f"  -> {d.address}:{d.port}  {FORWARD.get(d.forwarding, '?')}  weight {d.weight}  "
            f"active {d.active_connections}  inactive {d.inactive_connections}"
        )


class Scenario:
    def __init__(self, channel, node):
        self.ipvs = ipvs_pb2_grpc.IpvsServiceStub(channel)
        self.links = link_pb2_grpc.LinkServiceStub(channel)
        self.state = state_pb2_grpc.StateServiceStub(channel)
        self.node = node
        # Protocol left at its zero value: TCP.
        self.key = types.ServiceKey(address=VIP, port=PORT)
        self.made = []  # what to undo, newest last

    def on_node(self, *argv):
        cmd = [*self.node, *argv]
        print("$ (node)", shlex.join(argv), flush=True)
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout

    def our_service(self):
        """Our service as ListServices has it, or None. Replies fill in the defaults, so the
        listed key says PROTOCOL_TCP and ADDRESS_FAMILY_INET where ours left them at zero."""
        for s in self.ipvs.ListServices(ipvs_pb2.ListServicesRequest()).services:
            k = s.key
            if (k.protocol, k.address, k.port) == (types.PROTOCOL_TCP, VIP, PORT):
                return s
        return None

    def seed(self):
        step(f"link {LINK} holding {VIP}/32")
        self.links.CreateDummy(link_pb2.CreateDummyRequest(name=LINK))
        self.made.append(self.delete_link)
        # An address is a string; prefix_length left at 0 means the whole address, /32.
        self.links.AddAddress(link_pb2.AddAddressRequest(link=LINK, address=VIP))
        self.made.append(self.delete_address)
        link = self.links.SetLinkState(link_pb2.SetLinkStateRequest(name=LINK, up=True)).link
        check(link.up, f"{LINK} is not up after SetLinkState: {link}")
        addrs = self.links.ListAddresses(link_pb2.ListAddressesRequest(link=LINK)).addresses
        for a in addrs:
            print(f"{a.link}: {a.address}/{a.prefix_length} scope {a.scope}")
        check(
            [(a.address, a.prefix_length) for a in addrs if a.address == VIP] == [(VIP, 32)],
            f"{LINK} does not hold {VIP}/32: {addrs}",
        )

        step(f"service TCP {VIP}:{PORT}, rr, with its two real servers in one call")
        service = ipvs_pb2.Service(
            key=self.key,
            scheduler=types.SCHEDULER_RR,  # left unset it would be wlc, the kernel's default
            destinations=[
                # Weight unset: 1, ipvsadm's default. Forwarding unset would be direct routing.
                ipvs_pb2.Destination(
                    address=addr, port=port, forwarding=types.FORWARDING_METHOD_MASQUERADE
                )
                for addr, port in REAL_SERVERS
            ],
        )
        created = self.ipvs.CreateService(ipvs_pb2.CreateServiceRequest(service=service)).service
        self.made.append(self.delete_service)
        show_service(created)

        step("the table as the agent lists it")
        s = self.our_service()
        check(s is not None, "ListServices does not list the service")
        show_service(s)
        check(s.scheduler == types.SCHEDULER_RR, f"scheduler {s.scheduler}")
        check(s.key.family == types.ADDRESS_FAMILY_INET, "the reply does not fill in the family")
        got = sorted((d.address, d.port, d.forwarding, d.weight) for d in s.destinations)
        want = sorted((a, p, types.FORWARDING_METHOD_MASQUERADE, 1) for a, p in REAL_SERVERS)
        check(got == want, f"real servers {got}, expected {want}")
        if self.node:
            self.same_as_ipvsadm(s)

    def same_as_ipvsadm(self, s):
        """The service as `ipvsadm -ln` prints it on the node, line for line."""
        want = [f"TCP {VIP}:{PORT} rr"] + sorted(
            f"-> {d.address}:{d.port} {FORWARD[d.forwarding]} {d.weight}" for d in s.destinations
        )
        lines = [" ".join(line.split()) for line in self.on_node("ipvsadm", "-ln").splitlines()]
        start = lines.index(want[0]) if want[0] in lines else None
        check(
            start is not None,
            f"ipvsadm -ln on the node does not list {want[0]}:\n" + "\n".join(lines),
        )
        block = []
        for line in lines[start + 1 :]:
            if not line.startswith("-> "):
                break
            block.append(" ".join(line.split()[:4]))  # without the connection counts
        check(
            [want[0]] + sorted(block) == want,
            f"ipvsadm -ln says {[want[0]] + block}, the agent {want}",
        )
        print("(the same as ipvsadm -ln on the node)")

    def traffic(self):
        step("six requests through the VIP, from the node")
        for _ in range(6):
            print(self.on_node("wget", "-qO-", f"http://{VIP}/").strip())
        print("(waiting 3 s for the kernel to fold its per-CPU counters)", flush=True)
        time.sleep(3)
        s = self.our_service()
        show_service(s)
        conns = {(d.address, d.port): d.stats.counters.connections for d in s.destinations}
        print(f"connections: service {s.stats.counters.connections}, real servers {conns}")
        check(s.stats.counters.connections == 6, "the service did not count 6 connections")
        check(sorted(conns.values()) == [3, 3], "round robin did not split them 3 and 3")

    def bad_request(self):
        step("a bad request: port 70000")
        bad = ipvs_pb2.Service(key=types.ServiceKey(address=VIP, port=70000))
        try:
            self.ipvs.CreateService(ipvs_pb2.CreateServiceRequest(service=bad))
        except grpc.RpcError as e:
            print(f"{e.code().name}: {e.details()}")
            check(e.code() == grpc.StatusCode.INVALID_ARGUMENT, f"code {e.code()}")
            # The details ride in the grpc-status-details-bin trailer as a google.rpc.Status;
            # grpc_status decodes it (and checks it matches the status).
            status = rpc_status.from_call(e)
            check(status is not None, "no grpc-status-details-bin trailer")
            violations = []
            for any_ in status.details:
                if any_.Is(errors_pb2.ErrorDetail.DESCRIPTOR):
                    detail = errors_pb2.ErrorDetail()
                    any_.Unpack(detail)
                    print(
                        f"ErrorDetail: reason {detail.reason}"
                        + (f", object {detail.object}" if detail.object else "")
                    )
                    check(detail.reason == "INVALID_ARGUMENT", f"reason {detail.reason}")
                elif any_.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad_request = error_details_pb2.BadRequest()
                    any_.Unpack(bad_request)
                    for v in bad_request.field_violations:
                        print(f"BadRequest: {v.field}: {v.description}")
                        violations.append(v.field)
                else:
                    print(f"(another detail: {any_.type_url})")
            check(
                "service.key.port" in violations,
                f"no field violation on service.key.port: {violations}",
            )
            return
        raise Unexpected("a service on port 70000 was accepted")

    def drain(self):
        addr, port = DRAINED
        step(f"drain {addr}:{port}")
        request = state_pb2.DrainRequest(
            service=self.key,
            destination=ipvs_pb2.Destination(address=addr, port=port),  # only these are read
            timeout=duration_pb2.Duration(seconds=30),  # unset: 300 s
        )
        last = None
        for progress in self.state.Drain(request):
            phase = types.DrainPhase.Name(progress.phase).removeprefix("DRAIN_PHASE_")
            elapsed = progress.elapsed.ToTimedelta().total_seconds()
            print(
                f"{phase:12} active {progress.active_connections} "
                f"inactive {progress.inactive_connections} after {elapsed:.1f} s"
                + (
                    f" (weight was {progress.previous_weight})"
                    if progress.phase == types.DRAIN_PHASE_WEIGHT_ZERO
                    else ""
                ),
                flush=True,
            )
            last = progress
        check(
            last is not None and last.phase == types.DRAIN_PHASE_DONE,
            f"the drain stream ended without DONE: {last}",
        )
        check(
            last.removed and not last.timed_out,
            f"drain done with removed={last.removed} timed_out={last.timed_out}",
        )

        s = self.our_service()
        show_service(s)
        left = sorted((d.address, d.port) for d in s.destinations)
        check(
            left == [rs for rs in REAL_SERVERS if rs != DRAINED],
            f"after the drain the real servers are {left}",
        )
        if self.node:
            self.same_as_ipvsadm(s)

    def delete_service(self):
        self.ipvs.DeleteService(ipvs_pb2.DeleteServiceRequest(key=self.key))

    def delete_address(self):
        self.links.DeleteAddress(link_pb2.DeleteAddressRequest(link=LINK, address=VIP))

    def delete_link(self):
        self.links.DeleteLink(link_pb2.DeleteLinkRequest(name=LINK))

    def clean_up(self):
        """Undoes what was made, newest first; True if all of it went."""
        step("clean up")
        ok = True
        while self.made:
            undo = self.made.pop()
            try:
                undo()
                print(f"{undo.__name__.replace('_', ' ')}: done")
            except grpc.RpcError as e:
                print(f"{undo.__name__}: {e.code().name}: {e.details()}", file=sys.stderr)
                ok = False
        return ok

    def check_clean(self):
        check(self.our_service() is None, "the service is still listed")
        links = self.links.ListLinks(link_pb2.ListLinksRequest()).links
        check(all(link.name != LINK for link in links), f"{LINK} is still there")
        print(f"(no service {VIP}:{PORT}, no link {LINK}: the node is as it was)")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--agent", default="127.0.0.1:50051", help="the agent's HOST:PORT")
    p.add_argument(
        "--node",
        default="",
        help="a command that runs its arguments on the node, "
        "e.g. 'cargo xtask lab exec --'; adds the ipvsadm check and traffic",
    )
    args = p.parse_args()

    channel = grpc.insecure_channel(args.agent)
    try:
        grpc.channel_ready_future(channel).result(timeout=10)
    except grpc.FutureTimeoutError:
        sys.exit(f"no agent at {args.agent}")
    scenario = Scenario(channel, shlex.split(args.node))
    ok = False
    try:
        scenario.seed()
        if scenario.node:
            scenario.traffic()
        scenario.bad_request()
        scenario.drain()
        ok = True
    except Unexpected as e:
        print(f"\nunexpected: {e}", file=sys.stderr)
    except grpc.RpcError as e:
        print(f"\nunexpected: {e.code().name}: {e.details()}", file=sys.stderr)
    except subprocess.CalledProcessError as e:
        print(
            f"\nunexpected: {shlex.join(e.cmd)} exited {e.returncode}:\n{e.stderr}", file=sys.stderr
        )
    finally:
        cleaned = scenario.clean_up()
    if ok and cleaned:
        try:
            scenario.check_clean()
        except Unexpected as e:
            print(f"\nunexpected: {e}", file=sys.stderr)
            ok = False
    print("\nseed and drain: " + ("ok" if ok and cleaned else "FAILED"))
    return 0 if ok and cleaned else 1


if __name__ == "__main__":
    sys.exit(main())
