"""`netplug controller`: VirtualMachine → VirtualMachineInstance → launcher Pod, on a cluster.

    VM ──(run strategy)──▶ VMI ──▶ launcher Pod (Multus: secondary networks + netplug's binding
                                   entries; netplug launch in the compute container)
    VM status ◀── VMI status ◀── the Pod: phase, conditions, compute container, network-status

The decisions are pure (netplug.cluster); this package does the I/O: informers list and
watch VMs, VMIs and launcher pods (label app.kubernetes.io/managed-by=netplug-controller)
and queue the affected keys; workers reconcile one key at a time (runtime.controller.reconcile)
and retry a failed key with exponential backoff; a Lease elects the one controller that
works (runtime.controller.leader: the others wait, and take over within a retry period
when the leader stops, or a lease duration when it dies); Events tell users what failed;
`/metrics` counts reconciles, errors and their latency.

How the launcher reports in cluster mode (decided): the controller reads the pod, and the
launcher writes nothing to the API. The launcher pod has no service-account token (it runs
the guest: a credential there would let a compromised guest reach the API), so it reports
through what kubelet already carries: the compute container's readiness (its probe reads the
launcher's `ready` file, present while the domain runs) and its termination message (the
final phase and reason). Interfaces come from the pod's Multus network-status (addresses,
pod interfaces, SR-IOV MACs) and from the binding policy the launcher itself uses for the
domain's MAC. An HTTP status endpoint on the pod was not an option: a masquerade binding
forwards the pod IP's ports to the guest.

Exit: 0 when stopped (SIGTERM, SIGINT: the lease is released first), 1 when the lease was lost
(as kube-controller-manager does: the Deployment starts it again as a candidate).

May import: netplug.cluster, netplug.model, netplug.errors, runtime.controller.*, runtime.logs.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field

from netplug.cluster.objects import MANAGED_BY
from runtime.controller.events import Recorder
from runtime.controller.informer import Informer
from runtime.controller.kube import PODS, VMIS, VMS, ApiError, Kube
from runtime.controller.leader import LeaderElector
from runtime.controller.metrics import Metrics
from runtime.controller.reconcile import Reconciler, ReconcileSettings
from runtime.controller.workqueue import WorkQueue

log = logging.getLogger("netplug.controller")


@dataclass
class ControllerSettings:
    #: where the Lease is (and netplug's binding NADs: reconcile.launcher.binding_namespace)
    namespace: str = "netplug-system"
    lease_name: str = "netplug-controller"
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}_{os.getpid()}")
    workers: int = 2
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    watch_timeout: int = 300
    #: first retry of a failed key; it doubles up to max_backoff
    base_backoff: float = 0.05
    max_backoff: float = 60.0
    reconcile: ReconcileSettings = field(default_factory=ReconcileSettings)


def _owner_key(obj: dict | None, kind: str) -> tuple[str, str] | None:
    meta = (obj or {}).get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == kind:
            return meta.get("namespace", "default"), ref.get("name")
    return None


class Controller:
    def __init__(self, kube: Kube, settings: ControllerSettings | None = None, metrics: Metrics | None = None) -> None:
        self.kube = kube
        self.settings = settings or ControllerSettings()
        self.metrics = metrics or Metrics()
        self.recorder = Recorder(kube, self.settings.identity)
        self.reconciler = Reconciler(kube, self.recorder, self.settings.reconcile)
        s = self.settings
        self.elector = LeaderElector(kube, s.namespace, s.lease_name, s.identity, s.lease_duration,
                                     s.renew_deadline, s.retry_period)
        self.queue: WorkQueue | None = None

    # --- what a change means ---------------------------------------------------------------

    def _on_vm(self, old: dict | None, new: dict | None) -> None:
        meta = (new or old or {}).get("metadata") or {}
        self._add(("vm", meta.get("namespace", "default"), meta.get("name")))

    def _on_vmi(self, old: dict | None, new: dict | None) -> None:
        obj = new or old or {}
        meta = obj.get("metadata") or {}
        self._add(("vmi", meta.get("namespace", "default"), meta.get("name")))
        if owner := _owner_key(obj, "VirtualMachine"):
            self._add(("vm", *owner))

    def _on_pod(self, old: dict | None, new: dict | None) -> None:
        if owner := _owner_key(new or old, "VirtualMachineInstance"):
            self._add(("vmi", *owner))

    def _add(self, key: tuple) -> None:
        if self.queue is not None and key[2]:
            self.queue.add(key)

    # --- workers -----------------------------------------------------------------------------

    def reconcile(self, key: tuple) -> float | None:
        kind, namespace, name = key
        if kind == "vm":
            return self.reconciler.reconcile_vm(namespace, name)
        return self.reconciler.reconcile_vmi(namespace, name)

    def _work(self, queue: WorkQueue) -> None:
        while (key := queue.get()) is not None:
            started = time.monotonic()
            failed = False
            try:
                again = self.reconcile(key)
                queue.forget(key)
                if again:
                    queue.add_after(key, again)
            except ApiError as exc:
                failed = True
                delay = queue.retry(key)
                log.warning("reconciling %s %s/%s failed, again in %.2fs: %s", *key, delay, exc)
            except Exception:  # a bug in one reconcile must not stop the worker
                failed = True
                delay = queue.retry(key)
                log.exception("reconciling %s %s/%s crashed, again in %.2fs", *key, delay)
            finally:
                queue.done(key)
                self.metrics.observe(key[0], time.monotonic() - started, failed)

    # --- leading -----------------------------------------------------------------------------

    def lead(self, stop: threading.Event) -> None:
        """Run informers and workers until `stop` is set."""
        s = self.settings
        queue = self.queue = WorkQueue(s.base_backoff, s.max_backoff)
        self.metrics.queue_depth = queue.__len__
        informers = [Informer(self.kube, VMS, self._on_vm, stop, watch_timeout=s.watch_timeout),
                     Informer(self.kube, VMIS, self._on_vmi, stop, watch_timeout=s.watch_timeout),
                     Informer(self.kube, PODS, self._on_pod, stop, labels=dict([MANAGED_BY]),
                              watch_timeout=s.watch_timeout)]
        threads = [threading.Thread(target=i.run, name=f"watch-{i.resource.plural}", daemon=True) for i in informers]
        threads += [threading.Thread(target=self._work, args=(queue,), name=f"worker-{n}", daemon=True)
                    for n in range(s.workers)]
        for thread in threads:
            thread.start()
        stop.wait()
        queue.shutdown()
        for informer in informers:
            informer.halt()
        for thread in threads:
            thread.join(timeout=10)
        self.queue = None

    def run(self, stop: threading.Event) -> bool:
        """Stand as a candidate, lead while elected. True: stopped; False: the lease was lost."""
        if not self.elector.acquire(stop):
            return True
        self.metrics.leader = 1
        leading = threading.Event()
        worker = threading.Thread(target=self.lead, args=(leading,), name="lead", daemon=True)
        worker.start()
        try:
            kept = self.elector.hold(stop)
        finally:
            leading.set()
            worker.join(timeout=15)
            self.metrics.leader = 0
        if kept:
            self.elector.release()  # after the workers stopped: the next leader works alone
        return kept



def _addresses(text: str | None) -> list[str]:
    """--cluster-dns: IP addresses, comma-separated."""
    import ipaddress

    from netplug.errors import InvalidConfig

    found = []
    for item in filter(None, (t.strip() for t in (text or "").split(","))):
        try:
            found.append(str(ipaddress.ip_address(item)))
        except ValueError:
            raise InvalidConfig(f'--cluster-dns: "{item}" is not an IP address') from None
    return found


def _service(text: str) -> tuple[str, str] | None:
    """--cluster-dns-service: NAMESPACE/NAME, or none."""
    from netplug.errors import InvalidConfig

    if text == "none":
        return None
    namespace, sep, name = text.partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise InvalidConfig(f'--cluster-dns-service: "{text}" is not NAMESPACE/NAME or none')
    return namespace, name


def serve(args) -> int:
    """`netplug controller`: the metrics endpoint, then candidate and leader until a signal."""
    import signal

    from netplug.cluster.launcher_pod import LauncherSettings
    from runtime import logs
    from runtime.controller.kube import load_api_client
    from runtime.controller.metrics import MetricsServer

    logs.setup(args.log_level)
    settings = ControllerSettings(
        namespace=args.namespace, identity=args.identity, workers=args.workers,
        lease_duration=args.lease_duration, renew_deadline=args.renew_deadline, retry_period=args.retry_period,
        reconcile=ReconcileSettings(
            launcher=LauncherSettings(image=args.launcher_image or LauncherSettings.image, binding_namespace=args.namespace,
                                      cluster_dns=_addresses(args.cluster_dns), cluster_domain=args.cluster_domain,
                                      kvm_resource=args.kvm_resource or None),
            default_binding=args.default_binding, cluster_dns_service=_service(args.cluster_dns_service)))
    kube = Kube(load_api_client(args.kubeconfig, args.server))
    controller = Controller(kube, settings)
    server = MetricsServer((args.metrics_address, args.metrics_port), controller.metrics)
    server.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("controller %s: candidate for the lease %s/%s, metrics on %s:%d", settings.identity,
             settings.namespace, settings.lease_name, args.metrics_address, server.server_address[1])
    kept = controller.run(stop)
    server.shutdown()
    return 0 if kept else 1
