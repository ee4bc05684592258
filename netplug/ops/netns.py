"""Network namespaces: check a CNI_NETNS path, and run the calling thread inside one.

`entered(path)` uses setns(2) on the calling thread only (network namespaces may differ
between threads of one process), so the agent serves many pods at once from a thread pool
without forking; sockets, netlink handles and child processes created inside the block
belong to that namespace.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager

from netplug.errors import InvalidEnvironment, KernelError, NetnsNotFound

CLONE_NEWNET = 0x40000000
#: the node's netns: the process's main thread never leaves it (work runs on other threads)
NODE = f"/proc/{os.getpid()}/ns/net"
NSFS_MAGIC = 0x6E736673
_libc = ctypes.CDLL(None, use_errno=True)


class _Statfs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_byte * 112)]


def _is_nsfs(path: str) -> bool:
    buf = _Statfs()
    if _libc.statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
        return False
    return buf.f_type == NSFS_MAGIC


def exists(path: str) -> bool:
    return os.path.exists(path)


def identity(path: str) -> str | None:
    """Which namespace `path` names ("dev:inode"), None if it names none any more."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_dev}:{st.st_ino}"


def check(path: str) -> None:
    """Raise unless `path` names a network namespace (a nsfs file or a bind mount of one)
    other than the node's own (a CNI plugin never wires the host, like the Go skel's check)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise NetnsNotFound(f'netns "{path}" does not exist') from None
    except OSError as exc:
        raise InvalidEnvironment(f'CNI_NETNS "{path}": {exc.strerror}') from None
    if stat.S_ISDIR(st.st_mode) or not _is_nsfs(path):
        raise InvalidEnvironment(f'CNI_NETNS "{path}" is not a network namespace')
    if identity(path) == identity(NODE):
        raise InvalidEnvironment(f'CNI_NETNS "{path}" is the node\'s own network namespace')


def _setns(fd: int, what: str) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        if err == errno.EINVAL:
            raise InvalidEnvironment(f'CNI_NETNS "{what}" is not a network namespace')
        raise KernelError(f'cannot enter netns "{what}": {os.strerror(err)}')


@contextmanager
def entered(path: str) -> Iterator[None]:
    """Run the block with the calling thread inside the netns at `path`."""
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NetnsNotFound(f'netns "{path}" does not exist') from None
    except OSError as exc:
        raise InvalidEnvironment(f'CNI_NETNS "{path}": {exc.strerror}') from None
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target, path)
        try:
            yield
        finally:
            _setns(own, "own")
    finally:
        os.close(target)
        os.close(own)


CLONE_NEWNS = 0x00020000
MS_REC, MS_PRIVATE = 0x4000, 0x40000


def enter_for_process(path: str) -> None:
    """Move the calling thread into the netns for good (a launcher does this first thing,
    before it starts threads, so every thread and child it makes lives there too)."""
    check(path)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(fd, path)
    finally:
        os.close(fd)


def private_run_dir() -> None:
    """Give the calling process its own mount namespace with an empty tmpfs on /run, so that
    libvirt's embedded driver leaves nothing behind in the host's /run."""
    if _libc.unshare(CLONE_NEWNS) != 0:
        raise KernelError(f"unshare(CLONE_NEWNS): {os.strerror(ctypes.get_errno())}")
    if _libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise KernelError(f"making / private: {os.strerror(ctypes.get_errno())}")
    if _libc.mount(b"tmpfs", b"/run", b"tmpfs", 0, b"mode=0755") != 0:
        raise KernelError(f"mounting a tmpfs on /run: {os.strerror(ctypes.get_errno())}")


def create(name: str) -> str:
    """A named netns (/run/netns/<name>), like `ip netns add`; its path."""
    from pyroute2 import netns as pyroute2_netns

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}", name):
        raise InvalidEnvironment(f'netns name "{name}" is not a valid name')
    try:
        pyroute2_netns.create(name)
    except OSError as exc:
        raise KernelError(f"cannot create netns {name}: {exc.strerror}") from None
    return f"/run/netns/{name}"


def remove(name: str) -> bool:
    """Remove a named netns; False when it did not exist."""
    from pyroute2 import netns as pyroute2_netns

    if not os.path.exists(f"/run/netns/{name}"):
        return False
    pyroute2_netns.remove(name)
    return True
