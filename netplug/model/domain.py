"""libvirt domain elements netplug decides: one model per XML element, no policy.

`DomainInterface` is `<interface>` (type ethernet / bridge / direct / hostdev / vhostuser),
`DomainHostdev` a PCI `<hostdev>`, `Domain` the whole guest the launcher starts. Which binding
gives which element with which values is decided in the binding modules (policy); turning
these into XML and back is `netplug.render.libvirt_xml` (no policy). Field names say what
the element says, e.g. `target_managed` is `<target managed=...>`.

May import: pydantic, netplug.model.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: the PCI address format KubeVirt's API takes (DDDD:BB:SS.F, hex, function 0-7); the CRD
#: schema carries it as is. `PciAddress.parse` is the one rule: this format, and a slot
#: (device) no higher than 0x1f, as PCI has 32 devices per bus.
PCI_ADDRESS_FORMAT = r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$"
_PCI = re.compile(PCI_ADDRESS_FORMAT)
PCI_MAX_SLOT = 0x1F
#: limits of the guest netplug runs; admission refuses a VM beyond them before anything is made
MIN_MEMORY_MIB = 16
MAX_VCPUS = 512
MAX_ACPI_INDEX = 16383


class _Element(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PciAddress(_Element):
    """A PCI address, host or guest side: DDDD:BB:SS.F."""

    domain: int = Field(ge=0, le=0xFFFF)
    bus: int = Field(ge=0, le=0xFF)
    slot: int = Field(ge=0, le=PCI_MAX_SLOT)
    function: int = Field(ge=0, le=7)

    @classmethod
    def parse(cls, text: str) -> PciAddress:
        if not isinstance(text, str) or not _PCI.fullmatch(text):
            raise ValueError(f'"{text}" is not a PCI address (want DDDD:BB:SS.F, e.g. 0000:81:01.0)')
        domain, bus, device = text.split(":")
        slot, function = device.split(".")
        if int(slot, 16) > PCI_MAX_SLOT:
            raise ValueError(f'"{text}": PCI slot 0x{slot} is above 0x{PCI_MAX_SLOT:x} (32 devices per bus)')
        return cls(domain=int(domain, 16), bus=int(bus, 16), slot=int(slot, 16), function=int(function))

    def __str__(self) -> str:
        return f"{self.domain:04x}:{self.bus:02x}:{self.slot:02x}.{self.function}"


class DomainInterface(_Element):
    type: Literal["ethernet", "bridge", "direct", "hostdev", "vhostuser"] = "ethernet"
    mac: str | None = None
    model: str | None = None
    #: <target dev=... managed=...>: the tap (or macvtap) the guest NIC uses
    target_dev: str | None = None
    target_managed: bool | None = None
    #: <source>: bridge name (bridge), device (direct), socket path (vhostuser) or PCI (hostdev)
    source_bridge: str | None = None
    source_dev: str | None = None
    source_mode: str | None = None
    source_path: str | None = None
    source_pci: PciAddress | None = None
    mtu: int | None = None
    driver_name: str | None = None
    driver_queues: int | None = None
    alias: str | None = None
    rom_enabled: bool | None = None
    link_state: Literal["up", "down"] | None = None
    boot_order: int | None = Field(default=None, ge=1)
    pci_address: PciAddress | None = None
    acpi_index: int | None = Field(default=None, ge=1, le=MAX_ACPI_INDEX)


class DomainHostdev(_Element):
    """A PCI device passed to the guest (an SR-IOV VF): `<hostdev mode='subsystem' type='pci'>`."""

    source: PciAddress
    managed: bool = False
    alias: str | None = None
    boot_order: int | None = Field(default=None, ge=1)
    #: where the device appears in the guest
    guest_address: PciAddress | None = None


class DomainDisk(_Element):
    path: str
    target: str = "vda"
    bus: Literal["virtio", "sata", "scsi"] = "virtio"
    format: Literal["raw", "qcow2"] = "raw"
    readonly: bool = False
    boot_order: int | None = Field(default=None, ge=1)


class Domain(_Element):
    """The whole guest: enough to boot a VM with its disks or kernel, a serial log and NICs."""

    name: str
    uuid: str | None = None
    #: "kvm" where hardware virtualization works, "qemu" (TCG) elsewhere
    type: Literal["kvm", "qemu"] = "qemu"
    memory_mib: int = Field(default=128, ge=MIN_MEMORY_MIB)
    vcpus: int = Field(default=1, ge=1, le=MAX_VCPUS)
    machine: str = "pc"
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    disks: list[DomainDisk] = Field(default_factory=list)
    interfaces: list[DomainInterface] = Field(default_factory=list)
    hostdevs: list[DomainHostdev] = Field(default_factory=list)
    serial_log: str | None = None
    emulator: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}", value):
            raise ValueError(f'"{value}" is not a valid domain name')
        return value
