"""The guest's DHCP service: one dnsmasq per attachment, started in the calling thread's netns.

dnsmasq daemonizes itself and its first process exits only once the daemon is bound and
ready (or with the startup error), so when `start` returns, DHCP already answers; a caller
with other work to do starts it with `begin_start` and waits with `finish_start`. The pid
file identifies the daemon; before signalling a pid we check that it is still a dnsmasq
running our config file, so a recycled pid is never killed. `leases` and `log_events` read
what the service handed out and answered (its lease file and its `log-dhcp` log), with the
client's MAC for DHCPv6 too.
"""

from __future__ import annotations

import ipaddress
import os
import re
import select
import shutil
import signal
import subprocess
from dataclasses import dataclass

from netplug.errors import ServiceError
from netplug.ops.files import replace_file
from netplug.ops.proc import live_argv, pids_mentioning

DNSMASQ = "dnsmasq"


def unavailable() -> str | None:
    """Why no guest DHCP service can start here (no dnsmasq on PATH), or None."""
    if shutil.which(DNSMASQ) is None:
        return "dnsmasq is not installed (Debian package dnsmasq-base)"
    return None


def _write_config(path: str, text: str) -> None:
    try:  # rendered again from the state record at every start
        replace_file(path, text)
    except OSError as exc:  # a full or read-only state dir: a CNI error, and no half-written file
        raise ServiceError(f"cannot write the DHCP config {path}: {exc.strerror}") from None


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


@dataclass
class Starting:
    """A dnsmasq on its way up: its starter runs until the daemon answers (`finish_start`)."""

    conf_file: str
    pid_file: str
    starter: subprocess.Popen


def begin_start(config: str, conf_file: str, pid_file: str) -> Starting:
    """Write the config and start dnsmasq without waiting for it (the caller goes on with
    other work meanwhile, then calls `finish_start`)."""
    _write_config(conf_file, config)
    try:
        starter = subprocess.Popen([DNSMASQ, "-C", conf_file], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    except FileNotFoundError:
        raise ServiceError("dnsmasq is not installed (Debian package dnsmasq-base)") from None
    return Starting(conf_file, pid_file, starter)


def finish_start(starting: Starting, timeout: float = 30.0) -> int:
    """Wait until the dnsmasq `begin_start` started answers; its pid."""
    try:
        _, stderr = starting.starter.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        starting.starter.kill()
        starting.starter.communicate()
        raise ServiceError(f"dnsmasq with {starting.conf_file} did not start in {timeout:.0f} s") from None
    if starting.starter.returncode != 0:
        raise ServiceError("dnsmasq failed to start", details=stderr.decode(errors="replace").strip())
    pid = running(starting.conf_file, starting.pid_file)
    if pid is None:
        raise ServiceError(f"dnsmasq started but {starting.pid_file} names no running dnsmasq")
    return pid


def start(config: str, conf_file: str, pid_file: str) -> int:
    """Write the config and start dnsmasq; returns its pid once it answers."""
    return finish_start(begin_start(config, conf_file, pid_file))


def abandon_start(starting: Starting) -> None:
    """Undo `begin_start`, finished or not: whatever came up is stopped."""
    starting.starter.communicate()  # let the starter finish: a daemon it forked has a pid file then
    stop(starting.conf_file, starting.pid_file)


@dataclass
class Stopping:
    """A DHCP service told to stop, not yet waited for."""

    pid_file: str
    pidfds: list[int]


def _ours(conf_file: str) -> list[int]:
    """Every live dnsmasq started with `conf_file`: a daemon whose pid file is gone, and the
    processes of a start that a crash cut short (they go on coming up without us)."""
    needle = os.fsencode(conf_file)
    return [pid for pid in pids_mentioning(needle)
            if (argv := live_argv(pid)) and os.path.basename(argv[0]) == b"dnsmasq" and needle in argv]


def _signal(pids: list[int], sig: int) -> list[int]:
    """pidfds of `pids`, each sent `sig` (a pidfd pins the process: no recycled pid can be
    signalled, and poll() wakes at its exit)."""
    pidfds = []
    for pid in pids:
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            signal.pidfd_send_signal(pidfd, sig)
        except ProcessLookupError:
            pass
        pidfds.append(pidfd)
    return pidfds


def _wait(pidfds: list[int], timeout: float) -> None:
    """Until each process has exited (SIGKILL after `timeout`); closes the pidfds."""
    try:
        for pidfd in pidfds:
            try:
                if not select.select([pidfd], [], [], timeout)[0]:
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                    select.select([pidfd], [], [], timeout)
            except ProcessLookupError:
                pass
    finally:
        for pidfd in pidfds:
            os.close(pidfd)


def _stop_leftovers(conf_file: str, timeout: float) -> bool:
    """Stop every dnsmasq of `conf_file` that no pid file names; False if there was none.
    Each round waits for what it signalled to exit, so a daemon forked by a starter it caught
    mid-start exists at the next round's scan."""
    found = False
    for _ in range(10):
        pids = _ours(conf_file)
        if not pids:
            break
        found = True
        _wait(_signal(pids, signal.SIGTERM), timeout)
    return found


def begin_stop(conf_file: str, pid_file: str, timeout: float = 2.0) -> Stopping | None:
    """SIGTERM the service and return at once (`finish_stop` waits); None when it was not
    running. Without a live daemon in the pid file (a start cut short by a crash, a pid file
    gone) the processes of `conf_file` are found in /proc and stopped before it returns."""
    pid = running(conf_file, pid_file)
    if pid is not None:
        return Stopping(pid_file, _signal([pid], signal.SIGTERM))
    stopped = os.path.exists(conf_file) and _stop_leftovers(conf_file, timeout)
    _unlink(pid_file)
    return Stopping(pid_file, []) if stopped else None


def finish_stop(stopping: Stopping | None, timeout: float = 2.0) -> bool:
    """Wait until the processes `begin_stop` signalled have exited (SIGKILL after `timeout`)
    and remove the pid file; False when there were none."""
    if stopping is None:
        return False
    _wait(stopping.pidfds, timeout)
    _unlink(stopping.pid_file)
    return True


def stop(conf_file: str, pid_file: str, timeout: float = 2.0) -> bool:
    """Stop the service; False when it was not running. Removes the pid file."""
    return finish_stop(begin_stop(conf_file, pid_file, timeout), timeout)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


@dataclass(frozen=True)
class Lease:
    address: str
    #: the client's MAC: DHCPv4's hardware address; for DHCPv6 the MAC in a DUID-LLT/LL
    #: (what most clients send), else None
    mac: str | None
    duid: str | None = None


@dataclass(frozen=True)
class DhcpEvent:
    """One DHCP message in the service's log: kind (DHCPDISCOVER, DHCPACK, DHCPSOLICIT,
    DHCPREPLY, ...), the address it names (if any) and the client's MAC (if known)."""

    kind: str
    address: str | None
    mac: str | None


_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_MESSAGE = re.compile(r"(?:(\d+) )?(DHCP[A-Z]+)\([^)]*\)\s*(.*)$")
_CLIENT_MAC = re.compile(r"(\d+) client MAC address: ([0-9a-fA-F:]+)")


def _duid_mac(duid: str) -> str | None:
    """The link-layer address in a DUID-LLT (type 1) or DUID-LL (type 3) for Ethernet."""
    octets = duid.lower().split(":")
    if octets[:4] == ["00", "01", "00", "01"] and len(octets) == 14:
        return ":".join(octets[8:])
    if octets[:4] == ["00", "03", "00", "01"] and len(octets) == 10:
        return ":".join(octets[4:])
    return None


def _is_address(word: str) -> bool:
    try:
        ipaddress.ip_address(word)
    except ValueError:
        return False
    return True


def leases(lease_file: str) -> list[Lease]:
    """The leases the service handed out (dnsmasq's lease file); none if there is no file."""
    found = []
    try:
        with open(lease_file) as f:
            for line in f:
                fields = line.split()
                if len(fields) < 3 or not fields[0].isdigit():
                    continue  # the "duid <server DUID>" line
                if ":" in fields[2]:  # IPv6: expiry IAID address hostname client-DUID
                    duid = fields[4] if len(fields) > 4 else None
                    found.append(Lease(fields[2], _duid_mac(duid) if duid else None, duid))
                else:  # IPv4: expiry MAC address hostname client-id
                    found.append(Lease(fields[2], fields[1].lower()))
    except FileNotFoundError:
        pass
    return found


def log_events(log_file: str, tail: int = 256 * 1024) -> list[DhcpEvent]:
    """The DHCP messages in the last `tail` bytes of the service's log (`log-dhcp`), oldest
    first. DHCPv6 lines name a DUID: the MAC comes from the line dnsmasq logs per exchange."""
    try:
        with open(log_file, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - tail))
            text = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return []
    macs: dict[str, str] = {}
    events = []
    for line in text.splitlines():
        if found := _CLIENT_MAC.search(line):
            macs[found.group(1)] = found.group(2).lower()
            continue
        found = _MESSAGE.search(line)
        if found is None:
            continue
        exchange, kind, rest = found.groups()
        words = rest.split()
        address = next((w for w in words if _is_address(w)), None)
        mac = next((w.lower() for w in words if _MAC.match(w.lower())), None)
        if mac is None and exchange:
            mac = macs.get(exchange)
        if mac is None:
            mac = next((m for w in words if (m := _duid_mac(w))), None)
        events.append(DhcpEvent(kind, address, mac))
    return events
