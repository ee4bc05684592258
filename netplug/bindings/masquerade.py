"""Masquerade binding: the VM sits behind NAT on the pod network (KubeVirt `masquerade: {}`).

Inside the pod netns, chained after the plugin that made eth0:

    guest NIC (10.0.2.2) ── tap0 ── k6t-eth0 (10.0.2.1/24, 02:00:00:00:00:00) ─NAT─ eth0 (pod IP)

eth0 is left as the primary CNI made it. nftables (table `netplug_eth0`) masquerades the
VM's traffic out of the pod and DNATs inbound traffic on eth0 to the VM, all ports or only
the listed `ports`; loopback traffic to those ports reaches the VM too. dnsmasq on k6t-eth0
answers the guest's DHCP: its address, the gateway, DNS and search domains from the pod's
resolv.conf, MTU, hostname and a classless default route. With an `ipam` section the VM's
address and gateway come from the IPAM plugin instead of `vmNetworkCIDR`.

Libvirt side: `<interface type='ethernet'>` with `<target dev='tap0' managed='no'/>`.

May import: netplug.bindings.base, netplug.model, netplug.naming.
"""

from __future__ import annotations

import ipaddress

from netplug import naming
from netplug.bindings.base import AttachmentPlan, BindingContext, derived_mac, parse_resolv_conf
from netplug.errors import InvalidConfig
from netplug.model.cni import Interface, IPConfig, Result
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


def plan_masquerade(conf: MasqueradeConf, ctx: BindingContext) -> AttachmentPlan:
    pod = ctx.pod_interface
    pod_v4 = [ipaddress.ip_interface(a) for a in pod.addresses if ipaddress.ip_interface(a).version == 4]
    if not pod_v4:
        raise InvalidConfig(f"masquerade: pod interface {pod.name} has no IPv4 address to masquerade behind")
    vm, gateway = _vm_network(conf, ctx)
    for addr in pod_v4:
        if addr.network.overlaps(vm.network):
            raise InvalidConfig(
                f"vmNetworkCIDR: VM network {vm.network} overlaps pod network {addr.network} "
                f"on {pod.name}; choose another vmNetworkCIDR"
            )

    mtu = conf.mtu or pod.mtu
    bridge = naming.bridge_name(pod.name)
    tap = naming.tap_name(pod.name)
    tag = naming.attachment_tag(ctx.container_id, ctx.ifname)
    resolv = parse_resolv_conf(ctx.resolv_conf)
    dns_v4 = [s for s in resolv.nameservers if ipaddress.ip_address(s).version == 4]
    hostname = conf.hostname or ctx.args.get("K8S_POD_NAME") or None

    netspec = NetSpec(
        netns=ctx.netns,
        links=[
            LinkSpec(name=bridge, kind="bridge", mac=BRIDGE_MAC, mtu=mtu,
                     addresses=[f"{gateway}/{vm.network.prefixlen}"]),
            LinkSpec(name=tap, kind="tap", mac=derived_mac(0xFE, tag, tap), mtu=mtu, master=bridge,
                     owner_uid=conf.tapUid, owner_gid=conf.tapGid, multi_queue=conf.queues > 1),
        ],
        sysctls=[
            SysctlSpec(key=IP_FORWARD, value="1", restore=ctx.sysctls.get(IP_FORWARD)),
            # lets loopback traffic to forwarded ports be DNATed out of the bridge
            SysctlSpec(key=f"net/ipv4/conf/{bridge}/route_localnet", value="1"),
        ],
        nat=[NatPlan(family="ip", table=naming.nft_table_name(pod.name), pod_interface=pod.name,
                     bridge=bridge, vm_address=str(vm.ip), gateway=str(gateway),
                     ports=conf.ports, tag=tag)],
        dhcp=DhcpPlan(
            interface=bridge, vm_address=str(vm.ip), prefixlen=vm.network.prefixlen,
            router=str(gateway), dns_servers=dns_v4, search_domains=resolv.search,
            domain_name=resolv.domain or max(resolv.search, key=len, default=None),
            mtu=mtu, hostname=hostname, classless_routes=[("0.0.0.0/0", str(gateway))],
            vm_mac=conf.mac,
        ),
    )

    result = ctx.prev_result.model_copy(deep=True) if ctx.prev_result else Result()
    for link in netspec.links:
        result.interfaces.append(Interface(name=link.name, mac=link.mac, mtu=mtu, sandbox=ctx.netns))
    if ctx.ipam_result is not None:
        # The VM's own address lives behind the tap: report it against that interface.
        result.ips.append(IPConfig(address=str(vm), gateway=str(gateway),
                                   interface=len(result.interfaces) - 1))
    return AttachmentPlan(netspec=netspec, result=result)
