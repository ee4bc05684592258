"""Multus's formats (the NPWG multi-network spec v1.3 and device-info spec), read as Multus
writes them and written as Multus does.

- `NetworkAttachmentDefinition` (`k8s.cni.cncf.io/v1`): `spec.config` is a CNI config or
  conflist as a JSON string; `conflist()` always gives a conflist named like the NAD.
- `k8s.v1.cni.cncf.io/networks` (pod annotation): the short form `[ns/]name[@iface],...` or
  a JSON list of selection elements; `parse_networks` reads both, `render_networks` writes JSON.
- `k8s.v1.cni.cncf.io/network-status`: one entry per attachment; readers accept the default
  route's gateway under `default-route` (spec) and `gateway` (what the Go library writes);
  `status_from_result` builds an entry from a CNI result the way Multus does.

May import: pydantic, netplug.model, netplug.errors.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from netplug.errors import InvalidConfig
from netplug.model import first_error
from netplug.model.cni import Result

NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status"
RESOURCE_ANNOTATION = "k8s.v1.cni.cncf.io/resourceName"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


class _Multus(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


def _first_error(exc: ValidationError, prefix: str) -> InvalidConfig:
    where, first = first_error(exc)
    return InvalidConfig(f"{prefix}{where}: {first['msg']} (value {json.dumps(first.get('input'), default=str)[:80]})")


class NadMeta(_Multus):
    name: str
    namespace: str = "default"
    annotations: dict[str, str] = Field(default_factory=dict)


class NadSpec(_Multus):
    config: str = ""


class NetworkAttachmentDefinition(_Multus):
    apiVersion: str = "k8s.cni.cncf.io/v1"
    kind: str = "NetworkAttachmentDefinition"
    metadata: NadMeta
    spec: NadSpec = Field(default_factory=NadSpec)

    @classmethod
    def from_document(cls, document: Any) -> NetworkAttachmentDefinition:
        if not isinstance(document, dict):
            raise InvalidConfig("NetworkAttachmentDefinition: the document is not an object")
        meta = document.get("metadata") if isinstance(document.get("metadata"), dict) else {}
        which = f'"{meta.get("namespace", "default")}/{meta.get("name", "")}"'
        if document.get("kind") != "NetworkAttachmentDefinition":
            raise InvalidConfig(f'{which}: kind: want NetworkAttachmentDefinition, got "{document.get("kind")}"')
        if document.get("apiVersion") != "k8s.cni.cncf.io/v1":
            raise InvalidConfig(f'{which}: apiVersion: want k8s.cni.cncf.io/v1, got "{document.get("apiVersion")}"')
        try:
            nad = cls.model_validate(document)
        except ValidationError as exc:
            raise _first_error(exc, "") from None
        nad.conflist()  # refuse a bad spec.config now, naming it
        return nad

    @property
    def key(self) -> str:
        return f"{self.metadata.namespace}/{self.metadata.name}"

    @property
    def resource_name(self) -> str | None:
        return self.metadata.annotations.get(RESOURCE_ANNOTATION)

    def conflist(self) -> dict:
        """The network configuration as a conflist; a single plugin config is wrapped."""
        where = f"NetworkAttachmentDefinition {self.key}: spec.config"
        if not self.spec.config.strip():
            raise InvalidConfig(f"{where} is empty")
        try:
            config = json.loads(self.spec.config)
        except json.JSONDecodeError as exc:
            raise InvalidConfig(f"{where} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        if not isinstance(config, dict):
            raise InvalidConfig(f"{where} must be a JSON object")
        if not isinstance(config.get("cniVersion"), str):
            raise InvalidConfig(f"{where}: cniVersion is required")
        if "plugins" in config:
            if not isinstance(config["plugins"], list) or not config["plugins"] or not all(
                    isinstance(p, dict) and isinstance(p.get("type"), str) for p in config["plugins"]):
                raise InvalidConfig(f"{where}: plugins must be a non-empty list of objects with a type")
            return {**config, "name": config.get("name") or self.metadata.name}
        if not isinstance(config.get("type"), str):
            raise InvalidConfig(f"{where}: a plugin config needs a type")
        plugin = {k: v for k, v in config.items() if k not in ("cniVersion", "name")}
        return {"cniVersion": config["cniVersion"], "name": config.get("name") or self.metadata.name,
                "plugins": [plugin]}


class NetworkSelectionElement(_Multus):
    """One entry of the pod's networks annotation."""

    name: str
    namespace: str | None = None
    interface: str | None = None
    mac: str | None = None
    ips: list[str] = Field(default_factory=list)
    cni_args: dict | None = Field(default=None, alias="cni-args")
    default_route: list[str] = Field(default_factory=list, alias="default-route")
    portMappings: list[dict] = Field(default_factory=list)
    bandwidth: dict | None = None
    infiniband_guid: str | None = Field(default=None, alias="infiniband-guid")

    def nad_key(self, default_namespace: str) -> str:
        return f"{self.namespace or default_namespace}/{self.name}"


def parse_networks(text: str, default_namespace: str = "default") -> list[NetworkSelectionElement]:
    """The networks annotation, in either form."""
    text = text.strip()
    if not text:
        return []
    if text.startswith(("[", "{")):
        items = _json_list(text, NETWORKS_ANNOTATION)
        elements = []
        for n, item in enumerate(items):
            try:
                elements.append(NetworkSelectionElement.model_validate(item))
            except ValidationError as exc:
                raise _first_error(exc, f"{NETWORKS_ANNOTATION}[{n}].") from None
    else:
        elements = []
        for n, word in enumerate(w.strip() for w in text.split(",")):
            ref, _, iface = word.partition("@")
            namespace, _, name = ref.rpartition("/")
            elements.append(NetworkSelectionElement(name=name, namespace=namespace or None, interface=iface or None))
            if not name:
                raise InvalidConfig(f'{NETWORKS_ANNOTATION}[{n}]: "{word}" names no network')
    for n, element in enumerate(elements):
        if element.namespace == "":
            element.namespace = None  # Multus: the pod's own namespace
        for label, value in (("name", element.name), ("namespace", element.namespace)):
            if value is not None and not _NAME.match(value):
                raise InvalidConfig(f'{NETWORKS_ANNOTATION}[{n}].{label}: "{value}" is not a valid name')
    return elements


def render_networks(elements: list[NetworkSelectionElement]) -> str:
    return json.dumps([e.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True) | {"name": e.name}
                       for e in elements])


class DeviceInfo(_Multus):
    """NPWG device-info (v1.1.0): type pci carries `pci` with the VF's `pci-address`."""

    type: str
    version: str = "1.1.0"
    pci: dict | None = None


class NetworkStatus(_Multus):
    name: str
    interface: str | None = None
    ips: list[str] = Field(default_factory=list)
    mac: str | None = None
    mtu: int | None = None
    default: bool = False
    dns: dict = Field(default_factory=dict)
    gateway: list[str] = Field(default_factory=list)
    device_info: DeviceInfo | None = Field(default=None, alias="device-info")


def _json_list(text: str, annotation: str) -> list:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidConfig(f"{annotation}: not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(items, list):
        raise InvalidConfig(f"{annotation}: want a JSON list")
    return items


def parse_network_status(text: str) -> list[NetworkStatus]:
    items = _json_list(text, STATUS_ANNOTATION)
    statuses = []
    for n, item in enumerate(items):
        if isinstance(item, dict) and "default-route" in item:
            # the spec's key; the Go library writes "gateway": keep one, the library's
            item = {k: v for k, v in item.items() if k != "default-route"} | {
                "gateway": item.get("gateway", item["default-route"])}
        try:
            statuses.append(NetworkStatus.model_validate(item))
        except ValidationError as exc:
            raise _first_error(exc, f"{STATUS_ANNOTATION}[{n}].") from None
    return statuses


def render_network_status(statuses: list[NetworkStatus]) -> str:
    out = []
    for status in statuses:
        entry = status.model_dump(by_alias=True, exclude_none=True)
        for key in ("ips", "dns", "gateway"):
            if not entry.get(key):
                entry.pop(key, None)
        if not entry.get("default"):
            entry.pop("default", None)
        out.append(entry)
    return json.dumps(out, indent=4)


def status_from_result(network: str, result: Result, *, default: bool = False,
                       device_info: DeviceInfo | None = None) -> NetworkStatus:
    """An entry as Multus writes it: the first sandbox interface, its IPs, MAC and MTU, the
    result's DNS, and the gateways of default routes."""
    index = next((i for i, iface in enumerate(result.interfaces) if iface.sandbox), None)
    iface = result.interfaces[index] if index is not None else None
    own = [ip for ip in result.ips if index is None or ip.interface in (None, index)]
    ips = [ip.address.split("/")[0] for ip in own]
    gateways = []
    for route in result.routes:
        if route.dst not in ("0.0.0.0/0", "::/0"):
            continue
        if route.gw:
            gateways.append(route.gw)
        else:  # a default route without gw goes via the gateway of that family's address
            family = 4 if route.dst == "0.0.0.0/0" else 6
            gateways += [ip.gateway for ip in own if ip.gateway and ip.family == family][:1]
    dns = result.dns.model_dump(exclude_none=True, exclude_defaults=True)
    return NetworkStatus(name=network, interface=iface.name if iface else None, ips=ips,
                         mac=iface.mac if iface else None, mtu=iface.mtu if iface else None,
                         default=default, dns=dns, gateway=gateways, device_info=device_info)
