"""CNI semantics through the real shim: versions, CHECK, DEL tolerance, STATUS, GC, IPAM."""

from __future__ import annotations

import json
import os

import pytest

from netplug import naming
from tests.support.cnirt import PluginError, exec_plugin
from tests.support.fixtures import (
    REFERENCE_PLUGINS,
    assert_nothing_left,
    attach_guest,
    primary_by_hand,
)
from tests.support.spec import validate_error, validate_result
from tests.support.topology import Netns, dhcp_lease, host_local_allocations, sh, unique, veth

MASQ = {"type": "netplug", "binding": "masquerade"}


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0", "1.0.0"])
def test_result_shaped_for_each_version(netplug, pod_network, pod, version):
    conflist = pod_network.conflist(version, MASQ)
    ids = {"container_id": f"ctr-v{version}", "netns": pod.path, "ifname": "eth0"}
    result = netplug.runtime.add(conflist, **ids)
    validate_result(result, version)
    assert [i["name"] for i in result["interfaces"]][-2:] == ["k6t-eth0", "tap0"]
    if version >= "0.4.0":
        netplug.runtime.check(conflist, result, **ids)
    netplug.runtime.delete(conflist, result, **ids)
    assert_nothing_left(netplug, pod, keep=("lo",))


def _run(np, command, config, pod, cid="ctr-1", ifname="eth0", netns=None, **kw):
    return exec_plugin(np.shim, command, config, container_id=cid, netns=pod.path if netns is None else netns,
                       ifname=ifname, cni_path=np.runtime.cni_path, extra_env=np.runtime.extra_env, **kw)


def test_v110_add_check_status_gc(netplug, tmp_path):
    pods = [Netns.create("nppod"), Netns.create("nppod")]
    try:
        primaries = [primary_by_hand(p) for p in pods]
        results = []
        for n, (p, primary) in enumerate(zip(pods, primaries, strict=True)):
            config = {"cniVersion": "1.1.0", "name": "podnet", **MASQ, "prevResult": primary.prev_result("1.1.0")}
            run = _run(netplug, "ADD", config, p, cid=f"ctr-gc-{n}")
            assert run.returncode == 0, run.stdout + run.stderr
            validate_result(run.json, "1.1.0")
            assert run.json["interfaces"][-1]["mtu"] == 1500  # mtu is a 1.1.0 field
            results.append(run.json)

        check = {"cniVersion": "1.1.0", "name": "podnet", **MASQ, "prevResult": results[0]}
        assert _run(netplug, "CHECK", check, pods[0], cid="ctr-gc-0").returncode == 0

        status = _run(netplug, "STATUS", {"cniVersion": "1.1.0", "name": "podnet", **MASQ}, pods[0], cid="", ifname="", netns="")
        assert (status.returncode, status.stdout) == (0, "")

        # GC keeps what is listed (here under the original 1.1.0 key spelling) and removes the rest.
        gc = {"cniVersion": "1.1.0", "name": "podnet", **MASQ,
              "cni.dev/attachments": [{"containerID": "ctr-gc-0", "ifname": "eth0"}]}
        run = _run(netplug, "GC", gc, pods[0], cid="", ifname="", netns="")
        assert (run.returncode, run.stdout) == (0, ""), run.stdout
        assert "k6t-eth0" in pods[0].links()
        assert set(pods[1].links()) == {"lo", "eth0"}
        assert not pods[1].nft_ruleset()
        assert len(netplug.records()) == 1

        # ... and the current key spelling, with nothing listed: everything of this network goes.
        gc = {"cniVersion": "1.1.0", "name": "podnet", **MASQ, "cni.dev/valid-attachments": []}
        assert _run(netplug, "GC", gc, pods[0], cid="", ifname="", netns="").returncode == 0
        for p in pods:
            assert_nothing_left(netplug, p)
    finally:
        for p in pods:
            p.delete()


def test_del_is_tolerant(netplug, pod):
    primary = primary_by_hand(pod)
    config = {"cniVersion": "1.0.0", "name": "podnet", **MASQ, "prevResult": primary.prev_result("1.0.0")}
    assert _run(netplug, "ADD", config, pod).returncode == 0
    bare = {"cniVersion": "1.0.0", "name": "podnet", **MASQ}  # no prevResult

    # never added
    assert (_run(netplug, "DEL", bare, pod, cid="ctr-never").returncode) == 0
    # the netns is gone and CNI_NETNS is empty, no prevResult: still success, service stopped
    pod.delete()
    run = _run(netplug, "DEL", bare, pod, netns="")
    assert (run.returncode, run.stdout) == (0, ""), run.stdout
    assert not netplug.services() and not netplug.records()
    # again, and with a path that no longer exists
    assert _run(netplug, "DEL", bare, pod).returncode == 0
    assert _run(netplug, "DEL", bare, pod, netns="").returncode == 0


def test_check_reports_what_is_broken(netplug, pod):
    primary = primary_by_hand(pod)
    config = {"cniVersion": "1.0.0", "name": "podnet", **MASQ, "prevResult": primary.prev_result("1.0.0")}
    result = _run(netplug, "ADD", config, pod).json
    check = {**config, "prevResult": result}
    assert _run(netplug, "CHECK", check, pod).returncode == 0

    for pid in netplug.services():
        os.kill(pid, 9)
    pod.ip("link", "del", "tap0")
    run = _run(netplug, "CHECK", check, pod)
    assert run.returncode == 1
    error = run.json
    validate_error(error)
    assert error["code"] == 107
    assert "tap0 is missing" in error["msg"] and "DHCP service" in error["msg"]

    missing_prev = _run(netplug, "CHECK", config | {"prevResult": None}, pod)
    assert missing_prev.json["code"] == 7 and "prevResult" in missing_prev.json["msg"]
    assert _run(netplug, "DEL", check, pod).returncode == 0
    assert_nothing_left(netplug, pod)


def test_ipam_gives_the_vm_its_address(netplug, pod, guests, tmp_path):
    primary = primary_by_hand(pod)
    data_dir = str(tmp_path / "vm-ipam")
    ipam = {"type": "host-local", "dataDir": data_dir,
            "ranges": [[{"subnet": "10.77.0.0/24", "rangeStart": "10.77.0.10", "gateway": "10.77.0.1"}]]}
    config = {"cniVersion": "1.0.0", "name": "vmnet", **MASQ, "ipam": ipam,
              "prevResult": primary.prev_result("1.0.0")}
    run = _run(netplug, "ADD", config, pod)
    assert run.returncode == 0, run.stdout
    result = run.json
    validate_result(result, "1.0.0")
    vm_ip = result["ips"][-1]
    assert vm_ip == {"address": "10.77.0.10/24", "gateway": "10.77.0.1", "interface": len(result["interfaces"]) - 1}
    assert os.listdir(os.path.join(data_dir, "vmnet")).count("10.77.0.10") == 1

    guest = attach_guest(pod, "k6t-eth0")
    guests.append(guest)
    lease = dhcp_lease(guest.ns, "eth0", str(tmp_path))
    assert (lease["ip"], lease["router"]) == ("10.77.0.10", "10.77.0.1")

    assert _run(netplug, "DEL", {**config, "prevResult": result}, pod).returncode == 0
    assert "10.77.0.10" not in os.listdir(os.path.join(data_dir, "vmnet"))
    guest.remove()
    assert_nothing_left(netplug, pod)


def test_static_ipam(netplug, pod, tmp_path):
    primary = primary_by_hand(pod)
    ipam = {"type": "static", "addresses": [{"address": "10.78.0.5/24", "gateway": "10.78.0.1"}]}
    config = {"cniVersion": "1.0.0", "name": "vmnet", **MASQ, "ipam": ipam,
              "prevResult": primary.prev_result("1.0.0")}
    run = _run(netplug, "ADD", config, pod)
    assert run.returncode == 0, run.stdout
    assert pod.addresses("k6t-eth0") == ["10.78.0.1/24"]
    assert run.json["ips"][-1]["address"] == "10.78.0.5/24"
    assert _run(netplug, "DEL", config, pod).returncode == 0
    assert_nothing_left(netplug, pod)


def test_an_ipam_plugins_error_reaches_the_runtime_as_the_plugin_gave_it(netplug, pod):
    """The IPAM plugin's failure is netplug's answer: the plugin's own code and msg, unchanged;
    which plugin and verb failed is in details. The oracle is the same plugin run directly."""
    primary = primary_by_hand(pod)
    ipam = {"type": "static", "addresses": [{"address": "10.78.0.5/33"}]}  # no such prefix length
    direct = exec_plugin(os.path.join(REFERENCE_PLUGINS, "static"), "ADD",
                         {"cniVersion": "1.0.0", "name": "vmnet", "ipam": ipam},
                         container_id="ctr-ipam-error", netns=pod.path, ifname="eth0", cni_path=[REFERENCE_PLUGINS])
    assert direct.returncode == 1 and direct.json["msg"], direct.stdout
    config = {"cniVersion": "1.0.0", "name": "vmnet", **MASQ, "ipam": ipam, "prevResult": primary.prev_result("1.0.0")}
    run = _run(netplug, "ADD", config, pod, cid="ctr-ipam-error")
    assert run.returncode == 1
    validate_error(run.json)
    assert (run.json["code"], run.json["msg"]) == (direct.json["code"], direct.json["msg"])
    assert run.json["details"].startswith("static ADD")
    assert_nothing_left(netplug, pod)


def test_failed_add_undoes_everything_including_ipam(netplug, pod, tmp_path):
    primary = primary_by_hand(pod)
    pod.ip("tuntap", "add", "dev", "tap0", "mode", "tap")  # someone else's tap0: ADD must fail late
    data_dir = str(tmp_path / "vm-ipam")
    ipam = {"type": "host-local", "dataDir": data_dir, "ranges": [[{"subnet": "10.79.0.0/24"}]]}
    config = {"cniVersion": "1.0.0", "name": "vmnet", **MASQ, "ipam": ipam,
              "prevResult": primary.prev_result("1.0.0")}
    sysctl_before = pod.sysctl("net/ipv4/ip_forward")
    run = _run(netplug, "ADD", config, pod)
    assert run.returncode == 1
    validate_error(run.json)
    assert run.json["code"] == 100 and "tap0" in run.json["msg"]
    assert host_local_allocations(data_dir, "vmnet") == {}, "the IPAM allocation leaked"
    assert set(pod.links()) == {"lo", "eth0", "tap0"}  # the foreign tap0 is left alone
    assert pod.sysctl("net/ipv4/ip_forward") == sysctl_before
    assert not pod.nft_ruleset() and not netplug.services() and not netplug.records()


def test_a_pod_wide_sysctl_stays_while_another_attachment_of_the_pod_needs_it(netplug, pod):
    """Bridge bindings on the pod network and on a secondary network both need arp_ignore:
    DEL of the first leaves it set, DEL of the last restores it."""
    primary = primary_by_hand(pod)
    secondary = naming.pod_interface_for_network("blue")
    veth(None, unique("nph"), pod, secondary)
    pod.ip("addr", "add", "10.252.0.2/24", "dev", secondary)
    blue = {"cniVersion": "1.0.0", "ips": [{"address": "10.252.0.2/24", "gateway": "10.252.0.1", "interface": 0}],
            "interfaces": [{"name": secondary, "mac": pod.links()[secondary]["address"], "sandbox": pod.path}]}
    bridge = {"cniVersion": "1.0.0", "name": "podnet", "type": "netplug", "binding": "bridge"}
    configs = {"eth0": {**bridge, "prevResult": primary.prev_result("1.0.0")},
               secondary: {**bridge, "name": "blue", "prevResult": blue}}
    before = pod.sysctl("net/ipv4/conf/all/arp_ignore")
    for ifname, config in configs.items():
        assert _run(netplug, "ADD", config, pod, ifname=ifname).returncode == 0
    assert pod.sysctl("net/ipv4/conf/all/arp_ignore") == "1"
    assert _run(netplug, "DEL", configs["eth0"], pod, ifname="eth0").returncode == 0
    assert pod.sysctl("net/ipv4/conf/all/arp_ignore") == "1"  # the secondary's guest relies on it
    assert _run(netplug, "DEL", configs[secondary], pod, ifname=secondary).returncode == 0
    assert pod.sysctl("net/ipv4/conf/all/arp_ignore") == before
    assert_nothing_left(netplug, pod, keep=("lo", "eth0", secondary))


def test_del_deletes_only_its_own_links_even_from_a_shared_link_group(netplug_agent, pod):
    """DEL deletes the links it made in one kernel batch, a link group: a link of someone
    else's that was put in the same group stays, and what DEL made goes all the same."""
    primary = primary_by_hand(pod)
    config = {"cniVersion": "1.0.0", "name": "podnet", **MASQ, "prevResult": primary.prev_result("1.0.0")}
    assert _run(netplug_agent, "ADD", config, pod).returncode == 0
    group = pod.links()["k6t-eth0"]["group"]
    assert group != "default" and pod.links()["tap0"]["group"] == group
    bystander = unique("by")
    veth(None, unique("byn"), pod, bystander)
    pod.ip("link", "set", bystander, "group", str(group))
    assert _run(netplug_agent, "DEL", config, pod).returncode == 0
    assert bystander in pod.links()
    assert_nothing_left(netplug_agent, pod, keep=("lo", "eth0", bystander))


def test_agent_socket_is_private(netplug_agent):
    mode = os.stat(netplug_agent.socket).st_mode & 0o777
    assert mode == 0o600


def _added_then_agent_and_services_killed(np, pod) -> dict:
    """A masquerade attachment ADDed, then the agent and its DHCP service killed; the config."""
    config = {"cniVersion": "1.0.0", "name": "podnet", **MASQ, "prevResult": primary_by_hand(pod).prev_result("1.0.0")}
    assert _run(np, "ADD", config, pod).returncode == 0
    np.stop_agent()
    for pid in np.services():
        os.kill(pid, 9)
    return config


def test_agent_restart_brings_dhcp_back(netplug_agent, pod, guests, tmp_path):
    config = _added_then_agent_and_services_killed(netplug_agent, pod)
    netplug_agent.start_agent()
    assert len(netplug_agent.services()) == 1
    assert json.loads(netplug_agent.agent_log().splitlines()[-1])["msg"].startswith("listening")
    guest = attach_guest(pod, "k6t-eth0")
    guests.append(guest)
    assert dhcp_lease(guest.ns, "eth0", str(tmp_path))["ip"] == "10.0.2.2"
    assert _run(netplug_agent, "DEL", config, pod).returncode == 0
    guest.remove()
    assert_nothing_left(netplug_agent, pod)


def test_a_netns_path_that_names_another_namespace_since_add_is_never_touched(netplug_agent, pod):
    """The pod's netns is gone (its DHCP service with it) and the same path names a new
    namespace, which happens to hold links of the same names: neither the agent's restart of
    DHCP services nor DEL touches it, and DEL still forgets the attachment."""
    config = _added_then_agent_and_services_killed(netplug_agent, pod)
    pod.delete()
    sh("ip", "netns", "add", pod.name)  # another namespace at the same path
    pod.ip("link", "add", "k6t-eth0", "type", "veth", "peer", "name", "tap0")
    pod.ip("addr", "add", "10.0.2.1/24", "dev", "k6t-eth0")  # where the guest's DHCP service would bind
    for name in ("k6t-eth0", "tap0"):
        pod.ip("link", "set", name, "up")
    stranger = pod.snapshot()
    netplug_agent.start_agent()  # it restarts the services it finds dead before it listens
    assert netplug_agent.services() == [], "a DHCP service was started in another namespace"
    run = _run(netplug_agent, "DEL", config, pod)
    assert (run.returncode, run.stdout) == (0, ""), run.stdout
    assert pod.snapshot() == stranger, "DEL changed a namespace it did not wire"
    assert "names another netns than at ADD" in netplug_agent.agent_log()
    assert not netplug_agent.records() and not netplug_agent.services()


def test_reference_runtime_sees_plugin_errors(netplug, pod_network, pod):
    """A failing netplug in a chain surfaces its error JSON to the runtime unchanged."""
    conflist = pod_network.conflist("1.0.0", {**MASQ, "vmNetworkCIDR": f"{pod_network.subnet}"})
    with pytest.raises(PluginError) as failure:
        netplug.runtime.add(conflist, container_id="ctr-overlap", netns=pod.path, ifname="eth0")
    assert failure.value.error["code"] == 7
    assert "overlaps" in failure.value.error["msg"]
    # the runtime cleans up the chain after a failed ADD, as libcni does
    netplug.runtime.delete(conflist, None, container_id="ctr-overlap", netns=pod.path, ifname="eth0")
    assert pod_network.allocations() == []
    assert_nothing_left(netplug, pod, keep=("lo",))


def test_status_names_what_add_would_miss(netplug_inprocess, pod):
    """STATUS answers 50 when ADD could not serve a guest: here the handler (in-process, with
    the runtime's PATH) finds no dnsmasq; with everything present it answers nothing."""
    config = {"cniVersion": "1.1.0", "name": "podnet", **MASQ}
    ready = _run(netplug_inprocess, "STATUS", config, pod, cid="", ifname="", netns="")
    assert (ready.returncode, ready.stdout) == (0, "")
    np = netplug_inprocess
    missing = exec_plugin(np.shim, "STATUS", config, cni_path=np.runtime.cni_path,
                          extra_env={**np.runtime.extra_env, "PATH": "/nonexistent"})
    assert missing.returncode == 1
    assert missing.json["code"] == 50 and "dnsmasq is not installed" in missing.json["msg"], missing.stdout
