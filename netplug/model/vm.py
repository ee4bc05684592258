"""The part of KubeVirt's `kubevirt.io/v1` API netplug reads: VirtualMachine and
VirtualMachineInstance, their interfaces and networks, and enough of the domain (CPU,
memory, disks) to boot the guest. Unknown fields are kept, so KubeVirt YAML loads unchanged.

May import: pydantic, netplug.model.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from netplug.errors import InvalidConfig, InvalidField
from netplug.model import invalid_field
from netplug.model.netconf import DhcpOptions, PortSpec

BINDING_METHODS = ("masquerade", "bridge", "sriov")


class _Api(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Interface(_Api):
    name: str
    model: str | None = None
    masquerade: dict | None = None
    bridge: dict | None = None
    sriov: dict | None = None
    ports: list[PortSpec] = Field(default_factory=list)
    macAddress: str | None = None
    bootOrder: int | None = None
    pciAddress: str | None = None
    dhcpOptions: DhcpOptions | None = None
    acpiIndex: int | None = None
    state: str | None = None

    @property
    def binding(self) -> str | None:
        methods = [m for m in BINDING_METHODS if getattr(self, m) is not None]
        return methods[0] if len(methods) == 1 else None


class PodNetwork(_Api):
    vmNetworkCIDR: str | None = None
    vmIPv6NetworkCIDR: str | None = None


class MultusNetwork(_Api):
    networkName: str
    default: bool = False

    def nad_key(self, namespace: str) -> str:
        """The NetworkAttachmentDefinition as "<namespace>/<name>" (its namespace defaults to
        the VM's, `namespace`)."""
        nad_namespace, _, nad_name = self.networkName.rpartition("/")
        return f"{nad_namespace or namespace}/{nad_name}"


class Network(_Api):
    name: str
    pod: PodNetwork | None = None
    multus: MultusNetwork | None = None


class Devices(_Api):
    interfaces: list[Interface] = Field(default_factory=list)
    disks: list[dict] = Field(default_factory=list)
    networkInterfaceMultiqueue: bool = False
    autoattachPodInterface: bool = True


class CPU(_Api):
    cores: int = 1
    sockets: int = 1
    threads: int = 1


class DomainSpec(_Api):
    devices: Devices = Field(default_factory=Devices)
    cpu: CPU | None = None
    resources: dict = Field(default_factory=dict)
    memory: dict | None = None


class VMISpec(_Api):
    domain: DomainSpec = Field(default_factory=DomainSpec)
    networks: list[Network] = Field(default_factory=list)
    volumes: list[dict] = Field(default_factory=list)


class ObjectMeta(_Api):
    name: str = ""
    namespace: str = "default"
    annotations: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    uid: str | None = None


class VirtualMachineInstance(_Api):
    apiVersion: str = "kubevirt.io/v1"
    kind: str = "VirtualMachineInstance"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: VMISpec = Field(default_factory=VMISpec)
    #: where this spec sits in the document it came from: "spec.template.spec" for a
    #: VirtualMachine, "spec" for a VirtualMachineInstance (field paths in errors start here)
    _spec_path: str = PrivateAttr(default="spec")

    @property
    def spec_path(self) -> str:
        return self._spec_path

    def located_at(self, spec_path: str) -> VirtualMachineInstance:
        """This VMI, its spec found at `spec_path` of the document a user wrote (e.g. a VMI
        the controller makes from a VM's template: "spec.template.spec")."""
        self._spec_path = spec_path
        return self

    def network(self, name: str) -> Network | None:
        return next((n for n in self.spec.networks if n.name == name), None)

    @property
    def vcpus(self) -> int:
        cpu = self.spec.domain.cpu or CPU()
        return max(1, cpu.cores * cpu.sockets * cpu.threads)

    def memory_request(self) -> tuple[str, object]:
        """(field path under the VMI spec, quantity) of the guest's memory: `memory.guest`,
        else `resources.requests.memory`, else KubeVirt-like 128Mi."""
        memory = self.spec.domain.memory if isinstance(self.spec.domain.memory, dict) else {}
        requests = self.spec.domain.resources.get("requests")
        requests = requests if isinstance(requests, dict) else {}
        if memory.get("guest"):
            return "domain.memory.guest", memory["guest"]
        if requests.get("memory"):  # nosec B113  # a dict of resource requests, not the HTTP library
            return "domain.resources.requests.memory", requests["memory"]
        return "domain.resources.requests.memory", "128Mi"

    @property
    def memory_mib(self) -> int:
        return parse_memory_mib(str(self.memory_request()[1]))


_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_FACTORS = {None: 1, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4,
            "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4}


def parse_memory_mib(quantity: str) -> int:
    """A Kubernetes quantity ("64M", "1Gi", "134217728") in MiB, rounded up."""
    m = _QUANTITY.match(quantity.strip())
    if not m:
        raise InvalidConfig(f'memory: "{quantity}" is not a Kubernetes quantity (e.g. 128Mi, 1Gi)')
    size = float(m.group(1)) * _FACTORS[m.group(2)]
    return max(1, -(-int(size) // (1024**2)))


def _object(parent: dict, key: str, where: str) -> dict:
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidField(where, value, "must be an object")
    return value


def vmi_from_document(document: Any) -> VirtualMachineInstance:
    """A VirtualMachineInstance from a VM or VMI document (a VM yields its template). A value
    the model cannot take is an `InvalidField` naming its full path in the document."""
    if not isinstance(document, dict):
        raise InvalidConfig("the document is not a YAML/JSON object")
    kind = document.get("kind")
    for key, wanted in (("apiVersion", ("kubevirt.io/v1",)), ("kind", ("VirtualMachine", "VirtualMachineInstance"))):
        if document.get(key) not in wanted:
            raise InvalidField(key, document.get(key), "want kubevirt.io/v1 VirtualMachine or VirtualMachineInstance")
    # a VM's VMI spec is its template's: spec.template.spec
    spec_path = "spec.template.spec" if kind == "VirtualMachine" else "spec"
    spec: Any = document
    where = ""
    for key in spec_path.split("."):
        where = f"{where}.{key}" if where else key
        spec = _object(spec, key, where)
    metadata = _object(document, "metadata", "metadata")
    try:
        meta = ObjectMeta.model_validate(metadata)
    except ValidationError as exc:
        raise invalid_field(exc, "metadata") from None
    try:
        vmi_spec = VMISpec.model_validate(spec)
    except ValidationError as exc:
        raise invalid_field(exc, spec_path) from None
    return VirtualMachineInstance(metadata=meta, spec=vmi_spec).located_at(spec_path)
