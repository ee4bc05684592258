"""What every benchmark shares: the isolated world, a node with netplug's shim and agent, pod
sandboxes, the CNI chain run and timed exec by exec, statistics, memory figures, a census of
what is left, and the verdict lines (MET / NOT MET).

A benchmark is a script `bench/<name>.py` whose `main` calls `reexec_isolated()` first: run as
root from the repository, it re-runs itself under scripts/isolated (private network and mount
namespaces), so the node it wires is disposable and the real host is never touched.

Figures are wall-clock milliseconds as a runtime sees them (fork + exec + the plugin's work).
The machine may be shared: compare only figures measured in the same run, use medians, and
interleave what is compared where the benchmark allows.

May import: netplug, runtime, tests.support (benchmarks are not part of the product).
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import select
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from runtime.install import install_shim  # noqa: E402
from tests.support.agent import AgentDidNotStart, StateDirCensus, start_agent, stop_agent  # noqa: E402
from tests.support.cnirt import PluginError, exec_plugin  # noqa: E402
from tests.support.topology import (  # noqa: E402
    Netns,
    host_local_allocations,
    in_isolated_world,
    sh,
    unique,
    veth,
)

REFERENCE = "/usr/lib/cni"


# --- the world ---------------------------------------------------------------------------------


def reexec_isolated() -> int | None:
    """Outside scripts/isolated: run this very command inside it and return its exit status.
    Inside: None (go on)."""
    if in_isolated_world():
        return None
    if os.geteuid() != 0:
        sys.exit("the benchmarks need root (they make network namespaces)")
    return subprocess.call([os.path.join(REPO, "scripts", "isolated"), sys.executable, *sys.argv])


def exported_tree(revision: str, into: str) -> str:
    """The files of `revision` of this repository, unpacked into `into` (for Node.tree)."""
    os.makedirs(into, exist_ok=True)
    archive = subprocess.run(["git", "-C", REPO, "archive", revision], capture_output=True, check=False)
    if archive.returncode != 0:
        raise SystemExit(f"--against {revision}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", into], input=archive.stdout, check=True)
    return into


def machine() -> str:
    """One line naming the machine and how busy it was when the benchmark started."""
    load = os.getloadavg()
    return (f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, kernel {platform.release()}, "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start")


def forwarding_on() -> None:
    """IPv4 forwarding in the node netns (this run's own, never the host's)."""
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
        f.write("1")


# --- statistics ----------------------------------------------------------------------------------


def percentile(samples: Iterable[float], q: float) -> float:
    """The q-quantile (0..1) by the nearest-rank rule; robust for the small samples used here."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


@dataclass(frozen=True)
class Stats:
    n: int
    median: float
    p90: float

    @classmethod
    def of(cls, samples: Iterable[float]) -> Stats:
        values = list(samples)
        return cls(len(values), statistics.median(values) if values else float("nan"), percentile(values, 0.9))

    def __str__(self) -> str:
        return f"{self.median:7.1f} / {self.p90:7.1f}"


def ratio(value: float, reference: float) -> float:
    return value / reference if reference else float("inf")


def verdict(what: str, ok: bool, detail: str = "") -> bool:
    """Print one target's verdict line; returns `ok`."""
    print(f"  {'MET    ' if ok else 'NOT MET'}  {what}{f'  ({detail})' if detail else ''}")
    return ok


def table(rows: list[tuple], header: tuple) -> None:
    """Print rows under a header, columns padded to their widest cell."""
    cells = [tuple(str(c) for c in header)] + [tuple(str(c) for c in row) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  " + "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))


# --- processes -----------------------------------------------------------------------------------


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of a process in KiB, from /proc/<pid>/smaps_rollup; (0, 0) if it is gone.
    PSS divides each shared page among the processes mapping it: the honest per-process share."""
    values = {"Rss:": 0, "Pss:": 0}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key, _, rest = line.partition(" ")
                if key in values:
                    values[key] = int(rest.split()[0])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return values["Rss:"], values["Pss:"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def kill_all(pids: Iterable[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# --- timed CNI execs -----------------------------------------------------------------------------


def timed_exec(binary: str, command: str, config: dict, **kw) -> tuple[float, dict | None]:
    """(wall ms, parsed stdout) of one plugin exec; a failed exec raises PluginError."""
    start = time.perf_counter()
    run = exec_plugin(binary, command, config, **kw)
    elapsed = (time.perf_counter() - start) * 1000
    if run.returncode != 0:
        raise PluginError(os.path.basename(binary), run)
    return elapsed, run.json


@dataclass
class Sandbox:
    """A pod sandbox: its netns and the container ID the runtime gives its CNI calls."""

    netns: Netns
    container_id: str

    @classmethod
    def create(cls, prefix: str = "bnpod") -> Sandbox:
        ns = Netns.create(prefix)
        return cls(ns, f"bench-{ns.name}")

    def delete(self) -> None:
        self.netns.delete()


@dataclass
class ChainRun:
    """One attachment made by a chain: its final result and each plugin's ADD time (ms)."""

    sandbox: Sandbox
    ifname: str
    result: dict | None
    add_ms: list[float]


@dataclass
class Chain:
    """A conflist as the runtime runs it: plugins in order for ADD (each given the previous
    result), in reverse for DEL (given the final result)."""

    name: str
    plugins: list[dict]
    cni_version: str = "1.0.0"

    def config(self, plugin: dict, prev: dict | None) -> dict:
        config = {"cniVersion": self.cni_version, "name": self.name, **plugin}
        if prev is not None:
            config["prevResult"] = prev
        return config


@dataclass
class Node(StateDirCensus):
    """A benchmark's node: netplug's shim installed, its state dir and agent, the reference
    plugins, and a pod network on a node bridge (the reference bridge + host-local)."""

    workdir: str
    subnet: str = "10.240.0.0/16"
    bridge: str = field(default_factory=lambda: unique("bnbr"))
    agent: subprocess.Popen | None = None
    #: the netplug whose shim and agent the node runs: this repository, or another revision's
    #: files (`exported_tree`), to compare two in one run
    tree: str = REPO

    def __post_init__(self) -> None:
        self.bin_dir = os.path.join(self.workdir, "bin")
        self.state_dir = os.path.join(self.workdir, "state")
        self.socket = os.path.join(self.workdir, "agent.sock")
        self.ipam_dir = os.path.join(self.workdir, "ipam")
        self.cni_path = [self.bin_dir, REFERENCE]
        self.env = {"NETPLUG_STATE_DIR": self.state_dir, "NETPLUG_AGENT_SOCKET": self.socket}
        self.resolv_conf = os.path.join(self.workdir, "resolv.conf")
        os.makedirs(self.workdir, exist_ok=True)
        with open(self.resolv_conf, "w") as f:
            f.write("search default.svc.cluster.local svc.cluster.local cluster.local\n"
                    "nameserver 10.96.0.10\noptions ndots:5\n")
        if self.tree == REPO:
            install_shim(self.bin_dir, sys.executable)
        else:  # that revision's installer, run from its tree (it imports its own netplug there)
            subprocess.run([sys.executable, "-c", "import sys; from runtime.install import install_shim; "
                            "install_shim(sys.argv[1], sys.argv[2])", self.bin_dir, sys.executable],
                           cwd=self.tree, check=True)

    # configs

    def primary(self, **extra) -> dict:
        """The pod network's plugin: the reference bridge with host-local on the node bridge."""
        return {"type": "bridge", "bridge": self.bridge, "isDefaultGateway": True,
                "ipam": {"type": "host-local", "subnet": self.subnet, "dataDir": self.ipam_dir}, **extra}

    def binding(self, binding: str = "masquerade", **extra) -> dict:
        """netplug's binding entry, chained after the primary plugin; the guest's DNS comes from
        a resolv.conf like a pod's (the file a runtime gives netplug on a node)."""
        return {"type": "netplug", "binding": binding, "resolvConf": self.resolv_conf, **extra}

    def pod_network(self, *plugins: dict, name: str = "benchnet") -> Chain:
        """The pod network's chain: the primary plugin, then `plugins` (netplug's binding)."""
        return Chain(name, [self.primary(), *plugins])

    # the agent

    @property
    def agent_log(self) -> str:
        return os.path.join(self.workdir, "agent.log")

    def start_agent(self, log_level: str = "WARNING") -> subprocess.Popen:
        try:
            self.agent = start_agent(self.socket, self.state_dir, self.agent_log, cwd=self.tree, log_level=log_level)
        except AgentDidNotStart as exc:
            raise SystemExit(str(exc)) from None
        return self.agent

    def stop_agent(self, *, kill: bool = False) -> None:
        if self.agent is not None:
            stop_agent(self.agent, self.socket, signal.SIGKILL if kill else signal.SIGTERM)
            self.agent = None

    # CNI

    def _plugin(self, plugin: dict) -> str:
        return os.path.join(self.bin_dir if plugin["type"] == "netplug" else REFERENCE, plugin["type"])

    def _ids(self, sandbox: Sandbox, ifname: str) -> dict:
        return {"container_id": sandbox.container_id, "netns": sandbox.netns.path, "ifname": ifname,
                "cni_path": self.cni_path, "extra_env": self.env}

    def add(self, sandbox: Sandbox, chain: Chain, ifname: str = "eth0") -> ChainRun:
        prev, times = None, []
        for plugin in chain.plugins:
            elapsed, prev = timed_exec(self._plugin(plugin), "ADD", chain.config(plugin, prev), **self._ids(sandbox, ifname))
            times.append(elapsed)
        return ChainRun(sandbox, ifname, prev, times)

    def delete(self, run: ChainRun, chain: Chain) -> list[float]:
        """DEL in reverse; each plugin's DEL time (ms), in the chain's order."""
        times = []
        for plugin in reversed(chain.plugins):
            elapsed, _ = timed_exec(self._plugin(plugin), "DEL", chain.config(plugin, run.result),
                                    **self._ids(run.sandbox, run.ifname))
            times.append(elapsed)
        return times[::-1]

    # what exists (and records, service_files, services: StateDirCensus)

    def allocations(self) -> list[str]:
        """host-local's allocations on every network of this node, as "<network>/<address>"."""
        return sorted(host_local_allocations(self.ipam_dir))

    def close(self) -> None:
        self.stop_agent()
        kill_all(self.services())
        sh("ip", "link", "del", self.bridge, check=False)


def make_sandboxes(count: int, prefix: str = "bnpod", workers: int = 4) -> list[Sandbox]:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda _: Sandbox.create(prefix), range(count)))


def sandbox_leftovers(sandboxes: list[Sandbox], workers: int = 4) -> dict[str, list[str]]:
    """What is left inside sandboxes whose attachments were all deleted: links but lo, and
    nftables objects. Keyed by what, each a list of "<netns>: <thing>"."""
    def census(sandbox: Sandbox) -> tuple[list[str], list[str]]:
        ns = sandbox.netns
        links = [f"{ns.name}: {name}" for name in ns.links() if name != "lo"]
        rules = [f"{ns.name}: {json.dumps(obj)[:80]}" for obj in ns.nft_ruleset()]
        return links, rules
    with ThreadPoolExecutor(workers) as pool:
        found = list(pool.map(census, sandboxes))
    return {"links in pod sandboxes": [x for links, _ in found for x in links],
            "nftables objects in pod sandboxes": [x for _, rules in found for x in rules]}


def node_leftovers(nodes: list[Node], *, own_netns: Iterable[str] = ()) -> dict[str, list[str]]:
    """What is left on the node once every attachment and sandbox is gone: links other than
    lo and the node bridges (the reference bridge plugin keeps its bridge, by design), named
    netns other than `own_netns`, the node's nftables, DHCP service processes, host-local
    allocations, netplug's state records and service files."""
    keep = {"lo", *(n.bridge for n in nodes)}
    links = [link["ifname"] for link in json.loads(sh("ip", "-j", "link", "show").stdout) if link["ifname"] not in keep]
    netns = [n for n in os.listdir("/run/netns") if n not in set(own_netns)]
    rules = [o for o in json.loads(sh("nft", "-j", "list", "ruleset").stdout)["nftables"] if "metainfo" not in o]
    return {
        "links in the node": links,
        "network namespaces": netns,
        "nftables objects in the node": [json.dumps(r)[:120] for r in rules],
        "DHCP service processes": [str(p) for n in nodes for p in n.services()],
        "host-local allocations": [a for n in nodes for a in n.allocations()],
        "state records": [r for n in nodes for r in n.records()],
        "service files": [f for n in nodes for f in n.service_files()],
    }


def report_leftovers(found: dict[str, list[str]]) -> bool:
    """Print what is left, kind by kind; True when nothing is."""
    for what, items in found.items():
        shown = ", ".join(items[:5]) + (f", ... ({len(items)} in all)" if len(items) > 5 else "")
        print(f"  {what:36} {'none' if not items else shown}")
    return not any(found.values())


def in_parallel(jobs: list[Callable[[], object]], workers: int) -> tuple[float, list[object]]:
    """Run the jobs on `workers` threads; (wall seconds, their results in order)."""
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda job: job(), jobs))
    return time.perf_counter() - start, results


# --- DHCP on the wire ----------------------------------------------------------------------------

DHCP_TYPES = {1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK", 7: "RELEASE", 8: "INFORM"}
_ETH_P_IP = 0x0800
_MAGIC_COOKIE = b"\x63\x82\x53\x63"


def _ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def dhcp_discover_frame(mac: str, xid: int) -> bytes:
    """An Ethernet frame carrying a DHCPDISCOVER from `mac` (0.0.0.0 -> broadcast, broadcast
    flag set so the OFFER comes back to ff:ff:ff:ff:ff:ff), as a client without an address sends."""
    hw = bytes.fromhex(mac.replace(":", ""))
    bootp = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000,
                        bytes(4), bytes(4), bytes(4), bytes(4), hw, b"", b"")
    options = _MAGIC_COOKIE + bytes([53, 1, 1, 55, 3, 1, 3, 6, 255])
    payload = (bootp + options).ljust(300, b"\0")  # BOOTP's minimum size
    udp = struct.pack("!HHHH", 68, 67, 8 + len(payload), 0) + payload
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0x10, 20 + len(udp), 0, 0, 64, 17, 0, bytes(4), b"\xff" * 4)
    header = header[:10] + struct.pack("!H", _ip_checksum(header)) + header[12:]
    return b"\xff" * 6 + hw + struct.pack("!H", _ETH_P_IP) + header + udp


def parse_dhcp_frame(frame: bytes) -> tuple[str, int, str] | None:
    """(message type, xid, client MAC) of a DHCP message in an Ethernet frame; None if none."""
    if len(frame) < 14 + 20 + 8 + 240 or frame[12:14] != struct.pack("!H", _ETH_P_IP) or frame[23] != 17:
        return None
    udp = 14 + (frame[14] & 0x0F) * 4
    if struct.unpack("!H", frame[udp + 2:udp + 4])[0] not in (67, 68):
        return None
    bootp = udp + 8
    xid = struct.unpack("!I", frame[bootp + 4:bootp + 8])[0]
    mac = ":".join(f"{b:02x}" for b in frame[bootp + 28:bootp + 34])
    options = bootp + 236
    if frame[options:options + 4] != _MAGIC_COOKIE:
        return None
    i = options + 4
    while i < len(frame) and frame[i] != 255:
        if frame[i] == 0:
            i += 1
            continue
        if frame[i] == 53:
            return DHCP_TYPES.get(frame[i + 2], str(frame[i + 2])), xid, mac
        i += 2 + frame[i + 1]
    return None


ETH_P_ALL = 0x0003


def raw_socket(ns: Netns, ifname: str, protocol: int = _ETH_P_IP) -> socket.socket:
    """An AF_PACKET socket on `ifname` inside `ns` (it stays in that netns once made).
    With ETH_P_ALL it also sees the frames the host sends out of `ifname`."""
    def make() -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(protocol))
        sock.bind((ifname, protocol))
        return sock
    return ns.run(make)


class DhcpProbe:
    """A DHCP client stand-in on a pod bridge: a veth whose one end is a port of `bridge` and
    whose other end, in the same pod netns, carries raw DISCOVERs and hears the OFFERs (raw
    frames never touch the pod's IP stack). An OFFER is never REQUESTed: no lease is taken."""

    PORT, END = "bnprobe0", "bnprobe1"

    def __init__(self, ns: Netns, bridge: str, mac: str) -> None:
        self.mac = mac
        veth(ns, self.PORT, ns, self.END, b_mac=mac)
        ns.ip("link", "set", self.PORT, "master", bridge)
        self.sock = raw_socket(ns, self.END)
        self.sock.setblocking(False)

    def close(self) -> None:
        self.sock.close()


def first_offers(probes: list[DhcpProbe], timeout: float, interval: float = 0.05) -> list[float | None]:
    """Send DISCOVERs from every probe (again every `interval` s until it is answered) and
    return, per probe, the time.monotonic() of its first OFFER, or None after `timeout` s."""
    answered: list[float | None] = [None] * len(probes)
    xids = {id(p): secrets.randbits(32) for p in probes}
    by_fd = {p.sock.fileno(): (i, p) for i, p in enumerate(probes)}
    deadline = time.monotonic() + timeout
    next_send = 0.0
    while None in answered and time.monotonic() < deadline:
        now = time.monotonic()
        if now >= next_send:
            for i, probe in enumerate(probes):
                if answered[i] is None:
                    probe.sock.send(dhcp_discover_frame(probe.mac, xids[id(probe)]))
            next_send = now + interval
        ready, _, _ = select.select([p.sock for i, p in enumerate(probes) if answered[i] is None], [], [],
                                    max(0.0, min(next_send, deadline) - time.monotonic()))
        for sock in ready:
            i, probe = by_fd[sock.fileno()]
            while True:
                try:
                    frame = sock.recv(2048)
                except BlockingIOError:
                    break
                message = parse_dhcp_frame(frame)
                if message and message[0] == "OFFER" and message[1] == xids[id(probe)] and answered[i] is None:
                    answered[i] = time.monotonic()
    return answered
