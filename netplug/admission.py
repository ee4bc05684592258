"""KubeVirt's admission rules for a VM's interfaces and networks, plus netplug's own.

`review(vmi)` returns every `Denial` (field path, value, message) for a VirtualMachine(Instance)
spec: the rules of KubeVirt's network admitter (notes/kubevirt-network.md §1.4) — one network
source each, unique names matched one to one between interfaces and networks, at most one pod
network, masquerade only on it, ports, MAC and PCI address formats, DHCP options, interface
state rules, boot order — and netplug's: the binding is one netplug has, and (given a lookup)
the NetworkAttachmentDefinition exists. The webhook and `netplug up` both use it.

May import: netplug.model, netplug.errors.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

from netplug.model.netconf import BINDING_MODELS, validate_unicast_mac
from netplug.model.vm import BINDING_METHODS, VirtualMachineInstance

MODELS = ("e1000", "e1000e", "igb", "ne2k_pci", "pcnet", "rtl8139", "virtio")
_IFACE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_PCI = re.compile(r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")
_IANA_SVC = re.compile(r"^(?=.{1,15}$)(?=.*[a-z])[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
DISCONTINUED = ("slirp", "macvtap", "passt")


@dataclass
class Denial:
    field: str
    value: object
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message} (value {self.value!r})"


def review(vmi: VirtualMachineInstance, base: str = "spec",
           nad_exists: Callable[[str, str], bool] | None = None) -> list[Denial]:
    """Every rule the spec breaks; empty when it is admitted. `base` is the path of the VMI spec
    ("spec.template.spec" for a VirtualMachine)."""
    denials: list[Denial] = []
    deny = lambda field, value, message: denials.append(Denial(f"{base}.{field}", value, message))  # noqa: E731
    interfaces = vmi.spec.domain.devices.interfaces
    networks = vmi.spec.networks

    # networks
    seen: set[str] = set()
    pod_networks = 0
    for n, net in enumerate(networks):
        where = f"networks[{n}]"
        sources = [s for s in ("pod", "multus") if getattr(net, s) is not None] + \
            [s for s in ("resourceClaim",) if s in (net.model_extra or {})]
        if len(sources) != 1:
            deny(where, net.name, "should have exactly one network type (pod or multus)")
        if net.name in seen:
            deny(f"{where}.name", net.name, "network names must be unique")
        seen.add(net.name)
        if net.multus is not None and not net.multus.networkName:
            deny(f"{where}.multus.networkName", net.multus.networkName, "must not be empty")
        if net.pod is not None or (net.multus is not None and net.multus.default):
            pod_networks += 1
        if net.multus is not None and net.multus.networkName and nad_exists is not None:
            namespace, _, name = net.multus.networkName.rpartition("/")
            if not nad_exists(namespace or vmi.metadata.namespace, name):
                deny(f"{where}.multus.networkName", net.multus.networkName,
                     "names no NetworkAttachmentDefinition")
        if not any(i.name == net.name for i in interfaces):
            deny(f"{where}.name", net.name, "has no interface of the same name")
    if pod_networks > 1:
        deny("networks", [n.name for n in networks], "at most one pod network or Multus default network")

    # interfaces
    names: set[str] = set()
    boot_orders: dict[int, str] = {}
    for disk in vmi.spec.domain.devices.disks:
        if isinstance(disk.get("bootOrder"), int):
            boot_orders[disk["bootOrder"]] = f"disk {disk.get('name')}"
    for n, iface in enumerate(interfaces):
        where = f"domain.devices.interfaces[{n}]"
        if not _IFACE_NAME.match(iface.name):
            deny(f"{where}.name", iface.name, "may only hold letters, digits, - and _")
        if iface.name in names:
            deny(f"{where}.name", iface.name, "only one interface can be connected to one specific network")
        names.add(iface.name)
        network = vmi.network(iface.name)
        if network is None:
            deny(f"{where}.name", iface.name, "no network of the same name in networks")
        for old in DISCONTINUED:
            if old in (iface.model_extra or {}):
                deny(f"{where}.{old}", {}, f"the {old} binding is discontinued")
        methods = [m for m in BINDING_METHODS if getattr(iface, m) is not None]
        plugin = (iface.model_extra or {}).get("binding")
        if len(methods) + (plugin is not None) != 1:
            deny(where, iface.name, "must have exactly one binding method or binding plugin")
        elif plugin is not None:
            deny(f"{where}.binding", plugin, f"netplug serves the bindings {sorted(BINDING_MODELS)}, not plugins")
        binding = methods[0] if len(methods) == 1 else None
        if binding == "masquerade" and network is not None and network.pod is None:
            deny(f"{where}.masquerade", {}, "masquerade is only allowed on the pod network")
        if binding == "sriov" and network is not None and network.multus is None:
            deny(f"{where}.sriov", {}, "SR-IOV needs a Multus network")
        if iface.model is not None and iface.model not in MODELS:
            deny(f"{where}.model", iface.model, f"must be one of {list(MODELS)}")
        if iface.macAddress is not None:
            try:
                validate_unicast_mac(iface.macAddress)
            except ValueError as exc:
                deny(f"{where}.macAddress", iface.macAddress, str(exc))
            if binding == "masquerade" and iface.macAddress.lower() == "02:00:00:00:00:00":
                deny(f"{where}.macAddress", iface.macAddress, "is reserved for the in-pod bridge")
        if iface.pciAddress is not None and not _PCI.match(iface.pciAddress):
            deny(f"{where}.pciAddress", iface.pciAddress, "must be a PCI address DDDD:BB:SS.F")
        _ports(iface, f"{where}.ports", deny)
        _dhcp(iface, f"{where}.dhcpOptions", deny)
        if iface.state not in (None, "", "up", "down", "absent"):
            deny(f"{where}.state", iface.state, 'must be "", up, down or absent')
        if binding == "sriov" and iface.state in ("up", "down"):
            deny(f"{where}.state", iface.state, "SR-IOV interfaces do not support link state")
        if iface.state == "absent":
            if binding != "bridge":
                deny(f"{where}.state", "absent", "only bridge interfaces can be absent (hot-unplugged)")
            if network is not None and (network.pod is not None or (network.multus and network.multus.default)):
                deny(f"{where}.state", "absent", "the default network's interface cannot be absent")
        if iface.bootOrder is not None:
            if iface.bootOrder < 1:
                deny(f"{where}.bootOrder", iface.bootOrder, "must be greater than 0")
            elif iface.bootOrder in boot_orders:
                deny(f"{where}.bootOrder", iface.bootOrder, f"is already used by {boot_orders[iface.bootOrder]}")
            else:
                boot_orders[iface.bootOrder] = f"interface {iface.name}"
    return denials


def _ports(iface, where: str, deny) -> None:
    names = set()
    for p, port in enumerate(iface.ports):
        if port.name is not None:
            if not _IANA_SVC.match(port.name):
                deny(f"{where}[{p}].name", port.name, "must be an IANA service name")
            if port.name in names:
                deny(f"{where}[{p}].name", port.name, "port names must be unique")
            names.add(port.name)


def _dhcp(iface, where: str, deny) -> None:
    options = iface.dhcpOptions
    if options is None:
        return
    for server in options.ntpServers:
        try:
            ipaddress.IPv4Address(server)
        except ValueError:
            deny(f"{where}.ntpServers", server, "must be an IPv4 address")
