"""The validating admission webhook: AdmissionReview v1 over HTTPS for VirtualMachines and
VirtualMachineInstances, answered with netplug.admission's rules.

    POST /validate   an AdmissionReview; the answer allows the object or denies it with a
                     Kubernetes Status (reason Invalid, code 422) whose causes name each field
                     path, value and rule
    GET  /healthz    "ok"

A document the API model cannot even read (a port out of range, a bad private DHCP option)
is denied with the model's own field path. `nad_exists(namespace, name)` is netplug's extra
rule that a Multus network names an existing NetworkAttachmentDefinition; the controller gives
it a lookup in the API, tests a set.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from netplug.admission import Denial, review
from netplug.errors import InvalidConfig
from netplug.model.vm import vmi_from_document

log = logging.getLogger("netplug.webhook")
MAX_BODY = 3 << 20


def admit(request: dict, nad_exists: Callable[[str, str], bool] | None = None) -> dict:
    """The AdmissionReview `response` for one AdmissionReview `request`."""
    uid = request.get("uid", "")
    document = request.get("object") or {}
    if request.get("operation") == "DELETE" or not isinstance(document, dict):
        return {"uid": uid, "allowed": True}
    base = "spec.template.spec" if document.get("kind") == "VirtualMachine" else "spec"
    try:
        denials = review(vmi_from_document(document), base, nad_exists)
    except InvalidConfig as exc:
        field, _, message = exc.msg.partition(": ")
        denials = [Denial(field, None, message or exc.msg)]
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
            request = review_doc["request"]
        except (ValueError, KeyError, TypeError):
            self._reply(400, "not an AdmissionReview")
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
        context.load_cert_chain(cert, key)
        self.socket = context.wrap_socket(self.socket, server_side=True)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="webhook", daemon=True)
        thread.start()
        return thread
