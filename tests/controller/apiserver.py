"""The API server the controller tests run against: KMock's KubernetesEmulator (PyPI `kmock`),
served over HTTP in a thread of its own, with what kube-apiserver does that the controller
relies on and KMock 0.8 lacks. No kube-apiserver can run on these machines; KMock keeps the
objects and serves the watch streams, the additions below are the rest:

- identity and versions: KMock assigns no metadata.uid, creationTimestamp, resourceVersion or
  generation (and lists carry resourceVersion "..."): added on every create and write, from
  one counter, as etcd's revision;
- optimistic concurrency: KMock applies any write; here a patch naming a resourceVersion that
  is not the object's current one is refused 409 Conflict, as kube-apiserver does (the
  leader election and the finalizer updates depend on it);
- the status subresource: KMock merges a PATCH of .../status into the whole object and keeps
  status on a main-resource PATCH; here /status writes only status and a main write leaves
  status alone (VMs, VMIs, pods);
- label selectors on lists (KMock ignores labelSelector; watches stay unfiltered: the
  controller checks labels itself too);
- generateName (KMock keys a created object by metadata.name only);
- PUT and JSON Patch are not served by KMock (PUT answers 404): refused here with 405 / 415,
  so a client using them fails loudly (the controller uses merge patches only);
- failure injection: `fail(method, plural)` makes the next matching request fail with the
  given status before it changes anything, as a flaky API server would.

Still missing and not needed: garbage collection by owner references (the controller deletes
what it owns itself, behind finalizers), graceful pod deletion (a deleted pod goes at once:
there is no kubelet), admission, schema validation, field selectors, watch resumption from a
resourceVersion (every watch starts with the current objects as ADDED; the controller lists
before it watches anyway), bookmarks, server-side watch timeouts.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import itertools
import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp.web
import attrs
import kmock
from kmock._internal import enums

WITH_STATUS_SUBRESOURCE = {"virtualmachines", "virtualmachineinstances", "pods"}
RESOURCES = ["kubevirt.io/v1/virtualmachines", "kubevirt.io/v1/virtualmachineinstances", "v1/pods",
             "v1/events", "coordination.k8s.io/v1/leases", "k8s.cni.cncf.io/v1/network-attachment-definitions",
             "v1/services"]


def _labels_match(obj: dict, selector: str) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        key, sep, value = term.partition("=")
        if sep and labels.get(key.rstrip("=!")) != value.lstrip("="):
            return False
        if not sep and key not in labels:
            return False
    return True


@attrs.define(kw_only=True)
class ApiServer(kmock.KubernetesEmulator):
    _revision: itertools.count = attrs.field(factory=lambda: itertools.count(1), init=False)
    _current: int = attrs.field(default=0, init=False)
    _failures: list = attrs.field(factory=list, init=False)
    _failures_lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    _writes: asyncio.Lock = attrs.field(factory=asyncio.Lock, init=False)
    #: the injected failures that were served
    failed: list = attrs.field(factory=list, init=False)
    #: every Kubernetes request: (User-Agent, method, resource, subresource, namespace, name, query)
    seen: list = attrs.field(factory=list, init=False)

    def fail(self, method: str, plural: str, status: int = 500, subresource: str | None = None, times: int = 1,
             reason: str = "InternalError") -> None:
        """The next `times` requests METHOD .../<plural>[/<subresource>] fail with `status`."""
        with self._failures_lock:
            self._failures.append([method.upper(), plural, subresource, status, reason, times])

    def _injected(self, request: kmock.Request) -> kmock.KubernetesError | None:
        with self._failures_lock:
            for entry in self._failures:
                method, plural, subresource, status, reason, times = entry
                if (times > 0 and request.method.value.upper() == method and request.resource.plural == plural
                        and request.subresource == subresource):
                    entry[5] -= 1
                    self.failed.append((method, plural, subresource, status))
                    return kmock.KubernetesError(status=status, reason=reason, message="injected by the test")
        return None

    def _next_version(self) -> str:
        self._current = next(self._revision)
        return str(self._current)

    def _stored(self, request: kmock.Request) -> dict | None:
        key = (request.resource, request.namespace, request.name)
        if key not in self._objects or self._objects[key].deleted:
            return None
        return copy.deepcopy(self._objects[key].raw)

    def _list(self, request: kmock.Request) -> aiohttp.web.Response:
        selector = request.params.get("labelSelector", "")
        items = [copy.deepcopy(obj.raw) for (resource, namespace, _), obj in list(self._objects.items())
                 if resource == request.resource and not obj.deleted
                 and (request.namespace is None or namespace == request.namespace)]
        items = [i for i in items if _labels_match(i, selector)]
        return aiohttp.web.json_response({"apiVersion": "v1", "kind": "List", "items": items,
                                          "metadata": {"resourceVersion": str(self._current)}})

    def _prepare(self, request: kmock.Request) -> kmock.Request:
        """The request as kube-apiserver would apply it. (Its data is changed in place: KMock
        matches its reactions on the request object it parsed.)"""
        data = request.data
        if request.method == enums.method.PUT:
            raise kmock.KubernetesError(status=405, reason="MethodNotAllowed",
                                        message="PUT is not emulated (the controller patches)")
        if request.action == enums.action.CREATE:
            meta = data.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            if request.namespace:
                meta.setdefault("namespace", request.namespace)
            meta.update(uid=str(uuid.uuid4()), resourceVersion=self._next_version(), generation=1,
                        creationTimestamp=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
            if request.resource.plural in WITH_STATUS_SUBRESOURCE and request.resource.plural != "pods":
                data.pop("status", None)
            return request
        if request.action == enums.action.UPDATE:
            if "json-patch" in request.headers.get("Content-Type", "") or not isinstance(data, dict):
                raise kmock.KubernetesError(status=415, reason="UnsupportedMediaType",
                                            message="only merge patches are emulated")
            stored = self._stored(request)
            if stored is None:
                raise kmock.KubernetesObjectNotFoundError()
            meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
            wanted = meta.get("resourceVersion")
            current = (stored.get("metadata") or {}).get("resourceVersion")
            if wanted is not None and wanted != current:
                raise kmock.KubernetesError(status=409, reason="Conflict", message=(
                    f"the object has been modified (resourceVersion {wanted}, now {current}); "
                    "please apply your changes to the latest version and try again"))
            if request.subresource == "status":
                status = data.get("status")
                data.clear()
                data["status"] = status
            elif request.resource.plural in WITH_STATUS_SUBRESOURCE:
                data.pop("status", None)
            new_meta = data.setdefault("metadata", {})
            new_meta["resourceVersion"] = self._next_version()
            if "spec" in data:
                new_meta["generation"] = int((stored.get("metadata") or {}).get("generation") or 1) + 1
        return request

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if request.resource is None:
            return await super()._handle(request)
        self.seen.append((request.headers.get("User-Agent", ""), request.method.value.upper(), request.resource,
                          request.subresource, request.namespace, request.name, dict(request.params)))
        failure = self._injected(request)
        if failure is not None:
            raise failure
        if request.action == enums.action.LIST:
            return self._list(request)
        if request.action == enums.action.WATCH:
            return await super()._handle(request)
        async with self._writes:  # check-then-write atomically, as etcd's compare-and-swap
            return await super()._handle(self._prepare(request))


@contextmanager
def running() -> Iterator[tuple[ApiServer, str]]:
    """An ApiServer on 127.0.0.1 and its URL, in a thread with its own event loop."""
    # aiohttp logs every request; from KMock's thread that outlives a test's log capture
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict = {}

    async def serve() -> None:
        stop = asyncio.Event()
        state["stop"] = stop
        async with ApiServer() as server, kmock.Server(server) as http:
            for resource in RESOURCES:
                server.resources[resource] = {}
            state["server"], state["url"] = server, str(http.url).rstrip("/")
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), name="kmock", daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("KMock did not start")
    try:
        yield state["server"], state["url"]
    finally:
        loop.call_soon_threadsafe(state["stop"].set)
        thread.join(10)
