"""Kubernetes Events (core/v1) about the objects the controller handles: what `kubectl
describe vm` shows a user. Named `<object>.<hex nanoseconds>` as client-go names them.

The same event (object, reason, message) is written once per ten minutes, not on every retry
of a failing reconcile. Writing an event is best effort: a failure is logged, never raised.

May import: runtime.controller.kube, netplug.cluster.objects, the standard library.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import threading
import time

from netplug.cluster.objects import meta, timestamp
from runtime.controller.kube import EVENTS, ApiError, Kube

log = logging.getLogger("netplug.controller")
COMPONENT = "netplug-controller"
REPEAT_AFTER = 600.0


class Recorder:
    def __init__(self, kube: Kube, instance: str) -> None:
        self.kube, self.instance = kube, instance
        self._recent: dict[tuple, float] = {}
        self._lock = threading.Lock()

    def normal(self, obj: dict, reason: str, message: str) -> None:
        self.event(obj, "Normal", reason, message)

    def warning(self, obj: dict, reason: str, message: str) -> None:
        self.event(obj, "Warning", reason, message)

    def event(self, obj: dict, kind: str, reason: str, message: str) -> None:
        m = meta(obj)
        key = (m.get("uid"), kind, reason, message)
        now = time.monotonic()
        with self._lock:
            if now - self._recent.get(key, -REPEAT_AFTER) < REPEAT_AFTER:
                return
            self._recent = {k: t for k, t in self._recent.items() if now - t < REPEAT_AFTER}
            self._recent[key] = now
        wall = dt.datetime.now(dt.UTC)
        namespace = m.get("namespace", "default")
        body = {
            "metadata": {"name": f"{m.get('name')}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": m.get("name"),
                               "namespace": namespace, "uid": m.get("uid"),
                               "resourceVersion": m.get("resourceVersion")},
            "type": kind, "reason": reason, "message": message[:1024],
            "source": {"component": COMPONENT, "host": socket.gethostname()},
            # the legacy form client-go's recorder writes (no eventTime: that is events.k8s.io's)
            "firstTimestamp": timestamp(wall), "lastTimestamp": timestamp(wall), "count": 1,
            "reportingComponent": COMPONENT, "reportingInstance": self.instance[:128],
        }
        try:
            self.kube.create(EVENTS, namespace, body)
        except ApiError as exc:
            log.warning("cannot write the event %s %s on %s/%s: %s", kind, reason, namespace, m.get("name"), exc)
