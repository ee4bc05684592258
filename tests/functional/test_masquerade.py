"""Masquerade binding through the real shim, chained after the reference bridge + host-local.

A guest stand-in on k6t-eth0 runs busybox udhcpc, gets its lease, reaches an outside server
through the NAT, and is reached from outside on a forwarded port; DEL leaves nothing.
"""

from __future__ import annotations

import ipaddress

import pytest

from tests.support.cnirt import sandbox_ips
from tests.support.fixtures import assert_nothing_left, attach_guest
from tests.support.spec import validate_result
from tests.support.topology import TcpServer, dhcp_lease, tcp_request

MASQ = {"type": "netplug", "binding": "masquerade", "vmInterface": "default"}


def test_guest_gets_lease_and_reaches_the_world(netplug, pod_network, pod, outside, guests, tmp_path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 10.96.0.10\nnameserver 127.0.0.53\nsearch ns1.svc.cluster.local svc.cluster.local\n")
    masq = {**MASQ, "ports": [{"name": "http", "port": 8080}], "resolvConf": str(resolv)}
    conflist = pod_network.conflist("1.0.0", masq)
    ids = {"container_id": "ctr-masq-1", "netns": pod.path, "ifname": "eth0",
           "args": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=virt-launcher-testvm"}

    result = netplug.runtime.add(conflist, **ids)
    validate_result(result, "1.0.0")
    names = [iface["name"] for iface in result["interfaces"]]
    assert names[-2:] == ["k6t-eth0", "tap0"]
    assert all(iface.get("sandbox") == pod.path for iface in result["interfaces"][-2:])
    pod_ip = sandbox_ips(result)[0]

    links = pod.links()
    assert links["k6t-eth0"]["address"] == "02:00:00:00:00:00"
    assert links["tap0"]["master"] == "k6t-eth0"
    assert links["k6t-eth0"]["mtu"] == links["eth0"]["mtu"] == links["tap0"]["mtu"]
    assert pod.addresses("k6t-eth0") == ["10.0.2.1/24"]
    assert pod.sysctl("net/ipv4/ip_forward") == "1"

    guest = attach_guest(pod, "k6t-eth0")
    guests.append(guest)
    lease = dhcp_lease(guest.ns, "eth0", str(tmp_path))
    assert lease["ip"] == "10.0.2.2"
    assert lease["mask"] == "24"
    assert lease["router"] == "10.0.2.1"
    assert lease["dns"].split() == ["10.96.0.10"]  # the pod's loopback stub is unreachable from a VM
    assert lease["search"].split() == ["ns1.svc.cluster.local", "svc.cluster.local"]
    assert lease["mtu"] == str(links["eth0"]["mtu"])
    assert lease["hostname"] == "virt-launcher-testvm"
    assert lease["staticroutes"] == "0.0.0.0/0 10.0.2.1"

    # Out: the outside world sees the pod's IP, not the VM's.
    world = TcpServer(outside.ns, 9000)
    try:
        assert tcp_request(guest.ns, outside.address, 9000) == f"hello {pod_ip}\n"
    finally:
        world.close()

    # In: a listed port on the pod IP lands on the guest; an unlisted one does not.
    web = TcpServer(guest.ns, 8080)
    other = TcpServer(guest.ns, 8081)
    try:
        assert tcp_request(outside.ns, pod_ip, 8080) == f"hello {outside.address}\n"
        assert tcp_request(outside.ns, pod_ip, 8081, timeout=1.0) is None
        assert other.peers == []
    finally:
        web.close()
        other.close()

    netplug.runtime.check(conflist, result, **ids)

    eth0_before = (links["eth0"]["address"], pod.addresses("eth0"))
    netplug.runtime.delete(conflist, result, **ids)
    guest.remove()
    assert_nothing_left(netplug, pod)
    assert pod_network.allocations() == []
    links_after = pod.links()
    assert set(links_after) == {"lo"}  # the reference bridge plugin removed eth0 in its DEL
    assert eth0_before[1] and ipaddress.ip_interface(eth0_before[1][0]).ip == ipaddress.ip_address(pod_ip)
    assert pod.sysctl("net/ipv4/ip_forward") == "0"

    # DEL is idempotent.
    netplug.runtime.delete(conflist, result, **ids)


def test_all_ports_forwarded_when_none_listed(netplug, pod_network, pod, outside, guests, tmp_path):
    conflist = pod_network.conflist("1.0.0", MASQ)
    ids = {"container_id": "ctr-masq-all", "netns": pod.path, "ifname": "eth0"}
    result = netplug.runtime.add(conflist, **ids)
    pod_ip = sandbox_ips(result)[0]
    guest = attach_guest(pod, "k6t-eth0")
    guests.append(guest)
    assert dhcp_lease(guest.ns, "eth0", str(tmp_path))["ip"] == "10.0.2.2"
    servers = [TcpServer(guest.ns, port) for port in (22, 5432)]
    try:
        for port in (22, 5432):
            assert tcp_request(outside.ns, pod_ip, port) == f"hello {outside.address}\n"
    finally:
        for server in servers:
            server.close()
    netplug.runtime.delete(conflist, result, **ids)
    guest.remove()
    assert_nothing_left(netplug, pod, keep=("lo",))


@pytest.mark.parametrize("cidr, gateway, vm", [("192.168.77.0/28", "192.168.77.1", "192.168.77.2")])
def test_vm_network_cidr(netplug, pod_network, pod, guests, tmp_path, cidr, gateway, vm):
    conflist = pod_network.conflist("1.0.0", {**MASQ, "vmNetworkCIDR": cidr})
    ids = {"container_id": "ctr-masq-cidr", "netns": pod.path, "ifname": "eth0"}
    result = netplug.runtime.add(conflist, **ids)
    assert pod.addresses("k6t-eth0") == [f"{gateway}/28"]
    guest = attach_guest(pod, "k6t-eth0")
    guests.append(guest)
    lease = dhcp_lease(guest.ns, "eth0", str(tmp_path))
    assert (lease["ip"], lease["mask"], lease["router"]) == (vm, "28", gateway)
    netplug.runtime.delete(conflist, result, **ids)
