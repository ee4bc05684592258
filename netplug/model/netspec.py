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


class RouteSpec(_Spec):
    dst: str
    gateway: str | None = None
    metric: int | None = None


class PodInterface(_Spec):
    """What the pod interface looks like before the binding touches it."""

    name: str
    mac: str
    mtu: int
    #: global addresses as CIDR strings, e.g. "10.244.1.5/24"
    addresses: list[str] = Field(default_factory=list)
    #: routes through the interface in the main table (the connected ones excluded)
    routes: list[RouteSpec] = Field(default_factory=list)


class LinkSpec(_Spec):
    """A link the attachment creates, or (kind "existing") the pod interface it takes over."""

    name: str
    kind: Literal["bridge", "tap", "ifb", "existing"]
    #: kind "existing": the link's name before the takeover (it is renamed to `name`)
    takeover: PodInterface | None = None
    mac: str | None = None
    mtu: int | None = None
    master: str | None = None
    #: bridge port learning (None: leave the kernel default)
    learning: bool | None = None
    addresses: list[str] = Field(default_factory=list)
    #: sysctls of this link, set right after it is created (e.g. no DAD before addresses)
    sysctls: dict[str, str] = Field(default_factory=dict)
    #: routes through this link, added once every link of the spec is in place
    routes: list[RouteSpec] = Field(default_factory=list)
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


class SpoofGuardPlan(_Spec):
    """Frames entering a bridge from the guest's `port` (its tap) must come from the guest's
    MAC and, when the binding knows them, from its addresses (ARP and neighbour discovery
    included)."""

    table: str
    port: str
    vm_mac: str
    #: the guest's IPv4 addresses
    ipv4: list[str] = Field(default_factory=list)
    #: the guest's IPv6 addresses (its /128s and the link-local address its MAC gives it)
    ipv6: list[str] = Field(default_factory=list)
    tag: str

    @property
    def family(self) -> str:
        return "bridge"


class ServiceFencePlan(_Spec):
    """The guest's router advertisements and DHCPv6 answers, sent by the pod's own bridge,
    must reach the guest only: none leaves through the bridge's `uplink` (the pod's veth) to
    the other pods of the network, which would take the pod for their router."""

    table: str
    uplink: str
    tag: str

    @property
    def family(self) -> str:
        return "bridge"


class DhcpPlan(_Spec):
    """What the guest's DHCP service on the in-pod bridge hands out (DHCPv4, DHCPv6 + RA)."""

    interface: str
    vm_address: str | None = None
    prefixlen: int | None = None
    router: str | None = None
    #: the subnet of `vm_address` when the bridge itself has no address in it (bridge binding)
    shared_network: str | None = None
    dns_servers: list[str] = Field(default_factory=list)
    search_domains: list[str] = Field(default_factory=list)
    domain_name: str | None = None
    mtu: int | None = None
    hostname: str | None = None
    #: RFC 3442 classless static routes (destination CIDR, gateway); default route last
    classless_routes: list[tuple[str, str]] = Field(default_factory=list)
    ntp_servers: list[str] = Field(default_factory=list)
    tftp_server: str | None = None
    boot_file: str | None = None
    private_options: list[tuple[int, str]] = Field(default_factory=list)
    #: when known, only this client gets the address
    vm_mac: str | None = None
    # IPv6: DHCPv6 hands out the address, router advertisements the on-link prefix and route
    vm_address6: str | None = None
    prefixlen6: int | None = None
    dns_servers6: list[str] = Field(default_factory=list)
    #: the advertising bridge is the guest's default router (False: on-link prefix only)
    ra_default_route: bool = True


class VfConfig(_Spec):
    """What is set on a VF through its PF (None: leave it as it is)."""

    mac: str | None = None
    vlan: int | None = None
    qos: int | None = None
    proto: int | None = None  # ethertype: 0x8100 802.1Q, 0x88a8 802.1ad
    spoofchk: bool | None = None
    trust: bool | None = None
    link_state: int | None = None  # 0 auto, 1 enable, 2 disable
    min_tx_rate: int | None = None
    max_tx_rate: int | None = None


class VfFacts(_Spec):
    """An SR-IOV VF as found in sysfs and as its PF reports it, before the binding touches it."""

    pci: str
    pf_pci: str
    pf: str
    index: int
    driver: str | None = None
    userspace: bool = False
    netdev: str | None = None
    current: VfConfig


class VfPlan(_Spec):
    """An SR-IOV VF given to the pod: configured through its PF, and with a kernel driver
    its netdev moved into the pod as `ifname`; restored and moved back on DEL."""

    pci: str
    pf: str
    index: int
    config: VfConfig
    restore: VfConfig
    #: the VF's netdev in the node netns (kernel driver), None for vfio-pci and friends
    netdev: str | None = None
    ifname: str
    #: kernel driver only: addresses (from IPAM) and MTU for the netdev in the pod
    addresses: list[str] = Field(default_factory=list)
    mtu: int | None = None
    device_info_file: str | None = None
    device_info: dict = Field(default_factory=dict)


class NetSpec(_Spec):
    netns: str
    #: which namespace `netns` named at ADD ("dev:inode"): a recycled /proc/<pid> path that
    #: names another namespace by DEL time is never touched
    netns_id: str | None = None
    links: list[LinkSpec] = Field(default_factory=list)
    #: the link group the created links are put in (netplug.naming.link_group): DEL deletes
    #: them in one kernel batch; None in records from before, whose links get one at DEL
    link_group: int | None = None
    sysctls: list[SysctlSpec] = Field(default_factory=list)
    nat: list[NatPlan] = Field(default_factory=list)
    spoof_guard: SpoofGuardPlan | None = None
    service_fence: ServiceFencePlan | None = None
    dhcp: DhcpPlan | None = None
    vf: VfPlan | None = None
