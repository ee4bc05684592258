"""The kubevirt.io/v1 subset netplug reads: VM and VMI documents, memory, vCPUs, bindings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from netplug.errors import InvalidConfig, InvalidField
from netplug.guest import domain_name
from netplug.model.vm import parse_memory_mib, vmi_from_document

TESTVM = Path(__file__).parents[2] / "manifests" / "examples" / "testvm.yaml"


def test_kubevirts_testvm_loads_unchanged() -> None:
    vmi = vmi_from_document(yaml.safe_load(TESTVM.read_text()))
    assert (vmi.metadata.name, vmi.metadata.namespace, domain_name(vmi)) == ("testvm", "default", "default_testvm")
    (iface,) = vmi.spec.domain.devices.interfaces
    assert (iface.name, iface.binding) == ("default", "masquerade")
    assert vmi.network("default").pod is not None
    assert vmi.memory_mib == 62  # 64M = 64,000,000 bytes
    assert [d["name"] for d in vmi.spec.domain.devices.disks] == ["containerdisk", "cloudinitdisk"]


@pytest.mark.parametrize("quantity, mib", [("64M", 62), ("128Mi", 128), ("1Gi", 1024), ("1G", 954),
                                           ("134217728", 128), ("0.5Gi", 512)])
def test_memory_quantities(quantity: str, mib: int) -> None:
    assert parse_memory_mib(quantity) == mib


@pytest.mark.parametrize("quantity", ["64MB", "lots", "-1Gi", ""])
def test_bad_memory_names_the_field(quantity: str) -> None:
    with pytest.raises(InvalidConfig, match=f'memory: "{quantity}"'):
        parse_memory_mib(quantity)


def test_vcpus_multiply_topology_and_guest_memory_wins() -> None:
    vmi = vmi_from_document({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
                             "metadata": {"name": "v"}, "spec": {"domain": {
                                 "cpu": {"cores": 2, "sockets": 2, "threads": 2},
                                 "memory": {"guest": "256Mi"}, "resources": {"requests": {"memory": "1Gi"}}}}})
    assert (vmi.vcpus, vmi.memory_mib) == (8, 256)


def test_interface_with_two_bindings_has_none() -> None:
    vmi = vmi_from_document({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
                             "metadata": {"name": "v"}, "spec": {"domain": {"devices": {"interfaces": [
                                 {"name": "a", "bridge": {}, "masquerade": {}}]}}}})
    assert vmi.spec.domain.devices.interfaces[0].binding is None


@pytest.mark.parametrize("document, text", [
    ({"apiVersion": "v1", "kind": "Pod"}, "kubevirt.io/v1 VirtualMachine"),
    ([1, 2], "not a YAML/JSON object"),
])
def test_bad_documents_are_refused(document: object, text: str) -> None:
    with pytest.raises(InvalidConfig, match=text):
        vmi_from_document(document)


VMI_PORT_0 = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance", "metadata": {"name": "v"},
              "spec": {"domain": {"devices": {"interfaces": [{"name": "a", "ports": [{"port": 0}]}]}}}}


@pytest.mark.parametrize("document, field, value", [
    (VMI_PORT_0, "spec.domain.devices.interfaces[0].ports[0].port", 0),
    ({**VMI_PORT_0, "kind": "VirtualMachine", "spec": {"template": {"spec": VMI_PORT_0["spec"]}}},
     "spec.template.spec.domain.devices.interfaces[0].ports[0].port", 0),
    ({**VMI_PORT_0, "metadata": {"name": 7}}, "metadata.name", 7),
    ({**VMI_PORT_0, "kind": "VirtualMachine", "spec": {"template": "x"}}, "spec.template", "x"),
])
def test_a_value_the_model_refuses_names_its_kubevirt_path_and_value(document: dict, field: str, value: object) -> None:
    with pytest.raises(InvalidField) as refused:
        vmi_from_document(document)
    assert (refused.value.field, refused.value.value) == (field, value)
    assert refused.value.msg.startswith(field + ": ") and f"(value {json.dumps(value)})" in refused.value.msg


def test_a_vm_reviews_under_its_template_and_a_vmi_under_spec() -> None:
    vm = yaml.safe_load(TESTVM.read_text())
    assert vmi_from_document(vm).spec_path == "spec.template.spec"
    vmi = {**vm, "kind": "VirtualMachineInstance", "spec": vm["spec"]["template"]["spec"]}
    assert vmi_from_document(vmi).spec_path == "spec"
