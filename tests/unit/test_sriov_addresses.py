"""Where the launcher finds each SR-IOV interface's VF: network-status device-info first,
then the device plugin's PCIDEVICE_* list (KubeVirt's older way), each address once."""

from __future__ import annotations

import pytest

from netplug.errors import InvalidConfig
from netplug.guest import resource_env_name, sriov_pci_addresses
from netplug.model.multus import parse_network_status
from netplug.model.vm import vmi_from_document


def _vmi(*names: str):
    return vmi_from_document({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance", "metadata": {"name": "v"},
                              "spec": {"domain": {"devices": {"interfaces": [{"name": n, "sriov": {}} for n in names]}},
                                       "networks": [{"name": n, "multus": {"networkName": f"sriov/{n}"}} for n in names]}})


def test_network_status_device_info_wins() -> None:
    statuses = parse_network_status('[{"name": "sriov/net-a", "interface": "pod' + _hash("net-a") + '", '
                                    '"device-info": {"type": "pci", "version": "1.1.0", "pci": {"pci-address": "0000:65:00.3"}}}]')
    env = {"KUBEVIRT_RESOURCE_NAME_net-a": "intel.com/sriov", "PCIDEVICE_INTEL_COM_SRIOV": "0000:03:02.1"}
    assert sriov_pci_addresses(_vmi("net-a"), statuses, env) == {"net-a": "0000:65:00.3"}


def test_device_plugin_environment_hands_out_each_address_once() -> None:
    env = {"KUBEVIRT_RESOURCE_NAME_net-a": "intel.com/sriov", "KUBEVIRT_RESOURCE_NAME_net-b": "intel.com/sriov",
           "PCIDEVICE_INTEL_COM_SRIOV": "0000:03:02.1,0000:03:04.3"}
    assert sriov_pci_addresses(_vmi("net-a", "net-b"), [], env) == {"net-a": "0000:03:02.1", "net-b": "0000:03:04.3"}


def test_no_vf_anywhere_names_the_interface() -> None:
    with pytest.raises(InvalidConfig, match="interface net-a: no VF for network net-a"):
        sriov_pci_addresses(_vmi("net-a"), [], {})


def test_resource_variable_name() -> None:
    assert resource_env_name("intel.com/sriov_net") == "PCIDEVICE_INTEL_COM_SRIOV_NET"


def _hash(name: str) -> str:
    from netplug import naming
    return naming.network_hash(name)
