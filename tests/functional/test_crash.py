"""Crash consistency: SIGKILL at every step boundary of an ADD, in the agent and in the
shim's in-process handler. The next DEL leaves nothing and releases the address; the next
ADD works and allocates exactly one address."""

from __future__ import annotations

import os

import pytest

from tests.support.cnirt import exec_plugin
from tests.support.fixtures import assert_nothing_left, primary_by_hand

STEPS = ["state", "ipam", "plan", "link:k6t-eth0", "link:tap0", "sysctls", "nft:ip", "dhcp", "done"]


def _config(prev: dict, data_dir: str) -> dict:
    return {"cniVersion": "1.0.0", "name": "vmnet", "type": "netplug", "binding": "masquerade",
            "ipam": {"type": "host-local", "dataDir": data_dir, "ranges": [[{"subnet": "10.80.0.0/24"}]]},
            "prevResult": prev}


def _allocations(data_dir: str) -> list[str]:
    directory = os.path.join(data_dir, "vmnet")
    return [f for f in os.listdir(directory) if f[0].isdigit()] if os.path.isdir(directory) else []


@pytest.mark.parametrize("mode", ["agent", "inprocess"])
def test_sigkill_at_every_add_step(request, mode, pod, tmp_path):
    np = request.getfixturevalue(f"netplug_{mode}")
    primary = primary_by_hand(pod)
    data_dir = str(tmp_path / "vm-ipam")
    config = _config(primary.prev_result("1.0.0"), data_dir)
    ids = {"container_id": "ctr-crash", "netns": pod.path, "ifname": "eth0", "cni_path": np.runtime.cni_path}

    for step in STEPS:
        crash = exec_plugin(np.shim, "ADD", config, extra_env={**np.runtime.extra_env, "NETPLUG_TEST_CRASH_AT": step}, **ids)
        if mode == "agent":
            assert crash.returncode == 1 and crash.json["code"] == 11, (step, crash.stdout)
            assert np.agent.wait(timeout=10) == -9, step
            np.start_agent()
        else:
            assert crash.returncode == -9 and crash.stdout == "", (step, crash.stdout)

        run = exec_plugin(np.shim, "DEL", config, extra_env=np.runtime.extra_env, **ids)
        assert run.returncode == 0, (step, run.stdout)
        assert_nothing_left(np, pod)
        assert _allocations(data_dir) == [], f"address leaked after a crash at {step}"

        run = exec_plugin(np.shim, "ADD", config, extra_env=np.runtime.extra_env, **ids)
        assert run.returncode == 0, (step, run.stdout)
        assert _allocations(data_dir) == [run.json["ips"][-1]["address"].split("/")[0]]
        assert len(np.services()) == 1
        run = exec_plugin(np.shim, "DEL", config, extra_env=np.runtime.extra_env, **ids)
        assert run.returncode == 0
        assert_nothing_left(np, pod)


def test_add_after_a_crash_cleans_up_first(netplug_agent, pod, tmp_path):
    """A runtime may retry ADD instead of DEL after a failure: the half-made ADD is cleared."""
    primary = primary_by_hand(pod)
    data_dir = str(tmp_path / "vm-ipam")
    config = _config(primary.prev_result("1.0.0"), data_dir)
    ids = {"container_id": "ctr-crash2", "netns": pod.path, "ifname": "eth0",
           "cni_path": netplug_agent.runtime.cni_path}
    exec_plugin(netplug_agent.shim, "ADD", config,
                extra_env={**netplug_agent.runtime.extra_env, "NETPLUG_TEST_CRASH_AT": "nft:ip"}, **ids)
    netplug_agent.agent.wait(timeout=10)
    netplug_agent.start_agent()
    run = exec_plugin(netplug_agent.shim, "ADD", config, extra_env=netplug_agent.runtime.extra_env, **ids)
    assert run.returncode == 0, run.stdout
    assert len(_allocations(data_dir)) == 1
    assert len(netplug_agent.services()) == 1
    assert exec_plugin(netplug_agent.shim, "DEL", config, extra_env=netplug_agent.runtime.extra_env, **ids).returncode == 0
    assert_nothing_left(netplug_agent, pod)
