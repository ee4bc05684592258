"""The agent's unix-socket server and its DHCP service supervisor.

Wire protocol 1 (one request per connection; the shim writes, then shuts its side down):

    request   b"NETPLUG/1\n" + b"KEY=VALUE\0" per variable + b"\0" + the config bytes
    answer    b"<exit code>\n" + what the plugin prints on stdout

It is framed by hand, not JSON, so that the shim, started for every pod, imports nothing
that costs start-up time (see cni/netplug).

The socket is 0600 in a 0700 directory, and each connection's peer credentials are checked:
only root (or the agent's own user) is served. Requests are served by a pool of worker threads
that each accept a connection and answer it, so the kernel hands a connection straight to an
idle worker: a thread started per request cost ~2 ms per CNI call on a loaded 2-core node (a
new thread and two more wake-ups before the request is read). The pool grows while every
worker is busy. The handler serializes work per attachment with the store's locks.
"""

from __future__ import annotations

import logging
import os
import socket
import socketserver
import struct
import threading
from concurrent.futures import ThreadPoolExecutor

from netplug.apply import ensure_service, same_netns
from netplug.errors import NetplugError
from netplug.model.record import AttachmentRecord
from netplug.ops import dhcp, netns
from runtime import logs
from runtime.agent.handler import Handler
from runtime.agent.store import Store

log = logging.getLogger("netplug.agent")
MAGIC = b"NETPLUG/1\n"
MAX_REQUEST = 2 << 20  # a 1 MiB config plus the environment
#: DHCP services restarted at once: each start mostly waits for dnsmasq to be ready
RESTORE_WORKERS = 4


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
        try:
            while len(data) <= MAX_REQUEST:
                chunk = self.request.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as exc:
            log.warning("lost the shim's request: %s", exc)
            return
        code, out = self.server.answer(bytes(data))
        try:
            self.request.sendall(f"{code}\n{out}".encode())
        except OSError as exc:  # the shim timed out or was killed; the runtime retries or DELs
            log.warning("the shim went away before its answer (exit %d) could be sent: %s", code, exc)


class AgentServer(socketserver.UnixStreamServer):
    #: workers waiting for a connection while the agent is idle; at most MAX_WORKERS serve at once
    WORKERS = 8
    MAX_WORKERS = 256
    # socketserver's default backlog is 5: with more shims connecting at once than that while
    # the agent is busy, connect() fails with EAGAIN and the pod gets code 11 (bench/churn.py
    # at concurrency 16). The kernel caps this at net.core.somaxconn.
    request_queue_size = socket.SOMAXCONN

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

    def serve_pooled(self) -> None:
        """Serve until the process ends. The calling thread only waits: it stays in the node's
        netns, which is how the node is found again (netplug.ops.netns.NODE)."""
        self._pool = threading.Condition()
        self._idle = self._workers = 0
        for _ in range(self.WORKERS):
            self._add_worker()
        threading.Event().wait()

    def _add_worker(self) -> None:
        with self._pool:
            self._idle += 1
            self._workers += 1
        threading.Thread(target=self._work, name="cni", daemon=True).start()

    def _work(self) -> None:
        node = netns.identity(netns.NODE)
        while True:
            try:
                request, address = self.socket.accept()
            except OSError as exc:  # out of file descriptors, say: let the others try
                log.error("cannot accept a connection: %s", exc)
                threading.Event().wait(0.1)
                continue
            with self._pool:
                self._idle -= 1
                grow = self._idle == 0 and self._workers < self.MAX_WORKERS
            if grow:  # the next connection finds a worker waiting
                self._add_worker()
            try:
                self.finish_request(request, address)
            except Exception:
                self.handle_error(request, address)
            finally:
                self.shutdown_request(request)
            in_node = netns.identity("/proc/thread-self/ns/net") == node
            with self._pool:
                retire = not in_node or self._idle >= self.WORKERS
                if retire:
                    self._workers -= 1
                else:
                    self._idle += 1
            if not in_node:  # never serve from a pod's netns: replace this thread
                log.error("a request left its worker outside the node's netns; replacing the worker")
                self._add_worker()
            if retire:
                return

    def handle_error(self, request: object, client_address: object) -> None:
        # socketserver would print a bare traceback; the agent's log stays JSON lines
        log.exception("serving a request failed")

    def answer(self, data: bytes) -> tuple[int, str]:
        request = decode_request(data)
        if request is None:
            error = '{"cniVersion": "1.1.0", "code": 11, "msg": "the agent does not understand the shim\'s request (protocol mismatch?)"}'
            return 1, error + "\n"
        return self.handler.handle(*request)


def decode_request(data: bytes) -> tuple[dict[str, str], bytes] | None:
    """(environment, stdin) of a protocol-1 request, or None if it is not one."""
    if not data.startswith(MAGIC):
        return None
    env: dict[str, str] = {}
    position = len(MAGIC)
    while True:
        end = data.find(b"\0", position)
        if end < 0:
            return None
        if end == position:
            return env, data[end + 1:]
        key, sep, value = data[position:end].partition(b"=")
        if not sep:
            return None
        env[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
        position = end + 1


class ServiceSupervisor(threading.Thread):
    """Keeps every added attachment's DHCP service running (after a restart, after a crash)."""

    def __init__(self, store: Store, interval: float = 2.0) -> None:
        super().__init__(name="service-supervisor", daemon=True)
        self.store = store
        self.interval = interval
        self.stopping = threading.Event()

    def sweep(self) -> int:
        """Start every added attachment's DHCP service that is not running; how many it started.
        Live services are told apart by their pid files alone (no lock, no second read of the
        record), and the dead ones are restarted a few at a time: after a crash that took all
        services with it, restoring 200 was one dnsmasq start after another (bench/scale.py)."""
        dead = []
        for record in self.store.records():
            if record.status != "added" or record.netspec is None or record.netspec.dhcp is None:
                continue
            if not same_netns(record.netspec):
                continue  # gone, or the path names another namespace now
            files = self.store.service_files(record.container_id, record.ifname)
            if dhcp.running(files.conf, files.pid) is None:
                dead.append(record)
        if not dead:
            return 0
        with ThreadPoolExecutor(RESTORE_WORKERS, thread_name_prefix="restore") as pool:
            return sum(pool.map(self._restart, dead))

    def _restart(self, record: AttachmentRecord) -> bool:
        with self.store.lock(record.container_id, record.ifname), \
                logs.context(containerID=record.container_id, ifname=record.ifname):
            current = self.store.load(record.container_id, record.ifname)
            if current is None or current.status != "added" or current.netspec is None:
                return False  # removed while we waited for the lock
            files = self.store.service_files(record.container_id, record.ifname)
            try:
                if ensure_service(current.netspec, files):
                    log.info("restarted the DHCP service on %s", current.netspec.dhcp.interface)
                    return True
            except NetplugError as exc:
                log.error("cannot restart the DHCP service: %s", exc.msg)
            return False

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                self.sweep()
            except Exception:
                log.exception("service sweep failed")


def serve(socket_path: str, store: Store, *, test_hooks: bool = False) -> None:
    handler = Handler(store, test_hooks=test_hooks)
    supervisor = ServiceSupervisor(store)
    try:
        log.info("restored %d DHCP services", supervisor.sweep())
    except Exception:  # the agent must come up to serve CNI requests whatever the state holds
        log.exception("restoring DHCP services failed; the supervisor retries every %.0f s", supervisor.interval)
    supervisor.start()
    with AgentServer(socket_path, handler) as server:
        log.info("listening on %s, state in %s", socket_path, store.root)
        try:
            server.serve_pooled()
        finally:
            supervisor.stopping.set()
