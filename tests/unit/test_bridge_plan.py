"""netplug.bindings.bridge: what the bridge binding plans for one pod interface.

The plan is what the guest and the pod end up with (README "bridge"): the pod interface
renamed `eth0-nic` and made a learning-off port of `k6t-eth0` with the bridge's MAC, `tap0` on
the same bridge, the pod's identity (guest MAC, every address, MTU) on an ifb link called
`eth0`, `arp_ignore` so the pod never answers ARP for the guest's address, a DHCP service that
hands the pod's IPv4 and IPv6 addresses to the guest's MAC only (with router advertisements,
the pod forwarding the guest's off-link IPv6 along its own routes), a spoof guard on the tap
that knows the guest's own addresses, and a CNI result that keeps the pod interface's entry
(with the guest's MAC) and adds netplug's links.
"""

from __future__ import annotations

import pytest

from netplug import naming
from netplug.bindings import plan
from netplug.bindings.base import BindingContext, derived_mac, eui64_link_local, guest_mac
from netplug.bindings.bridge import plan_bridge
from netplug.model.cni import parse_result, result_to_wire
from netplug.model.netconf import BridgeConf
from netplug.model.netspec import PodInterface, RouteSpec

NETNS = "/run/netns/cni-7f3e"
CONTAINER = "3f2a9c1e0b7d"
POD_MAC = "0a:58:0a:f4:01:05"
POD_V4 = "10.244.1.5/24"
POD_V6 = "fd00:10:244:1::5/64"
ARP_IGNORE = "net/ipv4/conf/all/arp_ignore"
IPV6_FORWARDING = "net/ipv6/conf/all/forwarding"
BLUE = "pod16477688c0e"  # naming.pod_interface_for_network("blue"), KubeVirt's name
RESOLV = """\
nameserver 10.96.0.10
nameserver 127.0.0.53
nameserver fd00:10:96::a
search ns1.svc.cluster.local svc.cluster.local cluster.local
"""
#: the pod's routes as the handler observes them: the default route listed first on purpose
ROUTES = (
    RouteSpec(dst="0.0.0.0/0", gateway="10.244.1.1"),
    RouteSpec(dst="10.96.0.0/12", gateway="10.244.1.1"),
)


def conf(**fields: object) -> BridgeConf:
    return BridgeConf(cniVersion="1.0.0", binding="bridge", **fields)


def pod(name: str = "eth0", *, mtu: int = 1450, addresses: tuple[str, ...] = (POD_V4, POD_V6),
        routes: tuple[RouteSpec, ...] = ROUTES, mac: str = POD_MAC) -> PodInterface:
    return PodInterface(name=name, mac=mac, mtu=mtu, addresses=list(addresses), routes=list(routes))


def ctx(pod_interface: PodInterface | None = None, **fields: object) -> BindingContext:
    pod_interface = pod_interface or pod()
    fields.setdefault("container_id", CONTAINER)
    fields.setdefault("ifname", pod_interface.name)
    return BindingContext(netns=NETNS, pod_interface=pod_interface, **fields)


def prev_result(name: str = "eth0"):
    return parse_result({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "veth3a1b7c00", "mac": "3a:1b:7c:00:00:01"},
                       {"name": name, "mac": POD_MAC, "sandbox": NETNS}],
        "ips": [{"address": POD_V4, "gateway": "10.244.1.1", "interface": 1},
                {"address": POD_V6, "gateway": "fd00:10:244:1::1", "interface": 1}],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
    }, "1.0.0")


def links(result_plan) -> dict:
    return {link.name: link for link in result_plan.netspec.links}


def is_unicast_local(mac: str) -> bool:
    first = int(mac.split(":")[0], 16)
    return first & 0x01 == 0 and first & 0x02 == 0x02


TAG = naming.attachment_tag(CONTAINER, "eth0")
BRIDGE_MAC = derived_mac(0x02, TAG, "k6t-eth0")


# --- links on the pod network -------------------------------------------------------------------


def test_links_in_order() -> None:
    netspec = plan_bridge(conf(), ctx()).netspec
    assert [(link.name, link.kind) for link in netspec.links] == [
        ("k6t-eth0", "bridge"), ("eth0-nic", "existing"), ("tap0", "tap"), ("eth0", "ifb")]
    assert netspec.netns == NETNS
    assert netspec.nat == [], "the bridge binding does no NAT"


def test_bridge_has_a_derived_mac_and_only_the_dhcp_server_addresses() -> None:
    bridge = links(plan_bridge(conf(), ctx()))["k6t-eth0"]
    assert bridge.mac == BRIDGE_MAC
    assert is_unicast_local(bridge.mac)
    assert bridge.mac not in (POD_MAC, guest_mac(conf()) or POD_MAC)
    # KubeVirt's DHCP server id (never routed), and the subnet-router anycast address of the
    # pod's IPv6 prefix, which no IPAM hands out: dnsmasq announces the prefix it sits in
    assert bridge.addresses == ["169.254.75.10/32", "fd00:10:244:1::/64"]
    assert bridge.sysctls == {"net/ipv6/conf/k6t-eth0/accept_dad": "0"}
    assert bridge.mtu == 1450 and bridge.master is None


def test_bridge_mac_is_stable_per_attachment() -> None:
    assert links(plan_bridge(conf(), ctx()))["k6t-eth0"].mac == links(plan_bridge(conf(), ctx()))["k6t-eth0"].mac
    other = links(plan_bridge(conf(), ctx(container_id="another-pod")))["k6t-eth0"].mac
    assert other != BRIDGE_MAC


def test_pod_interface_becomes_a_learning_off_port_with_the_bridge_mac() -> None:
    nic = links(plan_bridge(conf(), ctx()))["eth0-nic"]
    assert nic.kind == "existing"
    assert nic.takeover == pod(), "the takeover must describe the pod interface as the primary CNI made it"
    assert (nic.mac, nic.master, nic.learning, nic.mtu) == (BRIDGE_MAC, "k6t-eth0", False, 1450)
    assert nic.addresses == [], "the pod interface loses its addresses to the ifb"


def test_tap_is_a_port_of_the_bridge() -> None:
    tap = links(plan_bridge(conf(tapUid=107, tapGid=107), ctx()))["tap0"]
    assert (tap.kind, tap.master, tap.mtu, tap.addresses) == ("tap", "k6t-eth0", 1450, [])
    assert (tap.owner_uid, tap.owner_gid) == (107, 107)
    assert tap.mac == derived_mac(0xFE, TAG, "tap0")
    assert tap.mac not in (BRIDGE_MAC, POD_MAC)
    default = links(plan_bridge(conf(), ctx()))["tap0"]
    assert (default.owner_uid, default.owner_gid) == (0, 0)


@pytest.mark.parametrize(("queues", "multi_queue"), [(1, False), (2, True), (4, True)])
def test_tap_is_multi_queue_only_above_one_queue(queues: int, multi_queue: bool) -> None:
    assert links(plan_bridge(conf(queues=queues), ctx()))["tap0"].multi_queue is multi_queue


def test_ifb_keeps_the_pods_identity() -> None:
    ifb = links(plan_bridge(conf(mac="52:54:00:12:34:56"), ctx()))["eth0"]
    assert ifb.kind == "ifb"
    assert ifb.mac == "52:54:00:12:34:56", "the ifb shows the MAC the guest uses"
    assert ifb.addresses == [POD_V4, POD_V6], "every pod address, IPv6 included, stays visible"
    assert ifb.mtu == 1450 and ifb.master is None


@pytest.mark.parametrize(("pod_mtu", "conf_mtu", "expected"), [(1450, None, 1450), (9000, None, 9000),
                                                               (1450, 1400, 1400)])
def test_mtu_follows_the_pod_interface_unless_set(pod_mtu: int, conf_mtu: int | None, expected: int) -> None:
    result_plan = plan_bridge(conf(mtu=conf_mtu), ctx(pod(mtu=pod_mtu)))
    assert [link.mtu for link in result_plan.netspec.links] == [expected] * 4
    assert result_plan.netspec.dhcp.mtu == expected
    assert [i.mtu for i in result_plan.result.interfaces[-3:]] == [expected] * 3


def test_dispatch_by_binding_name() -> None:
    assert plan(conf(), ctx()) == plan_bridge(conf(), ctx())


# --- sysctls ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("current", "restore"), [({ARP_IGNORE: "0"}, "0"), ({ARP_IGNORE: "2"}, "2"), ({}, None)])
def test_arp_ignore_is_set_and_restored(current: dict, restore: str | None) -> None:
    netspec = plan_bridge(conf(), ctx(sysctls=current)).netspec
    assert [(s.key, s.value, s.restore) for s in netspec.sysctls] == [(ARP_IGNORE, "1", restore)]


# --- DHCP ---------------------------------------------------------------------------------------


def test_dhcp_hands_the_pods_ipv4_address_to_the_guest() -> None:
    dhcp = plan_bridge(conf(), ctx()).netspec.dhcp
    assert dhcp.interface == "k6t-eth0"
    assert (dhcp.vm_address, dhcp.prefixlen) == ("10.244.1.5", 24)
    assert dhcp.router == "10.244.1.1"
    assert dhcp.shared_network == "10.244.1.0"
    assert dhcp.vm_mac == POD_MAC, "without mac or VM identity the guest uses the pod's MAC"
    assert dhcp.mtu == 1450


def test_dhcpv6_hands_the_pods_ipv6_address_to_the_guest() -> None:
    dhcp = plan_bridge(conf(mac="52:54:00:12:34:56"), ctx()).netspec.dhcp
    assert (dhcp.vm_address6, dhcp.prefixlen6, dhcp.vm_mac) == ("fd00:10:244:1::5", 64, "52:54:00:12:34:56")
    assert dhcp.dns_servers6 == [] and dhcp.mtu == 1450


V6_ROUTES = (*ROUTES, RouteSpec(dst="::/0", gateway="fd00:10:244:1::1", metric=1024),
             RouteSpec(dst="fd00:beef::/48", gateway="fe80::1"))


def test_with_ipv6_routes_the_bridge_routes_for_the_guest() -> None:
    netspec = plan_bridge(conf(), ctx(pod(routes=V6_ROUTES), sysctls={IPV6_FORWARDING: "0"})).netspec
    assert netspec.dhcp.ra_default_route is True, "the RA names the bridge as the guest's router"
    bridge = next(link for link in netspec.links if link.name == "k6t-eth0")
    assert [(r.dst, r.gateway, r.metric) for r in bridge.routes] == [
        ("::/0", "fd00:10:244:1::1", 1024), ("fd00:beef::/48", "fe80::1", None)]
    assert (IPV6_FORWARDING, "1", "0") in [(s.key, s.value, s.restore) for s in netspec.sysctls]


def test_without_ipv6_routes_the_ra_gives_the_prefix_only() -> None:
    netspec = plan_bridge(conf(), ctx()).netspec
    assert netspec.dhcp.ra_default_route is False
    assert all(not link.routes for link in netspec.links)
    assert IPV6_FORWARDING not in [s.key for s in netspec.sysctls]


def test_the_guests_ipv6_services_stay_off_the_uplink() -> None:
    fence = plan_bridge(conf(), ctx()).netspec.service_fence
    assert (fence.family, fence.table, fence.uplink, fence.tag) == ("bridge", "netplug_eth0_fence", "eth0-nic", TAG)
    assert plan_bridge(conf(), ctx(pod(addresses=(POD_V4,)))).netspec.service_fence is None


@pytest.mark.parametrize("address", ["fd00:10:244:1::5/128", "fd00:10:244:1::5/127", "fd00:10::5/48"])
def test_ipv6_prefix_dnsmasq_cannot_announce_gets_no_dhcpv6(address: str) -> None:
    netspec = plan_bridge(conf(), ctx(pod(addresses=(POD_V4, address), routes=V6_ROUTES))).netspec
    assert (netspec.dhcp.vm_address6, netspec.service_fence) == (None, None)
    assert links(plan_bridge(conf(), ctx(pod(addresses=(POD_V4, address)))))["k6t-eth0"].addresses == [
        "169.254.75.10/32"]
    assert "fd00:10:244:1::5" in netspec.spoof_guard.ipv6 or "fd00:10::5" in netspec.spoof_guard.ipv6


def test_dhcp_classless_routes_default_last_connected_subnet_excluded() -> None:
    routes = (
        RouteSpec(dst="0.0.0.0/0", gateway="10.244.1.1"),
        RouteSpec(dst="10.244.1.0/24", gateway="10.244.1.1"),  # the connected subnet
        RouteSpec(dst="10.96.0.0/12", gateway="10.244.1.1"),
        RouteSpec(dst="192.168.0.0/16", gateway="10.244.1.254"),
        RouteSpec(dst="172.16.0.0/12"),  # no gateway: not a route a DHCP client can take
        RouteSpec(dst="::/0", gateway="fe80::1"),  # IPv6: not a DHCPv4 route
    )
    dhcp = plan_bridge(conf(), ctx(pod(routes=routes))).netspec.dhcp
    assert dhcp.classless_routes == [("10.96.0.0/12", "10.244.1.1"), ("192.168.0.0/16", "10.244.1.254"),
                                     ("0.0.0.0/0", "10.244.1.1")]
    assert dhcp.router == "10.244.1.1"


def test_dhcp_classless_routes_with_the_default_route_only() -> None:
    dhcp = plan_bridge(conf(), ctx()).netspec.dhcp
    assert dhcp.classless_routes == [("10.96.0.0/12", "10.244.1.1"), ("0.0.0.0/0", "10.244.1.1")]


def test_dhcp_without_a_default_route_has_no_router() -> None:
    dhcp = plan_bridge(conf(), ctx(pod(routes=(RouteSpec(dst="10.96.0.0/12", gateway="10.244.1.1"),)))).netspec.dhcp
    assert dhcp.router is None
    assert dhcp.classless_routes == [("10.96.0.0/12", "10.244.1.1")]


def test_dhcp_dns_hostname_and_search_from_the_pod() -> None:
    dhcp = plan_bridge(conf(), ctx(resolv_conf=RESOLV, args={"K8S_POD_NAME": "virt-launcher-vm-a"})).netspec.dhcp
    assert dhcp.dns_servers == ["10.96.0.10"]  # loopback dropped, IPv6 not a DHCPv4 server
    assert dhcp.search_domains == ["ns1.svc.cluster.local", "svc.cluster.local", "cluster.local"]
    assert dhcp.domain_name == "ns1.svc.cluster.local"
    assert dhcp.hostname == "virt-launcher-vm-a"
    assert plan_bridge(conf(hostname="vm-a"), ctx(args={"K8S_POD_NAME": "x"})).netspec.dhcp.hostname == "vm-a"


def test_dhcp_options_are_passed_to_the_guest() -> None:
    options = {"bootFileName": "pxelinux.0", "tftpServerName": "tftp.example.com",
               "ntpServers": ["10.0.0.123", "10.0.0.124"],
               "privateOptions": [{"option": 240, "value": "extra-config"}, {"option": 224, "value": "a b"}]}
    dhcp = plan_bridge(conf(dhcpOptions=options), ctx()).netspec.dhcp
    assert dhcp.ntp_servers == ["10.0.0.123", "10.0.0.124"]
    assert dhcp.tftp_server == "tftp.example.com"
    assert dhcp.boot_file == "pxelinux.0"
    assert dhcp.private_options == [(240, "extra-config"), (224, "a b")]


def test_no_dhcp_options_means_none_sent() -> None:
    dhcp = plan_bridge(conf(), ctx()).netspec.dhcp
    assert (dhcp.ntp_servers, dhcp.tftp_server, dhcp.boot_file, dhcp.private_options) == ([], None, None, [])


# --- guest MAC ----------------------------------------------------------------------------------


IDENTITY = dict(vmName="testvm", vmNamespace="ns1", vmInterface="default")


def guest_macs(result_plan) -> set[str]:
    """Every place the plan names the guest's MAC: ifb, DHCP host, spoof guard, CNI result."""
    netspec = result_plan.netspec
    entry = result_plan.result.interfaces[result_plan.result.sandbox_interface("eth0")]
    return {links(result_plan)["eth0"].mac, netspec.dhcp.vm_mac, netspec.spoof_guard.vm_mac, entry.mac}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"mac": "52:54:00:AB:CD:EF", **IDENTITY}, "52:54:00:ab:cd:ef"),
        ({"mac": "52:54:00:ab:cd:ef"}, "52:54:00:ab:cd:ef"),
        (IDENTITY, "da:8b:c0:49:8c:0d"),  # pinned: a restarted VM keeps its MAC
        ({}, POD_MAC),
        ({"vmName": "testvm"}, POD_MAC),  # no interface: nothing stable to derive from
    ],
    ids=["mac-wins-over-identity", "mac", "derived-from-identity", "pod-mac", "partial-identity"],
)
def test_guest_mac_precedence(fields: dict, expected: str) -> None:
    result_plan = plan_bridge(conf(**fields), ctx(prev_result=prev_result()))
    assert guest_macs(result_plan) == {expected}


def test_derived_guest_mac_is_the_same_for_every_pod_of_the_vm() -> None:
    first = plan_bridge(conf(**IDENTITY), ctx(container_id="launcher-1"))
    second = plan_bridge(conf(**IDENTITY), ctx(pod(mac="0a:58:0a:f4:02:09"), container_id="launcher-2"))
    assert guest_macs(first) == guest_macs(second)
    assert guest_macs(first) != {POD_MAC}


# --- spoof guard --------------------------------------------------------------------------------


def test_spoof_guard_plan() -> None:
    guard = plan_bridge(conf(mac="52:54:00:12:34:56"), ctx()).netspec.spoof_guard
    assert guard.table == "netplug_eth0_guard"
    assert guard.family == "bridge"
    assert guard.port == "tap0"
    assert guard.vm_mac == "52:54:00:12:34:56"
    assert guard.ipv4 == ["10.244.1.5"]
    # the guest's own /128 and the link-local address its MAC gives it, not the whole prefix
    assert guard.ipv6 == ["fd00:10:244:1::5", "fe80::5054:ff:fe12:3456"]
    assert guard.tag == TAG


@pytest.mark.parametrize(("mac", "link_local"), [("52:54:00:aa:bb:01", "fe80::5054:ff:feaa:bb01"),
                                                 ("02:00:00:00:00:00", "fe80::ff:fe00:0"),
                                                 ("0a:58:0a:f4:01:05", "fe80::858:aff:fef4:105")])
def test_link_local_address_from_the_mac_is_modified_eui64(mac: str, link_local: str) -> None:
    assert eui64_link_local(mac) == link_local


def test_spoof_check_false_has_no_guard() -> None:
    netspec = plan_bridge(conf(spoofCheck=False), ctx()).netspec
    assert netspec.spoof_guard is None
    assert netspec.dhcp is not None, "turning the guard off changes nothing else"


# --- the CNI result -----------------------------------------------------------------------------


def test_result_keeps_the_pod_entry_with_the_guest_mac_and_adds_the_links() -> None:
    prev = prev_result()
    result_plan = plan_bridge(conf(mac="52:54:00:12:34:56"), ctx(prev_result=prev))
    wire = result_to_wire(result_plan.result, "1.0.0")
    tap_mac = links(result_plan)["tap0"].mac
    assert wire["interfaces"] == [
        {"name": "veth3a1b7c00", "mac": "3a:1b:7c:00:00:01"},
        {"name": "eth0", "mac": "52:54:00:12:34:56", "sandbox": NETNS},
        {"name": "k6t-eth0", "mac": BRIDGE_MAC, "sandbox": NETNS},
        {"name": "eth0-nic", "mac": BRIDGE_MAC, "sandbox": NETNS},
        {"name": "tap0", "mac": tap_mac, "sandbox": NETNS},
    ]
    # the pod's addresses still belong to the pod interface's entry
    assert wire["ips"] == [{"address": POD_V4, "gateway": "10.244.1.1", "interface": 1},
                           {"address": POD_V6, "gateway": "fd00:10:244:1::1", "interface": 1}]
    assert wire["routes"] == [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]
    assert result_to_wire(prev, "1.0.0") == result_to_wire(prev_result(), "1.0.0"), "prevResult was changed"


def test_result_without_prev_result_adds_the_pod_interface() -> None:
    result_plan = plan_bridge(conf(), ctx(pod(mtu=1400)))
    wire = result_to_wire(result_plan.result, "1.1.0")
    tap_mac = links(result_plan)["tap0"].mac
    assert wire["interfaces"] == [
        {"name": "eth0", "mac": POD_MAC, "mtu": 1400, "sandbox": NETNS},
        {"name": "k6t-eth0", "mac": BRIDGE_MAC, "mtu": 1400, "sandbox": NETNS},
        {"name": "eth0-nic", "mac": BRIDGE_MAC, "mtu": 1400, "sandbox": NETNS},
        {"name": "tap0", "mac": tap_mac, "mtu": 1400, "sandbox": NETNS},
    ]
    assert "ips" not in wire


# --- IPv6-only and secondary networks ----------------------------------------------------------


def test_ipv6_only_pod_gets_dhcpv6_only_and_no_arp_ignore() -> None:
    result_plan = plan_bridge(conf(), ctx(pod(addresses=(POD_V6,), routes=())))
    netspec = result_plan.netspec
    assert (netspec.dhcp.vm_address, netspec.dhcp.vm_address6) == (None, "fd00:10:244:1::5")
    assert netspec.sysctls == []
    assert links(result_plan)["k6t-eth0"].addresses == ["fd00:10:244:1::/64"]
    assert links(result_plan)["eth0"].addresses == [POD_V6]
    assert (netspec.spoof_guard.ipv4, netspec.spoof_guard.ipv6) == ([], ["fd00:10:244:1::5", eui64_link_local(POD_MAC)])


def test_secondary_network_names() -> None:
    assert naming.pod_interface_for_network("blue") == BLUE
    result_plan = plan_bridge(conf(), ctx(pod(BLUE, addresses=("10.11.0.5/24",), routes=())))
    assert [(link.name, link.kind) for link in result_plan.netspec.links] == [
        ("k6t-16477688c0e", "bridge"), ("16477688c0e-nic", "existing"), ("tap16477688c0e", "tap"),
        (BLUE, "ifb")]
    by_name = links(result_plan)
    assert by_name["16477688c0e-nic"].master == "k6t-16477688c0e"
    assert by_name["16477688c0e-nic"].takeover.name == BLUE
    assert by_name["tap16477688c0e"].master == "k6t-16477688c0e"
    assert all(len(name) <= 15 for name in by_name)
    dhcp = result_plan.netspec.dhcp
    assert (dhcp.interface, dhcp.vm_address, dhcp.shared_network, dhcp.router) == (
        "k6t-16477688c0e", "10.11.0.5", "10.11.0.0", None)
    guard = result_plan.netspec.spoof_guard
    assert (guard.table, guard.port) == ("netplug_pod16477688c0e_guard", "tap16477688c0e")


def test_secondary_network_as_chained_plugin_keeps_its_entry() -> None:
    result_plan = plan_bridge(conf(mac="02:00:00:0b:0b:01"),
                              ctx(pod(BLUE, addresses=("10.11.0.5/24",), routes=()), prev_result=prev_result(BLUE)))
    names = [(i.name, i.mac) for i in result_plan.result.interfaces]
    assert names[:2] == [("veth3a1b7c00", "3a:1b:7c:00:00:01"), (BLUE, "02:00:00:0b:0b:01")]
    assert [n for n, _ in names[2:]] == ["k6t-16477688c0e", "16477688c0e-nic", "tap16477688c0e"]


def test_secondary_network_without_addresses_is_pure_l2() -> None:
    result_plan = plan_bridge(conf(), ctx(pod(BLUE, addresses=(), routes=())))
    netspec = result_plan.netspec
    assert netspec.dhcp is None, "no address: no DHCP"
    assert netspec.sysctls == [], "no address: no arp_ignore"
    assert all(not link.addresses for link in netspec.links), "no 169.254.75.10 and nothing on the ifb"
    guard = netspec.spoof_guard
    assert (guard.table, guard.port, guard.vm_mac) == ("netplug_pod16477688c0e_guard", "tap16477688c0e", POD_MAC)
    assert (guard.ipv4, guard.ipv6) == ([], [])
    assert [i.name for i in result_plan.result.interfaces] == [
        BLUE, "k6t-16477688c0e", "16477688c0e-nic", "tap16477688c0e"]
