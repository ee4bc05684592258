"""Crash consistency: SIGKILL at every step boundary of ADD and of DEL, in the agent and in
the shim's in-process handler (NETPLUG_TEST_HOOKS: the handler and the apply engine log each
step boundary they pass, and the process kills itself at the one NETPLUG_TEST_CRASH_AT names),
for the masquerade binding with its VM address from host-local, and for the bridge binding,
whose ADD takes the pod's eth0 over (down, flushed, renamed eth0-nic with a new MAC) and whose
DEL gives it back.

The steps are not listed here but discovered from a clean ADD and DEL, so a step added to the
handler or to netplug.apply is crashed at too. A second attachment ("the keeper", masquerade)
shares the IPAM range and stays attached throughout. After every crash:

- the next DEL leaves nothing of the crashed attachment (links, nftables, DHCP service, state
  record, service files), gives the pod back as the primary CNI left it, and releases its
  address; the keeper is untouched;
- the next ADD succeeds, with exactly one new address that is not the keeper's: host-local's
  allocation dir maps every address to exactly one live container;
- a runtime that retries ADD instead of DEL gets a working attachment too (or, once the ADD had
  finished, the clear "already attached" error, and DEL then works); checked with the agent
  (the handler's path is the same in-process, where each exec costs a Python start).
"""

from __future__ import annotations

import os
import re

import pytest

from tests.support.cnirt import PluginRun, exec_plugin
from tests.support.fixtures import Netplug, primary_by_hand
from tests.support.topology import Netns, host_local_allocations

# at least these must be found, or the discovery (and with it this test) is broken
KNOWN_STEPS = {
    "masquerade": (
        {"state", "ipam", "plan", "link:k6t-eth0", "link:tap0", "sysctls", "nft:ip:netplug_eth0", "dhcp", "done"},
        {"del:dhcp-signalled", "del:sysctls", "del:nft:ip:netplug_eth0", "del:links", "del:dhcp", "del:removed",
         "del:ipam"}),
    "bridge": (
        {"plan", "link:k6t-eth0", "takeover:flushed", "link:eth0-nic", "link:tap0", "link:eth0", "sysctls",
         "nft:bridge:netplug_eth0_guard", "dhcp", "done"},
        {"del:dhcp-signalled", "del:sysctls", "del:nft:bridge:netplug_eth0_guard", "del:links",
         "del:pod-interface-renamed", "del:pod-interface", "del:dhcp", "del:removed"}),
}
_STEP = re.compile(r"test hook: step ([\w:.\-]+)")


class Attachment:
    """One attachment driven through the shim: masquerade with its VM address from host-local,
    or bridge (the guest takes the pod's own address over DHCP; no IPAM)."""

    def __init__(self, np: Netplug, pod: Netns, container_id: str, data_dir: str, binding: str = "masquerade") -> None:
        self.np, self.pod, self.container_id, self.data_dir = np, pod, container_id, data_dir
        self.binding = binding
        self.config = {"cniVersion": "1.0.0", "name": "vmnet", "type": "netplug", "binding": binding,
                       "prevResult": primary_by_hand(pod).prev_result("1.0.0")}
        if binding == "masquerade":
            self.config["ipam"] = {"type": "host-local", "dataDir": data_dir, "ranges": [[{"subnet": "10.80.0.0/24"}]]}
        self.baseline = pod.snapshot()

    @property
    def allocates(self) -> bool:
        """Whether its ADD takes an address from the shared IPAM range."""
        return "ipam" in self.config

    def run(self, command: str, crash_at: str = "") -> PluginRun:
        env = {**self.np.runtime.extra_env, **({"NETPLUG_TEST_CRASH_AT": crash_at} if crash_at else {})}
        return exec_plugin(self.np.shim, command, self.config, container_id=self.container_id, netns=self.pod.path,
                           ifname="eth0", cni_path=self.np.runtime.cni_path, extra_env=env)

    def add(self) -> str:
        """ADD; the VM's address (host-local's, or the pod's for the bridge binding)."""
        run = self.run("ADD")
        assert run.returncode == 0, run.stdout + run.stderr[-2000:]
        return run.json["ips"][-1]["address"].split("/")[0]

    def delete(self) -> None:
        run = self.run("DEL")
        assert (run.returncode, run.stdout) == (0, ""), run.stdout + run.stderr[-2000:]

    def assert_gone(self) -> None:
        assert self.pod.snapshot() == self.baseline, "the pod is not as the primary CNI left it"
        assert self.records() == [], f"state records left: {self.records()}"

    def records(self) -> list[str]:
        return [r for r in self.np.records() if r.split(os.sep)[0] == self.container_id]


def allocations(data_dir: str) -> dict[str, str]:
    """host-local's reservations: address -> the container ID it is reserved for."""
    return host_local_allocations(data_dir, "vmnet")


def crash(np: Netplug, attachment: Attachment, command: str, step: str) -> None:
    """Run `command` with a SIGKILL at `step`; in agent mode, start the agent again."""
    run = attachment.run(command, crash_at=step)
    if np.mode == "agent":
        assert run.returncode == 1 and run.json["code"] == 11, (step, run.stdout)
        assert np.agent.wait(timeout=10) == -9, f"the agent did not die at {step}"
        np.start_agent()
    else:
        assert run.returncode == -9 and run.stdout == "", (step, run.stdout)


def discover_steps(np: Netplug, attachment: Attachment) -> tuple[list[str], list[str]]:
    """The step boundaries a clean ADD and a clean DEL pass, in order (each named once)."""
    def steps_of(command: str) -> list[str]:
        before = len(np.agent_log())
        run = attachment.run(command)
        assert run.returncode == 0, run.stdout
        text = np.agent_log()[before:] if np.mode == "agent" else run.stderr
        return _STEP.findall(text)
    add, delete = steps_of("ADD"), steps_of("DEL")
    known_add, known_del = KNOWN_STEPS[attachment.binding]
    assert known_add <= set(add), f"ADD passed {add}"
    assert known_del <= set(delete), f"DEL passed {delete}"
    for steps in (add, delete):  # a crash at a name passed twice would only ever hit the first
        assert len(steps) == len(set(steps)), f"a step boundary is named twice: {steps}"
    return add, delete


@pytest.mark.timeout(900)
@pytest.mark.parametrize("mode", ["agent", "inprocess"])
@pytest.mark.parametrize("binding", ["masquerade", "bridge"])
def test_sigkill_at_every_step_of_add_and_del(request, mode, binding, tmp_path):
    np = request.getfixturevalue(f"netplug_{mode}")
    data_dir = str(tmp_path / "vm-ipam")
    pods = [Netns.create("npcr"), Netns.create("npck")]
    try:
        victim = Attachment(np, pods[0], "ctr-crash", data_dir, binding)
        keeper = Attachment(np, pods[1], "ctr-keep", data_dir)
        keeper_ip = keeper.add()
        add_steps, del_steps = discover_steps(np, victim)

        def assert_only_keeper_left() -> None:
            victim.assert_gone()
            assert allocations(data_dir) == {keeper_ip: "ctr-keep"}, "an address was lost or released twice"
            assert len(keeper.records()) == 1 and len(np.services()) == 1, "the keeper was touched"

        def assert_both_attached(victim_ip: str) -> None:
            assert victim_ip != keeper_ip, f"{victim_ip} handed out twice"
            assert allocations(data_dir) == {keeper_ip: "ctr-keep", **({victim_ip: "ctr-crash"} if victim.allocates else {})}
            assert len(np.services()) == 2 and len(np.records()) == 2

        for step in add_steps:
            crash(np, victim, "ADD", step)
            victim.delete()
            assert_only_keeper_left()
            assert_both_attached(victim.add())
            victim.delete()

            if mode != "agent":
                continue  # the retry takes the same path in the handler in both modes
            # a runtime may retry ADD instead of calling DEL
            crash(np, victim, "ADD", step)
            retry = victim.run("ADD")
            if step == "done":  # the ADD had finished: retrying it is the runtime's mistake
                assert retry.returncode == 1 and retry.json["code"] == 100, retry.stdout
                assert "already attached" in retry.json["msg"]
            else:
                assert retry.returncode == 0, (step, retry.stdout)
                assert_both_attached(retry.json["ips"][-1]["address"].split("/")[0])
            victim.delete()
            assert_only_keeper_left()

        for step in del_steps:
            victim.add()
            crash(np, victim, "DEL", step)
            victim.delete()
            assert_only_keeper_left()
            assert_both_attached(victim.add())
            victim.delete()
            assert_only_keeper_left()

        keeper.delete()
        assert allocations(data_dir) == {} and np.records() == [] and np.services() == []
        assert np.service_files() == []
    finally:
        for pod in pods:
            pod.delete()
