"""KubeVirt's admission rules for a VM's interfaces and networks, plus netplug's own.

`review(vmi)` returns every `Denial` (field path, value, message) for a VirtualMachine(Instance)
spec: the rules of KubeVirt's network admitter (notes/kubevirt-network.md §1.4) — one network
source each, unique names matched one to one between interfaces and networks, at most one pod
network, masquerade only on it, ports, MAC and PCI address formats, interface state rules,
boot order — and netplug's: the binding is one netplug has, (given a lookup) the
NetworkAttachmentDefinition exists, and everything the guest netplug plans would refuse later
(`netplug.model.domain`, `netplug.guest`): the VM's name and namespace (they name its libvirt
domain and its standalone state), acpiIndex, the PCI slot, memory, vCPUs, disk boot order,
cloud-init base64. Field paths are KubeVirt's, from the document's root
(`spec.template.spec...` for a VM, `spec...` for a VMI). The webhook and `netplug up` use it.

May import: netplug.model, netplug.guest, netplug.errors.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from netplug.errors import InvalidConfig, field_message
from netplug.guest import nocloud_files
from netplug.model.domain import MAX_ACPI_INDEX, MAX_VCPUS, MIN_MEMORY_MIB, PciAddress
from netplug.model.netconf import BINDING_MODELS, validate_unicast_mac
from netplug.model.vm import BINDING_METHODS, VirtualMachineInstance, parse_memory_mib

#: KubeVirt's NIC models (scripts/gen-crds puts the same list into the CRD schema)
NIC_MODELS = ("e1000", "e1000e", "igb", "ne2k_pci", "pcnet", "rtl8139", "virtio")
#: KubeVirt's interface name rule (also the CRD schema's pattern)
INTERFACE_NAME = r"^[A-Za-z0-9_-]+$"
_IFACE_NAME = re.compile(INTERFACE_NAME)
_IANA_SVC = re.compile(r"^(?=.{1,15}$)(?=.*[a-z])[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DISCONTINUED = ("slirp", "macvtap", "passt")
#: Kubernetes names a namespace with a DNS-1123 label; a VM's name is a DNS-1123 subdomain,
#: which KubeVirt also writes into label values (vm.kubevirt.io/name), so at most 63 characters
NAME_MAX = 63


def name_problem(value: object, *, label: bool) -> str | None:
    """Why `value` is no Kubernetes name: a DNS-1123 label (`label`, a namespace) or a
    DNS-1123 subdomain of at most 63 characters (a VM); None when it is one. Such a name
    holds no "/", "_" or "..": netplug uses it in paths and in `<namespace>_<name>`."""
    rule = ("a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit"
            if label else
            "a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', each part between dots starting "
            "and ending with a letter or digit")
    if not isinstance(value, str) or not value:
        return f"is required, {rule}"
    if len(value) > NAME_MAX:
        return f"must be at most {NAME_MAX} characters (has {len(value)})"
    if not all(_DNS_LABEL.fullmatch(part) for part in ([value] if label else value.split("."))):
        return f"must be {rule}"
    return None


@dataclass
class Denial:
    field: str
    value: object
    message: str

    def __str__(self) -> str:
        return field_message(self.field, self.value, self.message)


def review(vmi: VirtualMachineInstance, nad_exists: Callable[[str, str], bool] | None = None) -> list[Denial]:
    """Every rule the VM breaks; empty when it is admitted."""
    denials: list[Denial] = []
    base = vmi.spec_path
    deny = lambda field, value, message: denials.append(Denial(f"{base}.{field}", value, message))  # noqa: E731
    interfaces = vmi.spec.domain.devices.interfaces
    networks = vmi.spec.networks

    # metadata
    for key, label in (("name", False), ("namespace", True)):
        value = getattr(vmi.metadata, key)
        if (problem := name_problem(value, label=label)) is not None:
            denials.append(Denial(f"metadata.{key}", value, problem))

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

    _domain(vmi, deny)

    # interfaces
    names: set[str] = set()
    boot_orders: dict[int, str] = {}
    acpi_indexes: dict[int, str] = {}
    pci_addresses: dict[str, str] = {}
    for n, disk in enumerate(vmi.spec.domain.devices.disks):
        order = disk.get("bootOrder")
        if order is None:
            continue
        if not isinstance(order, int) or isinstance(order, bool) or order < 1:
            deny(f"domain.devices.disks[{n}].bootOrder", order, "must be an integer greater than 0")
        elif order in boot_orders:
            deny(f"domain.devices.disks[{n}].bootOrder", order, f"is already used by {boot_orders[order]}")
        else:
            boot_orders[order] = f"disk {disk.get('name')}"
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
        if iface.model is not None and iface.model not in NIC_MODELS:
            deny(f"{where}.model", iface.model, f"must be one of {list(NIC_MODELS)}")
        if iface.macAddress is not None:
            try:
                validate_unicast_mac(iface.macAddress)
            except ValueError as exc:
                deny(f"{where}.macAddress", iface.macAddress, str(exc))
            if binding == "masquerade" and iface.macAddress.lower() == "02:00:00:00:00:00":
                deny(f"{where}.macAddress", iface.macAddress, "is reserved for the in-pod bridge")
        if iface.pciAddress is not None:
            try:
                address = str(PciAddress.parse(iface.pciAddress))
            except ValueError as exc:
                deny(f"{where}.pciAddress", iface.pciAddress, str(exc).partition(": ")[2] or str(exc))
            else:
                if address in pci_addresses:
                    deny(f"{where}.pciAddress", iface.pciAddress, f"is already used by {pci_addresses[address]}")
                pci_addresses[address] = f"interface {iface.name}"
        if iface.acpiIndex is not None:
            if not 1 <= iface.acpiIndex <= MAX_ACPI_INDEX:
                deny(f"{where}.acpiIndex", iface.acpiIndex, f"must be between 1 and {MAX_ACPI_INDEX}")
            elif iface.acpiIndex in acpi_indexes:
                deny(f"{where}.acpiIndex", iface.acpiIndex, f"is already used by {acpi_indexes[iface.acpiIndex]}")
            else:
                acpi_indexes[iface.acpiIndex] = f"interface {iface.name}"
        _ports(iface, f"{where}.ports", deny)
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


def _domain(vmi: VirtualMachineInstance, deny) -> None:
    """What the guest netplug plans would refuse: memory, vCPUs, cloud-init seeds."""
    where, quantity = vmi.memory_request()
    try:
        mib = parse_memory_mib(str(quantity))
    except InvalidConfig:
        deny(where, quantity, "is not a Kubernetes quantity (e.g. 128Mi, 1Gi)")
    else:
        if mib < MIN_MEMORY_MIB:
            deny(where, quantity, f"the guest needs at least {MIN_MEMORY_MIB}Mi")
    cpu = vmi.spec.domain.cpu
    if cpu is not None:
        for key in ("cores", "sockets", "threads"):
            if getattr(cpu, key) < 1:
                deny(f"domain.cpu.{key}", getattr(cpu, key), "must be at least 1")
        if cpu.cores * cpu.sockets * cpu.threads > MAX_VCPUS:
            deny("domain.cpu", {"cores": cpu.cores, "sockets": cpu.sockets, "threads": cpu.threads},
                 f"gives more than {MAX_VCPUS} vCPUs")
    for n, volume in enumerate(vmi.spec.volumes):
        if "cloudInitNoCloud" not in volume:
            continue
        source = volume["cloudInitNoCloud"]
        if not isinstance(source, dict):
            deny(f"volumes[{n}].cloudInitNoCloud", source, "must be an object")
            continue
        try:
            nocloud_files(vmi, volume)
        except InvalidConfig:
            key = next(k for k in ("userDataBase64", "networkDataBase64")
                       if source.get(k) is not None and source.get(k.removesuffix("Base64")) is None)
            deny(f"volumes[{n}].cloudInitNoCloud.{key}", source[key], "is not base64")
