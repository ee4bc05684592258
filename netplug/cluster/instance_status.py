"""A VirtualMachineInstance's status, read from its launcher Pod.

What the controller sees of the pod, and what it means (KubeVirt's phases):

| the pod                                              | VMI phase   |
| ---                                                  | ---         |
| none yet                                             | Pending     |
| Pending (not scheduled, or containers starting)      | Scheduling  |
| Running, the compute container not ready             | Scheduled   |
| Running, the compute container ready (domain runs)   | Running     |
| Succeeded, or the launcher exited 0                  | Succeeded   |
| Failed, or the launcher exited non-zero              | Failed, with the launcher's termination message |
| gone while the VMI was being deleted                 | Succeeded (stopped) |
| gone otherwise, after it existed                     | Failed      |

A finished phase never changes, and Running stays Running while the container runs (a failing
probe then only clears the Ready condition). The launcher's readiness is its report that the
domain runs: the compute container's readiness probe reads the launcher's `ready` file.

`interfaces[]` (without a guest agent, as KubeVirt reports them): each VM interface with the
pod interface it uses (`podInterfaceName`), the addresses the pod has on that network (the
Multus network-status entry of that interface, or the pod IPs for eth0), the guest's MAC (the
one the launcher gives the domain: the interface's `macAddress`, else the stable MAC derived
from the VM's identity — the binding's own policy — or, for SR-IOV, the VF's MAC from the
network-status) and `infoSource`: `domain` once the domain runs, plus `multus-status` when
Multus reported the network. Conditions: Ready, PodScheduled (the pod's, so an unschedulable
pod shows), and Synchronized=False with a reason when the controller cannot make the pod or
the image cannot be pulled.

May import: netplug.model, netplug.bindings, netplug.guest, netplug.naming, netplug.cluster.
"""

from __future__ import annotations

import datetime as dt

from netplug import naming
from netplug.bindings import DOMAIN_DEVICES
from netplug.bindings.base import WiredInterface
from netplug.cluster.launcher_pod import COMPUTE
from netplug.cluster.objects import FINAL_PHASES, deleting, meta, set_condition, timestamp
from netplug.errors import InvalidConfig
from netplug.guest import pod_interface_of
from netplug.model.domain import DomainInterface
from netplug.model.multus import STATUS_ANNOTATION, NetworkStatus, parse_network_status
from netplug.model.vm import VirtualMachineInstance

IMAGE_PULL_REASONS = ("ErrImagePull", "ImagePullBackOff")


def compute_status(pod: dict | None) -> dict:
    statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or []
    return next((c for c in statuses if c.get("name") == COMPUTE), {})


def _init_statuses(pod: dict | None) -> list[dict]:
    """The init containers' statuses: the copiers of containerDisk images (launcher_disks)."""
    return ((pod or {}).get("status") or {}).get("initContainerStatuses") or []


def _failed_init(pod: dict | None) -> str:
    """Why an init container failed (a containerDisk image without its disk, say), or ""."""
    for init in _init_statuses(pod):
        terminated = (init.get("state") or {}).get("terminated") or {}
        if terminated.get("exitCode"):
            detail = (terminated.get("message") or terminated.get("reason") or "").strip()
            return f"init container {init.get('name')} exited with code {terminated['exitCode']}" + (
                f": {detail}" if detail else "")
    return ""


def _image_pull_problem(pod: dict | None) -> dict:
    """The waiting state of the compute container or an init container (a containerDisk's
    image) that cannot pull its image, or {}."""
    for container in [compute_status(pod), *_init_statuses(pod)]:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in IMAGE_PULL_REASONS:
            return waiting
    return {}


def phase_of(vmi: dict, pod: dict | None) -> tuple[str, str]:
    """(phase, message) of the VMI given its pod (None: there is none)."""
    old = (vmi.get("status") or {}).get("phase") or "Pending"
    if old in FINAL_PHASES:
        return old, (vmi.get("status") or {}).get("message", "")
    if pod is None:
        if deleting(vmi):
            return "Succeeded", ""
        if old in ("Scheduling", "Scheduled", "Running"):
            return "Failed", "the launcher pod disappeared"
        return "Pending", ""
    status = pod.get("status") or {}
    compute = compute_status(pod)
    terminated = (compute.get("state") or {}).get("terminated")
    message = ((terminated or {}).get("message") or status.get("message") or "").strip()
    if status.get("phase") == "Succeeded" or (terminated and terminated.get("exitCode") == 0):
        return "Succeeded", ""
    if status.get("phase") == "Failed" or terminated:
        code = (terminated or {}).get("exitCode")
        return "Failed", message or (f"the launcher exited with code {code}" if code is not None else
                                     _failed_init(pod) or status.get("reason", "the launcher pod failed"))
    if status.get("phase") == "Running":
        if compute.get("ready") or old == "Running":
            return "Running", ""
        return "Scheduled", ""
    return "Scheduling", ""


def _network_statuses(pod: dict | None) -> list[NetworkStatus]:
    text = (meta(pod).get("annotations") or {}).get(STATUS_ANNOTATION, "")
    try:
        return parse_network_status(text) if text.strip() else []
    except InvalidConfig:
        return []  # Multus's own annotation; a broken one only costs the addresses


def interfaces(model: VirtualMachineInstance, pod: dict | None, running: bool) -> list[dict]:
    statuses = _network_statuses(pod)
    by_interface = {}
    for entry in statuses:
        by_interface.setdefault(entry.interface, entry)
    default = next((s for s in statuses if s.default), None)
    pod_ips = [entry.get("ip") for entry in ((pod or {}).get("status") or {}).get("podIPs") or [] if entry.get("ip")]
    found = []
    for iface in model.spec.domain.devices.interfaces:
        network = model.network(iface.name)
        if iface.state == "absent" or network is None or iface.binding is None:
            continue
        pod_iface = pod_interface_of(network)
        if pod_iface == "eth0":
            entry = default or by_interface.get("eth0")
        else:  # the network's own entry: a binding delegate on the same pod interface reports it too
            own = network.multus.nad_key(model.metadata.namespace) if network.multus else None
            entry = next((s for s in statuses if s.interface == pod_iface and s.name == own),
                         by_interface.get(pod_iface))
        sources = (["domain"] if running else []) + (["multus-status"] if network.multus and entry else [])
        if not sources:
            continue
        addresses = entry.ips if entry and entry.ips else (pod_ips if pod_iface == "eth0" else [])
        addresses = [a.split("/")[0] for a in addresses if not a.lower().startswith("fe80:")]
        if iface.binding == "sriov":  # the VF's MAC, as the SR-IOV CNI set it
            mac = entry.mac if entry else None
        else:  # the MAC the launcher gives the domain: the binding's own policy decides it
            device = DOMAIN_DEVICES[iface.binding](model, iface, WiredInterface(
                name=iface.name, binding=iface.binding, tap=naming.tap_name(pod_iface)), None)
            mac = device.mac if isinstance(device, DomainInterface) else None
        status = {"name": iface.name, "podInterfaceName": pod_iface, "infoSource": ", ".join(sources)}
        if mac:
            status["mac"] = mac.lower()
        if addresses:
            status["ipAddress"], status["ipAddresses"] = addresses[0], addresses
        found.append(status)
    return found


def vmi_status(vmi: dict, model: VirtualMachineInstance | None, pod: dict | None, now: dt.datetime,
               error: tuple[str, str] | None = None) -> dict:
    """The VMI's whole status. `model` is None when the VMI's spec cannot be read (then no
    interfaces); `error` (reason, message) is why the controller could not make the pod."""
    old = vmi.get("status") or {}
    phase, message = phase_of(vmi, pod)
    status: dict = {"phase": phase}
    if message:
        status["message"] = message
    if phase == "Failed":
        status["reason"] = "LauncherFailed" if pod is not None else "PodVanished"
    transitions = list(old.get("phaseTransitionTimestamps") or [])
    if not transitions or transitions[-1].get("phase") != phase:
        transitions.append({"phase": phase, "phaseTransitionTimestamp": timestamp(now)})
    status["phaseTransitionTimestamps"] = transitions
    pod_spec = (pod or {}).get("spec") or {}
    if pod_spec.get("nodeName"):
        status["nodeName"] = pod_spec["nodeName"]
        if meta(pod).get("uid"):
            status["activePods"] = {meta(pod)["uid"]: pod_spec["nodeName"]}
    elif old.get("nodeName"):
        status["nodeName"] = old["nodeName"]
    compute = compute_status(pod)
    if model is not None:
        found = interfaces(model, pod, phase == "Running")
        if found or phase not in FINAL_PHASES:
            status["interfaces"] = found
        else:
            status["interfaces"] = old.get("interfaces") or []
    previous = old.get("conditions") or []
    conditions: list[dict] = []
    pod_conditions = {c.get("type"): c for c in ((pod or {}).get("status") or {}).get("conditions") or []}
    ready = phase == "Running" and bool(compute.get("ready")) and not deleting(pod)
    if ready:
        conditions = set_condition(conditions, "Ready", "True", now, previous=previous)
    elif pod is None:
        conditions = set_condition(conditions, "Ready", "False", now, "PodNotExists",
                                   "the launcher pod does not exist", previous)
    elif deleting(pod):
        conditions = set_condition(conditions, "Ready", "False", now, "PodTerminating",
                                   "the launcher pod is being deleted", previous)
    else:
        pod_ready = pod_conditions.get("Ready") or {}
        conditions = set_condition(conditions, "Ready", "False", now, pod_ready.get("reason") or "LauncherNotReady",
                                   pod_ready.get("message") or "the domain is not running yet", previous)
    scheduled = pod_conditions.get("PodScheduled")
    if scheduled:
        conditions = set_condition(conditions, "PodScheduled", scheduled.get("status", "Unknown"), now,
                                   scheduled.get("reason", ""), scheduled.get("message", ""), previous)
    waiting = _image_pull_problem(pod)
    if error:
        conditions = set_condition(conditions, "Synchronized", "False", now, error[0], error[1], previous)
    elif waiting.get("reason") in IMAGE_PULL_REASONS:
        conditions = set_condition(conditions, "Synchronized", "False", now, waiting["reason"],
                                   waiting.get("message", ""), previous)
    status["conditions"] = conditions
    return status
