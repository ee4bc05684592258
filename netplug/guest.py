"""The whole guest a VM gets: from its VMI spec and what its pod was wired with, a `Domain`.

Pure: the launcher observes the pod (`WiredInterface` per VM interface) and the boot source,
and this module decides the rest — CPU, memory, disks or direct kernel boot, the serial log,
and, through each binding's `domain_<binding>` policy, one device per VM interface.

May import: pydantic, netplug.model, netplug.bindings, netplug.errors.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

from pydantic import ValidationError

from netplug import naming
from netplug.bindings import DOMAIN_DEVICES
from netplug.bindings.base import WiredInterface
from netplug.errors import InvalidConfig
from netplug.model import invalid_field
from netplug.model.domain import Domain, DomainDisk, DomainHostdev
from netplug.model.multus import NetworkStatus
from netplug.model.vm import Interface, Network, VirtualMachineInstance

#: the most queues a Linux tap takes (MAX_TAP_QUEUES)
MAX_QUEUES = 256


@dataclass
class BootSource:
    """What the guest boots: a kernel (+ initrd, command line), or disks by volume name."""

    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    #: volume name -> image path (containerDisk images cannot be pulled here)
    disks: dict[str, str] = field(default_factory=dict)
    #: volume name -> image format (qcow2, raw) where it is not raw
    formats: dict[str, str] = field(default_factory=dict)


def domain_name(vmi: VirtualMachineInstance) -> str:
    """KubeVirt names the libvirt domain <namespace>_<name>."""
    return f"{vmi.metadata.namespace}_{vmi.metadata.name}"


def plan_domain(vmi: VirtualMachineInstance, wired: dict[str, WiredInterface], boot: BootSource, *,
                accelerated: bool, serial_log: str, emulator: str | None = None) -> Domain:
    """The domain; a value the domain model refuses (admission lets none through) is an
    InvalidConfig naming the domain field and the value, not a pydantic traceback."""
    try:
        return _plan_domain(vmi, wired, boot, accelerated=accelerated, serial_log=serial_log, emulator=emulator)
    except ValidationError as exc:
        raise invalid_field(exc, f"domain {domain_name(vmi)}") from None


def _plan_domain(vmi: VirtualMachineInstance, wired: dict[str, WiredInterface], boot: BootSource, *,
                 accelerated: bool, serial_log: str, emulator: str | None) -> Domain:
    devices = vmi.spec.domain.devices
    vcpus = vmi.vcpus
    domain = Domain(name=domain_name(vmi), uuid=vmi.metadata.uid, type="kvm" if accelerated else "qemu",
                    memory_mib=vmi.memory_mib, vcpus=vcpus, kernel=boot.kernel, initrd=boot.initrd,
                    cmdline=boot.cmdline, serial_log=serial_log, emulator=emulator)
    for n, disk in enumerate(devices.disks):
        name = disk.get("name", "")
        if name in boot.disks:
            domain.disks.append(DomainDisk(path=boot.disks[name], target=f"vd{chr(ord('a') + n)}",
                                           format=boot.formats.get(name, "raw"), boot_order=disk.get("bootOrder")))
    for iface in devices.interfaces:
        if iface.state == "absent":
            continue
        binding = iface.binding
        if binding is None:
            raise InvalidConfig(f"spec.domain.devices.interfaces[{iface.name}]: needs exactly one of "
                                "masquerade, bridge, sriov")
        if iface.name not in wired:
            raise InvalidConfig(f"interface {iface.name}: its pod side was not found wired")
        queues = interface_queues(vmi, iface)
        if queues is not None:  # never more than the tap the pod has can take
            queues = min(queues, wired[iface.name].tap_queues)
        device = DOMAIN_DEVICES[binding](vmi, iface, wired[iface.name], queues)
        if isinstance(device, DomainHostdev):
            domain.hostdevs.append(device)
        else:
            domain.interfaces.append(device)
    return domain


def interface_queues(vmi: VirtualMachineInstance, iface: Interface) -> int | None:
    """Queues of a tap-bound interface, as KubeVirt gives them: with
    `networkInterfaceMultiqueue`, one per vCPU for a virtio NIC (None: single queue). The
    pod's binding config asks the CNI for a tap that many queues can open (`queues`)."""
    if not vmi.spec.domain.devices.networkInterfaceMultiqueue or (iface.model or "virtio") != "virtio":
        return None
    if iface.binding not in ("masquerade", "bridge") or vmi.vcpus < 2:
        return None
    return min(vmi.vcpus, MAX_QUEUES)


def pod_interface_of(network: Network) -> str:
    """The pod interface KubeVirt (and Multus, told by the controller) gives a network."""
    if network.pod is not None or (network.multus is not None and network.multus.default):
        return "eth0"
    return naming.pod_interface_for_network(network.name)


def resource_env_name(resource: str) -> str:
    """The device plugin's variable for a resource: intel.com/sriov_net -> PCIDEVICE_INTEL_COM_SRIOV_NET."""
    return "PCIDEVICE_" + re.sub(r"[./]", "_", resource).upper()


def sriov_pci_addresses(vmi: VirtualMachineInstance, statuses: list[NetworkStatus],
                        environ: dict[str, str]) -> dict[str, str]:
    """The VF of each SR-IOV interface: from network-status device-info (what KubeVirt reads
    today), else from the device plugin's PCIDEVICE_<RESOURCE> list, the resource named by
    KUBEVIRT_RESOURCE_NAME_<network> (KubeVirt's older way), each address used once."""
    by_interface = {s.interface: s for s in statuses if s.interface}
    found: dict[str, str] = {}
    used: set[str] = set()
    for iface in vmi.spec.domain.devices.interfaces:
        network = vmi.network(iface.name)
        if iface.binding != "sriov" or network is None:
            continue
        status = by_interface.get(pod_interface_of(network))
        pci = (status.device_info.pci or {}).get("pci-address") if status and status.device_info else None
        if pci is None:
            resource = environ.get(f"KUBEVIRT_RESOURCE_NAME_{network.name}")
            pool = environ.get(resource_env_name(resource), "") if resource else ""
            pci = next((a for a in pool.split(",") if a and a not in used), None)
        if pci is None:
            raise InvalidConfig(f"interface {iface.name}: no VF for network {network.name} in network-status "
                                "device-info or the device plugin's PCIDEVICE_* environment")
        used.add(pci)
        found[iface.name] = pci
    return found


def nocloud_files(vmi: VirtualMachineInstance, volume: dict) -> dict[str, bytes]:
    """The files of a cloud-init NoCloud seed for a `cloudInitNoCloud` volume: user-data,
    meta-data (instance id and host name) and, when given, network-config."""
    source = volume.get("cloudInitNoCloud") or {}
    files = {"meta-data": (f"instance-id: {vmi.metadata.uid or vmi.metadata.namespace + '-' + vmi.metadata.name}\n"
                           f"local-hostname: {vmi.metadata.name}\n").encode()}
    for key, name in (("userData", "user-data"), ("networkData", "network-config")):
        if source.get(key) is not None:
            files[name] = str(source[key]).encode()
        elif source.get(key + "Base64") is not None:
            try:
                files[name] = base64.b64decode(source[key + "Base64"], validate=True)
            except (binascii.Error, ValueError):
                raise InvalidConfig(f"volumes[{volume.get('name')}].cloudInitNoCloud.{key}Base64: not base64") from None
    files.setdefault("user-data", b"")
    return files
