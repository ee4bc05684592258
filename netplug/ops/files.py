"""Reading a small file whose path comes from input (a NAD's `resolvConf`), as root.

The path is opened with O_PATH first, which runs no device's open() (opening /dev/watchdog
arms it) and never blocks (a FIFO's open() waits for a writer); only a regular file outside
/proc, /sys and /dev, no larger than the limit, is then read, through that descriptor
(/proc/self/fd/N: the same inode, so nothing swapped in between is read) and non-blocking.
Symlinks are followed: a node's /etc/resolv.conf often is one (systemd-resolved's), and
whoever names the path can name the link's target as easily.

May import: the standard library.
"""

from __future__ import annotations

import errno
import os
import stat

SPECIAL = ("/proc/", "/sys/", "/dev/")


def read_regular_file(path: str, limit: int) -> str:
    """The text of `path`, or OSError saying why it is not read."""
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        real = os.readlink(f"/proc/self/fd/{fd}")
        if not stat.S_ISREG(info.st_mode) or real.startswith(SPECIAL):
            raise OSError(errno.EINVAL, f"not a regular file ({real})")
        if info.st_size > limit:
            raise OSError(errno.EFBIG, f"{info.st_size} bytes, more than {limit}")
        data_fd = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    finally:
        os.close(fd)
    with os.fdopen(data_fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"more than {limit} bytes")
    return data.decode("utf-8", errors="replace")
