"""The Kubernetes API as the controller uses it: JSON documents in and out, through the
`kubernetes` client's ApiClient (its configuration, credentials, TLS and connection pool).

Every write is a JSON merge patch (`application/merge-patch+json`, which custom resources
accept, unlike strategic merge) or a create or a delete; a patch that replaces a list another
writer may change (finalizers) carries the object's resourceVersion, so the API server refuses
it (409 Conflict) if the object changed since it was read. Errors come back as `ApiError`
with the API's status code and message; `transient` says whether trying again can help.

    Kube(api_client).get(PODS, "default", "virt-launcher-x") -> dict | None

May import: the kubernetes client, netplug.errors, the standard library.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import urllib3
from kubernetes import client, config
from kubernetes.watch.watch import iter_resp_lines

from netplug.errors import InvalidConfig

MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        parts = ["/apis", self.group, self.version] if self.group else ["/api", self.version]
        if namespace is not None:
            parts += ["namespaces", namespace]
        parts.append(self.plural)
        if name is not None:
            parts.append(name)
        if subresource is not None:
            parts.append(subresource)
        return "/".join(parts)


VMS = Resource("kubevirt.io", "v1", "virtualmachines", "VirtualMachine")
VMIS = Resource("kubevirt.io", "v1", "virtualmachineinstances", "VirtualMachineInstance")
PODS = Resource("", "v1", "pods", "Pod")
EVENTS = Resource("", "v1", "events", "Event")
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
NADS = Resource("k8s.cni.cncf.io", "v1", "network-attachment-definitions", "NetworkAttachmentDefinition")
SERVICES = Resource("", "v1", "services", "Service")


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message

    @property
    def transient(self) -> bool:
        """Worth trying again: the server or the connection failed, or it asked to slow down,
        or the object changed under us (a conflict: read it again and redo)."""
        return self.status in (0, 409, 429) or self.status >= 500


USER_AGENT = "netplug-controller"


def load_api_client(kubeconfig: str | None = None, server: str | None = None,
                    user_agent: str = USER_AGENT) -> client.ApiClient:
    """The in-cluster service account, else a kubeconfig; `server` alone (no credentials) for
    tests and `kubectl proxy`."""
    configuration = client.Configuration()
    try:
        if server:
            configuration.host = server.rstrip("/")
        elif kubeconfig:
            config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        else:
            try:
                config.load_incluster_config(client_configuration=configuration)
            except config.ConfigException:
                config.load_kube_config(client_configuration=configuration)
    except (config.ConfigException, OSError) as exc:
        raise InvalidConfig(f"no API server to talk to: not in a pod, and no usable kubeconfig ({exc}); "
                            "give --kubeconfig or --server") from None
    api_client = client.ApiClient(configuration)
    api_client.user_agent = user_agent  # what audit logs and API priority and fairness see
    return api_client


class Watch:
    """One watch stream; `stop()` from another thread ends it at once."""

    def __init__(self, response: urllib3.HTTPResponse) -> None:
        self.response = response

    def events(self) -> Iterator[dict]:
        try:
            for line in iter_resp_lines(self.response):
                if line.strip():
                    yield json.loads(line)
        finally:
            self.response.release_conn()

    def stop(self) -> None:
        try:
            self.response.shutdown()
        except (OSError, ValueError, RuntimeError):  # ended already (its connection went back to the pool)
            pass


class Kube:
    def __init__(self, api_client: client.ApiClient, timeout: tuple[float, float] = (5.0, 30.0)) -> None:
        self.api = api_client
        self.timeout = timeout

    def _call(self, method: str, path: str, query: dict | None = None, body: object = None,
              content_type: str = "application/json", timeout: tuple[float, float] | None = None):
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        params = self.api.param_serialize(method=method, resource_path=path,
                                          query_params=list((query or {}).items()), header_params=headers,
                                          body=body, auth_settings=["BearerToken"])
        try:
            return self.api.call_api(*params, _request_timeout=timeout or self.timeout)
        except urllib3.exceptions.HTTPError as exc:
            raise ApiError(0, "ConnectionFailed", str(exc)) from None
        except client.ApiException as exc:
            raise ApiError(exc.status or 0, str(exc.reason), str(exc.body or exc.reason)) from None

    def request(self, method: str, path: str, query: dict | None = None, body: object = None,
                content_type: str = "application/json") -> dict:
        response = self._call(method, path, query, body, content_type)
        try:
            data = response.read()
        except urllib3.exceptions.HTTPError as exc:
            raise ApiError(0, "ConnectionFailed", str(exc)) from None
        try:
            document = json.loads(data) if data else {}
        except ValueError:
            document = {"message": data[:200].decode(errors="replace")}
        if not 200 <= response.status < 300:
            raise ApiError(response.status, str(document.get("reason") or response.reason),
                           str(document.get("message") or response.reason))
        return document if isinstance(document, dict) else {}

    def get(self, resource: Resource, namespace: str, name: str) -> dict | None:
        try:
            return self.request("GET", resource.path(namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, resource: Resource, namespace: str | None = None, label_selector: str | None = None) -> dict:
        query = {"labelSelector": label_selector} if label_selector else None
        return self.request("GET", resource.path(namespace), query)

    def create(self, resource: Resource, namespace: str, body: dict) -> dict:
        return self.request("POST", resource.path(namespace), body={"apiVersion": resource.api_version,
                                                                    "kind": resource.kind, **body})

    def patch(self, resource: Resource, namespace: str, name: str, body: dict, status: bool = False) -> dict:
        return self.request("PATCH", resource.path(namespace, name, "status" if status else None), body=body,
                            content_type=MERGE_PATCH)

    def delete(self, resource: Resource, namespace: str, name: str, grace_seconds: int | None = None,
               uid: str | None = None) -> bool:
        """Delete (in the background: the garbage collector removes what the object owns);
        False when it was already gone. `uid`: only that incarnation of the object."""
        body: dict = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        if grace_seconds is not None:
            body["gracePeriodSeconds"] = grace_seconds
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self.request("DELETE", resource.path(namespace, name), body=body)
        except ApiError as exc:
            if exc.status == 404 or (exc.status == 409 and uid):
                return False  # gone, or (the uid precondition failed) replaced by another incarnation
            raise
        return True

    def watch(self, resource: Resource, resource_version: str | None, label_selector: str | None = None,
              timeout_seconds: int = 300) -> Watch:
        query: dict = {"watch": "true", "allowWatchBookmarks": "true", "timeoutSeconds": str(timeout_seconds)}
        if resource_version:
            query["resourceVersion"] = resource_version
        if label_selector:
            query["labelSelector"] = label_selector
        # the read timeout outlives the server's timeoutSeconds: a silent connection is a dead one
        response = self._call("GET", resource.path(), query, timeout=(self.timeout[0], timeout_seconds + 30.0))
        if response.status != 200:
            data = response.read()
            try:
                document = json.loads(data)
            except ValueError:
                document = {}
            raise ApiError(response.status, str(document.get("reason") or response.reason),
                           str(document.get("message") or response.reason))
        return Watch(response.response)
