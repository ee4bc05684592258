"""IPv6 on the masquerade binding: a stock DHCPv6 client (dhclient -6) gets the guest's
address, router advertisements give it a default route, and it reaches an IPv6 server
outside through NAT66 — on a dual-stack pod and on an IPv6-only pod."""

from __future__ import annotations

import ipaddress

import pytest

from tests.support.cnirt import sandbox_ips
from tests.support.fixtures import assert_nothing_left, attach_guest
from tests.support.spec import validate_result
from tests.support.topology import (
    TcpServer,
    default_route6,
    dhcp6_lease,
    dhcp_lease,
    tcp_request,
    wait_for,
)

MASQ = {"type": "netplug", "binding": "masquerade", "vmInterface": "default"}


@pytest.mark.parametrize("stack", ["dual", "ipv6-only"])
def test_guest_gets_ipv6_address_and_default_route(netplug, pod_network, pod, outside, guests, tmp_path, stack):
    conflist = pod_network.conflist("1.0.0", MASQ, ipv4=stack == "dual", ipv6=True)
    ids = {"container_id": f"ctr-v6-{stack}", "netns": pod.path, "ifname": "eth0"}
    result = netplug.runtime.add(conflist, **ids)
    validate_result(result, "1.0.0")
    pod_ips = sandbox_ips(result)
    pod_ip6 = next(ip for ip in pod_ips if ":" in ip)
    assert "fd10:0:2::1/120" in pod.addresses("k6t-eth0")
    assert pod.sysctl("net/ipv6/conf/all/forwarding") == "1"

    guest = attach_guest(pod, "k6t-eth0")
    guests.append(guest)
    if stack == "dual":
        assert dhcp_lease(guest.ns, "eth0", str(tmp_path))["ip"] == "10.0.2.2"
    assert dhcp6_lease(guest.ns, "eth0", str(tmp_path)) == "fd10:0:2::2"
    router = wait_for(lambda: default_route6(guest.ns), timeout=15)
    assert router and ipaddress.IPv6Address(router).is_link_local, f"no default route from RA: {router}"

    world = TcpServer(outside.ns, 9006, host="::")
    try:
        answer = tcp_request(guest.ns, outside.address6, 9006)
        assert answer == f"hello {pod_ip6}\n", answer  # NAT66: the world sees the pod's address
        if stack == "dual":
            assert tcp_request(guest.ns, outside.address, 9006) == f"hello ::ffff:{pod_ips[0]}\n"
    finally:
        world.close()

    # inbound over IPv6 to the pod address lands on the guest
    web = TcpServer(guest.ns, 8080, host="::")
    try:
        assert tcp_request(outside.ns, pod_ip6, 8080) == f"hello {outside.address6}\n"
    finally:
        web.close()

    netplug.runtime.delete(conflist, result, **ids)
    guest.remove()
    assert_nothing_left(netplug, pod, keep=("lo",))
    assert pod.sysctl("net/ipv6/conf/all/forwarding") == "0"
