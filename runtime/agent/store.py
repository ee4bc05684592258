"""Agent state on disk: one record per (container ID, interface), locks, service files.

Layout under the state dir (`/var/lib/netplug`, naming.DEFAULT_STATE_DIR, or NETPLUG_STATE_DIR):

    attachments/<container ID>/<ifname>.json   AttachmentRecord, written atomically
    services/<tag>.{conf,pid,leases,log}        the attachment's dnsmasq files
    locks/<00..ff>.lock                         flock stripes serializing work per attachment

Records are replaced with write-to-temp + rename, so a reader never sees half a record and
a killed process leaves the old or the new one. There is no fsync: what a record describes
(links, rules, processes in a pod netns) does not survive a power loss either, and the
records would only name things that are gone, which DEL and GC tolerate. Both the agent and the in-process
fallback use the same locks, so they never work on one attachment at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from netplug import naming
from netplug.apply import ServiceFiles
from netplug.errors import StateError
from netplug.model.record import AttachmentRecord
from netplug.ops.files import replace_file

log = logging.getLogger("netplug.store")
LOCK_STRIPES = 256


def state_dir_from_env(env: dict[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("NETPLUG_STATE_DIR") or naming.DEFAULT_STATE_DIR


class Store:
    def __init__(self, root: str) -> None:
        self.root = root
        try:
            for sub in ("attachments", "services", "locks"):
                os.makedirs(os.path.join(root, sub), mode=0o700, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot create the state dir {root}: {exc.strerror}") from None

    def _record_path(self, container_id: str, ifname: str) -> str:
        return os.path.join(self.root, "attachments", container_id, f"{ifname}.json")

    def service_files(self, container_id: str, ifname: str) -> ServiceFiles:
        base = os.path.join(self.root, "services", naming.attachment_tag(container_id, ifname))
        return ServiceFiles(conf=base + ".conf", pid=base + ".pid", leases=base + ".leases", log=base + ".log")

    @contextmanager
    def lock(self, container_id: str, ifname: str) -> Iterator[None]:
        stripe = hashlib.sha256(f"{container_id}/{ifname}".encode()).digest()[0] % LOCK_STRIPES
        path = os.path.join(self.root, "locks", f"{stripe:02x}.lock")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:  # out of inodes, read-only, gone
            raise StateError(f"cannot open the lock {path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def load(self, container_id: str, ifname: str) -> AttachmentRecord | None:
        try:
            with open(self._record_path(container_id, ifname)) as f:
                return AttachmentRecord.model_validate_json(f.read())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StateError(f"cannot read the state of {container_id}/{ifname}: {exc}") from None

    def save(self, record: AttachmentRecord) -> None:
        path = self._record_path(record.container_id, record.ifname)
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            replace_file(path, record.model_dump_json(), 0o600)
        except OSError as exc:
            raise StateError(f"cannot write the state of {record.container_id}/{record.ifname} to {path}: "
                             f"{exc.strerror}") from None

    def delete(self, container_id: str, ifname: str) -> None:
        """Forget the attachment: its record and its service files."""
        files = self.service_files(container_id, ifname)
        for path in (self._record_path(container_id, ifname), files.conf, files.pid, files.leases, files.log):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        try:
            os.rmdir(os.path.join(self.root, "attachments", container_id))
        except OSError:
            pass  # other interfaces of the container remain

    def records(self, of_container: str | None = None) -> Iterator[AttachmentRecord]:
        """Every readable record, or only those of one container. A directory a concurrent DEL
        removes, or a record that cannot be read, is skipped (and logged): one bad file never
        stops a scan."""
        base = os.path.join(self.root, "attachments")
        for container_id in [of_container] if of_container is not None else sorted(os.listdir(base)):
            try:
                names = sorted(os.listdir(os.path.join(base, container_id)))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for name in names:
                if not name.endswith(".json"):
                    continue
                try:
                    record = self.load(container_id, name[: -len(".json")])
                except StateError as exc:
                    log.error("skipping %s/%s: %s", container_id, name, exc.msg)
                    continue
                if record is not None:
                    yield record
