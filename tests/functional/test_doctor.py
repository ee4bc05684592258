"""`netplug doctor`'s checks (runtime.doctor.check_interface) on pods wired by the real shim,
with a guest stand-in that takes real DHCP and DHCPv6 leases: a healthy path is all ok with
the facts a user reads (leases by MAC for both families, the DHCP service's answers, NAT and
spoof-guard counters, MTUs, the node end of the veth); each hop broken on purpose is named,
with its fix, and what is not broken is not blamed. (The e2e test drives the same checks
through `netplug doctor` on a booted VM.)"""

from __future__ import annotations

import ipaddress
import json
import os
import signal

from netplug.model.vm import vmi_from_document
from runtime.agent.store import Store
from runtime.doctor import check_interface, render_svg, render_text
from tests.support.fixtures import attach_guest
from tests.support.topology import TcpServer, dhcp6_lease, dhcp_lease, sh, tcp_request

GUEST_MAC = "52:54:00:aa:dd:01"


def _vmi(binding: str):
    return vmi_from_document({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance", "metadata": {"name": "vm"},
                              "spec": {"domain": {"devices": {"interfaces": [{"name": "default", binding: {}}]}},
                                       "networks": [{"name": "default", "pod": {}}]}})


def _doctor(np, pod, binding: str, container_id: str) -> dict:
    store = Store(np.state_dir)
    record = store.load(container_id, "eth0")
    hops = check_interface(_vmi(binding), "default", pod.path, store.service_files(container_id, "eth0"), GUEST_MAC,
                           True, record.netspec if record else None)
    return {hop.name: hop for hop in hops}


def _node_end(pod, veth: str) -> str:
    """The node end of the pod's veth `veth` (the pod side names its peer's ifindex)."""
    peer_index = pod.links()[veth]["link_index"]
    return next(li["ifname"] for li in json.loads(sh("ip", "-j", "link", "show").stdout) if li["ifindex"] == peer_index)


def test_masquerade_dual_stack_path(netplug_agent, pod_network, pod, outside, guests, tmp_path):
    conflist = pod_network.conflist("1.0.0", {"type": "netplug", "binding": "masquerade"}, ipv6=True)
    ids = {"container_id": "ctr-doctor-masq", "netns": pod.path, "ifname": "eth0"}
    netplug_agent.runtime.add(conflist, **ids)
    guest = attach_guest(pod, "k6t-eth0", GUEST_MAC, as_tap="tap0")
    guests.append(guest)
    assert dhcp_lease(guest.ns, "eth0", str(tmp_path))["ip"] == "10.0.2.2"
    assert dhcp6_lease(guest.ns, "eth0", str(tmp_path)) == "fd10:0:2::2"
    server = TcpServer(outside.ns, 9700)
    try:
        assert tcp_request(guest.ns, outside.address, 9700)  # one connection through the NAT
    finally:
        server.close()

    hops = _doctor(netplug_agent, pod, "masquerade", "ctr-doctor-masq")
    text = render_text({"default": list(hops.values())})
    assert all(h.ok for h in hops.values()), text
    assert list(hops) == ["guest NIC (default)", "tap0", "k6t-eth0", "NAT", "eth0", "node"]
    assert hops["guest NIC (default)"].facts == f"MAC {GUEST_MAC}, IPv4 lease 10.0.2.2, IPv6 lease fd10:0:2::2"
    assert "answered the guest (DHCPACK 10.0.2.2, DHCPREPLY fd10:0:2::2)" in hops["k6t-eth0"].facts
    nat = hops["NAT"].facts
    assert nat.startswith("ip: masquerade ") and "; ip6: masquerade 0 pkts" in nat
    assert int(nat.split("ip: masquerade ")[1].split()[0]) >= 1, nat  # the connection was counted
    node_end = _node_end(pod, "eth0")
    assert hops["node"].facts.startswith(f"{node_end} up") and f"on {pod_network.bridge} (up)" in hops["node"].facts
    assert "<svg" in render_svg({"default": list(hops.values())})

    # break three hops: NAT66, the DHCP service, the node end of the veth
    pod.exec("nft", "delete", "table", "ip6", "netplug_eth0")
    for pid in netplug_agent.services():
        os.kill(pid, signal.SIGKILL)
    sh("ip", "link", "set", node_end, "down")
    hops = _doctor(netplug_agent, pod, "masquerade", "ctr-doctor-masq")
    failed = {name: hop for name, hop in hops.items() if not hop.ok}
    assert set(failed) == {"k6t-eth0", "NAT", "node"}, render_text({"default": list(hops.values())})
    assert failed["NAT"].fixes == ["the NAT table ip6 netplug_eth0 is missing: netplug down and up again"]
    assert "ip: masquerade" in failed["NAT"].facts and "ip6: no table" in failed["NAT"].facts
    assert failed["k6t-eth0"].fixes[0].startswith("the DHCP service is not running")
    assert failed["node"].fixes == [f"{node_end} is down: ip link set {node_end} up"]


def test_bridge_dual_stack_path(netplug_agent, pod_network, pod, guests, tmp_path):
    conflist = pod_network.conflist("1.0.0", {"type": "netplug", "binding": "bridge", "mac": GUEST_MAC}, ipv6=True)
    ids = {"container_id": "ctr-doctor-bridge", "netns": pod.path, "ifname": "eth0"}
    result = netplug_agent.runtime.add(conflist, **ids)
    pod_ips = [ip["address"].split("/")[0] for ip in result["ips"]]
    guest = attach_guest(pod, "k6t-eth0", GUEST_MAC, as_tap="tap0")
    guests.append(guest)
    assert dhcp_lease(guest.ns, "eth0", str(tmp_path))["ip"] == pod_ips[0]
    assert dhcp6_lease(guest.ns, "eth0", str(tmp_path)) == pod_ips[1]

    hops = _doctor(netplug_agent, pod, "bridge", "ctr-doctor-bridge")
    assert all(h.ok for h in hops.values()), render_text({"default": list(hops.values())})
    assert list(hops) == ["guest NIC (default)", "tap0", "spoof guard", "k6t-eth0", "eth0-nic", "eth0", "node"]
    assert hops["guest NIC (default)"].facts == f"MAC {GUEST_MAC}, IPv4 lease {pod_ips[0]}, IPv6 lease {pod_ips[1]}"
    assert "0 frames dropped" in hops["spoof guard"].facts and "RA/DHCPv6 kept off eth0-nic" in hops["spoof guard"].facts
    assert f"on {pod_network.bridge} (up)" in hops["node"].facts

    # the guest sends as another address: the guard drops it, and says so without failing
    other = str(ipaddress.ip_address(pod_ips[0]) + 50)
    guest.ns.ip("addr", "add", f"{other}/24", "dev", "eth0")
    guest.ns.exec("busybox", "ping", "-c", "1", "-W", "1", "-I", other, pod_network.gateway, check=False)
    hops = _doctor(netplug_agent, pod, "bridge", "ctr-doctor-bridge")
    assert hops["spoof guard"].ok and "0 frames dropped" not in hops["spoof guard"].facts, hops["spoof guard"].facts
    assert f"another MAC or address than {GUEST_MAC}" in hops["spoof guard"].facts

    # break: the guard is gone, the bridge port is down, the node end leaves its bridge with
    # another MTU than the pod's end (a bridge's own MTU follows its ports': not broken here)
    node_end = _node_end(pod, "eth0-nic")
    pod.exec("nft", "delete", "table", "bridge", "netplug_eth0_guard")
    pod.ip("link", "set", "eth0-nic", "down")
    sh("ip", "link", "set", node_end, "nomaster")
    sh("ip", "link", "set", node_end, "mtu", "1400")
    hops = _doctor(netplug_agent, pod, "bridge", "ctr-doctor-bridge")
    failed = {name: hop for name, hop in hops.items() if not hop.ok}
    assert set(failed) == {"spoof guard", "eth0-nic", "node"}, render_text({"default": list(hops.values())})
    assert "may send as anyone" in failed["spoof guard"].fixes[0]
    assert failed["eth0-nic"].fixes == ["eth0-nic must be up on k6t-eth0: ip -n <pod> link set eth0-nic master k6t-eth0 up"]
    assert failed["node"].fixes[0] == f"MTU 1400 differs from eth0-nic's 1500: ip link set {node_end} mtu 1500"
    assert "is on no node bridge" in failed["node"].fixes[1]
