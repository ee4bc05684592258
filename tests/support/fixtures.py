"""Fixtures for tests against the real kernel, the real CNI shim and the reference plugins,
shared by the functional, reliability and end-to-end suites (tests/conftest.py loads them).

These tests need root and an isolated node netns: `scripts/test` runs pytest under
`unshare --net --mount`. Outside that, they are skipped with that reason (tests/conftest.py).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from runtime.install import install_shim
from tests.support.agent import StateDirCensus, start_agent, stop_agent
from tests.support.cnirt import Runtime
from tests.support.topology import Netns, host_local_allocations, sh, unique, veth

REFERENCE_PLUGINS = "/usr/lib/cni"
_subnets = itertools.count(1)


@dataclass
class Netplug(StateDirCensus):
    """netplug as a runtime meets it: the shim on CNI_PATH, an agent or none, a state dir."""

    mode: str
    workdir: str
    bin_dir: str = ""
    state_dir: str = ""
    socket: str = ""
    agent: subprocess.Popen | None = None
    runtime: Runtime = field(default=None)  # type: ignore[assignment]
    #: the shim's interpreter (its in-process fallback runs with it too); this test run's by default
    shim_python: str = sys.executable

    def __post_init__(self) -> None:
        self.bin_dir = os.path.join(self.workdir, "bin")
        self.state_dir = os.path.join(self.workdir, "state")
        self.socket = os.path.join(self.workdir, "run", "agent.sock")
        install_shim(self.bin_dir, self.shim_python)
        self.runtime = Runtime(
            cni_path=[self.bin_dir, REFERENCE_PLUGINS],
            extra_env={"NETPLUG_AGENT_SOCKET": self.socket, "NETPLUG_STATE_DIR": self.state_dir,
                       "NETPLUG_TEST_HOOKS": "1"},
        )

    @property
    def shim(self) -> str:
        return os.path.join(self.bin_dir, "netplug")

    def start_agent(self) -> None:
        self.agent = start_agent(self.socket, self.state_dir, os.path.join(self.workdir, "agent.log"),
                                 env={**os.environ, "NETPLUG_TEST_HOOKS": "1"}, timeout=20)

    def stop_agent(self, sig: int = signal.SIGKILL) -> None:
        """Stop the agent: SIGKILL (a crash) by default, SIGTERM as a rolling update does."""
        if self.agent is not None:
            stop_agent(self.agent, self.socket, sig)
            self.agent = None

    def agent_log(self) -> str:
        path = os.path.join(self.workdir, "agent.log")
        return open(path).read() if os.path.exists(path) else ""


def _make_netplug(mode: str, workdir: str) -> Netplug:
    np = Netplug(mode=mode, workdir=workdir)
    if mode == "agent":
        np.start_agent()
    return np


def _cleanup_netplug(np: Netplug) -> None:
    np.stop_agent()
    for pid in np.services():
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


@pytest.fixture(params=["agent", "inprocess"])
def netplug(request: pytest.FixtureRequest, tmp_path) -> Netplug:
    """netplug with a running agent, and with none (the shim's in-process fallback)."""
    np = _make_netplug(request.param, str(tmp_path))
    yield np
    _cleanup_netplug(np)


@pytest.fixture
def netplug_agent(tmp_path) -> Netplug:
    np = _make_netplug("agent", str(tmp_path))
    yield np
    _cleanup_netplug(np)


@pytest.fixture
def netplug_inprocess(tmp_path) -> Netplug:
    np = _make_netplug("inprocess", str(tmp_path))
    yield np
    _cleanup_netplug(np)


@dataclass
class PodNetwork:
    """The node's pod network: the reference bridge plugin + host-local, as a primary CNI."""

    bridge: str
    index: int
    data_dir: str

    @property
    def subnet(self) -> str:
        return f"10.250.{self.index}.0/24"

    @property
    def gateway(self) -> str:
        return f"10.250.{self.index}.1"

    @property
    def subnet6(self) -> str:
        return f"fd00:250:{self.index}::/64"

    @property
    def gateway6(self) -> str:
        return f"fd00:250:{self.index}::1"

    def primary(self, *, ipv4: bool = True, ipv6: bool = False) -> dict:
        ranges = ([[{"subnet": self.subnet}]] if ipv4 else []) + ([[{"subnet": self.subnet6}]] if ipv6 else [])
        return {
            "type": "bridge", "bridge": self.bridge, "isDefaultGateway": True,
            "ipam": {"type": "host-local", "ranges": ranges, "dataDir": self.data_dir},
        }

    def conflist(self, version: str = "1.0.0", *plugins: dict, name: str = "podnet",
                 ipv4: bool = True, ipv6: bool = False) -> dict:
        return {"cniVersion": version, "name": name,
                "plugins": [self.primary(ipv4=ipv4, ipv6=ipv6), *plugins]}

    def allocations(self) -> list[str]:
        return sorted(host_local_allocations(self.data_dir, "podnet"))


@pytest.fixture
def pod_network(tmp_path) -> PodNetwork:
    net = PodNetwork(bridge=unique("npbr"), index=next(_subnets) % 250 + 1, data_dir=str(tmp_path / "ipam"))
    yield net
    sh("ip", "link", "del", net.bridge, check=False)


@pytest.fixture
def pod() -> Netns:
    ns = Netns.create("nppod")
    yield ns
    ns.delete()


@dataclass
class Outside:
    """A host outside the node, reached through it; plays the rest of the world."""

    ns: Netns
    address: str
    node_link: str
    address6: str = ""


@pytest.fixture
def outside() -> Outside:
    ns = Netns.create("npout")
    index = next(_subnets) % 250 + 1
    node_link = unique("npx")
    veth(None, node_link, ns, "ext0")
    sh("ip", "addr", "add", f"10.99.{index}.1/24", "dev", node_link)
    ns.ip("addr", "add", f"10.99.{index}.2/24", "dev", "ext0")
    ns.ip("route", "add", "default", "via", f"10.99.{index}.1")
    sh("ip", "addr", "add", f"fd99:{index}::1/64", "dev", node_link, "nodad")
    ns.ip("addr", "add", f"fd99:{index}::2/64", "dev", "ext0", "nodad")
    ns.ip("-6", "route", "add", "default", "via", f"fd99:{index}::1")
    for key in ("ipv4/ip_forward", "ipv6/conf/all/forwarding"):  # the node netns is this test run's own
        with open(f"/proc/sys/net/{key}", "w") as f:
            f.write("1")
    yield Outside(ns=ns, address=f"10.99.{index}.2", node_link=node_link, address6=f"fd99:{index}::2")
    sh("ip", "link", "del", node_link, check=False)
    ns.delete()


@pytest.fixture
def node_bridges():
    """Names of node bridges a test's delegates create; deleted afterwards."""
    made: list[str] = []
    yield made
    for name in made:
        sh("ip", "link", "del", name, check=False)


@dataclass
class Guest:
    """A guest stand-in: a veth whose far end, with the VM's MAC, is eth0 in its own netns."""

    ns: Netns
    port: str
    mac: str
    pod: Netns

    def remove(self) -> None:
        """Delete the pod-side port first: deleting a veth is synchronous, while a deleted
        netns takes its end of the pair with it only later, in the kernel's cleanup work."""
        self.pod.ip("link", "del", self.port, check=False)
        self.ns.delete()


def attach_guest(pod: Netns, bridge: str, mac: str = "52:54:00:12:34:56", *, as_tap: str | None = None) -> Guest:
    """A guest stand-in on `bridge`. With `as_tap`, it takes the place (and the name) of the
    binding's tap, so what guards the tap (the spoof guard) guards the stand-in."""
    ns = Netns.create("npvm")
    ns.exec("sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
    if as_tap:
        pod.ip("link", "del", as_tap)
    port = as_tap or unique("npg")
    veth(pod, port, ns, "eth0", b_mac=mac)
    pod.ip("link", "set", port, "master", bridge)
    return Guest(ns=ns, port=port, mac=mac, pod=pod)


@pytest.fixture
def guests() -> list[Guest]:
    made: list[Guest] = []
    yield made
    for guest in made:
        guest.remove()


def assert_nothing_left(np: Netplug, pod: Netns, *, keep: tuple[str, ...] = ("lo", "eth0")) -> None:
    """No link, rule, process or state record of netplug's survives."""
    leftover_links = set(pod.links()) - set(keep)
    assert not leftover_links, f"links left in the pod: {leftover_links}"
    assert not pod.nft_ruleset(), f"nftables left in the pod: {json.dumps(pod.nft_ruleset())[:500]}"
    assert not np.services(), "DHCP service processes left running"
    assert not np.records(), f"state records left: {np.records()}"


@dataclass
class PrimaryByHand:
    """eth0 made without a CNI plugin (for spec versions the reference plugins lack)."""

    pod: Netns
    address: str
    gateway: str

    def prev_result(self, version: str) -> dict:
        link = self.pod.links()["eth0"]
        ip = {"address": self.address, "gateway": self.gateway, "interface": 0}
        if version < "1.0.0":
            ip["version"] = "4"
        return {"cniVersion": version,
                "interfaces": [{"name": "eth0", "mac": link["address"], "sandbox": self.pod.path}],
                "ips": [ip], "routes": [{"dst": "0.0.0.0/0", "gw": self.gateway}]}


def primary_by_hand(pod: Netns) -> PrimaryByHand:
    index = next(_subnets) % 250 + 1
    node_end = unique("nph")
    veth(None, node_end, pod, "eth0")
    sh("ip", "link", "set", node_end, "up")
    pod.ip("addr", "add", f"10.251.{index}.2/24", "dev", "eth0")
    return PrimaryByHand(pod=pod, address=f"10.251.{index}.2/24", gateway=f"10.251.{index}.1")
