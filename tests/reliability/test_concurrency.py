"""Concurrency: many ADDs at once on one IPAM range, a repeated ADD, ADD racing DEL.

"mixed" sends some of the requests through the shim's in-process fallback (its socket path
pointing nowhere) and the rest through the agent, on the same state dir, as during an agent
restart: the two share the store's locks. (A fallback request starts a Python with pydantic
and pyroute2, about half a second of CPU, so the 32-way test sends every fourth ADD there.)
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.cnirt import PluginRun, Runtime, exec_plugin, sandbox_ips
from tests.support.fixtures import Netplug, primary_by_hand
from tests.support.topology import Netns, host_local_allocations

PARALLEL = 32
VM_RANGE = "10.83.0.0/24"


def _runtimes(np: Netplug, mode: str, agent_share: int = 1) -> list[Runtime]:
    """The runtime for request i is runtimes[i % len(runtimes)]: in "mixed" mode `agent_share`
    requests go to the agent for each one that the in-process fallback handles."""
    if mode == "agent":
        return [np.runtime]
    fallback = Runtime(cni_path=np.runtime.cni_path,
                       extra_env={**np.runtime.extra_env, "NETPLUG_AGENT_SOCKET": os.path.join(np.workdir, "none.sock")})
    return [*[np.runtime] * agent_share, fallback]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode", ["agent", "mixed"])
def test_parallel_adds_on_one_ipam_range_get_distinct_addresses(netplug_agent, pod_network, tmp_path, mode):
    np = netplug_agent
    vm_ipam = str(tmp_path / "vm-ipam")
    masq = {"type": "netplug", "binding": "masquerade", "vmInterface": "default",
            "ipam": {"type": "host-local", "dataDir": vm_ipam, "ranges": [[{"subnet": VM_RANGE}]]}}
    conflist = pod_network.conflist("1.0.0", masq)
    runtimes = _runtimes(np, mode, agent_share=3)
    pods = [Netns.create("npcc") for _ in range(PARALLEL)]
    ids = [f"ctr-cc-{i}" for i in range(PARALLEL)]
    start = threading.Barrier(PARALLEL)

    def add(i: int) -> dict:
        start.wait()  # all at once
        return runtimes[i % len(runtimes)].add(conflist, container_id=ids[i], netns=pods[i].path, ifname="eth0")

    results: list[dict] = []
    try:
        with ThreadPoolExecutor(PARALLEL) as pool:
            results = list(pool.map(add, range(PARALLEL)))
        pod_ips = [sandbox_ips(r)[0] for r in results]
        vm_ips = [r["ips"][-1]["address"].split("/")[0] for r in results]
        assert len(set(pod_ips)) == PARALLEL, sorted(pod_ips)
        assert len(set(vm_ips)) == PARALLEL, sorted(vm_ips)
        assert host_local_allocations(vm_ipam, "podnet") == dict(zip(vm_ips, ids, strict=True))
        assert host_local_allocations(pod_network.data_dir, "podnet") == dict(zip(pod_ips, ids, strict=True))
        assert len(np.records()) == PARALLEL and len(np.services()) == PARALLEL
        # every attachment is complete: netplug's CHECK (the chain's would stop at the reference
        # bridge plugin, whose CHECK wants every address of the result on eth0, the VM's too)
        def check(i: int) -> PluginRun:
            return np.runtime.run(masq, "CHECK", {"cniVersion": "1.0.0", "name": "podnet", **masq, "prevResult": results[i]},
                               container_id=ids[i], netns=pods[i].path, ifname="eth0")
        with ThreadPoolExecutor(8) as pool:
            checks = list(pool.map(check, range(PARALLEL)))
        assert all(c.returncode == 0 for c in checks), [c.stdout for c in checks if c.returncode]
    finally:
        with ThreadPoolExecutor(PARALLEL) as pool:
            list(pool.map(lambda i: np.runtime.delete(
                conflist, results[i] if results else None, container_id=ids[i], netns=pods[i].path, ifname="eth0"),
                range(PARALLEL)))
        leftovers = {p.name: set(p.links()) - {"lo"} for p in pods if set(p.links()) - {"lo"}}
        for pod in pods:
            pod.delete()
    assert not leftovers, leftovers
    assert np.records() == [] and np.services() == [] and np.service_files() == []
    assert host_local_allocations(vm_ipam, "podnet") == {} and pod_network.allocations() == []


class Attachment:
    """netplug masquerade with its VM address from host-local, on a pod whose eth0 was made by hand."""

    def __init__(self, np: Netplug, pod: Netns, data_dir: str, container_id: str = "ctr-race") -> None:
        self.np, self.pod, self.data_dir, self.container_id = np, pod, data_dir, container_id
        self.config = {"cniVersion": "1.0.0", "name": "vmnet", "type": "netplug", "binding": "masquerade",
                       "ipam": {"type": "host-local", "dataDir": data_dir, "ranges": [[{"subnet": VM_RANGE}]]},
                       "prevResult": primary_by_hand(pod).prev_result("1.0.0")}
        self.baseline = pod.snapshot()

    def run(self, command: str, runtime: Runtime | None = None, config: dict | None = None) -> PluginRun:
        runtime = runtime or self.np.runtime
        return exec_plugin(self.np.shim, command, config or self.config, container_id=self.container_id,
                           netns=self.pod.path, ifname="eth0", cni_path=runtime.cni_path, extra_env=runtime.extra_env)

    def allocations(self) -> dict[str, str]:
        return host_local_allocations(self.data_dir, "vmnet")

    def assert_attached(self, result: dict) -> None:
        """Complete: CHECK passes (links, rules, sysctls, DHCP service), one record, one address."""
        check = self.run("CHECK", config={**self.config, "prevResult": result})
        assert check.returncode == 0, check.stdout
        assert len(self.np.records()) == 1 and len(self.np.services()) == 1
        assert self.allocations() == {result["ips"][-1]["address"].split("/")[0]: self.container_id}

    def assert_gone(self) -> None:
        assert self.pod.snapshot() == self.baseline, "the pod is not as the primary CNI left it"
        assert self.np.records() == [] and self.np.services() == [] and self.np.service_files() == []
        assert self.allocations() == {}


def test_repeated_add_is_a_clear_error_and_keeps_the_first(netplug_agent, pod, tmp_path):
    np = netplug_agent
    attachment = Attachment(np, pod, str(tmp_path / "vm-ipam"))
    first = attachment.run("ADD")
    assert first.returncode == 0, first.stdout
    again = attachment.run("ADD")
    assert again.returncode == 1 and again.json["code"] == 100, again.stdout
    assert "already attached" in again.json["msg"] and "ctr-race" in again.json["msg"]
    attachment.assert_attached(first.json)
    assert attachment.run("DEL").returncode == 0
    attachment.assert_gone()


@pytest.mark.parametrize("mode", ["agent", "mixed"])
def test_the_same_add_twice_at_once_attaches_once(netplug_agent, pod, tmp_path, mode):
    np = netplug_agent
    runtimes = _runtimes(np, mode) * 2
    attachment = Attachment(np, pod, str(tmp_path / "vm-ipam"))
    start = threading.Barrier(2)

    def add(i: int) -> PluginRun:
        start.wait()
        return attachment.run("ADD", runtimes[i])

    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(add, range(2)))
    won = [r for r in runs if r.returncode == 0]
    lost = [r for r in runs if r.returncode != 0]
    assert len(won) == 1 and len(lost) == 1, [r.stdout for r in runs]
    assert lost[0].json["code"] == 100 and "already attached" in lost[0].json["msg"], lost[0].stdout
    attachment.assert_attached(won[0].json)
    assert attachment.run("DEL").returncode == 0
    attachment.assert_gone()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode", ["agent", "mixed"])
def test_add_racing_del_ends_attached_and_complete_or_with_nothing_left(netplug_agent, pod, tmp_path, mode):
    """ADD and DEL of one container at once, DEL started a little before or after ADD: each
    succeeds, and what remains is either the whole attachment or nothing at all."""
    np = netplug_agent
    runtimes = _runtimes(np, mode)
    attachment = Attachment(np, pod, str(tmp_path / "vm-ipam"))
    outcomes = []
    delays = [0.0, 0.0, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.12, 0.2] if mode == "agent" else [0.0, 0.0, 0.1, 0.1]
    for n, delay in enumerate(delays):
        add_first = n % 2 == 0
        runs: dict[str, PluginRun] = {}

        def run(command: str, wait: float, runtime: Runtime, into: dict[str, PluginRun]) -> None:
            time.sleep(wait)
            into[command] = attachment.run(command, runtime)

        # mixed: the in-process side starts a Python each time, so take turns at being the slow one
        add_runtime, del_runtime = (runtimes[0], runtimes[-1]) if n % 4 < 2 else (runtimes[-1], runtimes[0])
        threads = [threading.Thread(target=run, args=("ADD", 0.0 if add_first else delay, add_runtime, runs)),
                   threading.Thread(target=run, args=("DEL", delay if add_first else 0.0, del_runtime, runs))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert runs["ADD"].returncode == 0, runs["ADD"].stdout
        assert (runs["DEL"].returncode, runs["DEL"].stdout) == (0, ""), runs["DEL"].stdout
        if np.records():
            outcomes.append("attached")
            attachment.assert_attached(runs["ADD"].json)
            assert attachment.run("DEL").returncode == 0
        else:
            outcomes.append("nothing")
        attachment.assert_gone()
    print("ADD racing DEL ended:", outcomes)  # pytest -s shows which orders happened
