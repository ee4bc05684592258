"""Processes by their command line: what /proc says of a pid, zombies counted as gone.

netplug finds the processes it started (dnsmasq, QEMU, launchers) by their arguments, and
checks a pid still is what it recorded before signalling it, so a recycled pid is never hit.
"""

from __future__ import annotations

import os


def live_argv(pid: int) -> list[bytes] | None:
    """The argv of a live process; None when it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except (OSError, IndexError):
        return None
    return None if state in ("Z", "X") else argv


def pids_mentioning(needle: bytes) -> list[int]:
    """Live pids whose command line contains `needle`, in /proc order."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            argv = live_argv(int(entry))
            if argv is not None and needle in b"\0".join(argv):
                pids.append(int(entry))
    return pids
