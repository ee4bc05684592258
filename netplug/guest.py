"""The whole guest a VM gets: from its VMI spec and what its pod was wired with, a `Domain`.

Pure: the launcher observes the pod (`WiredInterface` per VM interface) and the boot source,
and this module decides the rest — CPU, memory, disks or direct kernel boot, the serial log,
and, through each binding's `domain_<binding>` policy, one device per VM interface.

May import: netplug.model, netplug.bindings, netplug.errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netplug.bindings import DOMAIN_DEVICES
from netplug.bindings.base import WiredInterface
from netplug.errors import InvalidConfig
from netplug.model.domain import Domain, DomainDisk, DomainHostdev
from netplug.model.vm import VirtualMachineInstance

MAX_QUEUES = 256


@dataclass
class BootSource:
    """What the guest boots: a kernel (+ initrd, command line), or disks by volume name."""

    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    #: volume name -> image path (containerDisk images cannot be pulled here)
    disks: dict[str, str] = field(default_factory=dict)


def domain_name(vmi: VirtualMachineInstance) -> str:
    """KubeVirt names the libvirt domain <namespace>_<name>."""
    return f"{vmi.metadata.namespace}_{vmi.metadata.name}"


def plan_domain(vmi: VirtualMachineInstance, wired: dict[str, WiredInterface], boot: BootSource, *,
                accelerated: bool, serial_log: str, emulator: str | None = None) -> Domain:
    devices = vmi.spec.domain.devices
    vcpus = vmi.vcpus
    domain = Domain(name=domain_name(vmi), uuid=vmi.metadata.uid, type="kvm" if accelerated else "qemu",
                    memory_mib=vmi.memory_mib, vcpus=vcpus, kernel=boot.kernel, initrd=boot.initrd,
                    cmdline=boot.cmdline, serial_log=serial_log, emulator=emulator)
    for n, disk in enumerate(devices.disks):
        name = disk.get("name", "")
        if name in boot.disks:
            domain.disks.append(DomainDisk(path=boot.disks[name], target=f"vd{chr(ord('a') + n)}",
                                           boot_order=disk.get("bootOrder")))
    for iface in devices.interfaces:
        if iface.state == "absent":
            continue
        binding = iface.binding
        if binding is None:
            raise InvalidConfig(f"spec.domain.devices.interfaces[{iface.name}]: needs exactly one of "
                                "masquerade, bridge, sriov")
        if iface.name not in wired:
            raise InvalidConfig(f"interface {iface.name}: its pod side was not found wired")
        multiqueue = devices.networkInterfaceMultiqueue and (iface.model or "virtio") == "virtio"
        queues = min(vcpus, MAX_QUEUES) if multiqueue else None
        device = DOMAIN_DEVICES[binding](vmi, iface, wired[iface.name], queues)
        if isinstance(device, DomainHostdev):
            domain.hostdevs.append(device)
        else:
            domain.interfaces.append(device)
    return domain
