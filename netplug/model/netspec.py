"""NetSpec: the desired state of one attachment inside a pod netns, between planning and apply.

A binding returns a `NetSpec` (links, addresses, sysctls, a NAT plan, a DHCP plan); the
handler logs it, persists it in the attachment's state record and hands it to the apply
engine. Because the record holds the whole spec, DEL, CHECK and GC work from it after a
restart or a crash, without the original request. Observations of the pod (`PodInterface`)
are inputs to planning and live here too.

May import: pydantic, netplug.model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from netplug.model.netconf import PortSpec


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PodInterface(_Spec):
    """What the pod interface looks like before the binding touches it."""

    name: str
    mac: str
    mtu: int
    #: addresses as CIDR strings, e.g. "10.244.1.5/24"
    addresses: list[str] = Field(default_factory=list)


class LinkSpec(_Spec):
    name: str
    kind: Literal["bridge", "tap"]
    mac: str | None = None
    mtu: int | None = None
    master: str | None = None
    addresses: list[str] = Field(default_factory=list)
    # tap only
    owner_uid: int = 0
    owner_gid: int = 0
    multi_queue: bool = False


class SysctlSpec(_Spec):
    """A /proc/sys key inside the pod netns: the value to set and the one to restore on DEL."""

    key: str
    value: str
    restore: str | None = None


class NatPlan(_Spec):
    """NAT between the pod interface and the VM (masquerade binding), one IP family."""

    family: Literal["ip", "ip6"] = "ip"
    table: str
    pod_interface: str
    bridge: str
    vm_address: str
    gateway: str
    loopback: str = "127.0.0.1"
    #: empty: every inbound port goes to the VM
    ports: list[PortSpec] = Field(default_factory=list)
    #: put into every rule's comment, so rules can be told apart and found
    tag: str


class DhcpPlan(_Spec):
    """What the guest's DHCPv4 service on the in-pod bridge hands out."""

    interface: str
    vm_address: str
    prefixlen: int
    router: str | None = None
    dns_servers: list[str] = Field(default_factory=list)
    search_domains: list[str] = Field(default_factory=list)
    domain_name: str | None = None
    mtu: int | None = None
    hostname: str | None = None
    #: RFC 3442 classless static routes (destination CIDR, gateway); default route last
    classless_routes: list[tuple[str, str]] = Field(default_factory=list)
    #: when known, only this client gets the address
    vm_mac: str | None = None


class NetSpec(_Spec):
    netns: str
    links: list[LinkSpec] = Field(default_factory=list)
    sysctls: list[SysctlSpec] = Field(default_factory=list)
    nat: list[NatPlan] = Field(default_factory=list)
    dhcp: DhcpPlan | None = None
