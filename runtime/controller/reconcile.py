"""The controller's two reconciles: one VirtualMachine, one VirtualMachineInstance, each from
what the API shows now (level-based: a reconcile reads the object and its child fresh, decides
with netplug.cluster, writes the difference, and can run any number of times).

VM: finalizer on; run strategy → start (check the template as the VMI would be checked, then
create the VMI) or stop (delete the VMI); status. A VM being deleted deletes its VMI and loses
its finalizer once the VMI is gone.

VMI: finalizer on; no launcher pod yet → build it (netplug.cluster.launcher_pod) and create
it; status from the pod. A VMI being deleted deletes its pod and loses its finalizer once the
pod is gone.

What a user must see becomes an Event: a spec or NAD that keeps a VMI or a pod from being
made (Warning FailedCreate, plus a Failure / Synchronized=False condition naming the field),
an API refusal, a failed launcher (Warning LauncherFailed with its termination message), a
vanished pod; creations and deletions are Normal events. A transient API error is raised to
the worker, which retries the key with backoff.

May import: netplug.cluster, netplug.model, netplug.errors, runtime.controller.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from netplug.cluster import lifecycle
from netplug.cluster.instance_status import vmi_status
from netplug.cluster.launcher_pod import LauncherSettings, launcher_pod, pod_name, vmi_model
from netplug.cluster.objects import (
    deleting,
    finalizers_with,
    has_finalizer,
    meta,
    owned_by,
)
from netplug.errors import InvalidConfig
from netplug.model.multus import NetworkAttachmentDefinition
from netplug.model.vm import MultusNetwork
from runtime.controller.events import Recorder
from runtime.controller.kube import NADS, PODS, SERVICES, VMIS, VMS, ApiError, Kube

log = logging.getLogger("netplug.controller")


@dataclass
class ReconcileSettings:
    launcher: LauncherSettings = field(default_factory=LauncherSettings)
    default_binding: str = lifecycle.DEFAULT_BINDING
    #: how soon an object that cannot be made (a missing NAD, an invalid spec) is tried again
    retry_invalid_after: float = 30.0
    #: the delay before restarting a VMI that failed before it ran (doubles each time)
    start_backoff: float = lifecycle.START_BACKOFF_BASE
    #: where the cluster's DNS answers, when launcher.cluster_dns is not given: the Service every
    #: kubeadm, kind, k3s, GKE and EKS cluster has (CoreDNS keeps kube-dns's name); None: none
    cluster_dns_service: tuple[str, str] | None = ("kube-system", "kube-dns")


def status_patch(old: dict, new: dict) -> dict | None:
    """A merge patch from status `old` to `new` (a key that went away is written as null), or
    None when nothing changed."""
    if old == new:
        return None
    return {"status": {k: None for k in old if k not in new} | new}


class Reconciler:
    def __init__(self, kube: Kube, recorder: Recorder, settings: ReconcileSettings,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.kube, self.recorder, self.settings, self.clock = kube, recorder, settings, clock
        self._cluster_dns_missing_said = False

    def launcher_settings(self) -> LauncherSettings:
        """The launcher settings, with the cluster's DNS (the guests' under dnsPolicy
        ClusterFirst) found in the cluster DNS Service's cluster IPs when none was given; kept
        once found, looked for again at the next pod while not."""
        launcher, service = self.settings.launcher, self.settings.cluster_dns_service
        if launcher.cluster_dns or service is None:
            return launcher
        try:
            found = self.kube.get(SERVICES, *service)
        except ApiError as exc:
            if exc.transient:
                raise
            found = None  # forbidden: as if there were none
        spec = (found or {}).get("spec") or {}
        ips = [ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip and ip != "None"]
        if ips:
            self.settings.launcher = launcher = replace(launcher, cluster_dns=ips)
            log.info("cluster DNS: %s (Service %s/%s)", ", ".join(ips), *service)
        elif not self._cluster_dns_missing_said:
            self._cluster_dns_missing_said = True
            log.warning("no cluster DNS Service %s/%s and no --cluster-dns: guests get their node's resolvers, "
                        "as kubelet's pods do without a clusterDNS", *service)
        return launcher

    # --- shared ------------------------------------------------------------------------------

    def _finalize(self, resource, obj: dict, present: bool) -> dict | None:
        """Add or remove the controller's finalizer (guarded by the resourceVersion read)."""
        m = meta(obj)
        return self.kube.patch(resource, m["namespace"], m["name"], {"metadata": {
            "finalizers": finalizers_with(obj, present), "resourceVersion": m.get("resourceVersion")}})

    def nads_for(self, vmi: dict) -> list[NetworkAttachmentDefinition]:
        """The NetworkAttachmentDefinitions the VMI's Multus networks name, those that exist."""
        namespace = meta(vmi).get("namespace", "default")
        found = []
        for network in (vmi.get("spec") or {}).get("networks") or []:
            multus = network.get("multus") if isinstance(network, dict) else None
            if not isinstance(multus, dict) or not multus.get("networkName"):
                continue
            nad_namespace, _, name = MultusNetwork.model_validate(multus).nad_key(namespace).partition("/")
            document = self.kube.get(NADS, nad_namespace, name)
            if document is not None:
                found.append(NetworkAttachmentDefinition.from_document(document))
        return found

    def _write_status(self, resource, obj: dict, status: dict) -> None:
        patch = status_patch(obj.get("status") or {}, status)
        if patch is not None:
            m = meta(obj)
            try:
                self.kube.patch(resource, m["namespace"], m["name"], patch, status=True)
            except ApiError as exc:
                if exc.status != 404:  # gone meanwhile: nothing left to report on
                    raise

    # --- VirtualMachine ----------------------------------------------------------------------

    def reconcile_vm(self, namespace: str, name: str) -> float | None:
        """One pass over a VM; how soon to come back (None: when something changes)."""
        vm = self.kube.get(VMS, namespace, name)
        if vm is None:
            return None
        vm.setdefault("kind", "VirtualMachine")
        now = self.clock()
        vmi = self.kube.get(VMIS, namespace, name)
        error: tuple[str, str] | None = None
        if vmi is not None and not owned_by(vmi, vm):
            error = self._failed(vm, "FailedCreate",
                                 f'a VirtualMachineInstance "{namespace}/{name}" exists that this VM does not own')
            self._write_status(VMS, vm, lifecycle.vm_status(vm, None, lifecycle.Action("none"), now, error))
            return self.settings.retry_invalid_after

        if deleting(vm):
            if vmi is not None and not deleting(vmi):
                self._stop(vm, vmi, "the VM is being deleted")
            elif vmi is None:
                if has_finalizer(vm):
                    self._finalize(VMS, vm, present=False)
                return None
            self._write_status(VMS, vm, lifecycle.vm_status(vm, vmi, lifecycle.Action("stop"), now))
            return None
        if not has_finalizer(vm):
            vm = self._finalize(VMS, vm, present=True) or vm

        try:
            action = lifecycle.decide(vm, vmi, now)
        except InvalidConfig as exc:
            action, error = lifecycle.Action("none"), self._failed(vm, "InvalidSpec", exc.msg)
        requeue = action.requeue_after
        if action.kind == "start":
            vmi, error = self._start(vm)
            if error:
                requeue = self.settings.retry_invalid_after
        elif action.kind == "stop":
            vmi = self._stop(vm, vmi, action.why)
        self._write_status(VMS, vm, lifecycle.vm_status(vm, vmi, action, now, error,
                                                          self.settings.start_backoff))
        return requeue

    def _failed(self, obj: dict, reason: str, message: str) -> tuple[str, str]:
        """The error (reason, message) for `obj`'s status, announced by a Warning event on it."""
        self.recorder.warning(obj, reason, message)
        return reason, message

    def _create(self, owner: dict, resource, manifest: dict, what: str,
                created: str) -> tuple[dict | None, tuple[str, str] | None]:
        """Create `manifest`, `owner`'s child, in `owner`'s namespace: (the object, None), with
        a Normal event `created` on `owner`; (None, FailedCreate) when the API refuses it. One
        created by an earlier pass whose answer was lost (409) is the object; a transient error
        raises (the work queue retries)."""
        namespace = meta(owner)["namespace"]
        try:
            child = self.kube.create(resource, namespace, manifest)
        except ApiError as exc:
            if exc.status == 409:
                return self.kube.get(resource, namespace, manifest["metadata"]["name"]), None
            if exc.transient:
                raise
            return None, self._failed(owner, "FailedCreate", f"the API refused the {what}: {exc.message}")
        self.recorder.normal(owner, "SuccessfulCreate", created)
        return child, None

    def _start(self, vm: dict) -> tuple[dict | None, tuple[str, str] | None]:
        desired = lifecycle.desired_vmi(vm, self.settings.default_binding)
        try:
            # everything the VMI's pod will need, checked now: an invalid VM makes nothing
            launcher_pod(desired, self.nads_for(desired), self.launcher_settings(), base="spec.template.spec")
        except InvalidConfig as exc:
            return None, self._failed(vm, "FailedCreate", exc.msg)
        return self._create(vm, VMIS, desired, "VirtualMachineInstance", "Started the virtual machine by creating "
                            f"the new virtual machine instance {desired['metadata']['name']}")

    def _stop(self, vm: dict, vmi: dict, why: str) -> dict | None:
        m, vmi_meta = meta(vm), meta(vmi)
        if self.kube.delete(VMIS, m["namespace"], vmi_meta["name"], uid=vmi_meta.get("uid")):
            self.recorder.normal(vm, "SuccessfulDelete", f"Stopped the virtual machine by deleting the virtual machine "
                                                         f"instance {vmi_meta.get('uid')} ({why})")
        return self.kube.get(VMIS, m["namespace"], vmi_meta["name"])

    # --- VirtualMachineInstance --------------------------------------------------------------

    def reconcile_vmi(self, namespace: str, name: str) -> float | None:
        vmi = self.kube.get(VMIS, namespace, name)
        if vmi is None:
            return None
        vmi.setdefault("kind", "VirtualMachineInstance")
        now = self.clock()
        pod = self.kube.get(PODS, namespace, pod_name(vmi))
        error: tuple[str, str] | None = None
        if pod is not None and not owned_by(pod, vmi):
            error = self._failed(vmi, "FailedCreate", f'a pod "{namespace}/{pod_name(vmi)}" exists that this VMI does not own')
            pod = None

        try:
            model = vmi_model(vmi)
        except InvalidConfig as exc:
            model, error = None, ("FailedCreate", exc.msg)

        if deleting(vmi):
            if pod is not None and not deleting(pod):
                grace = (vmi.get("spec") or {}).get("terminationGracePeriodSeconds")
                if self.kube.delete(PODS, namespace, meta(pod)["name"], grace_seconds=grace,
                                    uid=meta(pod).get("uid")):
                    self.recorder.normal(vmi, "SuccessfulDelete", f"Deleted virtual machine pod {meta(pod)['name']}")
                pod = self.kube.get(PODS, namespace, pod_name(vmi))
            self._write_status(VMIS, vmi, vmi_status(vmi, model, pod, now))
            if pod is None and has_finalizer(vmi):
                fresh = self.kube.get(VMIS, namespace, name)
                if fresh is not None:
                    self._finalize(VMIS, fresh, present=False)
            return None
        if not has_finalizer(vmi):
            vmi = self._finalize(VMIS, vmi, present=True) or vmi

        phase = (vmi.get("status") or {}).get("phase") or "Pending"
        if pod is None and error is None and phase == "Pending":
            pod, error = self._create_pod(vmi)
        status = vmi_status(vmi, model, pod, now, error)
        if status["phase"] == "Failed" and phase != "Failed":
            self.recorder.warning(vmi, status.get("reason", "Failed"), status.get("message", "the VMI failed"))
        self._write_status(VMIS, vmi, status)
        return self.settings.retry_invalid_after if error else None

    def _create_pod(self, vmi: dict) -> tuple[dict | None, tuple[str, str] | None]:
        try:
            manifest = launcher_pod(vmi, self.nads_for(vmi), self.launcher_settings())
        except InvalidConfig as exc:
            return None, self._failed(vmi, "FailedCreate", exc.msg)
        return self._create(vmi, PODS, manifest, "launcher pod",
                            f"Created virtual machine pod {manifest['metadata']['name']}")

