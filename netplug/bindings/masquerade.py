"""Masquerade binding: the VM sits behind NAT on the pod network (KubeVirt `masquerade: {}`).

Inside the pod netns, chained after the plugin that made eth0:

    guest NIC (10.0.2.2) ── tap0 ── k6t-eth0 (10.0.2.1/24, 02:00:00:00:00:00) ─NAT─ eth0 (pod IP)

eth0 is left as the primary CNI made it. nftables (table `netplug_eth0`, in the `ip` and,
for an IPv6 pod, the `ip6` family with fd10:0:2::1/120 on the bridge) masquerades the VM's
traffic out of the pod and DNATs inbound traffic on eth0 to the VM, all ports or only
the listed `ports`; loopback traffic to those ports reaches the VM too. dnsmasq on k6t-eth0
answers the guest's DHCP: its address, the gateway, DNS and search domains from the pod's
resolv.conf, MTU, hostname and a classless default route; for IPv6, DHCPv6 for the address and
router advertisements for the default route (KubeVirt sends none). Dual-stack, IPv4-only and
IPv6-only pods each get what their addresses allow. With an `ipam` section the VM's
address and gateway come from the IPAM plugin instead of `vmNetworkCIDR`.

Libvirt side: `<interface type='ethernet'>` with `<target dev='tap0' managed='no'/>`.

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
    dhcp_extras,
    guest_tap,
    split_by_family,
    stable_mac,
    tap_domain_interface,
)
from netplug.errors import InvalidConfig
from netplug.model import vm
from netplug.model.cni import Interface, IPConfig, Result
from netplug.model.domain import DomainInterface
from netplug.model.netconf import MasqueradeConf
from netplug.model.netspec import DhcpPlan, LinkSpec, NatPlan, NetSpec, SysctlSpec

#: KubeVirt's MAC for the in-pod bridge; the VM can never use it
BRIDGE_MAC = "02:00:00:00:00:00"
IP_FORWARD = "net/ipv4/ip_forward"


def _vm_network(conf: MasqueradeConf, ctx: BindingContext) -> tuple[ipaddress.IPv4Interface, ipaddress.IPv4Address]:
    """(VM address with prefix, gateway) from IPAM when configured, else vmNetworkCIDR."""
    if ctx.ipam_result is not None:
        for ip in ctx.ipam_result.ips:
            vm = ipaddress.ip_interface(ip.address)
            if vm.version == 4:
                gateway = ipaddress.IPv4Address(ip.gateway) if ip.gateway else next(vm.network.hosts())
                if gateway == vm.ip:
                    raise InvalidConfig(f"ipam: the VM address {vm} equals its gateway")
                return vm, gateway
        raise InvalidConfig("ipam: the IPAM plugin returned no IPv4 address for the VM")
    net = ipaddress.IPv4Network(conf.vmNetworkCIDR)
    return ipaddress.IPv4Interface(f"{net[2]}/{net.prefixlen}"), net[1]


def _check_overlap(field: str, vm: ipaddress.IPv4Interface | ipaddress.IPv6Interface, pod_name: str,
                   pod_addresses: list) -> None:
    for addr in pod_addresses:
        if addr.network.overlaps(vm.network):
            raise InvalidConfig(
                f"{field}: VM network {vm.network} overlaps pod network {addr.network} "
                f"on {pod_name}; choose another {field}"
            )


def plan_masquerade(conf: MasqueradeConf, ctx: BindingContext) -> AttachmentPlan:
    pod = ctx.pod_interface
    assert pod is not None, "the handler observes the pod interface for tap bindings"
    pod_v4, pod_v6 = split_by_family(pod.addresses)
    if not pod_v4 and not pod_v6:
        raise InvalidConfig(f"masquerade: pod interface {pod.name} has no global address to masquerade behind")

    mtu = conf.mtu or pod.mtu
    bridge = naming.bridge_name(pod.name)
    tap = naming.tap_name(pod.name)
    table = naming.nft_table_name(pod.name)
    tag = naming.attachment_tag(ctx.container_id, ctx.ifname)
    bridge_link = LinkSpec(name=bridge, kind="bridge", mac=BRIDGE_MAC, mtu=mtu,
                           # loopback traffic to forwarded ports is DNATed out of the bridge
                           sysctls={f"net/ipv4/conf/{bridge}/route_localnet": "1"})
    sysctls: list[SysctlSpec] = []
    nat: list[NatPlan] = []
    dhcp = DhcpPlan(interface=bridge, mtu=mtu, **dhcp_extras(conf, ctx))
    vm4 = None

    if pod_v4:
        vm4, gateway = _vm_network(conf, ctx)
        _check_overlap("vmNetworkCIDR", vm4, pod.name, pod_v4)
        bridge_link.addresses.append(f"{gateway}/{vm4.network.prefixlen}")
        sysctls.append(SysctlSpec(key=IP_FORWARD, value="1", restore=ctx.sysctls.get(IP_FORWARD)))
        nat.append(NatPlan(family="ip", table=table, pod_interface=pod.name, bridge=bridge,
                           vm_address=str(vm4.ip), gateway=str(gateway), ports=conf.ports, tag=tag))
        dhcp = dhcp.model_copy(update={
            "vm_address": str(vm4.ip), "prefixlen": vm4.network.prefixlen, "router": str(gateway),
            "classless_routes": [("0.0.0.0/0", str(gateway))], "vm_mac": conf.mac,
        })
    if pod_v6:
        net6 = ipaddress.IPv6Network(conf.vmIPv6NetworkCIDR)
        vm6 = ipaddress.IPv6Interface(f"{net6[2]}/{net6.prefixlen}")
        _check_overlap("vmIPv6NetworkCIDR", vm6, pod.name, pod_v6)
        # no DAD on the bridge: dnsmasq must bind the gateway address at once, not in ~2 s
        bridge_link.sysctls[f"net/ipv6/conf/{bridge}/accept_dad"] = "0"
        bridge_link.addresses.append(f"{net6[1]}/{net6.prefixlen}")
        sysctls.append(SysctlSpec(key=IPV6_FORWARDING, value="1", restore=ctx.sysctls.get(IPV6_FORWARDING)))
        nat.append(NatPlan(family="ip6", table=table, pod_interface=pod.name, bridge=bridge,
                           vm_address=str(vm6.ip), gateway=str(net6[1]), loopback="::1",
                           ports=conf.ports, tag=tag))
        dhcp = dhcp.model_copy(update={"vm_address6": str(vm6.ip), "prefixlen6": net6.prefixlen,
                                       "vm_mac": conf.mac})

    netspec = NetSpec(
        netns=ctx.netns,
        links=[
            bridge_link,
            guest_tap(conf, tap, bridge, tag, mtu),
        ],
        sysctls=sysctls,
        nat=nat,
        dhcp=dhcp,
    )

    result = ctx.prev_result.model_copy(deep=True) if ctx.prev_result else Result()
    for spec in netspec.links:
        result.interfaces.append(Interface(name=spec.name, mac=spec.mac, mtu=mtu, sandbox=ctx.netns))
    if ctx.ipam_result is not None and vm4 is not None:
        # The VM's own address lives behind the tap: report it against that interface.
        result.ips.append(IPConfig(address=str(vm4), gateway=dhcp.router,
                                   interface=len(result.interfaces) - 1))
    return AttachmentPlan(netspec=netspec, result=result)


def domain_masquerade(vmi: vm.VirtualMachineInstance, iface: vm.Interface, wired: WiredInterface,
                      queues: int | None) -> DomainInterface:
    """The guest NIC on tap0. MAC: the spec's, else stable for the VM (KubeVirt would take
    eth0's, which changes with every new pod)."""
    mac = iface.macAddress or stable_mac(vmi.metadata.namespace, vmi.metadata.name, iface.name)
    return tap_domain_interface(iface, wired, mac.lower(), queues)
