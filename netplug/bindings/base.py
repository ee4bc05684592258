"""What every binding plans with: the context the handler observed, and the plan it returns.

A binding is one module with one plan function `plan_<name>(conf, ctx) -> AttachmentPlan`.
It decides; it never touches the kernel. The handler observes the pod (pod interface,
sysctls, resolv.conf text, an IPAM result), builds a `BindingContext`, and applies the
`AttachmentPlan.netspec` the binding returns; `AttachmentPlan.result` is the CNI result.

May import: netplug.model, netplug.naming, netplug.render, the standard library.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field

from netplug.model import vm
from netplug.model.cni import Result
from netplug.model.domain import DomainInterface, PciAddress
from netplug.model.netconf import DOMAIN_NAME, BindingBase, TapBindingBase
from netplug.model.netspec import LinkSpec, NetSpec, PodInterface, VfFacts

#: the pod netns forwards IPv6 for the guest (masquerade: NAT66; bridge: the guest's router)
IPV6_FORWARDING = "net/ipv6/conf/all/forwarding"


@dataclass
class BindingContext:
    container_id: str
    ifname: str
    netns: str
    #: the pod interface as the primary CNI or the delegate made it (tap bindings)
    pod_interface: PodInterface | None = None
    prev_result: Result | None = None
    #: result of the delegated IPAM plugin, when the config has `ipam`
    ipam_result: Result | None = None
    #: text of the pod's resolv.conf ("" when there is none)
    resolv_conf: str = ""
    #: CNI_ARGS (K8S_POD_NAME, K8S_POD_NAMESPACE, ...)
    args: dict[str, str] = field(default_factory=dict)
    #: current values of the sysctls a binding may change, so DEL can restore them
    sysctls: dict[str, str] = field(default_factory=dict)
    #: the SR-IOV VF named by the config (sriov binding)
    vf: VfFacts | None = None


@dataclass
class AttachmentPlan:
    netspec: NetSpec
    result: Result


@dataclass
class ResolvConf:
    nameservers: list[str]
    search: list[str]
    domain: str | None


def parse_resolv_conf(text: str) -> ResolvConf:
    """Nameservers and search domains a guest can use: loopback servers (a pod's local
    stub resolver) are unreachable from the VM and dropped; invalid domains are dropped."""
    servers: list[str] = []
    search: list[str] = []
    domain = None
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) < 2:
            continue
        if words[0] == "nameserver":
            try:
                addr = ipaddress.ip_address(words[1].split("%", 1)[0])
            except ValueError:
                continue
            if not addr.is_loopback and str(addr) not in servers:
                servers.append(str(addr))
        elif words[0] == "search":
            search = [d.rstrip(".") for d in words[1:] if DOMAIN_NAME.match(d)]
        elif words[0] == "domain" and DOMAIN_NAME.match(words[1]):
            domain = words[1].rstrip(".")
    return ResolvConf(servers, search, domain)


def _hashed(parts: tuple[str, ...]) -> bytes:
    return hashlib.sha256("/".join(parts).encode()).digest()


def _unicast_local(octets: bytes) -> str:
    """The MAC of six octets, made unicast and locally administered (the first octet's low bits)."""
    return ":".join(f"{o:02x}" for o in [octets[0] & 0xFC | 0x02, *octets[1:6]])


# The two differ only in where the first octet comes from; both stay as they are, because
# the MACs they gave are in users' guests (leases, interface configs) and in state records.

def derived_mac(prefix: int, *parts: str) -> str:
    """A locally administered unicast MAC, stable for the same inputs, whose first octet is
    `prefix`'s (netplug's own links: 02:… bridges, fe:… taps, as KubeVirt's taps)."""
    return _unicast_local(bytes([prefix]) + _hashed(parts)[:5])


def stable_mac(namespace: str | None, vm_name: str, interface: str) -> str:
    """A locally administered unicast MAC that a VM's interface keeps across restarts."""
    return _unicast_local(_hashed((namespace or "default", vm_name, interface)))


def guest_tap(conf: TapBindingBase, tap: str, bridge: str, tag: str, mtu: int) -> LinkSpec:
    """The tap the guest NIC opens, a port of the in-pod bridge: its MAC derived from the
    attachment (fe:..., as KubeVirt's taps), owned by tapUid/tapGid (the user QEMU runs as),
    multi-queue when the config asks for more than one queue."""
    return LinkSpec(name=tap, kind="tap", mac=derived_mac(0xFE, tag, tap), mtu=mtu, master=bridge,
                    owner_uid=conf.tapUid, owner_gid=conf.tapGid, multi_queue=conf.queues > 1)


def eui64_link_local(mac: str) -> str:
    """The IPv6 link-local address a stock guest forms from its MAC (modified EUI-64, RFC 4291)."""
    octets = [int(o, 16) for o in mac.split(":")]
    eui = bytes([octets[0] ^ 0x02, *octets[1:3], 0xFF, 0xFE, *octets[3:6]])
    return str(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + eui))


def guest_mac(conf: BindingBase) -> str | None:
    """The guest's MAC: the configured one, else one derived from the VM's namespace, name
    and interface (the same after every restart of the VM), else None (not known here)."""
    if conf.mac:
        return conf.mac
    if conf.vmName and conf.vmInterface:
        return stable_mac(conf.vmNamespace, conf.vmName, conf.vmInterface)
    return None


@dataclass
class WiredInterface:
    """What the launcher observed in the pod for one VM interface."""

    name: str
    binding: str
    #: the tap the guest NIC opens (tap bindings)
    tap: str | None = None
    #: how many queues the tap can take: the kernel's 256 when the CNI made it multi-queue,
    #: else 1 (libvirt's open of a single-queue tap with several queues fails with EINVAL)
    tap_queues: int = 1
    mtu: int | None = None
    #: MAC of the link holding the pod's identity (bridge binding: what the CNI chose)
    identity_mac: str | None = None
    #: host PCI address of the VF (SR-IOV)
    pci_address: str | None = None
    #: the pod's addresses on this network (what KubeVirt reports as the VMI's IPs)
    pod_addresses: list[str] = field(default_factory=list)


def tap_domain_interface(iface: vm.Interface, wired: WiredInterface, mac: str, queues: int | None) -> DomainInterface:
    """`<interface type='ethernet'>` on the binding's tap, as KubeVirt renders it on x86:
    virtio means virtio-non-transitional, alias `ua-<name>`, no option ROM unless the NIC
    boots. Multi-queue gives `<driver queues=N/>` without naming vhost: where the kernel
    has no vhost-net (like this project's CI), libvirt then falls back to QEMU's own."""
    model = iface.model or "virtio"
    return DomainInterface(
        type="ethernet", target_dev=wired.tap, target_managed=False,
        model="virtio-non-transitional" if model == "virtio" else model,
        mac=mac, mtu=wired.mtu, alias=f"ua-{iface.name}",
        boot_order=iface.bootOrder, rom_enabled=None if iface.bootOrder else False,
        pci_address=PciAddress.parse(iface.pciAddress) if iface.pciAddress else None,
        acpi_index=iface.acpiIndex, link_state="down" if iface.state == "down" else None,
        driver_queues=queues if queues and queues > 1 else None,
    )


def split_by_family(cidrs: list[str]) -> tuple[list[ipaddress.IPv4Interface], list[ipaddress.IPv6Interface]]:
    v4, v6 = [], []
    for cidr in cidrs:
        iface = ipaddress.ip_interface(cidr)
        (v4 if iface.version == 4 else v6).append(iface)
    return v4, v6


def dhcp_extras(conf: TapBindingBase, ctx: BindingContext) -> dict:
    """The DhcpPlan fields every tap binding fills the same way: DNS, hostname, dhcpOptions."""
    resolv = parse_resolv_conf(ctx.resolv_conf) if conf.dns is None else ResolvConf(
        [s for s in conf.dns.nameservers if not ipaddress.ip_address(s).is_loopback], conf.dns.search, conf.dns.domain)
    options = conf.dhcpOptions
    return {
        "dns_servers": [s for s in resolv.nameservers if ipaddress.ip_address(s).version == 4],
        "dns_servers6": [s for s in resolv.nameservers if ipaddress.ip_address(s).version == 6],
        "search_domains": resolv.search,
        "domain_name": resolv.domain or max(resolv.search, key=len, default=None),
        "hostname": conf.hostname or ctx.args.get("K8S_POD_NAME") or None,
        "ntp_servers": options.ntpServers if options else [],
        "tftp_server": options.tftpServerName if options else None,
        "boot_file": options.bootFileName if options else None,
        "private_options": [(o.option, o.value) for o in options.privateOptions] if options else [],
    }
