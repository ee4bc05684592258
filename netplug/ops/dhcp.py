"""The guest's DHCP service: one dnsmasq per attachment, started in the calling thread's netns.

dnsmasq daemonizes itself and its first process exits only once the daemon is bound and
ready (or with the startup error), so when `start` returns, DHCP already answers. The pid
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
import signal
import subprocess
from dataclasses import dataclass

from netplug.errors import ServiceError
from netplug.ops.proc import live_argv

DNSMASQ = "dnsmasq"


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
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


def stop(conf_file: str, pid_file: str, timeout: float = 2.0) -> bool:
    """Stop the service; False when it was not running. Removes the pid file."""
    pid = running(conf_file, pid_file)
    if pid is not None:
        try:
            # a pidfd pins the process: no recycled pid can be signalled, and poll() wakes at exit
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            pidfd = None
        if pidfd is not None:
            try:
                signal.pidfd_send_signal(pidfd, signal.SIGTERM)
                if not select.select([pidfd], [], [], timeout)[0]:
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                    select.select([pidfd], [], [], timeout)
            except ProcessLookupError:
                pass
            finally:
                os.close(pidfd)
    try:
        os.unlink(pid_file)
    except FileNotFoundError:
        pass
    return pid is not None


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
