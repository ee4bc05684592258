"""libvirt domain XML from `netplug.model.domain` and back: conversion only, no decisions.

One pair of functions per element (`interface_to_xml` / `interface_from_xml`, ...), as nova's
libvirt config classes do: what a binding decided goes in, the element libvirt reads comes
out, and parsing what we wrote gives the same model back. Child elements come in the order
KubeVirt writes them (address, source, target, model, mac, mtu, boot, link, alias, driver,
rom, acpi), which libvirt does not require but makes diffs against KubeVirt easy to read.

May import: netplug.model, the standard library (xml.etree).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from netplug.model.domain import Domain, DomainDisk, DomainHostdev, DomainInterface, PciAddress

# --- PCI addresses -----------------------------------------------------------------------------


def _pci_to_xml(parent: ET.Element, address: PciAddress, typed: bool = True) -> ET.Element:
    """`<address type='pci' .../>`; untyped where the element can only be a PCI address (a
    PCI hostdev's `<source>`: libvirt's schema allows no `type` there)."""
    return ET.SubElement(parent, "address", {
        **({"type": "pci"} if typed else {}), "domain": f"0x{address.domain:04x}", "bus": f"0x{address.bus:02x}",
        "slot": f"0x{address.slot:02x}", "function": f"0x{address.function:x}",
    })


def _pci_from_xml(element: ET.Element | None) -> PciAddress | None:
    if element is None or element.get("type", "pci") != "pci":
        return None
    return PciAddress(**{k: int(element.get(k, "0"), 0) for k in ("domain", "bus", "slot", "function")})


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


# --- <interface> -------------------------------------------------------------------------------


def interface_to_xml(iface: DomainInterface) -> ET.Element:
    el = ET.Element("interface", {"type": iface.type})
    if iface.pci_address is not None:
        _pci_to_xml(el, iface.pci_address)
    source = ET.SubElement(el, "source")
    if iface.source_bridge:
        source.set("bridge", iface.source_bridge)
    if iface.source_dev:
        source.set("dev", iface.source_dev)
    if iface.source_mode:
        source.set("mode", iface.source_mode)
    if iface.source_path:
        source.set("type", "unix")
        source.set("path", iface.source_path)
    if iface.source_pci is not None:
        _pci_to_xml(source, iface.source_pci)
    if iface.target_dev:
        target = ET.SubElement(el, "target", {"dev": iface.target_dev})
        if iface.target_managed is not None:
            target.set("managed", _yes_no(iface.target_managed))
    if iface.model:
        ET.SubElement(el, "model", {"type": iface.model})
    if iface.mac:
        ET.SubElement(el, "mac", {"address": iface.mac})
    if iface.mtu:
        ET.SubElement(el, "mtu", {"size": str(iface.mtu)})
    if iface.boot_order:
        ET.SubElement(el, "boot", {"order": str(iface.boot_order)})
    if iface.link_state:
        ET.SubElement(el, "link", {"state": iface.link_state})
    if iface.alias:
        ET.SubElement(el, "alias", {"name": iface.alias})
    if iface.driver_name or iface.driver_queues:
        driver = ET.SubElement(el, "driver")
        if iface.driver_name:
            driver.set("name", iface.driver_name)
        if iface.driver_queues:
            driver.set("queues", str(iface.driver_queues))
    if iface.rom_enabled is not None:
        ET.SubElement(el, "rom", {"enabled": _yes_no(iface.rom_enabled)})
    if iface.acpi_index:
        ET.SubElement(el, "acpi", {"index": str(iface.acpi_index)})
    return el


def _attr(el: ET.Element, path: str, name: str) -> str | None:
    child = el.find(path)
    return None if child is None else child.get(name)


def _int(value: str | None) -> int | None:
    return None if value is None else int(value)


def _bool(value: str | None) -> bool | None:
    return None if value is None else value == "yes"


def interface_from_xml(el: ET.Element) -> DomainInterface:
    source = el.find("source")
    return DomainInterface(
        type=el.get("type", "ethernet"),
        mac=_attr(el, "mac", "address"),
        model=_attr(el, "model", "type"),
        target_dev=_attr(el, "target", "dev"),
        target_managed=_bool(_attr(el, "target", "managed")),
        source_bridge=None if source is None else source.get("bridge"),
        source_dev=None if source is None else source.get("dev"),
        source_mode=None if source is None else source.get("mode"),
        source_path=None if source is None else source.get("path"),
        source_pci=None if source is None else _pci_from_xml(source.find("address")),
        mtu=_int(_attr(el, "mtu", "size")),
        driver_name=_attr(el, "driver", "name"),
        driver_queues=_int(_attr(el, "driver", "queues")),
        alias=_attr(el, "alias", "name"),
        rom_enabled=_bool(_attr(el, "rom", "enabled")),
        link_state=_attr(el, "link", "state"),
        boot_order=_int(_attr(el, "boot", "order")),
        pci_address=_pci_from_xml(el.find("address")),
        acpi_index=_int(_attr(el, "acpi", "index")),
    )


# --- <hostdev> ---------------------------------------------------------------------------------


def hostdev_to_xml(dev: DomainHostdev) -> ET.Element:
    el = ET.Element("hostdev", {"mode": "subsystem", "type": "pci", "managed": _yes_no(dev.managed)})
    source = ET.SubElement(el, "source")
    _pci_to_xml(source, dev.source, typed=False)
    if dev.boot_order:
        ET.SubElement(el, "boot", {"order": str(dev.boot_order)})
    if dev.alias:
        ET.SubElement(el, "alias", {"name": dev.alias})
    if dev.guest_address is not None:
        _pci_to_xml(el, dev.guest_address)
    return el


def hostdev_from_xml(el: ET.Element) -> DomainHostdev:
    source = _pci_from_xml(el.find("source/address"))
    if source is None:
        raise ValueError("hostdev without a PCI source address")
    return DomainHostdev(
        source=source, managed=el.get("managed") == "yes", alias=_attr(el, "alias", "name"),
        boot_order=_int(_attr(el, "boot", "order")), guest_address=_pci_from_xml(el.find("address")),
    )


# --- <disk> ------------------------------------------------------------------------------------


def disk_to_xml(disk: DomainDisk) -> ET.Element:
    el = ET.Element("disk", {"type": "file", "device": "disk"})
    ET.SubElement(el, "driver", {"name": "qemu", "type": disk.format})
    ET.SubElement(el, "source", {"file": disk.path})
    ET.SubElement(el, "target", {"dev": disk.target, "bus": disk.bus})
    if disk.readonly:
        ET.SubElement(el, "readonly")
    if disk.boot_order:
        ET.SubElement(el, "boot", {"order": str(disk.boot_order)})
    return el


def disk_from_xml(el: ET.Element) -> DomainDisk:
    return DomainDisk(
        path=_attr(el, "source", "file") or "", target=_attr(el, "target", "dev") or "vda",
        bus=_attr(el, "target", "bus") or "virtio", format=_attr(el, "driver", "type") or "raw",
        readonly=el.find("readonly") is not None, boot_order=_int(_attr(el, "boot", "order")),
    )


# --- <domain> ----------------------------------------------------------------------------------


def domain_to_xml(domain: Domain) -> ET.Element:
    el = ET.Element("domain", {"type": domain.type})
    ET.SubElement(el, "name").text = domain.name
    if domain.uuid:
        ET.SubElement(el, "uuid").text = domain.uuid
    ET.SubElement(el, "memory", {"unit": "MiB"}).text = str(domain.memory_mib)
    ET.SubElement(el, "vcpu").text = str(domain.vcpus)
    os_el = ET.SubElement(el, "os")
    ET.SubElement(os_el, "type", {"arch": "x86_64", "machine": domain.machine}).text = "hvm"
    if domain.kernel:
        ET.SubElement(os_el, "kernel").text = domain.kernel
    if domain.initrd:
        ET.SubElement(os_el, "initrd").text = domain.initrd
    if domain.cmdline:
        ET.SubElement(os_el, "cmdline").text = domain.cmdline
    # without ACPI, libvirt passes -no-acpi and a guest's poweroff only halts
    features = ET.SubElement(el, "features")
    ET.SubElement(features, "acpi")
    for event in ("on_poweroff", "on_reboot", "on_crash"):
        ET.SubElement(el, event).text = "destroy"
    devices = ET.SubElement(el, "devices")
    if domain.emulator:
        ET.SubElement(devices, "emulator").text = domain.emulator
    for disk in domain.disks:
        devices.append(disk_to_xml(disk))
    for iface in domain.interfaces:
        devices.append(interface_to_xml(iface))
    for dev in domain.hostdevs:
        devices.append(hostdev_to_xml(dev))
    if domain.serial_log:
        serial = ET.SubElement(devices, "serial", {"type": "file"})
        ET.SubElement(serial, "source", {"path": domain.serial_log})
        ET.SubElement(serial, "target", {"port": "0"})
    ET.SubElement(devices, "controller", {"type": "usb", "model": "none"})
    ET.SubElement(devices, "memballoon", {"model": "none"})
    return el


def domain_from_xml(el: ET.Element) -> Domain:
    devices = el.find("devices")
    assert devices is not None
    return Domain(
        name=el.findtext("name", ""), uuid=el.findtext("uuid"), type=el.get("type", "qemu"),
        memory_mib=int(el.findtext("memory", "128")), vcpus=int(el.findtext("vcpu", "1")),
        machine=_attr(el, "os/type", "machine") or "pc",
        kernel=el.findtext("os/kernel"), initrd=el.findtext("os/initrd"), cmdline=el.findtext("os/cmdline"),
        disks=[disk_from_xml(d) for d in devices.findall("disk")],
        interfaces=[interface_from_xml(i) for i in devices.findall("interface")],
        hostdevs=[hostdev_from_xml(h) for h in devices.findall("hostdev")],
        serial_log=_attr(devices, "serial/source", "path"), emulator=devices.findtext("emulator"),
    )


def to_string(element: ET.Element) -> str:
    ET.indent(element)
    return ET.tostring(element, encoding="unicode") + "\n"
