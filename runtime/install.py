"""Installing the CNI shim (cni/netplug) where a runtime finds it.

The shim runs on the node, exec'd by kubelet's runtime (or Multus): its `#!` line names an
interpreter as the node sees it. On a standalone machine that is netplug's own venv; on a
cluster node it is the node's python3 (the shim needs only the standard library), written by
the agent DaemonSet's init container, which sees the node's files under a mount point
(`node_root`) and cannot run the node's programs as the node would.

The in-process fallback (the shim running netplug's handler itself when no agent answers)
needs netplug and its dependencies (pyroute2, libnftables, dnsmasq) for `fallback`, the
interpreter it execs. A cluster node has none of them: there the shim is installed with no
fallback, and a call while no agent answers is CNI error 11 (try again later; STATUS: 50),
which kubelet retries, as with other daemon-backed plugins (Multus thick, Cilium, Calico).

May import: netplug.errors, the standard library.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from netplug.errors import NetplugError

SHIM_SOURCE = Path(__file__).resolve().parents[1] / "cni" / "netplug"
#: the oldest python3 the shim runs on: it uses nothing newer than os.memfd_create (3.8)
SHIM_PYTHON_FLOOR = (3, 8)
#: `fallback` for a node without netplug installed: the shim answers code 11 instead
NO_FALLBACK = "none"
#: `fallback` default: the interpreter of the `#!` line
SAME = "same"


def node_python_version(python: str) -> tuple[int, int] | None:
    """(major, minor) of an interpreter, or None when it cannot run here (a node's binary
    seen from a container may lack its libraries). `-V` needs no standard library."""
    try:
        done = subprocess.run([python, "-V"], capture_output=True, text=True, timeout=10,
                              env={"PYTHONHOME": "/nonexistent"}, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.match(r"Python (\d+)\.(\d+)", (done.stdout or done.stderr).strip())
    return (int(match[1]), int(match[2])) if match and done.returncode == 0 else None


def install_shim(bin_dir: str, python: str, socket_path: str = "/run/netplug/agent.sock",
                 state_dir: str = "/var/lib/netplug", *, fallback: str = SAME, node_root: str = "/") -> str:
    """Copy the shim into `bin_dir` as `netplug`, with `#!python -IS` (python as the node sees
    it, checked at `node_root` + python), the agent's socket and state dir as its defaults, and
    `fallback` (an interpreter with netplug installed, SAME, or NO_FALLBACK) for the in-process
    fallback."""
    if not os.path.isabs(python) or "\n" in python or " " in python:
        raise NetplugError(f"--python: {python!r} is not an absolute path (without spaces)")
    seen_here = os.path.join(node_root, python.lstrip("/"))
    if not os.path.isfile(seen_here) or not os.access(seen_here, os.X_OK):
        where = "" if node_root == "/" else f" (the node's root is {node_root} here: looked at {seen_here})"
        raise NetplugError(f"--python: {python} is not an executable file{where}")
    version = node_python_version(seen_here)
    if version is not None and version < SHIM_PYTHON_FLOOR:
        raise NetplugError(f"--python: {python} is Python {version[0]}.{version[1]}; the shim needs "
                           f"{'.'.join(map(str, SHIM_PYTHON_FLOOR))} or later")
    if fallback == SAME:
        fallback = python
    elif fallback == NO_FALLBACK:
        fallback = ""
    elif not os.path.isabs(fallback):
        raise NetplugError(f"--fallback-python: {fallback!r} is not an absolute path, {SAME} or {NO_FALLBACK}")
    lines = SHIM_SOURCE.read_text().splitlines(keepends=True)
    # -I -S: ignore the environment and site-packages; the shim needs the standard library only.
    # -X utf8: no locale lookup at start-up (4% of the interpreter's instructions). One word:
    # the kernel passes the rest of a #! line as a single argument.
    lines[0] = f"#!{python} -ISXutf8\n"
    baked = {"DEFAULT_SOCKET": socket_path, "DEFAULT_STATE_DIR": state_dir, "FALLBACK_PYTHON": fallback}
    for n, line in enumerate(lines):
        key = line.split(" = ", 1)[0]
        if key in baked and line.startswith(key + " = "):
            lines[n] = f"{key} = {baked.pop(key)!r}\n"
    if baked:  # the shim and this installer disagree: never install a shim with wrong defaults
        raise NetplugError(f"{SHIM_SOURCE}: no {', '.join(sorted(baked))} line to set")
    os.makedirs(bin_dir, exist_ok=True)
    target = os.path.join(bin_dir, "netplug")
    tmp = f"{target}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.writelines(lines)
    os.chmod(tmp, 0o755)  # nosec B103  # a CNI plugin binary: runtimes exec it; it holds no secret
    os.replace(tmp, target)  # a runtime never execs a half-written file
    return target
