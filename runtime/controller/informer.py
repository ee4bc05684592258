"""List and watch one resource, and tell the controller about every change (an informer).

Each round lists the resource (all namespaces), hands over every object and every object that
disappeared since the last round, then watches from the list's resourceVersion until the
stream ends (the server's timeout, a 410 Gone, an error) and starts over: a watch resumed
after a gap never misses a deletion, because the next list shows it. Failures back off
exponentially (0.2 s doubling to 30 s). `label_selector` is asked of the API server and
checked here too.

May import: runtime.controller.kube, the standard library.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import urllib3

from runtime.controller.kube import ApiError, Kube, Resource, Watch

log = logging.getLogger("netplug.controller")
Handler = Callable[[dict | None, dict | None], None]


def _key(obj: dict) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace", ""), meta.get("name", "")


class Informer:
    def __init__(self, kube: Kube, resource: Resource, handler: Handler, stop: threading.Event,
                 labels: dict[str, str] | None = None, watch_timeout: int = 300) -> None:
        self.kube, self.resource, self.handler, self.stop = kube, resource, handler, stop
        self.labels = labels or {}
        self.watch_timeout = watch_timeout
        self.known: dict[tuple[str, str], dict] = {}
        self.synced = threading.Event()
        self._watch: Watch | None = None
        self._lock = threading.Lock()

    @property
    def selector(self) -> str | None:
        return ",".join(f"{k}={v}" for k, v in self.labels.items()) or None

    def _matches(self, obj: dict) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(labels.get(k) == v for k, v in self.labels.items())

    def _changed(self, obj: dict, deleted: bool = False) -> None:
        key = _key(obj)
        old = self.known.get(key)
        if deleted or not self._matches(obj):
            if self.known.pop(key, None) is not None:
                self.handler(old, None)
            return
        self.known[key] = obj
        self.handler(old, obj)

    def _round(self) -> None:
        listing = self.kube.list(self.resource, label_selector=self.selector)
        version = (listing.get("metadata") or {}).get("resourceVersion")
        items = [o for o in listing.get("items") or [] if isinstance(o, dict)]
        present = {_key(o) for o in items}
        for key in [k for k in self.known if k not in present]:
            self.handler(self.known.pop(key), None)
        for obj in items:
            self._changed(obj)
        self.synced.set()
        watch = self.kube.watch(self.resource, version, self.selector, self.watch_timeout)
        with self._lock:
            self._watch = watch
        if self.stop.is_set():
            watch.stop()
        for event in watch.events():
            if self.stop.is_set():
                break
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:  # our resourceVersion is too old: list again
                    return
                raise ApiError(int(obj.get("code") or 0), str(obj.get("reason")), str(obj.get("message")))
            if kind == "BOOKMARK" or not isinstance(obj, dict):
                continue
            self._changed(obj, deleted=kind == "DELETED")

    def run(self) -> None:
        delay = 0.2
        while not self.stop.is_set():
            try:
                self._round()
                delay = 0.2
            except (ApiError, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
                if self.stop.is_set():
                    break
                log.warning("watching %s failed, again in %.1fs: %s", self.resource.plural, delay, exc)
                self.stop.wait(delay)
                delay = min(30.0, delay * 2)

    def halt(self) -> None:
        """End the current watch now (run() returns once `stop` is set)."""
        with self._lock:
            if self._watch is not None:
                self._watch.stop()
