"""Fixtures of the controller tests: an API server (KMock, tests/controller/apiserver.py), the
controller running against it in threads with the real `kubernetes` client and real watch
streams, and `Cluster`, what the tests do as a user (`kubectl apply`) and as the kubelet and
Multus would (no kubelet can run here: the tests patch the launcher pod's status and its
network-status annotation themselves, and say so where they do)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from netplug.model.multus import STATUS_ANNOTATION
from runtime.controller import Controller, ControllerSettings
from runtime.controller.kube import Kube, load_api_client
from runtime.controller.metrics import Metrics
from runtime.controller.reconcile import ReconcileSettings
from tests.controller.apiserver import ApiServer, running

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "manifests" / "examples"
KUBEVIRT = ("kubevirt.io", "v1")
NADS = ("k8s.cni.cncf.io", "v1", "network-attachment-definitions")


def eventually(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll `check` until it returns something truthy (the controller converges
    asynchronously); fail naming `what` if it never does."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    pytest.fail(f"never happened: {what} (last seen: {last!r})")


class Cluster:
    """The API as a user and the node components see it, through the `kubernetes` client."""

    def __init__(self, server: ApiServer, url: str) -> None:
        self.server, self.url = server, url
        self.api_client = load_api_client(server=url, user_agent="tests")
        self.custom = client.CustomObjectsApi(self.api_client)
        self.core = client.CoreV1Api(self.api_client)
        self.coordination = client.CoordinationV1Api(self.api_client)

    @staticmethod
    def _json(response) -> dict:
        return json.loads(response.data)

    def apply(self, document: dict) -> dict:
        """`kubectl apply` of a VM, VMI or NAD (create; the tests apply each object once)."""
        namespace = document.get("metadata", {}).get("namespace", "default")
        group, version = document["apiVersion"].split("/")
        plural = {"VirtualMachine": "virtualmachines", "VirtualMachineInstance": "virtualmachineinstances",
                  "NetworkAttachmentDefinition": "network-attachment-definitions"}[document["kind"]]
        return self._json(self.custom.create_namespaced_custom_object(group, version, namespace, plural, document,
                                                                      _preload_content=False))

    def apply_file(self, path: Path, **changes: Any) -> dict:
        document = yaml.safe_load(path.read_text())
        document["metadata"].update(changes)
        return self.apply(document)

    def _get(self, plural: str, name: str, namespace: str = "default") -> dict | None:
        try:
            return self._json(self.custom.get_namespaced_custom_object(*KUBEVIRT, namespace, plural, name,
                                                                       _preload_content=False))
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def vm(self, name: str, namespace: str = "default") -> dict | None:
        return self._get("virtualmachines", name, namespace)

    def vmi(self, name: str, namespace: str = "default") -> dict | None:
        return self._get("virtualmachineinstances", name, namespace)

    def patch_vm(self, name: str, body: dict, namespace: str = "default", status: bool = False) -> dict:
        call = self.custom.patch_namespaced_custom_object_status if status else self.custom.patch_namespaced_custom_object
        return self._json(call(*KUBEVIRT, namespace, "virtualmachines", name, body, _preload_content=False,
                               _content_type="application/merge-patch+json"))

    def delete_vm(self, name: str, namespace: str = "default") -> None:
        self.custom.delete_namespaced_custom_object(*KUBEVIRT, namespace, "virtualmachines", name,
                                                    _preload_content=False)

    def pods(self, namespace: str = "default") -> list[dict]:
        return self._json(self.core.list_namespaced_pod(namespace, _preload_content=False))["items"]

    def launcher_pod(self, vmi_name: str, namespace: str = "default") -> dict | None:
        vmi = self.vmi(vmi_name, namespace)
        uid = (vmi or {}).get("metadata", {}).get("uid")
        return next((p for p in self.pods(namespace)
                     if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences") or [])), None)

    def events(self, name: str, namespace: str = "default") -> list[dict]:
        return [e for e in self._json(self.core.list_namespaced_event(namespace, _preload_content=False))["items"]
                if e["involvedObject"]["name"] == name]

    def lease_holder(self, namespace: str = "netplug-system", name: str = "netplug-controller") -> str | None:
        try:
            lease = self._json(self.coordination.read_namespaced_lease(name, namespace, _preload_content=False))
        except client.ApiException:
            return None
        return (lease.get("spec") or {}).get("holderIdentity") or None

    def kubelet_runs(self, pod: dict, node: str = "node-1", ips: tuple[str, ...] = ("10.244.1.5",),
                     network_status: list[dict] | None = None, ready: bool = True) -> None:
        """What the scheduler, Multus and the kubelet would do for a launcher pod: bind it to a
        node, write Multus's network-status annotation (during CNI ADD), then report the pod
        Running with the compute container ready (its probe found the launcher's ready file)."""
        name, namespace = pod["metadata"]["name"], pod["metadata"]["namespace"]
        annotations = {STATUS_ANNOTATION: json.dumps(network_status if network_status is not None else [
            {"name": "k8s-pod-network", "interface": "eth0", "ips": list(ips), "mac": "0a:58:0a:f4:01:05",
             "default": True}])}
        self.core.patch_namespaced_pod(name, namespace, {"metadata": {"annotations": annotations},
                                                         "spec": {"nodeName": node}},
                                       _content_type="application/merge-patch+json", _preload_content=False)
        status = {"phase": "Running", "podIP": ips[0], "podIPs": [{"ip": ip} for ip in ips],
                  "conditions": [{"type": "PodScheduled", "status": "True"},
                                 {"type": "Ready", "status": "True" if ready else "False"}],
                  "containerStatuses": [{"name": "compute", "ready": ready, "restartCount": 0, "image": "netplug",
                                         "imageID": "", "started": True,
                                         "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}
        self.patch_pod_status(pod, status)

    def patch_pod_status(self, pod: dict, status: dict) -> None:
        self.core.patch_namespaced_pod_status(pod["metadata"]["name"], pod["metadata"]["namespace"],
                                              {"status": status}, _content_type="application/merge-patch+json",
                                              _preload_content=False)


@pytest.fixture
def apiserver() -> Iterator[tuple[ApiServer, str]]:
    with running() as served:
        yield served


@pytest.fixture
def cluster(apiserver) -> Cluster:
    return Cluster(*apiserver)


class RunningController:
    def __init__(self, url: str, identity: str, **settings: Any) -> None:
        reconcile = ReconcileSettings(retry_invalid_after=settings.pop("retry_invalid_after", 0.5),
                                      start_backoff=settings.pop("start_backoff", 1.0))
        self.settings = ControllerSettings(identity=identity, lease_duration=3.0, renew_deadline=2.0,
                                           retry_period=0.25, base_backoff=0.05, max_backoff=1.0,
                                           reconcile=reconcile, **settings)
        self.metrics = Metrics()
        self.controller = Controller(Kube(load_api_client(server=url)), self.settings, self.metrics)
        self.stop_event = threading.Event()
        self.result: list[bool] = []
        self.thread = threading.Thread(target=lambda: self.result.append(self.controller.run(self.stop_event)),
                                       name=f"controller-{identity}", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(30)


@pytest.fixture
def start_controller(apiserver) -> Iterator[Callable[..., RunningController]]:
    started: list[RunningController] = []

    def start(identity: str = "controller-a", **settings: Any) -> RunningController:
        started.append(RunningController(apiserver[1], identity, **settings))
        return started[-1]

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture
def controller(start_controller) -> RunningController:
    return start_controller()
