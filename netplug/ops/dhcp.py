"""The guest's DHCP service: one dnsmasq per attachment, started in the calling thread's netns.

dnsmasq daemonizes itself and its first process exits only once the daemon is bound and
ready (or with the startup error), so when `start` returns, DHCP already answers. The pid
file identifies the daemon; before signalling a pid we check that it is still a dnsmasq
running our config file, so a recycled pid is never killed.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
from dataclasses import dataclass

from netplug.errors import ServiceError
from netplug.ops.proc import live_argv

DNSMASQ = "dnsmasq"


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    # no fsync: the config is rendered again from the state record at every start
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _read_pid(pid_file: str) -> int | None:
    try:
        with open(pid_file) as f:
            return int(f.read().strip() or 0) or None
    except (FileNotFoundError, ValueError):
        return None


def _alive(pid: int, conf_file: str) -> bool:
    """True if `pid` is a live (not zombie) dnsmasq started with `conf_file`."""
    argv = live_argv(pid)
    return argv is not None and os.fsencode(conf_file) in argv


def running(conf_file: str, pid_file: str) -> int | None:
    pid = _read_pid(pid_file)
    return pid if pid and _alive(pid, conf_file) else None


def start(config: str, conf_file: str, pid_file: str) -> int:
    """Write the config and start dnsmasq; returns its pid once it answers."""
    _write_atomic(conf_file, config)
    try:
        proc = subprocess.run([DNSMASQ, "-C", conf_file], capture_output=True, text=True,
                              timeout=30, check=False, start_new_session=True)
    except FileNotFoundError:
        raise ServiceError("dnsmasq is not installed (Debian package dnsmasq-base)") from None
    except subprocess.TimeoutExpired:
        raise ServiceError(f"dnsmasq with {conf_file} did not start in 30 s") from None
    if proc.returncode != 0:
        raise ServiceError("dnsmasq failed to start", details=proc.stderr.strip())
    pid = running(conf_file, pid_file)
    if pid is None:
        raise ServiceError(f"dnsmasq started but {pid_file} names no running dnsmasq")
    return pid


@dataclass
class Stopping:
    """A DHCP service told to stop, not yet waited for."""

    pid_file: str
    pidfd: int | None


def begin_stop(conf_file: str, pid_file: str) -> Stopping | None:
    """SIGTERM the service and return at once (`finish_stop` waits); None when it was not running."""
    pid = running(conf_file, pid_file)
    if pid is None:
        _unlink(pid_file)
        return None
    try:
        # a pidfd pins the process: no recycled pid can be signalled, and poll() wakes at exit
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return Stopping(pid_file, None)
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGTERM)
    except ProcessLookupError:
        pass
    return Stopping(pid_file, pidfd)


def finish_stop(stopping: Stopping | None, timeout: float = 2.0) -> bool:
    """Wait until a service `begin_stop` signalled has exited (SIGKILL after `timeout`) and
    remove its pid file; False when there was none."""
    if stopping is None:
        return False
    if stopping.pidfd is not None:
        try:
            if not select.select([stopping.pidfd], [], [], timeout)[0]:
                signal.pidfd_send_signal(stopping.pidfd, signal.SIGKILL)
                select.select([stopping.pidfd], [], [], timeout)
        except ProcessLookupError:
            pass
        finally:
            os.close(stopping.pidfd)
    _unlink(stopping.pid_file)
    return True


def stop(conf_file: str, pid_file: str, timeout: float = 2.0) -> bool:
    """Stop the service; False when it was not running. Removes the pid file."""
    return finish_stop(begin_stop(conf_file, pid_file), timeout)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
