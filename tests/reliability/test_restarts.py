"""Restarts: 50 live masquerade attachments (bridge + host-local, netplug chained, a guest
stand-in with a DHCP client on each) live through the agent's restarts and their DHCP
services' deaths; a full state disk fails ADD cleanly.

- A rolling update (SIGTERM, a new agent): every guest's renewal is answered, NAT works, and
  nothing is duplicated: the same state records, one DHCP service per attachment (the same
  processes), the same nftables rules.
- The agent's container restarts (the agent and every DHCP service die): the new agent
  restores all 50 services; renewals are answered by the restored ones, NAT works, and again
  exactly one service per attachment.
- One DHCP service is killed: it answers its guest again within 5 s (the issue's bound).
- The state dir is full (a tiny tmpfs in the test's own mount namespace), of space or of
  inodes, at every amount of free space an ADD can need: ADD succeeds, or fails with a CNI
  error naming the state dir, and leaves nothing; DEL works on a full disk.
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from netplug import naming
from tests.support.cnirt import exec_plugin, sandbox_ips
from tests.support.fixtures import Netplug, attach_guest, primary_by_hand
from tests.support.spec import validate_error
from tests.support.topology import (
    DhcpClient,
    Netns,
    TcpServer,
    host_local_allocations,
    processes_mentioning,
    sh,
    tcp_request,
    wait_for,
)

ATTACHMENTS = 50
MASQ = {"type": "netplug", "binding": "masquerade", "vmInterface": "default"}
SERVICE_BACK_WITHIN = 5.0  # seconds: issue 8's bound for a killed DHCP service


def _conf_file(np: Netplug, container_id: str) -> str:
    return os.path.join(np.state_dir, "services", naming.attachment_tag(container_id, "eth0") + ".conf")


def _services_by_attachment(np: Netplug, container_ids: list[str]) -> dict[str, list[int]]:
    return {cid: processes_mentioning(_conf_file(np, cid)) for cid in container_ids}


def _records(np: Netplug) -> dict[str, str]:
    base = os.path.join(np.state_dir, "attachments")
    contents = {}
    for name in np.records():
        with open(os.path.join(base, name)) as f:
            contents[name] = f.read()
    return contents


def _renewals_answered(clients: list[DhcpClient]) -> None:
    before = [c.events() for c in clients]
    for client in clients:
        client.renew()
    assert wait_for(lambda: all("renew" in c.events()[len(b):] for c, b in zip(clients, before, strict=True)),
                    timeout=60), "renewals not answered: " + ", ".join(
        str(i) for i, (c, b) in enumerate(zip(clients, before, strict=True)) if "renew" not in c.events()[len(b):])


def _nat_works(guests, pod_ips: list[str], outside) -> None:
    for guest, pod_ip in zip(guests, pod_ips, strict=True):
        assert tcp_request(guest.ns, outside.address, 9000) == f"hello {pod_ip}\n", f"NAT for {guest.ns.name}"


@pytest.mark.timeout(900)
def test_fifty_attachments_survive_agent_restarts_and_service_deaths(netplug_agent, pod_network, outside, tmp_path):
    np = netplug_agent
    conflist = pod_network.conflist("1.0.0", MASQ)
    ids = [f"ctr-rs-{i}" for i in range(ATTACHMENTS)]
    pods = [Netns.create("nprs") for _ in ids]
    guests, clients, results = [], [], []
    world = TcpServer(outside.ns, 9000)
    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda i: np.runtime.add(conflist, container_id=ids[i], netns=pods[i].path,
                                                             ifname="eth0"), range(ATTACHMENTS)))
        pod_ips = [sandbox_ips(r)[0] for r in results]
        assert len(set(pod_ips)) == ATTACHMENTS
        guests = [attach_guest(p, "k6t-eth0") for p in pods]
        clients = [DhcpClient(g.ns, "eth0", str(tmp_path)) for g in guests]
        assert wait_for(lambda: all(c.answers() for c in clients), timeout=120), "not every guest got a lease"
        _nat_works(guests, pod_ips, outside)
        records = _records(np)
        services = _services_by_attachment(np, ids)
        rulesets = [p.nft_ruleset(stateless=True) for p in pods]
        assert len(records) == ATTACHMENTS and all(len(pids) == 1 for pids in services.values()), services

        # a rolling update: SIGTERM, then the new agent; the DHCP services live on
        np.stop_agent(signal.SIGTERM)
        np.start_agent()
        _renewals_answered(clients)
        _nat_works(guests, pod_ips, outside)
        assert _records(np) == records
        assert _services_by_attachment(np, ids) == services, "the new agent started or lost DHCP services"
        assert [p.nft_ruleset(stateless=True) for p in pods] == rulesets

        # the agent's container restarts: the agent and every service die with it
        np.stop_agent()
        for pid in np.services():
            os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: not np.services())
        np.start_agent()
        restored = _services_by_attachment(np, ids)
        assert all(len(pids) == 1 for pids in restored.values()), restored
        _renewals_answered(clients)
        _nat_works(guests, pod_ips, outside)
        assert _records(np) == records
        assert [p.nft_ruleset(stateless=True) for p in pods] == rulesets

        # one service dies while the agent runs: it answers its guest again within 5 s
        victim = ids[7]
        (old,) = restored[victim]
        os.kill(old, signal.SIGKILL)
        killed = time.monotonic()
        assert wait_for(lambda: processes_mentioning(_conf_file(np, victim)) not in ([], [old]),
                        timeout=SERVICE_BACK_WITHIN), "the DHCP service was not restarted"
        answered = clients[7].answers()
        clients[7].renew()
        assert wait_for(lambda: clients[7].answers() > answered,
                        timeout=max(0.0, SERVICE_BACK_WITHIN - (time.monotonic() - killed))), \
            f"the restarted DHCP service did not answer within {SERVICE_BACK_WITHIN} s of the kill"
        assert all(len(pids) == 1 for pids in _services_by_attachment(np, ids).values())
    finally:
        for client in clients:
            client.stop()
        for guest in guests:
            guest.remove()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: np.runtime.delete(conflist, results[i], container_id=ids[i],
                                                      netns=pods[i].path, ifname="eth0"), range(len(results))))
        world.close()
        leftovers = [(p.name, set(p.links()), p.nft_ruleset()) for p in pods]
        for pod in pods:
            pod.delete()
    assert all(links == {"lo"} and not ruleset for _, links, ruleset in leftovers), leftovers
    assert np.records() == [] and np.services() == [] and np.service_files() == []
    assert pod_network.allocations() == []


# --- a full state disk ------------------------------------------------------------------------


class TinyDisk:
    """A tmpfs of `size` bytes and `inodes` inodes (in this test's private mount namespace),
    filled with a file until only `free` bytes, or no inode, are left."""

    def __init__(self, path: str, size: int = 256 << 10, inodes: int = 64) -> None:
        self.path = path
        os.makedirs(path, exist_ok=True)
        sh("mount", "-t", "tmpfs", "-o", f"size={size},nr_inodes={inodes},mode=0700", "netplug-full-disk", path)
        self.filler = os.path.join(path, "filler")

    def fill(self, free_bytes: int = 0) -> None:
        """Leave `free_bytes` (rounded down to whole pages) of space."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:  # ENOSPC: full
            pass
        finally:
            os.close(fd)
        if free_bytes:
            os.truncate(self.filler, max(0, os.path.getsize(self.filler) - free_bytes))

    def use_up_inodes(self) -> None:
        for n in range(10_000):
            try:
                open(os.path.join(self.path, f"inode-{n}"), "w").close()
            except OSError:
                return

    def close(self) -> None:
        sh("umount", "-l", self.path, check=False)


@pytest.fixture
def full_disk_netplug(tmp_path):
    disk = TinyDisk(str(tmp_path / "disk"))
    np = Netplug(mode="agent", workdir=str(tmp_path))
    np.state_dir = os.path.join(disk.path, "state")
    np.runtime.extra_env["NETPLUG_STATE_DIR"] = np.state_dir
    np.start_agent()
    yield np, disk
    np.stop_agent()
    for pid in np.services():
        os.kill(pid, signal.SIGKILL)
    disk.close()


def _leftover_temp_files(root: str) -> list[str]:
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files if ".tmp" in f]


@pytest.mark.timeout(300)
def test_a_full_state_disk_fails_add_cleanly(full_disk_netplug, pod, tmp_path):
    np, disk = full_disk_netplug
    primary = primary_by_hand(pod)
    data_dir = str(tmp_path / "vm-ipam")
    config = {"cniVersion": "1.0.0", "name": "vmnet", **MASQ, "prevResult": primary.prev_result("1.0.0"),
              "ipam": {"type": "host-local", "dataDir": data_dir, "ranges": [[{"subnet": "10.82.0.0/24"}]]}}
    baseline = pod.snapshot()

    def run(command: str):
        return exec_plugin(np.shim, command, config, container_id="ctr-full", netns=pod.path, ifname="eth0",
                           cni_path=np.runtime.cni_path, extra_env=np.runtime.extra_env)

    def allocations() -> list[str]:
        return list(host_local_allocations(data_dir, "vmnet"))

    def assert_clean(what: str) -> None:
        assert pod.snapshot() == baseline, f"the pod changed after {what}"
        assert np.records() == [] and np.services() == [] and np.service_files() == [], what
        assert _leftover_temp_files(np.state_dir) == [], what
        assert allocations() == [], f"an address leaked after {what}"

    outcomes = []
    # no space at all, then one more page at a time: each write ADD makes fails somewhere
    for free_pages in range(0, 8):
        disk.fill(free_pages * 4096)
        add = run("ADD")
        if add.returncode == 0:
            outcomes.append("ok")
            assert run("DEL").returncode == 0
        else:
            error = add.json
            validate_error(error)
            # the state store (106) or dnsmasq (105) could not write its file, and says where
            assert error["code"] in (105, 106), (free_pages, error)
            assert np.state_dir in error["msg"] + error.get("details", ""), (free_pages, error)
            outcomes.append(f"code {error['code']}")
        assert_clean(f"ADD with {free_pages} free pages ({add.stdout.strip()})")
        os.unlink(disk.filler)
    assert outcomes[0] != "ok" and outcomes[-1] == "ok", outcomes

    # DEL never needs space: an attachment made before the disk filled up is removed
    assert run("ADD").returncode == 0
    disk.fill()
    delete = run("DEL")
    assert (delete.returncode, delete.stdout) == (0, ""), delete.stdout
    assert_clean("DEL on a full disk")
    os.unlink(disk.filler)

    # out of inodes: no new file (record, lock, service file) can be made
    lock_files = os.listdir(os.path.join(np.state_dir, "locks"))
    for name in lock_files:  # the lock stripe of this attachment must be created anew
        os.unlink(os.path.join(np.state_dir, "locks", name))
    disk.use_up_inodes()
    add = run("ADD")
    assert add.returncode == 1, add.stdout
    error = add.json
    validate_error(error)
    assert error["code"] == 106 and np.state_dir in error["msg"], error
    assert_clean("ADD without inodes")
    assert "failed unexpectedly" not in np.agent_log()


def test_a_dhcp_config_that_cannot_be_written_fails_add_cleanly(netplug_agent, pod, tmp_path):
    """The services part of the state dir read-only (a bind mount in this test's own mount
    namespace): records can be written, the DHCP config cannot. ADD is a CNI error naming the
    file, rolled back, with no half-written file left; once writable, ADD works."""
    np = netplug_agent
    services = os.path.join(np.state_dir, "services")
    config = {"cniVersion": "1.0.0", "name": "vmnet", **MASQ,
              "prevResult": primary_by_hand(pod).prev_result("1.0.0")}
    baseline = pod.snapshot()

    def run(command: str):
        return exec_plugin(np.shim, command, config, container_id="ctr-ro", netns=pod.path, ifname="eth0",
                           cni_path=np.runtime.cni_path, extra_env=np.runtime.extra_env)

    sh("mount", "--bind", services, services)
    try:
        sh("mount", "-o", "remount,bind,ro", services)
        add = run("ADD")
        assert add.returncode == 1, add.stdout
        validate_error(add.json)
        assert add.json["code"] == 105 and services in add.json["msg"], add.json
    finally:
        sh("umount", services)
    assert pod.snapshot() == baseline
    assert np.records() == [] and np.services() == [] and np.service_files() == []
    assert "failed unexpectedly" not in np.agent_log()
    assert run("ADD").returncode == 0
    assert run("DEL").returncode == 0
    assert pod.snapshot() == baseline
