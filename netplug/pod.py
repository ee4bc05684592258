"""What a VM's launcher pod needs from the network, decided from the VM spec alone.

`plan_pod(vmi, nads, node)` gives the pod's attachments in order, as Multus makes them: the
pod network (the node's primary CNI, or the NAD of a Multus default network, with netplug's
binding chained for a masquerade or bridge interface), then each Multus network with
KubeVirt's `pod<h>` interface name and the NAD's conflist (netplug's bridge binding chained
for a bridge interface; an SR-IOV NAD's own plugin is netplug's sriov binding). Each
attachment also keeps its binding entry on its own (`binding`), for the controller, which
cannot chain into a cluster's CNI configs and gives Multus the entry as a delegate instead. It also checks the KubeVirt network rules a webhook would
(names match one to one, one pod network, masquerade only there, NADs exist), naming the
field. Used by the standalone runner and by `netplug render`.

May import: netplug.model, netplug.naming, netplug.errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netplug import naming
from netplug.admission import review
from netplug.errors import InvalidConfig, InvalidField
from netplug.guest import interface_queues
from netplug.model.multus import NetworkAttachmentDefinition, NetworkSelectionElement
from netplug.model.vm import Interface, Network, VirtualMachineInstance


@dataclass
class NodeNetwork:
    """The node's pod network (standalone: the reference bridge + host-local on netplug0,
    masquerading out of the machine's uplink)."""

    name: str = "podnet"
    bridge: str = "netplug0"
    subnet: str = "10.89.0.0/16"
    ipam_dir: str = f"{naming.DEFAULT_STATE_DIR}/ipam"
    cni_version: str = "1.0.0"

    def conflist(self) -> dict:
        return {"cniVersion": self.cni_version, "name": self.name, "plugins": [
            {"type": "bridge", "bridge": self.bridge, "isDefaultGateway": True, "ipMasq": True,
             "hairpinMode": True,
             "ipam": {"type": "host-local", "subnet": self.subnet, "dataDir": self.ipam_dir}},
        ]}


@dataclass
class PodAttachment:
    network: str  # "<namespace>/<name>", as network-status names it
    ifname: str
    conflist: dict
    default: bool = False
    selection: NetworkSelectionElement | None = None
    #: netplug's binding entry chained into `conflist` (None: the network has no netplug binding)
    binding: dict | None = None
    #: the NetworkAttachmentDefinition ("<namespace>/<name>") the attachment comes from
    nad: str | None = None


@dataclass
class PodPlan:
    attachments: list[PodAttachment] = field(default_factory=list)

    @property
    def selections(self) -> list[NetworkSelectionElement]:
        """The pod's k8s.v1.cni.cncf.io/networks annotation."""
        return [a.selection for a in self.attachments if a.selection is not None]

    @property
    def default_network(self) -> str | None:
        """The NAD of a Multus default network (Multus's v1.multus-cni.io/default-network)."""
        return next((a.nad for a in self.attachments if a.default and a.nad), None)


def _binding_entry(vmi: VirtualMachineInstance, iface: Interface, network: Network) -> dict:
    entry: dict = {"type": "netplug", "binding": iface.binding, "vmInterface": iface.name,
                   "vmName": vmi.metadata.name, "vmNamespace": vmi.metadata.namespace}
    if iface.macAddress:
        entry["mac"] = iface.macAddress
    if iface.dhcpOptions is not None:
        entry["dhcpOptions"] = iface.dhcpOptions.model_dump(exclude_defaults=True)
    if (queues := interface_queues(vmi, iface)) is not None:
        entry["queues"] = queues  # networkInterfaceMultiqueue: a tap the guest's queues can open
    if iface.binding == "masquerade":
        if iface.ports:
            entry["ports"] = [p.model_dump(exclude_none=True) for p in iface.ports]
        if network.pod is not None:
            for key in ("vmNetworkCIDR", "vmIPv6NetworkCIDR"):
                if getattr(network.pod, key):
                    entry[key] = getattr(network.pod, key)
    return entry


def validate_networks(vmi: VirtualMachineInstance) -> None:
    """KubeVirt's admission rules (netplug.admission): the first broken one, naming the field."""
    denials = review(vmi)
    if denials:
        first = denials[0]
        raise InvalidField(first.field, first.value, first.message)


def plan_pod(vmi: VirtualMachineInstance, nads: list[NetworkAttachmentDefinition], node: NodeNetwork) -> PodPlan:
    validate_networks(vmi)
    by_key = {nad.key: nad for nad in nads}
    plan = PodPlan()
    namespace = vmi.metadata.namespace
    for iface in vmi.spec.domain.devices.interfaces:
        if iface.state == "absent":
            continue
        network = vmi.network(iface.name)
        assert network is not None
        if network.pod is not None:
            conflist = node.conflist()
            entry = _binding_entry(vmi, iface, network)
            conflist["plugins"].append(entry)
            plan.attachments.insert(0, PodAttachment(network=f"{namespace}/{conflist['name']}", ifname="eth0",
                                                     conflist=conflist, default=True, binding=entry))
            continue
        assert network.multus is not None
        key = network.multus.nad_key(namespace)
        nad_namespace, _, nad_name = key.partition("/")
        nad = by_key.get(key)
        if nad is None:
            where = f"{vmi.spec_path}.networks[{vmi.spec.networks.index(network)}].multus.networkName"
            raise InvalidConfig(f'{where}: NetworkAttachmentDefinition "{key}" not found (give it with --nad)')
        conflist = nad.conflist()
        entry = None
        if iface.binding == "bridge":
            entry = _binding_entry(vmi, iface, network)
            conflist["plugins"].append(entry)
        if network.multus.default:  # the pod's primary network, eth0, instead of the node's
            plan.attachments.insert(0, PodAttachment(network=key, ifname="eth0", conflist=conflist, default=True,
                                                     binding=entry, nad=key))
            continue
        ifname = naming.pod_interface_for_network(network.name)
        selection = NetworkSelectionElement(name=nad_name, namespace=nad_namespace, interface=ifname,
                                            mac=iface.macAddress.lower() if iface.macAddress else None)
        plan.attachments.append(PodAttachment(network=key, ifname=ifname, conflist=conflist, selection=selection,
                                              binding=entry, nad=key))
    if not any(a.default for a in plan.attachments):
        # a VM without a pod network interface still has a pod with eth0
        plan.attachments.insert(0, PodAttachment(network=f"{namespace}/{node.name}", ifname="eth0",
                                                 conflist=node.conflist(), default=True))
    return plan
