"""A VirtualMachine's life, as KubeVirt's virt-controller runs it: whether its
VirtualMachineInstance should be started or stopped, the VMI it starts, and the VM's status.

Run strategies (`spec.running: true` is Always, `false` or neither is Halted):

- Always: a VMI always exists; a finished (Succeeded or Failed) VMI is deleted and a new one
  started, after a growing delay when VMIs keep failing before they ever ran (CrashLoopBackOff);
- RerunOnFailure: a finished VMI is deleted; a new one is started only if it Failed (the
  controller adds a Start request to the VM's status) or when the VM first gets this strategy;
- Manual: only `status.stateChangeRequests` start (`{action: Start}`) or stop
  (`{action: Stop, uid}`) the VMI (`kubectl patch vm NAME --subresource=status --type=merge
  -p '{"status":{"stateChangeRequests":[{"action":"Start"}]}}'`, what `virtctl start` does);
- Halted: no VMI; an existing one is deleted;
- Once: a VMI is started when there is none, and never restarted.

`printable_status` follows KubeVirt's order of precedence: Terminating, Stopping, Running,
ErrorUnschedulable, ErrImagePull, ImagePullBackOff, Starting, CrashLoopBackOff, Stopped, Unknown.

May import: netplug.cluster.objects, netplug.errors.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass

from netplug.cluster.objects import (
    FINAL_PHASES,
    FINALIZER,
    KUBEVIRT,
    condition,
    condition_true,
    deleting,
    meta,
    owner_reference,
    parse_time,
    set_condition,
    timestamp,
)
from netplug.errors import InvalidConfig, InvalidField

RUN_STRATEGIES = ("Always", "RerunOnFailure", "Manual", "Halted", "Once")
#: a VMI that keeps failing before it ever ran is restarted after 10 s, 20 s, 40 s ... 300 s
START_BACKOFF_BASE = 10.0
START_BACKOFF_MAX = 300.0
#: KubeVirt's default binding for the interface it adds to a VM that names no networks
DEFAULT_BINDING = "bridge"


@dataclass
class Action:
    """What the controller does to the VM's VMI in this pass."""

    kind: str  # "start", "stop" or "none"
    why: str = ""
    #: RerunOnFailure: the stopped VMI failed, start a new one once it is gone
    restart: bool = False
    #: come back after this many seconds (start backoff)
    requeue_after: float | None = None


def run_strategy(vm: dict) -> str:
    spec = vm.get("spec") or {}
    running, strategy = spec.get("running"), spec.get("runStrategy")
    if running is not None and strategy is not None:
        raise InvalidField("spec.runStrategy", strategy, "spec.running and spec.runStrategy are mutually exclusive")
    if strategy is not None:
        if strategy not in RUN_STRATEGIES:
            raise InvalidField("spec.runStrategy", strategy, f"must be one of {list(RUN_STRATEGIES)}")
        return strategy
    return "Always" if running else "Halted"


def _phase(vmi: dict | None) -> str:
    return ((vmi or {}).get("status") or {}).get("phase") or ""


def _requests(vm: dict) -> list[dict]:
    return (vm.get("status") or {}).get("stateChangeRequests") or []


def has_start_request(vm: dict) -> bool:
    requests = _requests(vm)
    return bool(requests) and requests[0].get("action") == "Start"


def has_stop_request_for(vm: dict, vmi: dict | None) -> bool:
    requests = _requests(vm)
    if vmi is None or not requests or requests[0].get("action") != "Stop":
        return False
    uid = requests[0].get("uid")
    return uid is None or uid == meta(vmi).get("uid")


def start_backoff_left(vm: dict, now: dt.datetime) -> float:
    failure = (vm.get("status") or {}).get("startFailure") or {}
    retry = parse_time(failure.get("retryAfterTimestamp"))
    return max(0.0, (retry - now).total_seconds()) if retry else 0.0


def decide(vm: dict, vmi: dict | None, now: dt.datetime) -> Action:
    """Start, stop or leave the VM's VMI. `vmi` is the VM's own (same name, owned by it)."""
    strategy = run_strategy(vm)
    if deleting(vm):
        return Action("stop", "the VM is being deleted") if vmi is not None and not deleting(vmi) else Action("none")
    if vmi is not None and deleting(vmi):
        return Action("none", "waiting for the VMI to go")
    final = _phase(vmi) in FINAL_PHASES

    def start(why: str) -> Action:
        left = start_backoff_left(vm, now)
        if left > 0:
            return Action("none", f"start failure backoff: {left:.0f}s left", requeue_after=left)
        return Action("start", why)

    if strategy == "Always":
        if vmi is None:
            return start("runStrategy Always")
        if has_stop_request_for(vm, vmi) or final:
            return Action("stop", f"restarting a VMI in phase {_phase(vmi) or 'Pending'}")
        return Action("none")
    if strategy == "RerunOnFailure":
        if vmi is None:
            if has_start_request(vm) or (vm.get("status") or {}).get("runStrategy") != strategy:
                return start("runStrategy RerunOnFailure")
            return Action("none")
        if has_stop_request_for(vm, vmi) or final:
            return Action("stop", f"the VMI is {_phase(vmi)}", restart=_phase(vmi) == "Failed")
        return Action("none")
    if strategy == "Manual":
        if vmi is None:
            return Action("start", "a start request") if has_start_request(vm) else Action("none")
        return Action("stop", "a stop request") if has_stop_request_for(vm, vmi) else Action("none")
    if strategy == "Once":
        return Action("start", "runStrategy Once") if vmi is None else Action("none")
    return Action("stop", "runStrategy Halted") if vmi is not None else Action("none")


def desired_vmi(vm: dict, default_binding: str = DEFAULT_BINDING) -> dict:
    """The VMI a VM starts: its template, named like the VM, owned by it, with the
    controller's finalizer; a VM that names no interfaces and no networks gets KubeVirt's
    default interface on the pod network."""
    template = (vm.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    vm_meta = meta(vm)
    spec = copy.deepcopy(template.get("spec") or {})
    devices = spec.setdefault("domain", {}).setdefault("devices", {})
    if not devices.get("interfaces") and not spec.get("networks") and devices.get("autoattachPodInterface", True):
        devices["interfaces"] = [{"name": "default", default_binding: {}}]
        spec["networks"] = [{"name": "default", "pod": {}}]
    annotations = dict(tmeta.get("annotations") or {})
    if vm_meta.get("generation") is not None:
        annotations["kubevirt.io/vm-generation"] = str(vm_meta["generation"])
    metadata = {"name": vm_meta["name"], "namespace": vm_meta.get("namespace", "default"),
                "labels": {**(tmeta.get("labels") or {}), "vm.kubevirt.io/name": vm_meta["name"]},
                "ownerReferences": [owner_reference({"kind": "VirtualMachine", **vm})],
                "finalizers": [FINALIZER]}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": KUBEVIRT, "kind": "VirtualMachineInstance", "metadata": metadata, "spec": spec}


def _ever_ran(vmi: dict) -> bool:
    return any(t.get("phase") == "Running" for t in (vmi.get("status") or {}).get("phaseTransitionTimestamps") or [])


def start_failure(vm: dict, vmi: dict | None, now: dt.datetime, backoff: float = START_BACKOFF_BASE) -> dict | None:
    """KubeVirt's startFailure: consecutive VMIs that failed before they ever ran, and when the
    next may start (`backoff` seconds after the first failure, doubling, at most
    START_BACKOFF_MAX); cleared once a VMI runs."""
    previous = (vm.get("status") or {}).get("startFailure")
    if vmi is None:
        return previous
    if _ever_ran(vmi):
        return None
    if _phase(vmi) == "Failed" and (previous or {}).get("lastFailedVMIUID") != meta(vmi).get("uid"):
        count = int((previous or {}).get("consecutiveFailCount") or 0) + 1
        delay = min(START_BACKOFF_MAX, backoff * 2 ** (count - 1))
        return {"consecutiveFailCount": count, "lastFailedVMIUID": meta(vmi).get("uid"),
                "retryAfterTimestamp": timestamp(now + dt.timedelta(seconds=delay))}
    return previous


def printable_status(vm: dict, vmi: dict | None, *, stopping: bool = False,
                     failure: dict | None = None) -> str:
    phase = _phase(vmi)
    final = phase in FINAL_PHASES
    if deleting(vm):
        return "Terminating"
    if vmi is not None and not final and (deleting(vmi) or stopping):
        return "Stopping"
    if vmi is not None and phase == "Running":
        return "Running"
    scheduled = condition(vmi, "PodScheduled")
    if scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        return "ErrorUnschedulable"
    synchronized = condition(vmi, "Synchronized")
    if synchronized and synchronized.get("status") == "False" and synchronized.get("reason") in (
            "ErrImagePull", "ImagePullBackOff"):
        return synchronized["reason"]
    if vmi is not None and phase in ("", "Pending", "Scheduling", "Scheduled"):
        return "Starting"
    try:
        strategy = run_strategy(vm)
    except InvalidConfig:
        strategy = ""
    if (vmi is None or final) and (failure or {}).get("consecutiveFailCount") and strategy in (
            "Always", "RerunOnFailure", "Once"):
        return "CrashLoopBackOff"
    if vmi is None or final:
        return "Stopped"
    return "Unknown"


def vm_status(vm: dict, vmi: dict | None, action: Action, now: dt.datetime,
              error: tuple[str, str] | None = None, start_backoff: float = START_BACKOFF_BASE) -> dict:
    """The VM's whole status after this pass. `vmi` is the VM's VMI as it is now (the one just
    created, or None), `action` what was done, `error` (reason, message) what went wrong."""
    old = vm.get("status") or {}
    status: dict = {"created": vmi is not None, "ready": vmi is not None and condition_true(vmi, "Ready")}
    try:
        strategy = run_strategy(vm)
    except InvalidConfig:
        strategy = old.get("runStrategy")
    if strategy and (old.get("runStrategy") or vmi is not None):
        status["runStrategy"] = strategy  # recorded from the first start on (RerunOnFailure reads it)
    requests = list(_requests(vm))
    if requests and requests[0].get("action") == "Start" and vmi is not None:
        requests.pop(0)  # started
    elif requests and requests[0].get("action") == "Stop" and (
            vmi is None or (requests[0].get("uid") not in (None, meta(vmi).get("uid")))):
        requests.pop(0)  # that VMI is gone
    if action.restart:
        requests.append({"action": "Start"})
    if requests:
        status["stateChangeRequests"] = requests
    failure = start_failure(vm, vmi, now, start_backoff)
    if failure:
        status["startFailure"] = failure
    previous = old.get("conditions") or []
    conditions: list[dict] = []
    ready = condition(vmi, "Ready")
    if vmi is None:
        conditions = set_condition(conditions, "Ready", "False", now, "VMINotExists", "VMI does not exist", previous)
    else:
        conditions = set_condition(conditions, "Ready", (ready or {}).get("status", "False"), now,
                                   (ready or {}).get("reason", ""), (ready or {}).get("message", ""), previous)
    if error:
        conditions = set_condition(conditions, "Failure", "True", now, error[0], error[1], previous)
    status["conditions"] = conditions
    status["printableStatus"] = printable_status(vm, vmi, stopping=action.kind == "stop", failure=failure)
    return status
