"""The validating admission webhook: AdmissionReview v1 over HTTPS for VirtualMachines and
VirtualMachineInstances, answered with netplug.admission's rules.

    POST /validate   an AdmissionReview; the answer allows the object or denies it with a
                     Kubernetes Status (reason Invalid, code 422) whose causes name each field
                     path, value and rule
    GET  /healthz    "ok"

`nad_exists(namespace, name)` is netplug's extra rule that a Multus network names an existing
NetworkAttachmentDefinition; `netplug webhook` gives it `nad_lookup`, a GET of the NAD through
the `kubernetes` client (in-cluster service account, else a kubeconfig: the webhook's
ServiceAccount needs `get` on network-attachment-definitions.k8s.cni.cncf.io in every
namespace VMs use). A lookup the API does not answer (forbidden, down) denies the VM with
code 500 naming the NAD and the API's reason: a VM is never admitted unchecked.

A document the API model cannot even read (a port out of range, a bad private DHCP option)
is denied with its field path and value, as for every other rule; a body that is no
AdmissionReview (not JSON, `request` or its `object` not an object) is answered 400.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from netplug.admission import Denial, review
from netplug.errors import InvalidConfig, InvalidField
from netplug.model.vm import vmi_from_document

log = logging.getLogger("netplug.webhook")
MAX_BODY = 3 << 20


class NadLookupFailed(Exception):
    """The API did not say whether a NetworkAttachmentDefinition exists."""


def nad_lookup(kube) -> Callable[[str, str], bool]:
    """`nad_exists` for the webhook: GET the NAD through `kube` (a runtime.controller.kube.Kube);
    404 means it does not exist, any other API error is NadLookupFailed."""
    from runtime.controller.kube import NADS, ApiError

    def exists(namespace: str, name: str) -> bool:
        try:
            return kube.get(NADS, namespace, name) is not None
        except ApiError as exc:
            raise NadLookupFailed(f'NetworkAttachmentDefinition "{namespace}/{name}": the API answered '
                                  f"{exc.status} {exc.reason}: {exc.message}") from None
    return exists


def admit(request: dict, nad_exists: Callable[[str, str], bool] | None = None) -> dict:
    """The AdmissionReview `response` for one AdmissionReview `request` (a dict whose
    `object`, unless it is a DELETE, is a dict: the HTTP handler checks that)."""
    uid = request.get("uid", "")
    if request.get("operation") == "DELETE":
        return {"uid": uid, "allowed": True}
    try:
        denials = review(vmi_from_document(request.get("object")), nad_exists)
    except InvalidField as exc:  # the API model itself cannot read the value
        denials = [Denial(exc.field, exc.value, exc.message)]
    except NadLookupFailed as exc:  # fail closed: never admit what could not be checked
        log.warning("%s", exc)
        return {"uid": uid, "allowed": False, "status": {
            "status": "Failure", "code": 500, "reason": "InternalError",
            "message": f"netplug could not check the VM's networks: {exc}"}}
    if not denials:
        return {"uid": uid, "allowed": True}
    return {"uid": uid, "allowed": False, "status": {
        "status": "Failure", "code": 422, "reason": "Invalid",
        "message": "; ".join(str(d) for d in denials),
        "details": {"causes": [{"type": "FieldValueInvalid", "field": d.field, "message": str(d)}
                               for d in denials]},
    }}


class _Handler(BaseHTTPRequestHandler):
    server: WebhookServer

    def log_message(self, fmt: str, *args: object) -> None:
        log.info("%s %s", self.address_string(), fmt % args)

    def _reply(self, code: int, body: dict | str) -> None:
        data = (json.dumps(body) if isinstance(body, dict) else body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json" if isinstance(body, dict) else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self._reply(200, "ok") if self.path == "/healthz" else self._reply(404, "not found")

    def do_POST(self) -> None:  # noqa: N802
        if self.path != "/validate":
            self._reply(404, "not found")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_BODY:
            self._reply(400, f"want an AdmissionReview of at most {MAX_BODY} bytes")
            return
        try:
            review_doc = json.loads(self.rfile.read(length))
        except ValueError:
            review_doc = None
        request = review_doc.get("request") if isinstance(review_doc, dict) else None
        if not isinstance(request, dict) or (request.get("operation") != "DELETE"
                                             and not isinstance(request.get("object"), dict)):
            self._reply(400, "not an AdmissionReview: want {\"request\": {..., \"object\": {...}}}")
            return
        response = admit(request, self.server.nad_exists)
        self._reply(200, {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})


class WebhookServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], cert: str, key: str,
                 nad_exists: Callable[[str, str], bool] | None = None) -> None:
        super().__init__(address, _Handler)
        self.nad_exists = nad_exists
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(cert, key)
        except OSError as exc:  # ssl.SSLError is one too
            self.server_close()
            raise InvalidConfig(f"TLS certificate {cert} / key {key}: {exc.strerror or exc}") from None
        self.socket = context.wrap_socket(self.socket, server_side=True)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="webhook", daemon=True)
        thread.start()
        return thread
