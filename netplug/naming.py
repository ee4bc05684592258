"""Every name netplug gives to something: links, nftables tables, state keys, and the paths
the agent uses on a node unless told otherwise.

Names follow KubeVirt so a user who knows KubeVirt finds their way: the pod network's
interface `eth0` gets bridge `k6t-eth0` and tap `tap0`; a secondary network N has pod
interface `pod<h>` with h = the first 11 hex digits of sha256(N), bridge `k6t-<h>`, tap
`tap<h>`. Any other pod interface name maps through a hash so the result always fits
IFNAMSIZ (15 characters).

May import: the standard library only.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

#: the agent's socket and state dir when neither NETPLUG_AGENT_SOCKET / --socket nor
#: NETPLUG_STATE_DIR / --state-dir names one. The shim (cni/netplug) has its own copy, as it
#: imports only the standard library; `netplug install-cni` writes the chosen ones into it.
DEFAULT_SOCKET = "/run/netplug/agent.sock"
DEFAULT_STATE_DIR = "/var/lib/netplug"

IFNAMSIZ = 15
HASH_LEN = 11
#: the pod network's interface in the pod (a Multus network's is pod<h>)
POD_NETWORK_INTERFACE = "eth0"

_ORDINAL = re.compile(r"^net(\d+)$")
_HASHED = re.compile(r"^pod([0-9a-f]{11})$")


def network_hash(network_name: str) -> str:
    return hashlib.sha256(network_name.encode()).hexdigest()[:HASH_LEN]


def pod_interface_for_network(network_name: str) -> str:
    """The pod interface KubeVirt asks Multus for, for secondary network `network_name`."""
    return "pod" + network_hash(network_name)


def _suffix(pod_interface: str) -> tuple[str, str]:
    """(bridge suffix, tap suffix) for a pod interface name."""
    if pod_interface == POD_NETWORK_INTERFACE:
        return "eth0", "0"
    if m := _HASHED.match(pod_interface):
        return m.group(1), m.group(1)
    if (m := _ORDINAL.match(pod_interface)) and len("k6t-" + pod_interface) <= IFNAMSIZ:
        return pod_interface, m.group(1)
    h = network_hash(pod_interface)
    return h, h


def bridge_name(pod_interface: str) -> str:
    return "k6t-" + _suffix(pod_interface)[0]


def tap_name(pod_interface: str) -> str:
    return "tap" + _suffix(pod_interface)[1]


def nic_name(pod_interface: str) -> str:
    """The pod interface's name once a bridge binding made it a bridge port (KubeVirt's)."""
    suffix = _suffix(pod_interface)[0]
    return suffix + "-nic" if len(suffix) <= IFNAMSIZ - 4 else network_hash(pod_interface) + "-nic"


@dataclass(frozen=True)
class InterfaceLinks:
    """The names of what a tap binding makes for one pod interface, and of that interface."""

    pod: str
    bridge: str
    tap: str
    #: the pod interface once a bridge binding made it a port of the bridge
    nic: str
    nft_table: str

    def from_the_guest(self) -> tuple[str, str, str, str]:
        """The links in the order a guest's frame passes them: tap, bridge, nic, pod interface."""
        return self.tap, self.bridge, self.nic, self.pod


def interface_links(pod_interface: str) -> InterfaceLinks:
    return InterfaceLinks(pod=pod_interface, bridge=bridge_name(pod_interface), tap=tap_name(pod_interface),
                          nic=nic_name(pod_interface), nft_table=nft_table_name(pod_interface))


def vf_staging_name(pci: str) -> str:
    """The name a VF's netdev has in the pod between its move there and its rename to the
    attachment's interface (a clash with a pod link then leaves it in the node)."""
    return "vf" + hashlib.sha256(pci.encode()).hexdigest()[:HASH_LEN]


def nft_table_name(pod_interface: str) -> str:
    """The nftables table netplug owns for one pod interface (one per family)."""
    return "netplug_" + re.sub(r"[^A-Za-z0-9_]", "_", pod_interface)


def attachment_tag(container_id: str, ifname: str) -> str:
    """A short stable tag for comments on rules and names of service files."""
    return hashlib.sha256(f"{container_id}/{ifname}".encode()).hexdigest()[:16]


def link_group(container_id: str, ifname: str) -> int:
    """The link group of the links an attachment creates, so that DEL deletes them in one
    kernel batch: from the attachment's tag, in [2^16, 2^31) (0 is every link's default)."""
    return (1 << 16) + int(attachment_tag(container_id, ifname), 16) % ((1 << 31) - (1 << 16))
