"""CNI wire types: versions, the success result, and how each spec version shapes it.

netplug keeps results in one canonical shape (spec 1.1.0) and converts at the edges:
`parse_result` accepts any supported version's result (a prevResult, a delegate's output),
`result_to_wire` renders the shape of the version the runtime asked for: 0.3.x/0.4.0 carry
`ips[].version`, 1.0.0 drops it, and only 1.1.0 carries `interfaces[].mtu/socketPath/pciID`
and the extra route fields. Empty fields are omitted, as the reference plugins do.

May import: pydantic, netaddr, netplug.errors.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from netplug.errors import DecodeFailure, IncompatibleVersion
from netplug.model import first_error

SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
LATEST = "1.1.0"


def version_tuple(version: str) -> tuple[int, int, int]:
    try:
        parts = tuple(int(p) for p in version.split("."))
    except (ValueError, AttributeError):
        raise DecodeFailure(f'invalid cniVersion "{version}"') from None
    if len(parts) != 3:
        raise DecodeFailure(f'invalid cniVersion "{version}"')
    return parts  # type: ignore[return-value]


def require_supported(version: str) -> str:
    version_tuple(version)
    if version not in SUPPORTED_VERSIONS:
        raise IncompatibleVersion(
            f'incompatible CNI versions: config is "{version}", plugin supports '
            f"{list(SUPPORTED_VERSIONS)}"
        )
    return version


def at_least(version: str, minimum: str) -> bool:
    return version_tuple(version) >= version_tuple(minimum)


class _Wire(BaseModel):
    # Results travel between plugins: keep fields we do not know so nothing is lost.
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Interface(_Wire):
    name: str
    mac: str | None = None
    mtu: int | None = None
    sandbox: str | None = None
    socketPath: str | None = None
    pciID: str | None = None


class IPConfig(_Wire):
    address: str
    gateway: str | None = None
    interface: int | None = None

    @property
    def family(self) -> int:
        return ipaddress.ip_interface(self.address).version


class Route(_Wire):
    dst: str
    gw: str | None = None
    mtu: int | None = None
    advmss: int | None = None
    priority: int | None = None
    table: int | None = None
    scope: int | None = None


class DNS(_Wire):
    nameservers: list[str] = Field(default_factory=list)
    domain: str | None = None
    search: list[str] = Field(default_factory=list)
    options: list[str] = Field(default_factory=list)


class Result(_Wire):
    cniVersion: str | None = None
    interfaces: list[Interface] = Field(default_factory=list)
    ips: list[IPConfig] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)
    dns: DNS = Field(default_factory=DNS)

    def sandbox_interface(self, name: str) -> int | None:
        """Index of the sandbox interface called `name`, if the result lists it."""
        for index, iface in enumerate(self.interfaces):
            if iface.name == name and iface.sandbox:
                return index
        return None


_V11_INTERFACE_FIELDS = ("mtu", "socketPath", "pciID")
_V11_ROUTE_FIELDS = ("mtu", "advmss", "priority", "table", "scope")


def parse_result(data: Any, version: str, *, field: str = "prevResult") -> Result:
    """A result of any supported version (as a chained plugin or a delegate gave it)."""
    if not isinstance(data, dict):
        raise DecodeFailure(f"{field} must be a JSON object, got {type(data).__name__}")
    if "ip4" in data or "ip6" in data:
        raise IncompatibleVersion(f"{field} uses the 0.2.0 result format, which is not supported")
    data = dict(data)
    data.setdefault("cniVersion", version)
    if not isinstance(data.get("ips") or [], list):
        raise DecodeFailure(f"{field}.ips must be a list, got {type(data['ips']).__name__}")
    ips = []
    for ip in data.get("ips") or []:
        if isinstance(ip, dict):
            ip = {k: v for k, v in ip.items() if k != "version"}
        ips.append(ip)
    data["ips"] = ips
    for key in ("interfaces", "routes"):
        if data.get(key) is None:
            data.pop(key, None)
    if data.get("dns") is None:
        data.pop("dns", None)
    try:
        result = Result.model_validate(data)
    except ValidationError as exc:
        where, first = first_error(exc)
        raise DecodeFailure(f"{field}.{where}: {first['msg']}", details=str(exc)) from None
    for ip in result.ips:
        try:
            if "/" not in ip.address:
                raise ValueError("no prefix length")
            ipaddress.ip_interface(ip.address)
        except ValueError:
            raise DecodeFailure(f'{field}.ips: address "{ip.address}" is not in CIDR notation') from None
        if ip.gateway is not None:
            try:
                ipaddress.ip_address(ip.gateway)
            except ValueError:
                raise DecodeFailure(f'{field}.ips: invalid gateway "{ip.gateway}"') from None
        if ip.interface is not None and not 0 <= ip.interface < len(result.interfaces):
            # chained plugins append interfaces: a dangling index would come to name one of them
            raise DecodeFailure(f"{field}.ips: interface {ip.interface} is not an index into interfaces "
                                f"({len(result.interfaces)} listed)")
    for route in result.routes:
        try:
            ipaddress.ip_network(route.dst, strict=False)  # as Go's ParseCIDR: host bits allowed
            if route.gw is not None:
                ipaddress.ip_address(route.gw)
        except ValueError:
            raise DecodeFailure(f'{field}.routes: invalid route "{route.dst}" via "{route.gw}"') from None
    return result


def result_to_wire(result: Result, version: str) -> dict:
    """The result in the exact shape of spec `version`, empty fields omitted."""
    data = result.model_dump(exclude_none=True)
    data["cniVersion"] = version
    v11 = at_least(version, "1.1.0")
    for iface in data.get("interfaces", []):
        if not v11:
            for key in _V11_INTERFACE_FIELDS:
                iface.pop(key, None)
    for route in data.get("routes", []):
        if not v11:
            for key in _V11_ROUTE_FIELDS:
                route.pop(key, None)
    if not at_least(version, "1.0.0"):
        for ip in data.get("ips", []):
            ip["version"] = str(ipaddress.ip_interface(ip["address"]).version)
    dns = data.get("dns", {})
    for key in [k for k, v in dns.items() if v in ([], None, "")]:
        dns.pop(key)
    for key in ("interfaces", "ips", "routes", "dns"):
        if not data.get(key):
            data.pop(key, None)
    return data
