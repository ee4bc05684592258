#!/usr/bin/env python3
"""Datapath: TCP throughput and round-trip latency from a guest stand-in, through each of
netplug's bindings, to a host outside the node, against a plain pod in the same run.

The node (this run's netns) routes between its pod networks and an "outside" netns reached
over a veth. Paths, each from its own pod sandbox:

  plain pod        the reference bridge + host-local alone: the sender is the pod itself (the
                   reference peer: what a container gets)
  masquerade       a guest stand-in (a veth in its own netns, in the tap's place on k6t-eth0,
                   addressed by DHCP as a VM is) behind netplug's NAT, the pod network
  masquerade+100   the same with 100 forwarded ports (100 DNAT port matches in the ruleset)
  bridge, pod net  the guest holds the pod's IP on the pod network (spoof guard on)
  bridge, second.  the guest on a secondary network (its own node bridge, reference bridge +
                   host-local as a Multus delegate would run them, netplug's bridge chained)
  routed twin      not netplug: a guest stand-in behind a plain bridge and plain routing in a
                   plain pod, the hops any VM binding adds, without netplug's rules (shows
                   where the time goes; no target)

and inbound, from the outside host to the pod IP: the plain pod, and masquerade+100 (the
connection DNATed by one of the 100 forwarded ports to the guest).

Throughput: iperf3 (Debian's), one TCP stream, receiver's figure. Latency: busybox ping -A
(the next echo leaves as soon as the reply is back), the trimmed mean of per-packet round trips;
ICMP crosses the same bridges, NAT (conntrack) and routes as TCP does, and a C tool adds
microseconds, where a Python request/response loop would add tens of them to both sides
and hide the difference. Inbound latency is not measured: the forwarded ports are TCP only,
so an ICMP echo to the pod IP is answered by the pod, not the guest.

The machine may be shared: every round measures each binding right beside a run of the plain
pod (alternately before and after it), in a rotating order; each ratio is the median over the
rounds of the binding's figure divided by its neighbouring plain figure.

Targets: throughput >= 0.9x and latency <= 1.1x the plain path.

Usage (root): .venv/bin/python bench/datapath.py [--rounds 9] [--seconds 2] [--pings 2000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (  # noqa: E402
    Chain,
    Node,
    Sandbox,
    forwarding_on,
    machine,
    reexec_isolated,
    table,
    verdict,
)

from netplug import naming  # noqa: E402
from tests.support.fixtures import Guest, attach_guest  # noqa: E402
from tests.support.topology import Netns, dhcp_lease, sh, unique, veth  # noqa: E402

PORT = 5201
GUEST_MAC = "52:54:00:d0:00:01"
OUTSIDE, NODE_SIDE = "10.98.0.2", "10.98.0.1"
TWIN_BRIDGE, TWIN_GATEWAY, TWIN_GUEST = "bntwin", "10.0.3.1", "10.0.3.2"
TWIN = "routed twin (no netplug)"


@dataclass
class Path:
    label: str
    sender: Netns  # where the traffic starts (the guest stand-in, or the plain pod)
    inbound_to: str | None = None  # the address an outside client reaches this path's receiver at


def iperf3(client: Netns, address: str, seconds: float) -> float:
    """Gbit/s received over one TCP stream from `client` to the iperf3 server at `address`."""
    run = client.exec("iperf3", "-c", address, "-p", str(PORT), "-t", str(seconds), "-J", timeout=seconds + 30,
                      check=False)
    report = json.loads(run.stdout or "{}")
    if "sum_received" not in report.get("end", {}):
        raise SystemExit(f"iperf3 from {client.name} to {address}: {report.get('error', run.stderr[-500:])}")
    return report["end"]["sum_received"]["bits_per_second"] / 1e9


def ping_ms(source: Netns, address: str, count: int) -> float:
    """Round trip (ms) of `count` back-to-back ICMP echoes: the mean of the middle 80 % (ping
    prints whole microseconds, a few more than the round trip itself: the median of such
    samples moves in steps of 1 us, the trimmed mean resolves less and ignores stragglers)."""
    run = source.exec("busybox", "ping", "-A", "-c", str(count), "-W", "2", address,
                      check=False, timeout=count + 30)
    times = [float(t) for t in re.findall(r"time=([0-9.]+) ms", run.stdout)]
    if len(times) < count // 2:
        raise SystemExit(f"ping {address} from {source.name}: {run.stdout[-500:]} {run.stderr[-500:]}")
    times.sort()
    cut = len(times) // 10
    return statistics.fmean(times[cut:len(times) - cut])


class Server:
    """iperf3 -s inside a netns, for the whole run."""

    def __init__(self, ns: Netns) -> None:
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns.name, "iperf3", "-s", "-p", str(PORT)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def guest_on(sandbox: Sandbox, pod_iface: str, workdir: str, made: list[Guest]) -> Netns:
    """A guest stand-in in the tap's place on the binding's bridge for `pod_iface`, addressed
    by the binding's DHCP."""
    bridge = naming.bridge_name(pod_iface)
    guest = attach_guest(sandbox.netns, bridge, GUEST_MAC, as_tap=naming.tap_name(pod_iface))
    made.append(guest)
    lease = dhcp_lease(guest.ns, "eth0", workdir)
    if not lease:
        raise SystemExit(f"the guest stand-in on {bridge} in {sandbox.netns.name} got no DHCP lease")
    routes = lease.get("staticroutes", "").split()  # the test client sets only the default route
    for dst, gateway in zip(routes[::2], routes[1::2], strict=True):
        if dst != "0.0.0.0/0":
            guest.ns.ip("route", "replace", dst, "via", gateway)
    return guest.ns


def routed_twin(sandbox: Sandbox, pod_address: str, made: list[Guest]) -> Netns:
    """A guest stand-in behind a plain bridge and plain routing inside a plain pod: the hops
    a VM binding adds (a bridge, a veth, a routing step in the pod), without netplug's rules
    (no NAT, no conntrack, no spoof guard). Not a target: it shows where the time goes."""
    pod = sandbox.netns
    pod.ip("link", "add", TWIN_BRIDGE, "type", "bridge")
    pod.ip("addr", "add", f"{TWIN_GATEWAY}/24", "dev", TWIN_BRIDGE)
    pod.ip("link", "set", TWIN_BRIDGE, "up")
    pod.exec("sysctl", "-qw", "net.ipv4.ip_forward=1")
    guest = attach_guest(pod, TWIN_BRIDGE, GUEST_MAC)
    made.append(guest)
    guest.ns.ip("addr", "add", f"{TWIN_GUEST}/24", "dev", "eth0")
    guest.ns.ip("route", "add", "default", "via", TWIN_GATEWAY)
    sh("ip", "route", "add", f"{TWIN_GATEWAY.rsplit('.', 1)[0]}.0/24", "via", pod_address)
    return guest.ns


def pod_ip(result: dict, ifname: str) -> str:
    index = next(i for i, iface in enumerate(result["interfaces"]) if iface["name"] == ifname and iface.get("sandbox"))
    return next(ip["address"] for ip in result["ips"] if ip.get("interface") == index).split("/")[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=2.0, help="iperf3 run length")
    parser.add_argument("--pings", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 1.5 s and 500 pings")
    args = parser.parse_args()
    if (status := reexec_isolated()) is not None:
        return status
    rounds, seconds, pings = (3, 1.5, 500) if args.quick else (args.rounds, args.seconds, args.pings)

    print(f"datapath: {rounds} rounds, iperf3 {seconds} s per path, {pings} pings per path")
    print(f"machine: {machine()}")
    forwarding_on()
    with tempfile.TemporaryDirectory(prefix="netplug-bench-") as workdir:
        node = Node(os.path.join(workdir, "node"))
        second = Node(os.path.join(workdir, "second"), subnet="10.241.0.0/24")
        outside = Netns.create("bnout")
        node_link = unique("bnx")
        sandboxes: list[Sandbox] = []
        guests: list[Guest] = []
        made: list[tuple[Node, Chain, object]] = []
        servers: list[Server] = []
        try:
            veth(None, node_link, outside, "ext0")
            sh("ip", "addr", "add", f"{NODE_SIDE}/24", "dev", node_link)
            outside.ip("addr", "add", f"{OUTSIDE}/24", "dev", "ext0")
            outside.ip("route", "add", "default", "via", NODE_SIDE)
            node.start_agent()

            def attach(on: Node, chain: Chain, ifname: str = "eth0"):
                sandbox = Sandbox.create()
                sandboxes.append(sandbox)
                run = on.add(sandbox, chain, ifname)
                made.append((on, chain, run))
                return sandbox, run

            ports = [{"name": f"p{n}", "port": PORT - 99 + n} for n in range(100)]  # PORT is the last
            plain, plain_run = attach(node, node.pod_network())
            twin, twin_run = attach(node, node.pod_network())
            masq, _ = attach(node, node.pod_network(node.binding("masquerade")))
            masq100, masq100_run = attach(node, node.pod_network(node.binding("masquerade", ports=ports)))
            bridged, _ = attach(node, node.pod_network(node.binding("bridge", mac=GUEST_MAC)))
            blue_if = naming.pod_interface_for_network("blue")
            # a secondary network gives no default route; its NAD names the route to the outside
            blue_primary = second.primary(isGateway=True)
            blue_primary.pop("isDefaultGateway")
            blue_primary["ipam"]["routes"] = [{"dst": f"{OUTSIDE.rsplit('.', 1)[0]}.0/24"}]
            blue_chain = Chain("blue", [blue_primary, node.binding("bridge", mac=GUEST_MAC)])
            blue, _ = attach(node, blue_chain, blue_if)  # `second` only names its bridge and IPAM
            paths = [
                Path("plain pod", plain.netns, inbound_to=pod_ip(plain_run.result, "eth0")),
                Path("masquerade", guest_on(masq, "eth0", workdir, guests)),
                Path("masquerade, 100 ports", guest_on(masq100, "eth0", workdir, guests),
                     inbound_to=pod_ip(masq100_run.result, "eth0")),
                Path("bridge, pod network", guest_on(bridged, "eth0", workdir, guests)),
                Path("bridge, secondary", guest_on(blue, blue_if, workdir, guests)),
                Path(TWIN, routed_twin(twin, pod_ip(twin_run.result, "eth0"), guests)),
            ]
            servers.append(Server(outside))
            servers += [Server(p.sender) for p in paths if p.inbound_to]
            inbound = [p for p in paths if p.inbound_to]

            results: dict[str, dict[str, list[float]]] = {p.label: {"gbps": [], "ms": [], "in_gbps": []} for p in paths}
            ratios: dict[str, dict[str, list[float]]] = {p.label: {"gbps": [], "ms": [], "in_gbps": []} for p in paths}
            plain_path, others = paths[0], paths[1:]

            def measure(path: Path, key: str) -> float:
                value = {"gbps": lambda: iperf3(path.sender, OUTSIDE, seconds),
                         "ms": lambda: ping_ms(path.sender, OUTSIDE, pings),
                         "in_gbps": lambda: iperf3(outside, path.inbound_to, seconds)}[key]()
                results[path.label][key].append(value)
                return value

            for r in range(rounds):
                # each binding right beside a plain run, alternately before and after it: a pair
                # shares the machine's load of the moment; a ratio is the pair's
                order = others[r % len(others):] + others[:r % len(others)]
                for path in order:
                    for key in ("gbps", "ms") + (("in_gbps",) if path.inbound_to else ()):
                        pair = (plain_path, path) if r % 2 == 0 else (path, plain_path)
                        earlier, later = measure(pair[0], key), measure(pair[1], key)
                        plain, binding = (earlier, later) if pair[0] is plain_path else (later, earlier)
                        ratios[path.label][key].append(binding / plain)
                print(f"  round {r + 1}/{rounds}: " + ", ".join(
                    f"{label} {e['gbps'][-1]:.1f} Gbit/s {e['ms'][-1] * 1000:.1f} us" for label, e in results.items()),
                    flush=True)
        finally:
            for server in servers:
                server.stop()
            for guest in guests:
                guest.remove()
            for on, chain, run in reversed(made):
                on.delete(run, chain)
            for sandbox in sandboxes:
                sandbox.delete()
            sh("ip", "link", "del", node_link, check=False)
            outside.delete()
            node.close()
            second.close()

    def per_round(label: str, key: str) -> float:
        return statistics.median(ratios[label][key]) if label != plain_path.label else 1.0

    def spread(label: str, key: str) -> str:
        """The median ratio with the range of the pairs' ratios: how noisy the machine was."""
        if label == plain_path.label:
            return "1.00x"
        values = ratios[label][key]
        return f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"

    print()
    print("guest (or plain pod) -> outside host; medians over the rounds; ratios: median of the ratios of each "
          "binding run to the plain run beside it")
    rows = []
    for label, e in results.items():
        rows.append((label, f"{statistics.median(e['gbps']):.2f}", spread(label, "gbps"),
                     f"{statistics.median(e['ms']) * 1000:.2f}", spread(label, "ms")))
    table(rows, ("path", "TCP Gbit/s", "vs plain (pairs' range)", "RTT us", "vs plain (pairs' range)"))
    print()
    print("outside host -> pod IP (masquerade: DNAT by one of 100 forwarded ports to the guest)")
    table([(p.label, f"{statistics.median(results[p.label]['in_gbps']):.2f}", spread(p.label, "in_gbps"))
           for p in inbound], ("path", "TCP Gbit/s", "vs plain (pairs' range)"))
    print()
    print("targets (each binding against the plain pod)")
    for label in results:
        if label in ("plain pod", TWIN):
            continue
        throughput, latency = per_round(label, "gbps"), per_round(label, "ms")
        verdict(f"{label}: throughput >= 0.9x", throughput >= 0.9, f"{throughput:.2f}x")
        verdict(f"{label}: latency <= 1.1x", latency <= 1.1, f"{latency:.2f}x")
    inbound_ratio = per_round("masquerade, 100 ports", "in_gbps")
    verdict("masquerade, 100 ports, inbound: throughput >= 0.9x", inbound_ratio >= 0.9, f"{inbound_ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
