"""Bridge binding: the guest takes over the pod interface on L2 (KubeVirt `bridge: {}`).

On the pod network (eth0) and on a secondary network (pod<h>, made by a Multus delegate):

    guest NIC (pod IP, VM MAC) ── tap0 ── k6t-eth0 ── eth0-nic (the pod's veth) ── node
                                          169.254.75.10/32 (DHCP server id only)
    eth0: an ifb link holding the pod's MAC as the guest uses it, the pod's addresses, its MTU

The pod interface is renamed `eth0-nic` (`<h>-nic`), loses its addresses, gets the bridge's
MAC and becomes a bridge port with learning off. The guest answers for the pod's IP and uses
the guest MAC: `mac`, else one derived from the VM's identity, else the pod interface's own.
KubeVirt keeps the pod's identity on a dummy link called eth0; this kernel has no dummy
driver, so netplug uses an ifb link, which like dummy holds a name, a MAC and addresses and
never answers ARP — CHECK and the CNI result (the pod interface's entry, with the guest's
MAC) keep describing the pod's address. `net.ipv4.conf.all.arp_ignore=1` keeps the pod netns
from answering ARP for that address on the bridge.

If the pod interface had an IPv4 address, dnsmasq on the bridge hands it to the guest's MAC
only, with the pod's gateway, its routes as classless routes (default last), DNS, search
domains, MTU and the interface's dhcpOptions. If it had an IPv6 address (prefix /64 to /126),
dnsmasq hands that to the guest's MAC over DHCPv6 and sends router advertisements: the pod's
prefix on-link (no SLAAC: the address is the pod's) and, when the pod has IPv6 routes via a
gateway, the bridge as the guest's default router. A stock guest needs that RA for its
default route, and the pod networks CNIs build send none; an RA can only name its sender,
so the pod forwards the guest's off-link IPv6 along the pod's own routes, moved onto the
bridge. A bridge-family table keeps those RAs and DHCPv6 answers off the pod's uplink, where
other pods would take this pod for their router. Without an address the binding is pure L2
and no DHCP runs. With `spoofCheck` (the default) a bridge-family nftables table drops frames
from the tap with another MAC, another IPv4 address, or (on a network with addresses) an
IPv6 source or neighbour-advertisement target other than the guest's own addresses and the
link-local address its MAC gives it; router advertisements from the guest are dropped too.

DEL gives the pod interface back as the primary CNI made it: name, MAC, MTU, addresses,
routes.

Libvirt side: `<interface type='ethernet'>` with `<target dev='tap0' managed='no'/>` and the
guest MAC.

May import: netplug.bindings.base, netplug.model, netplug.naming.
"""

from __future__ import annotations

import ipaddress

from netplug import naming
from netplug.bindings.base import (
    IPV6_FORWARDING,
    AttachmentPlan,
    BindingContext,
    WiredInterface,
    derived_mac,
    dhcp_extras,
    eui64_link_local,
    guest_mac,
    guest_tap,
    split_by_family,
    stable_mac,
    tap_domain_interface,
)
from netplug.model import vm
from netplug.model.cni import Interface, Result
from netplug.model.domain import DomainInterface
from netplug.model.netconf import BridgeConf
from netplug.model.netspec import (
    DhcpPlan,
    LinkSpec,
    NetSpec,
    RouteSpec,
    ServiceFencePlan,
    SpoofGuardPlan,
    SysctlSpec,
)

#: KubeVirt's DHCP server address on an in-pod bridge (link-local, never routed)
DHCP_SERVER_ADDRESS = "169.254.75.10/32"
ARP_IGNORE = "net/ipv4/conf/all/arp_ignore"


def _classless_routes(routes: list, v4: ipaddress.IPv4Interface) -> tuple[str | None, list[tuple[str, str]]]:
    """(default gateway, RFC 3442 routes with the default route last) from the pod's routes."""
    default, others = None, []
    for route in routes:
        if not route.gateway or ipaddress.ip_network(route.dst).version != 4:
            continue
        if route.dst == "0.0.0.0/0":
            default = route.gateway
        elif ipaddress.ip_network(route.dst) != v4.network:
            others.append((route.dst, route.gateway))
    if default is not None:
        others.append(("0.0.0.0/0", default))
    return default, others


def _served_ipv6(v6: list[ipaddress.IPv6Interface]) -> ipaddress.IPv6Interface | None:
    """The pod address DHCPv6 hands to the guest, with an on-link prefix RA can announce: a
    prefix of /64 to /126 (dnsmasq serves nothing shorter than /64; a /127 or /128 pod
    address has no prefix of its own to announce)."""
    return next((a for a in v6 if 64 <= a.network.prefixlen <= 126), None)


def plan_bridge(conf: BridgeConf, ctx: BindingContext) -> AttachmentPlan:
    pod = ctx.pod_interface
    assert pod is not None, "the handler observes the pod interface for tap bindings"
    v4, v6 = split_by_family(pod.addresses)
    mtu = conf.mtu or pod.mtu
    bridge = naming.bridge_name(pod.name)
    tap = naming.tap_name(pod.name)
    nic = naming.nic_name(pod.name)
    tag = naming.attachment_tag(ctx.container_id, ctx.ifname)
    vm_mac = guest_mac(conf) or pod.mac
    bridge_mac = derived_mac(0x02, tag, bridge)
    served6 = _served_ipv6(v6)
    routes6 = [r for r in pod.routes if r.gateway and ipaddress.ip_network(r.dst).version == 6]

    bridge_link = LinkSpec(name=bridge, kind="bridge", mac=bridge_mac, mtu=mtu,
                           addresses=[DHCP_SERVER_ADDRESS] if v4 else [])
    sysctls = []
    if v4:
        sysctls.append(SysctlSpec(key=ARP_IGNORE, value="1", restore=ctx.sysctls.get(ARP_IGNORE)))
    if served6:
        # dnsmasq serves DHCPv6 and announces a prefix only for an address on its interface:
        # the bridge holds the subnet-router anycast address of the pod's prefix (RFC 4291
        # 2.6.1), which no IPAM gives a pod, without DAD so that it is usable at once.
        bridge_link.addresses.append(f"{served6.network.network_address}/{served6.network.prefixlen}")
        bridge_link.sysctls[f"net/ipv6/conf/{bridge}/accept_dad"] = "0"
        # RAs can only name their sender as the router: the pod forwards the guest's
        # off-link IPv6 traffic along the pod's own IPv6 routes, moved onto the bridge.
        bridge_link.routes = [RouteSpec(dst=r.dst, gateway=r.gateway, metric=r.metric) for r in routes6]
        if routes6:
            sysctls.append(SysctlSpec(key=IPV6_FORWARDING, value="1", restore=ctx.sysctls.get(IPV6_FORWARDING)))
    links = [
        bridge_link,
        LinkSpec(name=nic, kind="existing", takeover=pod, mac=bridge_mac, mtu=mtu, master=bridge,
                 learning=False),
        guest_tap(conf, tap, bridge, tag, mtu),
        LinkSpec(name=pod.name, kind="ifb", mac=vm_mac, mtu=mtu, addresses=list(pod.addresses)),
    ]
    dhcp = None
    if v4 or served6:
        dhcp = DhcpPlan(interface=bridge, mtu=mtu, vm_mac=vm_mac, **dhcp_extras(conf, ctx))
    if v4:
        router, routes = _classless_routes(pod.routes, v4[0])
        dhcp = dhcp.model_copy(update={
            "vm_address": str(v4[0].ip), "prefixlen": v4[0].network.prefixlen, "router": router,
            "shared_network": str(v4[0].network.network_address), "classless_routes": routes})
    if served6:
        dhcp = dhcp.model_copy(update={"vm_address6": str(served6.ip), "prefixlen6": served6.network.prefixlen,
                                       "ra_default_route": bool(routes6)})
    guard = None
    if conf.spoofCheck:
        # with addresses on the network, IPv6 only from the guest's own: its /128s and the
        # link-local address its MAC gives it (as OpenStack's port security allows)
        ipv6 = [str(a.ip) for a in v6] + ([eui64_link_local(vm_mac)] if pod.addresses else [])
        guard = SpoofGuardPlan(table=naming.nft_table_name(pod.name) + "_guard", port=tap, vm_mac=vm_mac,
                               ipv4=[str(a.ip) for a in v4], ipv6=ipv6, tag=tag)
    fence = ServiceFencePlan(table=naming.nft_table_name(pod.name) + "_fence", uplink=nic, tag=tag) if served6 else None
    netspec = NetSpec(netns=ctx.netns, links=links, sysctls=sysctls, spoof_guard=guard, service_fence=fence,
                      dhcp=dhcp)

    result = ctx.prev_result.model_copy(deep=True) if ctx.prev_result else Result()
    index = result.sandbox_interface(pod.name)
    if index is not None:
        result.interfaces[index].mac = vm_mac  # the pod's identity, as the guest now uses it
    else:
        result.interfaces.append(Interface(name=pod.name, mac=vm_mac, mtu=mtu, sandbox=ctx.netns))
    for name, mac in ((bridge, bridge_mac), (nic, bridge_mac), (tap, links[2].mac)):
        result.interfaces.append(Interface(name=name, mac=mac, mtu=mtu, sandbox=ctx.netns))
    return AttachmentPlan(netspec=netspec, result=result)


def domain_bridge(vmi: vm.VirtualMachineInstance, iface: vm.Interface, wired: WiredInterface,
                  queues: int | None) -> DomainInterface:
    """The guest NIC on the binding's tap. MAC: the spec's, else the one the CNI gave the
    pod's identity link (so DHCP, spoof guard and guest agree), else stable for the VM."""
    mac = iface.macAddress or wired.identity_mac or stable_mac(vmi.metadata.namespace, vmi.metadata.name, iface.name)
    return tap_domain_interface(iface, wired, mac.lower(), queues)
