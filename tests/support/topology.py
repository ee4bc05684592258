"""Throwaway network namespaces and the hosts tests wire between them (tests only).

Every namespace and link gets a unique name (other runs may share the machine) and is
removed by name. The test process itself runs in a private "node" netns (scripts/test runs
pytest under `unshare --net`), so node-side bridges and sysctls are disposable too.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import secrets
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute

from netplug.ops import netns as ops_netns
from netplug.ops import nft as ops_nft
from netplug.ops.proc import pids_mentioning

_counter = itertools.count(1)
#: the pod-wide sysctls netplug's bindings change (and must restore)
SNAPSHOT_SYSCTLS = ("ipv4/ip_forward", "ipv6/conf/all/forwarding", "ipv4/conf/all/arp_ignore")
RT_SCOPE_LINK = 253
IFF_UP = 1


def in_isolated_world() -> bool:
    """True inside scripts/isolated: the private tmpfs it mounts on /run/netns is visible
    (an inherited environment variable could lie; the mount table cannot)."""
    try:
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == "/run/netns" and "netplug-isolated" in line for line in f)
    except OSError:
        return False


def unique(prefix: str) -> str:
    """A name unique on this machine, at most 15 characters."""
    name = f"{prefix}{secrets.token_hex(3)}{next(_counter) % 100:02d}"
    assert len(name) <= 15, name
    return name


def sh(*argv: str, check: bool = True, input: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, input=input, timeout=timeout)


@dataclass
class Netns:
    name: str

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    @classmethod
    def create(cls, prefix: str = "np") -> Netns:
        ns = cls(unique(prefix))
        sh("ip", "netns", "add", ns.name)
        sh("ip", "-n", ns.name, "link", "set", "lo", "up")
        return ns

    def delete(self) -> None:
        sh("ip", "netns", "del", self.name, check=False)

    def exec(self, *argv: str, check: bool = True, timeout: float = 30, input: str | None = None) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", self.name, *argv, check=check, timeout=timeout, input=input)

    def ip(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return sh("ip", "-n", self.name, *argv, check=check)

    def links(self) -> dict[str, dict]:
        return {link["ifname"]: link for link in json.loads(self.ip("-j", "-d", "link", "show").stdout)}

    def addresses(self, ifname: str) -> list[str]:
        data = json.loads(self.ip("-j", "addr", "show", "dev", ifname).stdout)
        return [f"{a['local']}/{a['prefixlen']}" for a in data[0]["addr_info"] if a.get("scope") != "link"]

    def nft_ruleset(self, *, stateless: bool = False) -> list[dict]:
        """The netns's nftables ruleset; `stateless` leaves out counters (which traffic moves)."""
        out = self.exec("nft", "-j", *(["-s"] if stateless else []), "list", "ruleset").stdout
        return [o for o in json.loads(out)["nftables"] if "metainfo" not in o]

    def sysctl(self, key: str) -> str:
        return self.exec("cat", f"/proc/sys/{key}").stdout.strip()

    def snapshot(self) -> dict:
        """What a DEL must give back: each link's MAC, MTU, master, state and addresses (not
        link-local), the nftables ruleset, and the sysctls a binding may change. Read in-process
        (pyroute2, libnftables) from a thread in the netns: the fuzzer takes one per case."""
        def read() -> dict:
            with IPRoute() as ipr:
                found = ipr.get_links()
                addresses: dict[int, list[str]] = {}
                for addr in ipr.get_addr():
                    if addr["scope"] != RT_SCOPE_LINK:
                        local = addr.get_attr("IFA_LOCAL") or addr.get_attr("IFA_ADDRESS")
                        addresses.setdefault(addr["index"], []).append(f"{local}/{addr['prefixlen']}")
            names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in found}
            links = {
                link.get_attr("IFLA_IFNAME"): {
                    "mac": link.get_attr("IFLA_ADDRESS"), "mtu": link.get_attr("IFLA_MTU"),
                    "master": names.get(link.get_attr("IFLA_MASTER")), "up": bool(link["flags"] & IFF_UP),
                    "addresses": sorted(addresses.get(link["index"], []))}
                for link in found
            }
            sysctls = {}
            for key in SNAPSHOT_SYSCTLS:
                with open(f"/proc/sys/net/{key}") as f:
                    sysctls[key] = f.read().strip()
            return {"links": links, "nft": ops_nft.list_ruleset(), "sysctls": sysctls}
        return self.run(read)

    def run(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on a thread inside this netns and return its result."""
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                with ops_netns.entered(self.path):
                    box["value"] = fn()
            except BaseException as exc:
                box["error"] = exc
        thread = threading.Thread(target=target)
        thread.start()
        thread.join()
        if "error" in box:
            raise box["error"]
        return box.get("value")


def veth(a: Netns | None, a_name: str, b: Netns, b_name: str, *, b_mac: str | None = None) -> None:
    """A veth pair, created with temporary names then moved and renamed (names may clash in the node ns)."""
    tmp_a, tmp_b = unique("tva"), unique("tvb")
    sh("ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
    if a is not None:
        sh("ip", "link", "set", tmp_a, "netns", a.name)
        a.ip("link", "set", tmp_a, "name", a_name)
        a.ip("link", "set", a_name, "up")
    else:
        sh("ip", "link", "set", tmp_a, "name", a_name)
        sh("ip", "link", "set", a_name, "up")
    sh("ip", "link", "set", tmp_b, "netns", b.name)
    b.ip("link", "set", tmp_b, "name", b_name)
    if b_mac:
        b.ip("link", "set", b_name, "address", b_mac)
    b.ip("link", "set", b_name, "up")


class _ServedSocket:
    """A socket that a background thread serves until `close()`: `_serve_one` handles one
    connection or datagram; the 0.2 s timeout lets the thread notice `close()`."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve_one(self) -> None:
        raise NotImplementedError

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                self._serve_one()
            except (TimeoutError, OSError):
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


class TcpServer(_ServedSocket):
    """A TCP server inside a netns that answers each connection with the peer's address."""

    def __init__(self, ns: Netns, port: int, host: str = "0.0.0.0") -> None:
        self.ns, self.port = ns, port
        self.peers: list[str] = []
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__(ns.run(lambda: socket.create_server((host, port), family=family,
                                                             dualstack_ipv6=family == socket.AF_INET6)))

    def _serve_one(self) -> None:
        conn, peer = self.sock.accept()
        with conn:
            self.peers.append(peer[0])
            conn.sendall(f"hello {peer[0]}\n".encode())


class UdpSink(_ServedSocket):
    """Records the source address of every datagram that reaches `port` in `ns`."""

    def __init__(self, ns: Netns, port: int) -> None:
        self.sources: list[str] = []
        sock = ns.run(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        sock.bind(("0.0.0.0", port))
        super().__init__(sock)

    def _serve_one(self) -> None:
        self.sources.append(self.sock.recvfrom(100)[1][0])


def tcp_request(ns: Netns, host: str, port: int, timeout: float = 3.0) -> str | None:
    """Connect from inside `ns`; the server's greeting, or None if nothing answered."""
    def connect() -> str | None:
        try:
            with socket.create_connection((host, port), timeout=timeout) as conn:
                return conn.recv(200).decode()
        except OSError:
            return None
    return ns.run(connect)


UDHCPC_SCRIPT = """#!/bin/sh
# udhcpc hook for tests: record the lease, configure the interface like a guest would
case "$1" in
  deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    env | grep -E '^(ip|mask|subnet|router|dns|domain|search|mtu|hostname|staticroutes|lease|serverid|interface|ntpsrv|tftp|bootfile|opt[0-9]+)=' > "$LEASE_FILE"
    ;;
esac
exit 0
"""


def dhcp_lease(ns: Netns, ifname: str, workdir: str, *, tries: int = 5) -> dict[str, str]:
    """Run busybox udhcpc in `ns` like a guest's DHCP client; the lease's fields (empty: none)."""
    script = os.path.join(workdir, "udhcpc.sh")
    lease = os.path.join(workdir, f"lease-{ns.name}-{ifname}")
    with open(script, "w") as f:
        f.write(UDHCPC_SCRIPT)
    os.chmod(script, 0o755)
    try:
        os.unlink(lease)
    except FileNotFoundError:
        pass
    subprocess.run(
        ["ip", "netns", "exec", ns.name, "busybox", "udhcpc", "-i", ifname, "-s", script, "-n", "-q",
         "-t", str(tries), "-T", "1", "-A", "1", "-O", "search", "-O", "staticroutes", "-O", "hostname",
         "-O", "mtu", "-O", "domain", "-O", "ntpsrv", "-O", "tftp", "-O", "bootfile", "-O", "240"],
        env={**os.environ, "LEASE_FILE": lease}, capture_output=True, text=True, timeout=60, check=False)
    if not os.path.exists(lease):
        return {}
    with open(lease) as f:
        return dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)


RENEWING_UDHCPC_SCRIPT = """#!/bin/sh
# udhcpc hook for a client that stays: the interface configured as a guest's, then one line
# per event (last, so that a reader who sees "bound" finds the address and route in place)
case "$1" in
  deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip addr replace "$ip/$mask" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    ;;
esac
echo "$1 $ip $serverid" >> "$EVENTS_FILE"
exit 0
"""


class DhcpClient:
    """busybox udhcpc staying in `ns` as a guest's DHCP client does: it holds its lease and
    renews it (a unicast DHCPREQUEST to the server that gave it) when sent SIGUSR1, which is
    what its T1 timer would do; netplug's leases are infinite, so nothing else makes it renew."""

    def __init__(self, ns: Netns, ifname: str, workdir: str) -> None:
        script = os.path.join(workdir, "udhcpc-renewing.sh")
        if not os.path.exists(script):
            with open(script, "w") as f:
                f.write(RENEWING_UDHCPC_SCRIPT)
            os.chmod(script, 0o755)
        self.events_file = os.path.join(workdir, f"dhcp-events-{ns.name}-{ifname}")
        open(self.events_file, "w").close()
        # `ip netns exec` execs udhcpc in place: the pid is udhcpc's, signals reach it
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns.name, "busybox", "udhcpc", "-f", "-i", ifname, "-s", script,
             "-t", "5", "-T", "1", "-A", "1"],
            env={**os.environ, "EVENTS_FILE": self.events_file},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def events(self) -> list[str]:
        with open(self.events_file) as f:
            return [line.split()[0] for line in f if line.strip()]

    def answers(self) -> int:
        """How many times a server answered: leases obtained and renewals acknowledged."""
        return sum(event in ("bound", "renew") for event in self.events())

    def renew(self) -> None:
        self.proc.send_signal(signal.SIGUSR1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def host_local_allocations(data_dir: str, network: str | None = None) -> dict[str, str]:
    """host-local's reservations in its dataDir (one file per address, holding the container
    ID): address -> container ID for one `network`, or "<network>/<address>" -> container ID
    for every network there."""
    found = {}
    for net in [network] if network is not None else (sorted(os.listdir(data_dir)) if os.path.isdir(data_dir) else []):
        directory = os.path.join(data_dir, net)
        for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
            try:
                ipaddress.ip_address(name)
            except ValueError:
                continue  # its lock and last_reserved_ip.<range> files
            with open(os.path.join(directory, name)) as f:
                found[name if network is not None else f"{net}/{name}"] = f.read().split()[0]
    return found


def processes_mentioning(text: str) -> list[int]:
    """Live (non-zombie) pids whose command line contains `text`."""
    return pids_mentioning(text.encode())


def dhcp6_lease(ns: Netns, ifname: str, workdir: str, timeout: float = 20) -> str | None:
    """Run dhclient -6 in `ns` like a stock guest; the IPv6 address it configured, or None."""
    base = os.path.join(workdir, f"dhclient6-{ns.name}-{ifname}")

    def link_local() -> bool:  # DHCPv6 and router solicitations are sent from it
        return '"scope":"link"' in ns.ip("-j", "-6", "addr", "show", "dev", ifname).stdout.replace(" ", "")
    wait_for(link_local, timeout=5)
    # dhclient's exit status says little (it forks to renew): the address it set is what counts
    subprocess.run(
        ["ip", "netns", "exec", ns.name, "dhclient", "-6", "-1", "-v", "-lf", base + ".leases",
         "-pf", base + ".pid", "-sf", "/sbin/dhclient-script", ifname],
        capture_output=True, text=True, timeout=timeout + 10, check=False)
    try:
        with open(base + ".pid") as f:
            os.kill(int(f.read().strip()), 15)  # dhclient stays to renew; the test is done with it
    except (FileNotFoundError, ValueError, ProcessLookupError):
        pass
    for link in json.loads(ns.ip("-j", "-6", "addr", "show", "dev", ifname).stdout):
        for addr in link["addr_info"]:
            if addr.get("scope") == "global":
                return addr["local"]
    return None


def default_route6(ns: Netns) -> str | None:
    """The guest's IPv6 default router (from router advertisements), if it has one."""
    routes = json.loads(ns.ip("-j", "-6", "route", "show", "default").stdout)
    return routes[0].get("gateway") if routes else None


def send_neighbour_advert(ns: Netns, ifname: str, target: str, mac: str, *, count: int = 3) -> None:
    """From `ns`, tell all nodes on `ifname` that `target` is at `mac`: an unsolicited,
    overriding neighbour advertisement, as an attacker poisoning neighbour caches sends it."""
    override = 0x20000000
    packet = struct.pack("!BBHI16sBB6s", 136, 0, 0, override, ipaddress.IPv6Address(target).packed,
                         2, 1, bytes.fromhex(mac.replace(":", "")))  # option 2: target link-layer address

    def send() -> None:
        index = socket.if_nametoindex(ifname)
        # the kernel fills in the ICMPv6 checksum of a raw ICMPv6 socket
        with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as sock:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)  # ND requires 255
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
            for _ in range(count):
                sock.sendto(packet, ("ff02::1", 0, 0, index))
                time.sleep(0.05)
    ns.run(send)


def neighbour_mac(ns: Netns, address: str, ifname: str) -> str | None:
    """The MAC `ns` holds for `address` in its neighbour cache, if any."""
    entries = json.loads(ns.ip("-j", "neigh", "show", address, "dev", ifname).stdout or "[]")
    return entries[0].get("lladdr") if entries else None
