"""sysctls under /proc/sys of the calling thread's network namespace."""

from __future__ import annotations

import os
import re

from netplug.errors import KernelError

_KEY = re.compile(r"^net/[A-Za-z0-9_./-]+$")


def _path(key: str) -> str:
    if not _KEY.match(key) or ".." in key.split("/"):
        raise KernelError(f'refusing sysctl key "{key}" (only net/... keys)')
    return "/proc/sys/" + key


def read(key: str) -> str | None:
    try:
        with open(_path(key)) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def write(key: str, value: str) -> None:
    try:
        fd = os.open(_path(key), os.O_WRONLY)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        raise KernelError(f'cannot set sysctl {key}={value}: {exc.strerror}') from None
