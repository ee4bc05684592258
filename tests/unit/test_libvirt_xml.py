"""libvirt domain XML: each binding's devices rendered from a VM spec, compared with golden
files, parsed back into the same model, and validated against libvirt's own RelaxNG schema."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from netplug.bindings.base import WiredInterface, stable_mac
from netplug.guest import BootSource, plan_domain
from netplug.model.domain import PciAddress
from netplug.model.vm import vmi_from_document
from netplug.pod import NodeNetwork, plan_pod
from netplug.render.libvirt_xml import (
    domain_from_xml,
    domain_to_xml,
    hostdev_from_xml,
    hostdev_to_xml,
    interface_from_xml,
    to_string,
)

DATA = Path(__file__).parent / "data" / "domains"
SCHEMA = "/usr/share/libvirt/schemas/domain.rng"
UPDATE = os.environ.get("NETPLUG_UPDATE_GOLDEN") == "1"


def vm(interfaces: list[dict], networks: list[dict], **devices: object) -> dict:
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": "testvm", "namespace": "default"},
            "spec": {"running": True, "template": {"spec": {
                "domain": {"cpu": {"cores": 2, "sockets": 2}, "resources": {"requests": {"memory": "64M"}},
                           "devices": {"interfaces": interfaces, **devices}},
                "networks": networks}}}}


CASES = {
    "masquerade": (
        vm([{"name": "default", "masquerade": {}, "ports": [{"name": "http", "port": 80}]}],
           [{"name": "default", "pod": {}}]),
        {"default": WiredInterface(name="default", binding="masquerade", tap="tap0", mtu=1450)},
    ),
    "bridge-pod-and-secondary": (
        vm([{"name": "default", "bridge": {}, "bootOrder": 1},
            {"name": "blue", "bridge": {}, "macAddress": "02:00:00:0B:0B:01", "pciAddress": "0000:20:01.0",
             "acpiIndex": 3, "state": "down", "model": "e1000e"}],
           [{"name": "default", "pod": {}}, {"name": "blue", "multus": {"networkName": "br-blue"}}]),
        {"default": WiredInterface(name="default", binding="bridge", tap="tap0", mtu=1500,
                                   identity_mac="0a:58:0a:f4:01:05"),
         "blue": WiredInterface(name="blue", binding="bridge", tap="tap16477688c0e", mtu=9000)},
    ),
    "sriov": (
        vm([{"name": "default", "masquerade": {}},
            {"name": "sriov-net", "sriov": {}, "bootOrder": 2, "pciAddress": "0000:20:00.0"}],
           [{"name": "default", "pod": {}}, {"name": "sriov-net", "multus": {"networkName": "sriov/sriov-net"}}]),
        {"default": WiredInterface(name="default", binding="masquerade", tap="tap0", mtu=1500),
         "sriov-net": WiredInterface(name="sriov-net", binding="sriov", pci_address="0000:81:01.0")},
    ),
    "multiqueue": (
        vm([{"name": "default", "masquerade": {}}], [{"name": "default", "pod": {}}],
           networkInterfaceMultiqueue=True),
        {"default": WiredInterface(name="default", binding="masquerade", tap="tap0", mtu=1500, tap_queues=256)},
    ),
}


def _domain(case: str):
    document, wired = CASES[case]
    return plan_domain(vmi_from_document(document), wired,
                       BootSource(kernel="/guest/vmlinuz", initrd="/guest/initramfs.cpio.gz",
                                  cmdline="console=ttyS0"),
                       accelerated=False, serial_log="/state/serial.log", emulator="/usr/bin/qemu-system-x86_64")


@pytest.mark.parametrize("case", sorted(CASES))
def test_domain_matches_golden_and_round_trips(case: str) -> None:
    domain = _domain(case)
    xml = to_string(domain_to_xml(domain))
    golden = DATA / f"{case}.xml"
    if UPDATE:
        golden.write_text(xml)
    assert xml == golden.read_text()
    assert domain_from_xml(ET.fromstring(xml)) == domain


@pytest.mark.parametrize("case", sorted(CASES))
def test_domain_is_valid_for_libvirt(case: str) -> None:
    etree = pytest.importorskip("lxml.etree")
    if not os.path.exists(SCHEMA):
        pytest.skip(f"{SCHEMA} is not installed (Debian package libvirt0)")
    schema = etree.RelaxNG(etree.parse(SCHEMA))
    document = etree.fromstring(to_string(domain_to_xml(_domain(case))).encode())
    assert schema.validate(document), schema.error_log


def test_schema_check_can_fail() -> None:
    etree = pytest.importorskip("lxml.etree")
    if not os.path.exists(SCHEMA):
        pytest.skip(f"{SCHEMA} is not installed")
    xml = to_string(domain_to_xml(_domain("masquerade"))).replace('type="ethernet"', 'type="ethernett"')
    assert not etree.RelaxNG(etree.parse(SCHEMA)).validate(etree.fromstring(xml.encode()))


def test_masquerade_interface_is_kubevirts() -> None:
    (iface,) = _domain("masquerade").interfaces
    assert (iface.type, iface.target_dev, iface.target_managed) == ("ethernet", "tap0", False)
    assert (iface.model, iface.alias, iface.rom_enabled, iface.mtu) == ("virtio-non-transitional", "ua-default", False, 1450)
    assert iface.mac == stable_mac("default", "testvm", "default")  # stable for the VM


def test_bridge_interfaces_take_spec_then_wired_mac() -> None:
    default, blue = _domain("bridge-pod-and-secondary").interfaces
    assert default.mac == "0a:58:0a:f4:01:05" and default.boot_order == 1 and default.rom_enabled is None
    assert blue.mac == "02:00:00:0b:0b:01" and blue.model == "e1000e" and blue.link_state == "down"
    assert (blue.target_dev, str(blue.pci_address), blue.acpi_index, blue.mtu) == ("tap16477688c0e", "0000:20:01.0", 3, 9000)


def test_multiqueue_gives_queues_per_vcpu() -> None:
    (iface,) = _domain("multiqueue").interfaces
    assert iface.driver_queues == 4 and iface.driver_name is None  # 2 cores x 2 sockets


def test_multiqueue_never_asks_more_queues_than_the_tap_takes() -> None:
    """A single-queue tap opened with several queues fails (EINVAL): the guest gets one."""
    document, _ = CASES["multiqueue"]
    single = {"default": WiredInterface(name="default", binding="masquerade", tap="tap0", mtu=1500)}
    domain = plan_domain(vmi_from_document(document), single, BootSource(kernel="/k"), accelerated=False,
                         serial_log="/s")
    assert domain.interfaces[0].driver_queues is None


@pytest.mark.parametrize("devices, model, queues", [
    ({"networkInterfaceMultiqueue": True}, None, 4),
    ({"networkInterfaceMultiqueue": True}, "e1000e", None),  # virtio only, as KubeVirt
    ({}, None, None),
])
def test_the_pods_binding_config_asks_for_the_guests_queues(devices, model, queues) -> None:
    iface = {"name": "default", "masquerade": {}, **({"model": model} if model else {})}
    vmi = vmi_from_document(vm([iface], [{"name": "default", "pod": {}}], **devices))
    (attachment,) = plan_pod(vmi, [], NodeNetwork()).attachments
    entry = attachment.conflist["plugins"][-1]
    assert entry["type"] == "netplug" and entry.get("queues") == queues


def test_sriov_interface_is_kubevirts_hostdev() -> None:
    """The VF as KubeVirt passes it: a PCI hostdev, managed='no', alias ua-sriov-<name>, the
    spec's bootOrder and pciAddress (the guest address); no <interface> for it."""
    domain = _domain("sriov")
    assert [i.alias for i in domain.interfaces] == ["ua-default"]
    (dev,) = domain.hostdevs
    el = hostdev_to_xml(dev)
    assert el.get("managed") == "no" and el.get("type") == "pci"
    src = el.find("source/address")
    assert (src.get("domain"), src.get("bus"), src.get("slot"), src.get("function")) == ("0x0000", "0x81", "0x01", "0x0")
    assert (dev.alias, dev.boot_order, str(dev.guest_address)) == ("ua-sriov-sriov-net", 2, "0000:20:00.0")
    assert hostdev_from_xml(el) == dev


def test_interface_parse_of_kubevirt_example() -> None:
    """The element KubeVirt's docs show for masquerade parses into the same fields."""
    text = ('<interface type="ethernet"><source/><target dev="tap0" managed="no"/>'
            '<model type="virtio-non-transitional"/><mac address="0a:58:0a:f4:01:05"/><mtu size="1450"/>'
            '<alias name="ua-default"/><rom enabled="no"/></interface>')
    iface = interface_from_xml(ET.fromstring(text))
    assert (iface.target_dev, iface.mac, iface.mtu, iface.alias, iface.rom_enabled) == (
        "tap0", "0a:58:0a:f4:01:05", 1450, "ua-default", False)


@pytest.mark.parametrize("bad", ["0000:81:01.10", "81:01.0", "0000:81:01", "zzzz:81:01.0"])
def test_bad_pci_addresses_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="PCI address"):
        PciAddress.parse(bad)
