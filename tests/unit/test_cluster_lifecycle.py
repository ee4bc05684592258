"""A VM's life as the controller decides it (netplug.cluster.lifecycle): run strategies as
KubeVirt defines them, the VMI a VM starts, and the status `kubectl get vms` shows."""

from __future__ import annotations

import datetime as dt

import pytest

from netplug.cluster.lifecycle import (
    Action,
    decide,
    desired_vmi,
    printable_status,
    run_strategy,
    vm_status,
)
from netplug.errors import InvalidConfig

NOW = dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=dt.UTC)


def vm(status: dict | None = None, deleting: bool = False, **spec) -> dict:
    doc = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
           "metadata": {"name": "testvm", "namespace": "default", "uid": "vm-uid", "generation": 3},
           "spec": {"template": {"metadata": {"labels": {"kubevirt.io/size": "small"}},
                                 "spec": {"domain": {"devices": {"interfaces": [{"name": "default", "masquerade": {}}]}},
                                          "networks": [{"name": "default", "pod": {}}]}}, **spec}}
    if status is not None:
        doc["status"] = status
    if deleting:
        doc["metadata"]["deletionTimestamp"] = "2026-12-01T11:00:00Z"
    return doc


def vmi(phase: str = "Running", uid: str = "vmi-1", deleting: bool = False, ran: bool = False, **status) -> dict:
    doc = {"metadata": {"name": "testvm", "namespace": "default", "uid": uid},
           "status": {"phase": phase, **status}}
    if ran:
        doc["status"]["phaseTransitionTimestamps"] = [{"phase": "Running", "phaseTransitionTimestamp": "x"}]
    if deleting:
        doc["metadata"]["deletionTimestamp"] = "2026-12-01T11:00:00Z"
    return doc


@pytest.mark.parametrize("spec, vm_status_, instance, expected", [
    # Always: a VMI always exists, a finished one is replaced
    ({"running": True}, None, None, ("start", False)),
    ({"runStrategy": "Always"}, None, vmi("Running"), ("none", False)),
    ({"runStrategy": "Always"}, None, vmi("Failed"), ("stop", False)),
    ({"runStrategy": "Always"}, None, vmi("Succeeded"), ("stop", False)),
    ({"runStrategy": "Always"}, {"stateChangeRequests": [{"action": "Stop", "uid": "vmi-1"}]}, vmi(), ("stop", False)),
    # RerunOnFailure: restarted only after a failure
    ({"runStrategy": "RerunOnFailure"}, None, None, ("start", False)),
    ({"runStrategy": "RerunOnFailure"}, {"runStrategy": "RerunOnFailure"}, None, ("none", False)),
    ({"runStrategy": "RerunOnFailure"}, {"runStrategy": "RerunOnFailure",
                                         "stateChangeRequests": [{"action": "Start"}]}, None, ("start", False)),
    ({"runStrategy": "RerunOnFailure"}, None, vmi("Failed"), ("stop", True)),
    ({"runStrategy": "RerunOnFailure"}, None, vmi("Succeeded"), ("stop", False)),
    ({"runStrategy": "RerunOnFailure"}, None, vmi("Running"), ("none", False)),
    # Manual: only state change requests
    ({"runStrategy": "Manual"}, None, None, ("none", False)),
    ({"runStrategy": "Manual"}, {"stateChangeRequests": [{"action": "Start"}]}, None, ("start", False)),
    ({"runStrategy": "Manual"}, None, vmi("Failed"), ("none", False)),
    ({"runStrategy": "Manual"}, {"stateChangeRequests": [{"action": "Stop", "uid": "vmi-1"}]}, vmi(), ("stop", False)),
    ({"runStrategy": "Manual"}, {"stateChangeRequests": [{"action": "Stop", "uid": "other"}]}, vmi(), ("none", False)),
    # Halted: never a VMI
    ({"running": False}, None, vmi("Running"), ("stop", False)),
    ({"runStrategy": "Halted"}, None, None, ("none", False)),
    ({}, None, vmi("Running"), ("stop", False)),  # neither field: Halted
    # Once: started once, never again
    ({"runStrategy": "Once"}, None, None, ("start", False)),
    ({"runStrategy": "Once"}, None, vmi("Succeeded"), ("none", False)),
])
def test_run_strategies(spec, vm_status_, instance, expected) -> None:
    action = decide(vm(vm_status_, **spec), instance, NOW)
    assert (action.kind, action.restart) == expected


def test_a_vmi_being_deleted_is_waited_for_and_a_vm_being_deleted_stops_its_vmi() -> None:
    assert decide(vm(running=True), vmi("Running", deleting=True), NOW).kind == "none"
    assert decide(vm(running=True, deleting=True), vmi("Running"), NOW).kind == "stop"
    assert decide(vm(running=True, deleting=True), None, NOW).kind == "none"


def test_a_start_waits_out_the_start_failure_backoff() -> None:
    waiting = vm({"startFailure": {"consecutiveFailCount": 2, "retryAfterTimestamp": "2026-12-01T12:00:30Z"}},
                 running=True)
    action = decide(waiting, None, NOW)
    assert action.kind == "none" and action.requeue_after == 30
    assert decide(waiting, None, NOW + dt.timedelta(seconds=31)).kind == "start"


@pytest.mark.parametrize("spec, message", [
    ({"running": True, "runStrategy": "Always"}, "spec.runStrategy: spec.running and spec.runStrategy are mutually"),
    ({"runStrategy": "Sometimes"}, "spec.runStrategy: must be one of"),
])
def test_bad_run_strategies_name_the_field(spec, message) -> None:
    with pytest.raises(InvalidConfig, match=message):
        run_strategy(vm(**spec))


def test_the_vmi_a_vm_starts() -> None:
    started = desired_vmi(vm(running=True))
    assert started["metadata"] == {
        "name": "testvm", "namespace": "default",
        "labels": {"kubevirt.io/size": "small", "vm.kubevirt.io/name": "testvm"},
        "annotations": {"kubevirt.io/vm-generation": "3"},
        "ownerReferences": [{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": "testvm",
                             "uid": "vm-uid", "controller": True, "blockOwnerDeletion": True}],
        "finalizers": ["netplug.io/controller"]}
    assert started["spec"] == vm()["spec"]["template"]["spec"]


def test_a_vm_without_networks_gets_kubevirts_default_interface() -> None:
    bare = vm(running=True)
    bare["spec"]["template"]["spec"] = {"domain": {"devices": {}}}
    assert desired_vmi(bare, "masquerade")["spec"]["networks"] == [{"name": "default", "pod": {}}]
    assert desired_vmi(bare)["spec"]["domain"]["devices"]["interfaces"] == [{"name": "default", "bridge": {}}]
    bare["spec"]["template"]["spec"]["domain"]["devices"]["autoattachPodInterface"] = False
    assert "networks" not in desired_vmi(bare)["spec"]


@pytest.mark.parametrize("machine, instance, stopping, expected", [
    (vm(running=True, deleting=True), vmi("Running"), False, "Terminating"),
    (vm(running=False), vmi("Running", deleting=True), False, "Stopping"),
    (vm(running=False), vmi("Running"), True, "Stopping"),
    (vm(running=True), vmi("Running"), False, "Running"),
    (vm(running=True), vmi("Scheduling", conditions=[{"type": "PodScheduled", "status": "False",
                                                      "reason": "Unschedulable"}]), False, "ErrorUnschedulable"),
    (vm(running=True), vmi("Scheduling", conditions=[{"type": "Synchronized", "status": "False",
                                                      "reason": "ImagePullBackOff"}]), False, "ImagePullBackOff"),
    (vm(running=True), vmi(""), False, "Starting"),
    (vm(running=True), vmi("Scheduled"), False, "Starting"),
    (vm(running=False), None, False, "Stopped"),
    (vm(running=False), vmi("Succeeded"), False, "Stopped"),
])
def test_printable_status_follows_kubevirts_precedence(machine, instance, stopping, expected) -> None:
    assert printable_status(machine, instance, stopping=stopping) == expected


def test_a_vmi_that_fails_before_it_runs_counts_towards_crash_loop_backoff() -> None:
    status = vm_status(vm(running=True), vmi("Failed"), Action("stop"), NOW)
    assert status["startFailure"] == {"consecutiveFailCount": 1, "lastFailedVMIUID": "vmi-1",
                                      "retryAfterTimestamp": "2026-12-01T12:00:10Z"}
    again = vm_status(vm(status, running=True), vmi("Failed", uid="vmi-2"), Action("stop"), NOW)
    assert again["startFailure"]["consecutiveFailCount"] == 2
    assert again["startFailure"]["retryAfterTimestamp"] == "2026-12-01T12:00:20Z"  # doubled
    assert printable_status(vm(again, running=True), None, failure=again["startFailure"]) == "CrashLoopBackOff"
    # the same failed VMI seen twice counts once; a VMI that ran clears the count
    assert vm_status(vm(status, running=True), vmi("Failed"), Action("none"), NOW)["startFailure"] == status["startFailure"]
    assert "startFailure" not in vm_status(vm(again, running=True), vmi("Running", uid="vmi-3", ran=True),
                                           Action("none"), NOW)


def test_vm_status_fields() -> None:
    ready = vmi("Running", conditions=[{"type": "Ready", "status": "True", "lastTransitionTime": "t0"}])
    status = vm_status(vm({"stateChangeRequests": [{"action": "Start"}]}, runStrategy="Manual"), ready,
                       Action("none"), NOW)
    assert status["created"] is True and status["ready"] is True and status["printableStatus"] == "Running"
    assert status["runStrategy"] == "Manual"
    assert "stateChangeRequests" not in status  # the Start request was served
    assert status["conditions"] == [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-01T12:00:00Z"}]

    stopped = vm_status(vm(status, runStrategy="Manual"), None, Action("none"), NOW + dt.timedelta(hours=1),
                        error=("FailedCreate", "spec.template.spec.networks[0].multus.networkName: nope"))
    assert stopped["created"] is False and stopped["ready"] is False
    assert [(c["type"], c["status"], c.get("reason")) for c in stopped["conditions"]] == [
        ("Ready", "False", "VMINotExists"), ("Failure", "True", "FailedCreate")]
    # an unchanged condition keeps its transition time, so an unchanged status writes nothing
    same = vm_status(vm(stopped, runStrategy="Manual"), None, Action("none"), NOW + dt.timedelta(hours=2),
                     error=("FailedCreate", "spec.template.spec.networks[0].multus.networkName: nope"))
    assert same == stopped
    restarted = vm_status(vm(runStrategy="RerunOnFailure"), vmi("Failed"), Action("stop", restart=True), NOW)
    assert restarted["stateChangeRequests"] == [{"action": "Start"}]
