"""A VirtualMachineInstance's launcher Pod: what virt-controller makes for virt-launcher,
made for `netplug launch`.

- `k8s.v1.cni.cncf.io/networks`: the VMI's Multus secondary networks in interface order, each
  with KubeVirt's `pod<h>` interface name and the interface's MAC (`netplug.pod.plan_pod`
  decides them), and after each network a netplug binding serves, an entry for netplug's
  binding NAD with cni-args carrying the interface's spec (vmInterface, the VM's name and
  namespace, mac, ports, vmNetworkCIDR, dhcpOptions, hostname; `logicNetworkName` names the
  secondary network whose `pod<h>` the binding takes over). The binding NADs live in the
  controller's namespace (manifests/base/bindings.yaml): `netplug-masquerade` and
  `netplug-bridge-eth0` bind the pod network's eth0, `netplug-bridge` a secondary network.
  A Multus default network is `v1.multus-cni.io/default-network` instead.
- SR-IOV: one of the NAD's `k8s.v1.cni.cncf.io/resourceName` per network, in the compute
  container's requests and limits (what the device plugin allocates), and
  `KUBEVIRT_RESOURCE_NAME_<network>` naming it, for the launcher's PCIDEVICE_* fallback.
- The launcher sees its VMI and the pod's network-status through the downward API
  (`/etc/podinfo/vmi` from the `netplug.io/vmi` annotation, `/etc/podinfo/network-status`
  from Multus's annotation): it needs no API credentials (automountServiceAccountToken off).
- It reports back without credentials too: its readiness probe passes once the domain runs
  (the launcher's `ready` file), and its final reason is the container's termination message.

May import: netplug.model, netplug.pod, netplug.admission, netplug.guest, netplug.cluster.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field

from netplug.admission import review
from netplug.cluster.guest_dns import guest_dns
from netplug.cluster.launcher_disks import pod_disks
from netplug.cluster.objects import MANAGED_BY, meta, owner_reference, short_hash
from netplug.errors import InvalidField
from netplug.model.multus import (
    NETWORKS_ANNOTATION,
    STATUS_ANNOTATION,
    NetworkAttachmentDefinition,
    NetworkSelectionElement,
    render_networks,
)
from netplug.model.vm import VirtualMachineInstance, vmi_from_document
from netplug.pod import NodeNetwork, PodAttachment, plan_pod

#: netplug's image (Containerfile, scripts/build-image): the launcher's, as the manifests' own
IMAGE = "netplug:latest"
VMI_ANNOTATION = "netplug.io/vmi"
DEFAULT_NETWORK_ANNOTATION = "v1.multus-cni.io/default-network"
COMPUTE = "compute"
PODINFO_DIR = "/etc/podinfo"
STATE_DIR = "/var/run/netplug/vm"
#: libvirt's root and QEMU's home in the pod (the launcher's LIBVIRT_ROOT is under it)
LIBVIRT_DIR = "/run/netplug-launcher"
#: KubeVirt's qemu user: the launcher runs as it with no capabilities, and netplug's binding
#: NADs make the taps for it (tapUid, tapGid), so QEMU opens them as their owner
QEMU_UID = 107
#: a container of the launcher pod: no root, no capability, no privilege to gain
UNPRIVILEGED = {"runAsUser": QEMU_UID, "runAsGroup": QEMU_UID, "runAsNonRoot": True,
                "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]}}
#: the file the launcher keeps while its domain runs (the readiness probe reads it)
READY_FILE = "ready"
TERMINATION_LOG = "/dev/termination-log"
#: netplug's binding NADs, by (binding, is the pod's eth0)
BINDING_NADS = {("masquerade", True): "netplug-masquerade", ("bridge", True): "netplug-bridge-eth0",
                ("bridge", False): "netplug-bridge"}


@dataclass
class LauncherSettings:
    image: str = IMAGE
    #: where netplug's binding NADs are (the controller's namespace)
    binding_namespace: str = "netplug-system"
    #: what libvirt, QEMU and the launcher need beyond the guest's memory
    memory_overhead_mib: int = 192
    #: the cluster's DNS servers and domain (kubelet's clusterDNS, clusterDomain): the guest's
    #: DNS under dnsPolicy ClusterFirst (netplug.cluster.guest_dns)
    cluster_dns: list[str] = field(default_factory=list)
    cluster_domain: str = "cluster.local"
    #: a device plugin's resource that gives a container /dev/kvm (KubeVirt's virt-handler
    #: serves devices.kubevirt.io/kvm); None: no /dev/kvm, the guest runs under TCG emulation
    kvm_resource: str | None = None


def pod_name(vmi: dict) -> str:
    """virt-launcher-<vmi>-<5 hex digits of the VMI's uid>: one pod per VMI incarnation, so a
    restarted VMI never collides with its predecessor's terminating pod."""
    return f"virt-launcher-{meta(vmi)['name']}-{short_hash(meta(vmi).get('uid') or '')}"


def vmi_model(vmi: dict, base: str = "spec") -> VirtualMachineInstance:
    """The API model of a VMI document; errors name the field under `base` (where the VMI's
    spec sits for the user: "spec", or "spec.template.spec" when it is a VM's template)."""
    try:
        model = vmi_from_document(vmi)
    except InvalidField as exc:
        if base != "spec" and (exc.field == "spec" or exc.field.startswith("spec.")):
            raise InvalidField(base + exc.field[len("spec"):], exc.value, exc.message) from None
        raise
    return model.located_at(base)


def check(vmi: dict, nads: list[NetworkAttachmentDefinition], base: str = "spec") -> VirtualMachineInstance:
    """KubeVirt's network rules and netplug's (each Multus network names an existing NAD): the
    first broken one, naming the field under `base` and the value."""
    model = vmi_model(vmi, base)
    keys = {nad.key for nad in nads}
    denials = review(model, lambda namespace, name: f"{namespace}/{name}" in keys)
    if denials:
        raise InvalidField(denials[0].field, denials[0].value, denials[0].message)
    return model


def _binding_element(attachment: PodAttachment, model: VirtualMachineInstance,
                     settings: LauncherSettings, dns: dict | None) -> NetworkSelectionElement:
    entry = dict(attachment.binding or {})
    binding = entry.pop("binding")
    entry.pop("type", None)
    eth0 = attachment.ifname == "eth0"
    if not eth0:
        entry["logicNetworkName"] = entry["vmInterface"]  # the network's name is the interface's
    entry["hostname"] = (model.spec.model_extra or {}).get("hostname") or model.metadata.name
    if dns is not None:
        entry["dns"] = dns
    return NetworkSelectionElement(name=BINDING_NADS[(binding, eth0)], namespace=settings.binding_namespace,
                                   cni_args=entry)


def _env_name(network: str) -> str:
    return "KUBEVIRT_RESOURCE_NAME_" + re.sub(r"[^A-Za-z0-9_]", "_", network)


def launcher_pod(vmi: dict, nads: list[NetworkAttachmentDefinition], settings: LauncherSettings,
                 base: str = "spec") -> dict:
    """The launcher Pod manifest for `vmi` (a document with its uid), or InvalidConfig naming
    the field that keeps it from being made."""
    model = check(vmi, nads, base)
    spec = vmi.get("spec") or {}
    vmi_meta = meta(vmi)
    dns = guest_dns(spec, vmi_meta.get("namespace", "default"), settings.cluster_dns, settings.cluster_domain, base)
    disks = pod_disks(spec, base, settings.image, lambda: copy.deepcopy(UNPRIVILEGED))
    plan = plan_pod(model, nads, NodeNetwork())
    elements: list[NetworkSelectionElement] = []
    for attachment in plan.attachments:
        if attachment.selection is not None:
            elements.append(attachment.selection)
        if attachment.binding is not None:
            elements.append(_binding_element(attachment, model, settings, dns))

    by_key = {nad.key: nad for nad in nads}
    requests: dict[str, str] = {}
    env = []
    for iface in model.spec.domain.devices.interfaces:
        network = model.network(iface.name)
        if iface.state == "absent" or network is None or network.multus is None:
            continue
        nad = by_key[network.multus.nad_key(model.metadata.namespace)]
        if nad.resource_name:  # one device of the NAD's resource per network (virt-controller's rule)
            requests[nad.resource_name] = str(int(requests.get(nad.resource_name, "0")) + 1)  # nosec B113  # a dict of resource requests, not the HTTP library
            env.append({"name": _env_name(network.name), "value": nad.resource_name})
    if settings.kvm_resource:
        requests[settings.kvm_resource] = "1"
    limits = dict(requests)
    cpu = (model.spec.domain.resources.get("requests") or {}).get("cpu") or f"{100 * model.vcpus}m"
    requests |= {"memory": f"{model.memory_mib + settings.memory_overhead_mib}Mi", "cpu": str(cpu)}

    annotations = {"kubevirt.io/domain": vmi_meta["name"],
                   VMI_ANNOTATION: json.dumps({"apiVersion": vmi.get("apiVersion"), "kind": "VirtualMachineInstance",
                                               "metadata": {"name": vmi_meta["name"],
                                                            "namespace": vmi_meta.get("namespace", "default"),
                                                            "uid": vmi_meta.get("uid")},
                                               "spec": vmi.get("spec") or {}}, sort_keys=True)}
    if elements:
        annotations[NETWORKS_ANNOTATION] = render_networks(elements)
    if plan.default_network:
        annotations[DEFAULT_NETWORK_ANNOTATION] = plan.default_network
    labels = {**(vmi_meta.get("labels") or {}), "kubevirt.io": "virt-launcher",
              "kubevirt.io/created-by": vmi_meta.get("uid") or "", "vm.kubevirt.io/name": vmi_meta["name"],
              MANAGED_BY[0]: MANAGED_BY[1]}
    container = {
        "name": COMPUTE, "image": settings.image, "imagePullPolicy": "IfNotPresent",
        "command": ["netplug", "launch", f"{PODINFO_DIR}/vmi", "--state-dir", STATE_DIR,
                    "--network-status", f"{PODINFO_DIR}/network-status", "--termination-log", TERMINATION_LOG,
                    *disks.launch_args],
        # libvirt, unprivileged, keeps its caches under $HOME
        "env": env + [{"name": "HOME", "value": LIBVIRT_DIR}],
        "resources": {"requests": requests, **({"limits": limits} if limits else {})},
        # exec, not HTTP: a masquerade binding forwards the pod IP's ports to the guest
        "readinessProbe": {"exec": {"command": ["cat", f"{STATE_DIR}/{READY_FILE}"]},
                           "periodSeconds": 2, "failureThreshold": 3},
        "terminationMessagePath": TERMINATION_LOG, "terminationMessagePolicy": "FallbackToLogsOnError",
        # QEMU opens the taps the CNI made for it; libvirt runs unprivileged (its embedded
        # driver, no daemon): nothing in the pod needs root or a capability
        "securityContext": copy.deepcopy(UNPRIVILEGED),
        "volumeMounts": [{"name": "podinfo", "mountPath": PODINFO_DIR, "readOnly": True},
                         {"name": "state", "mountPath": STATE_DIR},
                         {"name": "libvirt", "mountPath": LIBVIRT_DIR},
                         {"name": "tun", "mountPath": "/dev/net/tun"}, *disks.mounts],
    }
    pod_spec = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": int(spec.get("terminationGracePeriodSeconds", 30)),
        "hostname": str(spec.get("hostname") or vmi_meta["name"])[:63],
        **({"initContainers": disks.init_containers} if disks.init_containers else {}),
        "containers": [container],
        **({"imagePullSecrets": disks.pull_secrets} if disks.pull_secrets else {}),
        "volumes": [
            {"name": "podinfo", "downwardAPI": {"items": [
                {"path": "vmi", "fieldRef": {"fieldPath": f"metadata.annotations['{VMI_ANNOTATION}']"}},
                {"path": "network-status", "fieldRef": {"fieldPath": f"metadata.annotations['{STATUS_ANNOTATION}']"}},
            ]}},
            {"name": "state", "emptyDir": {}},
            {"name": "libvirt", "emptyDir": {}},
            {"name": "tun", "hostPath": {"path": "/dev/net/tun", "type": "CharDevice"}},
            *disks.volumes,
        ],
    }
    for key in ("nodeSelector", "tolerations", "affinity", "priorityClassName", "schedulerName", "subdomain",
                "dnsPolicy", "dnsConfig"):
        if spec.get(key):
            pod_spec[key] = spec[key]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod_name(vmi), "namespace": vmi_meta.get("namespace", "default"),
                         "labels": labels, "annotations": annotations,
                         "ownerReferences": [owner_reference({"kind": "VirtualMachineInstance", **vmi})]},
            "spec": pod_spec}
