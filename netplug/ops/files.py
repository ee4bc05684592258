"""Files: replacing one atomically, and reading a small file whose path comes from input.

`replace_file` is how netplug writes every file a reader (or whoever comes after a SIGKILL)
must find whole: state records, the DHCP config, CNI cache entries, device-info files, the
launcher's status, standalone's records, the installed shim. The data goes to a temporary
file beside the target, which is then renamed over it: a reader sees the old file or the new
one, never part of one. There is no fsync: each caller's file either is rewritten from its
own source at the next start, or describes what does not survive a power loss either (links,
rules and processes in a pod netns), so losing the newest version costs nothing a reboot
does not already cost.

`read_regular_file` reads a small file whose path comes from input (a NAD's `resolvConf`), as
root. The path is opened with O_PATH first, which runs no device's open() (opening /dev/watchdog
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
import threading

SPECIAL = ("/proc/", "/sys/", "/dev/")


def replace_file(path: str, data: str | bytes, mode: int = 0o644) -> None:
    """Replace `path` with a file holding `data` (text is written as UTF-8), with exactly the
    permission bits `mode`, atomically (see the module docstring); OSError if it cannot be
    written, and then no temporary file is left behind.

    The temporary file's name is the target's plus the writer's process and thread IDs, so two
    writers of one path at once (two installs of the shim) each rename a whole file. It is
    created with O_EXCL | O_NOFOLLOW, never through a link someone planted at its name in the
    directory; one that a killed writer of the same IDs left is removed first."""
    tmp = f"{path}.tmp.{os.getpid()}.{threading.get_native_id()}"
    try:
        os.unlink(tmp)  # a link itself is removed, never what it points to
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # not narrowed by the umask: the caller names its readers
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


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
