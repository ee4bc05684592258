"""Binding configuration: what a user (or the controller) writes into the netplug CNI config.

`{"type": "netplug", "binding": "masquerade", "vmInterface": NAME, ...}`, as a plugin chained
after the primary CNI or as its own Multus delegate. Field names follow KubeVirt (`ports`,
`vmNetworkCIDR`, `macAddress` is `mac` as in the CNI `mac` capability). One model per
binding; `BINDING_MODELS` maps the `binding` key to its model: the one dispatch point.

May import: pydantic, netaddr, netplug.errors, netplug.model.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import ClassVar, Literal

import netaddr
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from netplug.model.domain import PciAddress

IFNAME_MAX = 15


def validate_ifname(value: str) -> str:
    """The Go skel's interface name rules: 1-15 chars, not . or .., no / : or whitespace."""
    try:
        value.encode()
    except UnicodeEncodeError:  # bytes from the environment that are not UTF-8
        shown = value.encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
        raise ValueError(f'interface name "{shown}" is not UTF-8') from None
    if not value or len(value.encode()) > IFNAME_MAX:
        raise ValueError(f'interface name "{value}" must be 1 to {IFNAME_MAX} bytes')
    if value in (".", "..") or any(c in value for c in "/:") or any(c.isspace() for c in value):
        raise ValueError(f'interface name "{value}" may not be "." or ".." or contain "/", ":" or spaces')
    return value


def validate_unicast_mac(value: str) -> str:
    try:
        mac = netaddr.EUI(value, version=48)
    except (netaddr.AddrFormatError, TypeError, ValueError):
        raise ValueError(f'"{value}" is not a MAC address') from None
    if int(mac.words[0]) & 1:
        raise ValueError(f'"{value}" is a multicast MAC address; a NIC needs a unicast one')
    if int(mac) == 0:
        raise ValueError(f'"{value}" is the all-zero MAC address')
    mac.dialect = netaddr.mac_unix_expanded
    return str(mac).lower()


class _Conf(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


#: a DNS domain name as resolv.conf's `search` and DHCP options 15 and 119 carry it
DOMAIN_NAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)*"
                         r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.?$")


class DnsConf(_Conf):
    """The CNI config's `dns` (the spec's nameservers, domain, search, options): the DNS the
    guest gets over DHCP, instead of what the `resolvConf` file says. The controller sets it in
    cni-args from the launcher pod's DNS policy (the cluster's DNS and search domains). Limits
    as kubelet's for a pod: 3 nameservers, 32 search domains."""

    nameservers: list[str] = Field(default_factory=list, max_length=3)
    domain: str | None = None
    search: list[str] = Field(default_factory=list, max_length=32)
    #: resolver options (ndots, ...): no DHCP option carries them; accepted as CNI has them
    options: list[str] = Field(default_factory=list, max_length=32)

    @field_validator("nameservers")
    @classmethod
    def _addresses(cls, servers: list[str]) -> list[str]:
        found = []
        for server in servers:
            try:
                address = str(ipaddress.ip_address(server))
            except ValueError:
                raise ValueError(f'nameserver "{server}" is not an IP address') from None
            if address not in found:
                found.append(address)
        return found

    @field_validator("search")
    @classmethod
    def _domains(cls, domains: list[str]) -> list[str]:
        for domain in domains:
            cls._domain(domain)
        return list(dict.fromkeys(d.rstrip(".") for d in domains))

    @field_validator("domain")
    @classmethod
    def _domain(cls, domain: str | None) -> str | None:
        if domain is not None and not DOMAIN_NAME.match(domain):
            raise ValueError(f'"{domain}" is not a DNS domain name')
        return None if domain is None else domain.rstrip(".")

    @field_validator("options")
    @classmethod
    def _printable(cls, options: list[str]) -> list[str]:
        for option in options:
            if not option or not option.isascii() or not option.isprintable() or " " in option:
                raise ValueError(f'resolver option "{option}" must be one printable ASCII word')
        return options


class PortSpec(_Conf):
    """A port forwarded into the VM (KubeVirt `interfaces[].ports[]`)."""

    name: str | None = None
    protocol: Literal["TCP", "UDP"] = "TCP"
    port: int = Field(ge=1, le=65535)

    @field_validator("protocol", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class PrivateDhcpOption(_Conf):
    option: int = Field(ge=224, le=254)
    value: str

    @field_validator("value")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value or not value.isascii() or not value.isprintable() or any(c in value for c in '"\\'):
            raise ValueError(f'"{value}" must be printable ASCII without quotes or backslashes')
        return value


class DhcpOptions(_Conf):
    """KubeVirt `interfaces[].dhcpOptions`."""

    bootFileName: str | None = None
    tftpServerName: str | None = None
    ntpServers: list[str] = Field(default_factory=list)
    privateOptions: list[PrivateDhcpOption] = Field(default_factory=list)

    @field_validator("bootFileName", "tftpServerName")
    @classmethod
    def _plain(cls, value: str | None) -> str | None:
        if value is not None and (not value or not value.isascii() or not value.isprintable()
                                  or any(c in value for c in '",\\')):
            raise ValueError(f'"{value}" must be printable ASCII without quotes, commas or backslashes')
        return value

    @field_validator("ntpServers")
    @classmethod
    def _ipv4(cls, servers: list[str]) -> list[str]:
        for server in servers:
            try:
                ipaddress.IPv4Address(server)
            except ValueError:
                raise ValueError(f'NTP server "{server}" must be an IPv4 address') from None
        return servers

    @field_validator("privateOptions")
    @classmethod
    def _unique(cls, options: list[PrivateDhcpOption]) -> list[PrivateDhcpOption]:
        codes = [o.option for o in options]
        if len(set(codes)) != len(codes):
            raise ValueError(f"private option codes must be unique, got {codes}")
        return options


class BindingBase(_Conf):
    #: chained after the plugin that made the pod interface (prevResult expected), or the
    #: plugin that makes the pod interface itself (SR-IOV)
    CHAINED: ClassVar[bool] = True

    # Standard CNI keys that reach the binding model.
    cniVersion: str
    name: str = ""
    type: str = "netplug"
    ipam: dict | None = None
    #: the guest's DNS (DnsConf); tap bindings serve it instead of resolvConf's
    dns: DnsConf | None = None

    binding: str
    #: the VM interface (spec.domain.devices.interfaces[].name) this attachment serves
    vmInterface: str | None = None
    #: the VM's identity: with it, the guest's MAC is derived stably when `mac` is not given
    vmName: str | None = None
    vmNamespace: str | None = None
    #: the pod interface the binding takes over; defaults to CNI_IFNAME
    podInterface: str | None = None
    #: the guest's MAC (KubeVirt macAddress)
    mac: str | None = None
    #: MTU of the bridge, tap and the guest; defaults to the pod interface's MTU
    mtu: int | None = Field(default=None, ge=576, le=65535)

    @field_validator("podInterface")
    @classmethod
    def _ifname(cls, value: str | None) -> str | None:
        return None if value is None else validate_ifname(value)

    @field_validator("mac")
    @classmethod
    def _mac(cls, value: str | None) -> str | None:
        return None if value is None else validate_unicast_mac(value)


class TapBindingBase(BindingBase):
    """Bindings that give the guest a tap on an in-pod bridge and serve its DHCP."""

    #: owner of the tap, so an unprivileged QEMU can open it (KubeVirt uses 107)
    tapUid: int = Field(default=0, ge=0, le=2**32 - 2)
    tapGid: int = Field(default=0, ge=0, le=2**32 - 2)
    #: tap queues; above 1 the tap is created multi-queue (networkInterfaceMultiqueue)
    queues: int = Field(default=1, ge=1, le=256)
    #: where the guest's DNS servers and search domains come from
    resolvConf: str = "/etc/resolv.conf"
    #: DHCP option 12; defaults to the pod name from CNI_ARGS K8S_POD_NAME
    hostname: str | None = None
    dhcpOptions: DhcpOptions | None = None

    @field_validator("resolvConf")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or "\x00" in value or ".." in value.split("/"):
            raise ValueError(f'"{value}" must be an absolute path without ".."')
        return value

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, value: str | None) -> str | None:
        if value is None:
            return None
        labels = value.split(".")
        if len(value) > 253 or not all(
            0 < len(label) <= 63 and label.replace("-", "").isalnum() and label.isascii()
            for label in labels
        ):
            raise ValueError(f'"{value}" is not a valid host name')
        return value


def _network(value: str, version: int, smallest: int, largest: int = 0) -> str:
    cls = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
    try:
        net = cls(value, strict=True)
    except ValueError as exc:
        raise ValueError(f'"{value}" is not an IPv{version} network CIDR ({exc})') from None
    if net.prefixlen > smallest:
        raise ValueError(f'"{value}" is too small: the VM network needs a gateway and a VM address '
                         f"(at most /{smallest})")
    if net.prefixlen < largest:
        raise ValueError(f'"{value}" is too large: DHCPv6 serves prefixes of /{largest} or longer')
    return str(net)


class MasqueradeConf(TapBindingBase):
    """NAT binding on the pod network (KubeVirt `masquerade: {}`)."""

    binding: Literal["masquerade"]
    ports: list[PortSpec] = Field(default_factory=list)
    vmNetworkCIDR: str = "10.0.2.0/24"
    vmIPv6NetworkCIDR: str = "fd10:0:2::/120"

    @field_validator("vmNetworkCIDR")
    @classmethod
    def _cidr(cls, value: str) -> str:
        return _network(value, 4, 30)

    @field_validator("vmIPv6NetworkCIDR")
    @classmethod
    def _cidr6(cls, value: str) -> str:
        return _network(value, 6, 126, 64)

    @field_validator("ports")
    @classmethod
    def _unique_ports(cls, ports: list[PortSpec]) -> list[PortSpec]:
        seen: set[tuple[str, int]] = set()
        for port in ports:
            key = (port.protocol, port.port)
            if key in seen:
                raise ValueError(f"port {port.protocol}/{port.port} is listed twice")
            seen.add(key)
        return ports


class BridgeConf(TapBindingBase):
    """L2 binding (KubeVirt `bridge: {}`): the guest takes over the pod interface's identity."""

    binding: Literal["bridge"]
    #: drop frames from the guest with another MAC or IP than its own (nftables, bridge family)
    spoofCheck: bool = True

    @field_validator("ipam")
    @classmethod
    def _no_ipam(cls, value: dict | None) -> dict | None:
        # the guest takes over the pod interface's own addresses: an allocation of netplug's
        # would be an address nobody uses, so the network's own plugin does the IPAM
        if value is not None:
            raise ValueError("the bridge binding hands the guest the pod interface's own addresses: "
                             "give ipam to the plugin that makes the pod interface, not to netplug")
        return value


#: where Multus keeps per-attachment device-info files (NPWG device-info spec)
DEVINFO_DIR = "/var/run/k8s.cni.cncf.io/devinfo/cni"


def devinfo_dir() -> str:
    """The per-attachment device-info directory (NETPLUG_DEVINFO_DIR overrides, for tests)."""
    return os.environ.get("NETPLUG_DEVINFO_DIR", DEVINFO_DIR)


class SriovConf(BindingBase):
    """SR-IOV binding (KubeVirt `sriov: {}`), with sriov-cni's keys: a VF set up through its PF."""

    CHAINED: ClassVar[bool] = False

    binding: Literal["sriov"]
    #: the VF's PCI address (Multus injects it from the device plugin)
    deviceID: str
    vlan: int = Field(default=0, ge=0, le=4094)
    vlanQoS: int = Field(default=0, ge=0, le=7)
    vlanProto: Literal["802.1q", "802.1Q", "802.1ad", "802.1AD"] = "802.1q"
    spoofchk: Literal["on", "off"] | None = None
    trust: Literal["on", "off"] | None = None
    link_state: Literal["auto", "enable", "disable"] | None = None
    min_tx_rate: int | None = Field(default=None, ge=0)
    max_tx_rate: int | None = Field(default=None, ge=0)
    #: where Multus wants the device-info file (capability CNIDeviceInfoFile)
    CNIDeviceInfoFile: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SriovConf:
        if self.vlan == 0 and (self.vlanQoS or self.vlanProto.lower() != "802.1q"):
            raise ValueError("vlanQoS and vlanProto need a vlan")
        if self.min_tx_rate and self.max_tx_rate and self.min_tx_rate > self.max_tx_rate:
            raise ValueError(f"min_tx_rate {self.min_tx_rate} is above max_tx_rate {self.max_tx_rate}")
        return self

    @field_validator("deviceID")
    @classmethod
    def _pci(cls, value: str) -> str:
        PciAddress.parse(value)
        return value

    @field_validator("CNIDeviceInfoFile")
    @classmethod
    def _devinfo_path(cls, value: str | None) -> str | None:
        if value is None:
            return None
        base = devinfo_dir().rstrip("/") + "/"
        if not value.startswith(base) or ".." in value.split("/") or "\x00" in value:
            raise ValueError(f'"{value}" must be a file under {base} (where Multus keeps device-info)')
        return value


#: binding name -> its config model; the one place that lists the bindings
BINDING_MODELS: dict[str, type[BindingBase]] = {
    "masquerade": MasqueradeConf,
    "bridge": BridgeConf,
    "sriov": SriovConf,
}
