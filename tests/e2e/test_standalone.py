"""Standalone mode driven as a user drives it: `netplug up` KubeVirt's testvm YAML, `get`,
`console`, a request to the forwarded port, then `down` leaves nothing; bad input is one line
and exit code 2 with nothing created; a killed `up` is cleaned up by `down`."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from netplug.ops.proc import live_argv
from netplug.pod import NodeNetwork
from runtime.standalone import vm_qemus
from tests.e2e.conftest import REPO, UP_TIMEOUT
from tests.support.topology import host_local_allocations, processes_mentioning

TESTVM = os.path.join(REPO, "manifests", "examples", "testvm.yaml")


@pytest.fixture
def cli(tmp_path, guest_image):
    env = {**os.environ, "NETPLUG_STATE_DIR": str(tmp_path / "state"), "NETPLUG_GUEST_DIR": guest_image,
           "NETPLUG_AGENT_SOCKET": str(tmp_path / "no-agent.sock")}

    def run(*args: str, timeout: float = UP_TIMEOUT) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "runtime.cli", *args], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=timeout)
    run.env = env  # type: ignore[attr-defined]
    yield run
    run("down", "testvm")


def _qemus(state: str) -> list[int]:
    """The QEMUs of the VMs up in `state` (by domain name and pod netns: other test runs on
    this machine may boot a testvm too)."""
    vms = os.path.join(state, "vms")
    records = [json.load(open(os.path.join(vms, d, "record.json"))) for d in os.listdir(vms)
               if os.path.exists(os.path.join(vms, d, "record.json"))] if os.path.isdir(vms) else []
    return [pid for record in records for pid in vm_qemus(record)]


def _leftovers(state: str, names: tuple[str, ...] = ("testvm",), qemus: list[int] = ()) -> dict[str, list]:
    """What of the VMs exists: state, netns, processes (launcher and dnsmasq by the state dir
    in their command line; the VMs' QEMUs, `qemus`, by pid), and of their pod network on the
    node: ports of the node bridge, the bridge plugin's ipMasq rules, cached CNI results,
    host-local allocations."""
    vms = os.path.join(state, "vms")
    ports = subprocess.run(["ip", "-j", "link", "show", "master", NodeNetwork().bridge], capture_output=True, text=True)
    container_ids = [f"netplug-{hashlib.sha256(f'default/{name}'.encode()).hexdigest()[:10]}" for name in names]
    nat = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True, check=True).stdout
    results = os.path.join(state, "cni-cache", "results")
    return {
        "state": os.listdir(vms) if os.path.isdir(vms) else [],
        "netns": [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
                  if n.startswith("np-")],
        "processes": processes_mentioning(state) + [pid for pid in qemus if live_argv(pid)],
        "node bridge ports": [p["ifname"] for p in json.loads(ports.stdout or "[]")] if ports.returncode == 0 else [],
        "ipMasq rules": [line for line in nat.splitlines() if any(cid in line for cid in container_ids)],
        "cached CNI results": os.listdir(results) if os.path.isdir(results) else [],
        "host-local allocations": list(host_local_allocations(os.path.join(state, "ipam"))),
    }


NODE_SIDE = ("node bridge ports", "ipMasq rules", "cached CNI results", "host-local allocations")


def _nothing_left(state: str, names: tuple[str, ...] = ("testvm",), qemus: list[int] = ()) -> None:
    left = {what: found for what, found in _leftovers(state, names, qemus).items() if found}
    assert not left, f"left after down: {left}"


def test_up_get_console_down(cli, tmp_path):
    up = cli("up", TESTVM)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "booting the project's test guest instead" in up.stdout
    assert "guest lease on eth0: 10.0.2.2" in up.stdout and "is Running" in up.stdout

    table = cli("get", "vms").stdout.splitlines()
    assert table[0].split() == ["NAME", "AGE", "STATUS", "READY"]
    assert table[1].split()[0] == "testvm" and table[1].split()[2:] == ["Running", "true"]
    vmis = json.loads(cli("get", "vmis", "-o", "json").stdout)["items"]
    (iface,) = vmis[0]["status"]["interfaces"]
    pod_ip = iface["ipAddress"]
    assert vmis[0]["status"]["phase"] == "Running" and pod_ip.startswith("10.89.")

    deadline = time.monotonic() + 60
    while "SERVING" not in cli("console", "testvm").stdout and time.monotonic() < deadline:
        time.sleep(0.5)
    console = cli("console", "testvm").stdout
    assert "E2E: DHCP-OK iface=eth0 ip=10.0.2.2" in console and "E2E: PING-OK target=10.89.0.1" in console
    assert "hello" in (_connect(pod_ip, 8080) or "")  # forwarded to the guest

    domain_xml = (tmp_path / "state" / "vms" / "default_testvm" / "launcher" / "domain.xml").read_text()
    assert "default_testvm/cloudinitdisk.iso" in domain_xml  # the cloudInitNoCloud volume's seed disk

    described = cli("describe", "vm", "testvm").stdout
    for expected in ("Status:      Running", "binding masquerade", "tap0", "k6t-eth0", "DHCP lease: 10.0.2.2",
                     "masquerade", "dnat to 10.0.2.2", "Events:", "VM phase Running"):
        assert expected in described, f"{expected!r} not in:\n{described}"

    healthy = cli("doctor", "testvm", "--svg", str(tmp_path / "path.svg"))
    assert healthy.returncode == 0, healthy.stdout
    assert "every hop is healthy" in healthy.stdout and "<svg" in (tmp_path / "path.svg").read_text()
    assert "answered the guest (DHCPACK 10.0.2.2)" in healthy.stdout and "ok   node: " in healthy.stdout
    for unused in ("masquerade 0 pkts", "port forwards 0 pkts"):  # the ping out and the request in were counted
        assert unused not in healthy.stdout, healthy.stdout
    netns = json.loads((tmp_path / "state" / "vms" / "default_testvm" / "record.json").read_text())["netns"]
    subprocess.run(["ip", "netns", "exec", netns, "nft", "delete", "table", "ip", "netplug_eth0"], check=True)
    subprocess.run(["ip", "-n", netns, "link", "set", "tap0", "down"], check=True)
    broken = cli("doctor", "testvm")
    assert broken.returncode == 1
    assert "FAIL NAT" in broken.stdout and "FAIL tap0" in broken.stdout and "tap0 is down" in broken.stdout
    assert "ok   k6t-eth0" in broken.stdout  # what is not broken is not blamed

    again = cli("up", TESTVM)
    assert again.returncode == 2 and "already up" in again.stderr and again.stderr.count("\n") == 1

    qemus = _qemus(str(tmp_path / "state"))
    up_now = _leftovers(str(tmp_path / "state"), qemus=qemus)
    assert len(qemus) == 1 and all(up_now[what] for what in NODE_SIDE), up_now  # seen while up: can fail
    down = cli("down", "testvm")
    assert down.returncode == 0, down.stderr
    _nothing_left(str(tmp_path / "state"), qemus=qemus)
    assert cli("down", "testvm").returncode == 0  # idempotent


def _connect(host: str, port: int) -> str | None:
    import socket
    try:
        with socket.create_connection((host, port), timeout=5) as conn:
            return conn.recv(200).decode()
    except OSError:
        return None


@pytest.mark.parametrize("content, text", [
    ("kind: [unclosed", "not YAML"),
    ("apiVersion: v1\nkind: Pod\n", "kubevirt.io/v1"),
    (open(TESTVM).read().replace("masquerade: {}", "bridge: {}\n              sriov: {}"), "exactly one binding"),
    (open(TESTVM).read().replace("pod: {}", "multus:\n            networkName: blue"), "masquerade is only allowed"),
    (open(TESTVM).read().replace("masquerade: {}", "bridge: {}").replace("pod: {}", "multus:\n            networkName: blue"),
     'spec.template.spec.networks[0].multus.networkName: NetworkAttachmentDefinition "default/blue" not found'),
    (open(TESTVM).read().replace("name: testvm", "name: ../../../../evil"), 'metadata.name: must be a DNS-1123'),
    (open(TESTVM).read().replace("name: testvm", "name: testvm\n  namespace: a_b"), 'metadata.namespace: must be'),
])
def test_bad_input_is_one_line_and_creates_nothing(cli, tmp_path, content, text):
    path = tmp_path / "vm.yaml"
    path.write_text(content)
    run = cli("up", str(path))
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.count("\n") == 1 and text in run.stderr and "Traceback" not in run.stderr
    _nothing_left(str(tmp_path / "state"))
    assert not os.path.exists(os.path.join(tmp_path, "evil")), "a VM name escaped the state dir"


def test_down_cleans_up_after_a_killed_up(cli, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "runtime.cli", "up", TESTVM], cwd=REPO, env=cli.env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if "launcher started" in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    assert cli("get", "vms").stdout.count("testvm") == 1
    qemus = _qemus(str(tmp_path / "state"))
    assert cli("down", "testvm").returncode == 0
    _nothing_left(str(tmp_path / "state"), qemus=qemus)


def test_two_ups_at_once_do_not_collide(cli, tmp_path):
    """Two VMs come up side by side; a second up of one of them at the same moment says
    "already up" and leaves the first one running."""
    second = tmp_path / "testvm2.yaml"
    second.write_text(open(TESTVM).read().replace("name: testvm", "name: testvm2"))
    procs = [subprocess.Popen([sys.executable, "-m", "runtime.cli", "up", path], cwd=REPO, env=cli.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for path in (TESTVM, str(second), TESTVM)]
    outputs = [p.communicate(timeout=UP_TIMEOUT) for p in procs]
    codes = [p.returncode for p in procs]
    assert codes[1] == 0 and sorted([codes[0], codes[2]]) == [0, 2], outputs
    loser = outputs[0] if codes[0] == 2 else outputs[2]
    assert "already up" in loser[1] and loser[1].count("\n") == 1 and "undoing" not in loser[0], loser
    rows = {line.split()[0]: line.split()[2:] for line in cli("get", "vms").stdout.splitlines()[1:]}
    assert rows == {"testvm": ["Running", "true"], "testvm2": ["Running", "true"]}
    ips = {i["ipAddress"] for item in json.loads(cli("get", "vmis", "-o", "json").stdout)["items"]
           for i in item["status"]["interfaces"]}
    assert len(ips) == 2  # each VM's pod has its own address
    qemus = _qemus(str(tmp_path / "state"))
    assert len(qemus) == 2
    for name in ("testvm", "testvm2"):
        assert cli("down", name).returncode == 0
    _nothing_left(str(tmp_path / "state"), ("testvm", "testvm2"), qemus)
