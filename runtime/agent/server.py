"""The agent's unix-socket server and its DHCP service supervisor.

Wire protocol (one request per connection; the shim writes, then shuts its side down):

    request   {"env": {CNI_* ...}, "stdin": "<base64 of the CNI config>"}  or  {"op": "health"}
    answer    {"exit": 0|1, "stdout": "<what the plugin prints>"}            or  {"ok": true}

The socket is 0600 in a 0700 directory, and each connection's peer credentials are checked:
only root (or the agent's own user) is served. Each request runs on its own thread; the
handler serializes work per attachment with the store's locks.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import socket
import socketserver
import struct
import threading

from netplug.apply import ensure_service
from netplug.errors import NetplugError
from runtime import logs
from runtime.agent.handler import Handler
from runtime.agent.store import Store

log = logging.getLogger("netplug.agent")
DEFAULT_SOCKET = "/run/netplug/agent.sock"
MAX_REQUEST = 4 << 20  # a 1 MiB config grows by a third in base64, plus the environment


def _peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


class _RequestHandler(socketserver.BaseRequestHandler):
    server: AgentServer

    def handle(self) -> None:
        uid = _peer_uid(self.request)
        if uid not in (0, os.getuid()):
            log.warning("refused a connection from uid %d", uid)
            return
        data = bytearray()
        while len(data) <= MAX_REQUEST:
            chunk = self.request.recv(65536)
            if not chunk:
                break
            data += chunk
        self.request.sendall(json.dumps(self.server.answer(bytes(data))).encode())


class AgentServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, handler: Handler) -> None:
        self.handler = handler
        directory = os.path.dirname(path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        old_umask = os.umask(0o177)
        try:
            super().__init__(path, _RequestHandler)
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)

    def answer(self, data: bytes) -> dict:
        try:
            request = json.loads(data)
            if request.get("op") == "health":
                return {"ok": True}
            env = {str(k): str(v) for k, v in request["env"].items()}
            stdin = base64.b64decode(request["stdin"], validate=True)
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
            error = {"cniVersion": "1.1.0", "code": 6, "msg": "the agent could not decode the shim's request"}
            return {"exit": 1, "stdout": json.dumps(error) + "\n"}
        code, out = self.handler.handle(env, stdin)
        return {"exit": code, "stdout": out}


class ServiceSupervisor(threading.Thread):
    """Keeps every added attachment's DHCP service running (after a restart, after a crash)."""

    def __init__(self, store: Store, interval: float = 2.0) -> None:
        super().__init__(name="service-supervisor", daemon=True)
        self.store = store
        self.interval = interval
        self.stopping = threading.Event()

    def sweep(self) -> int:
        started = 0
        for record in list(self.store.records()):
            if record.status != "added" or record.netspec is None or record.netspec.dhcp is None:
                continue
            if not os.path.exists(record.netspec.netns):
                continue
            with self.store.lock(record.container_id, record.ifname), \
                    logs.context(containerID=record.container_id, ifname=record.ifname):
                current = self.store.load(record.container_id, record.ifname)
                if current is None or current.status != "added" or current.netspec is None:
                    continue  # removed while we waited for the lock
                files = self.store.service_files(record.container_id, record.ifname)
                try:
                    if ensure_service(current.netspec, files):
                        log.info("restarted the DHCP service on %s", current.netspec.dhcp.interface)
                        started += 1
                except NetplugError as exc:
                    log.error("cannot restart the DHCP service: %s", exc.msg)
        return started

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                self.sweep()
            except Exception:
                log.exception("service sweep failed")


def serve(socket_path: str, store: Store, *, test_hooks: bool = False) -> None:
    handler = Handler(store, test_hooks=test_hooks)
    supervisor = ServiceSupervisor(store)
    restored = supervisor.sweep()
    log.info("restored %d DHCP services", restored)
    supervisor.start()
    with AgentServer(socket_path, handler) as server:
        log.info("listening on %s, state in %s", socket_path, store.root)
        try:
            server.serve_forever()
        finally:
            supervisor.stopping.set()
