"""Leader election with a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it.

Why not the `kubernetes` client's own leaderelection module: its run() never returns or
releases the lease (a stopped controller makes the others wait a whole lease duration), it
updates the lease with PUT through the process-wide default client, and its record times
are local wall-clock strings. This one is small and uses the controller's API client.

The lease's `holderIdentity` is the leader. A candidate takes the lease when nobody holds it
or when the holder has not renewed it for `leaseDurationSeconds` (measured on the
candidate's own monotonic clock from when it last saw the lease change, so clock skew between
nodes does not matter). Every write carries the resourceVersion that was read: of two
candidates writing at once, the API server accepts one and answers the other 409 Conflict.
The leader renews every `retry_period`; if it cannot renew for `renew_deadline` it has lost
the lease and stops leading. A leader that stops releases the lease (holder emptied, duration
1 s), so a standby takes over within a retry period.

May import: runtime.controller.kube, netplug.cluster.objects, netplug.errors, the standard library.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time

from netplug.cluster.objects import micro_timestamp
from netplug.errors import InvalidConfig
from runtime.controller.kube import LEASES, ApiError, Kube

log = logging.getLogger("netplug.controller")


class LeaderElector:
    def __init__(self, kube: Kube, namespace: str, name: str, identity: str, lease_duration: float = 15.0,
                 renew_deadline: float = 10.0, retry_period: float = 2.0) -> None:
        if not 0 < retry_period < renew_deadline < lease_duration:
            raise InvalidConfig(f"leader election: want 0 < retry period ({retry_period}) < renew deadline "
                                f"({renew_deadline}) < lease duration ({lease_duration})")
        self.kube, self.namespace, self.name, self.identity = kube, namespace, name, identity
        self.lease_duration, self.renew_deadline, self.retry_period = lease_duration, renew_deadline, retry_period
        self._observed: tuple | None = None
        self._observed_at = 0.0
        self.leading = False

    def _spec(self, previous: dict, now: dt.datetime) -> dict:
        holder = previous.get("holderIdentity")
        transitions = int(previous.get("leaseTransitions") or 0)
        mine = holder == self.identity
        return {"holderIdentity": self.identity, "leaseDurationSeconds": max(1, round(self.lease_duration)),
                "acquireTime": previous.get("acquireTime") if mine and previous.get("acquireTime") else
                micro_timestamp(now),
                "renewTime": micro_timestamp(now),
                "leaseTransitions": transitions if mine or not holder else transitions + 1}

    def try_acquire_or_renew(self) -> bool:
        now = dt.datetime.now(dt.UTC)
        try:
            lease = self.kube.get(LEASES, self.namespace, self.name)
            if lease is None:
                self.kube.create(LEASES, self.namespace, {
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": self._spec({}, now) | {"leaseTransitions": 0}})
                self._observe(None)
                return True
            spec = lease.get("spec") or {}
            holder = spec.get("holderIdentity")
            self._observe((holder, spec.get("renewTime"), spec.get("leaseDurationSeconds")))
            duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
            if holder and holder != self.identity and time.monotonic() < self._observed_at + duration:
                return False  # held by another, and renewed lately
            self.kube.patch(LEASES, self.namespace, self.name, {
                "metadata": {"resourceVersion": (lease.get("metadata") or {}).get("resourceVersion")},
                "spec": self._spec(spec, now)})
            self._observe(None)
            return True
        except ApiError as exc:
            if exc.status != 409:
                log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
            return False

    def _observe(self, record: tuple | None) -> None:
        """Remember when the lease last changed, on this process's clock."""
        if record is None or record != self._observed:
            self._observed = record
            self._observed_at = time.monotonic()

    def acquire(self, stop: threading.Event) -> bool:
        """Block until this candidate leads (True) or `stop` is set (False)."""
        while not stop.is_set():
            if self.try_acquire_or_renew():
                self.leading = True
                log.info("%s leads (lease %s/%s)", self.identity, self.namespace, self.name)
                return True
            stop.wait(self.retry_period)
        return False

    def hold(self, stop: threading.Event) -> bool:
        """Renew until `stop` is set (True; the caller then stops its work and releases) or
        renewing fails for renew_deadline (the lease is lost: False)."""
        last = time.monotonic()
        while not stop.wait(self.retry_period):
            if self.try_acquire_or_renew():
                last = time.monotonic()
            elif time.monotonic() - last >= self.renew_deadline:
                self.leading = False
                log.warning("%s lost the lease %s/%s", self.identity, self.namespace, self.name)
                return False
        return True

    def release(self) -> None:
        if not self.leading:
            return
        self.leading = False
        try:
            lease = self.kube.get(LEASES, self.namespace, self.name)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                self.kube.patch(LEASES, self.namespace, self.name, {
                    "metadata": {"resourceVersion": (lease.get("metadata") or {}).get("resourceVersion")},
                    "spec": {"holderIdentity": "", "leaseDurationSeconds": 1,
                             "renewTime": micro_timestamp(dt.datetime.now(dt.UTC))}})
        except ApiError as exc:
            log.warning("releasing the lease %s/%s: %s", self.namespace, self.name, exc)
