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

What a runtime execs, `<bin dir>/netplug`, is a loader of a few lines; the shim itself is
`<bin dir>/.netplug/shim`: its source (with the defaults below written in) and the code
compiled from it at install time. Compiling the whole shim on every exec was a quarter of its
instructions (~1.5 ms on the project's machine); loading compiled code is one marshal.loads.
An interpreter of another Python version than the installer's compiles the source instead.

May import: netplug.errors, netplug.naming, netplug.ops.files, the standard library.
"""

from __future__ import annotations

import marshal
import os
import re
import subprocess
import sys
from pathlib import Path

from netplug.errors import NetplugError
from netplug.naming import DEFAULT_SOCKET, DEFAULT_STATE_DIR
from netplug.ops.files import replace_file

SHIM_SOURCE = Path(__file__).resolve().parents[1] / "cni" / "netplug"
#: the oldest python3 the shim runs on: it uses nothing newer than os.memfd_create (3.8)
SHIM_PYTHON_FLOOR = (3, 8)
#: `fallback` for a node without netplug installed: the shim answers code 11 instead
NO_FALLBACK = "none"
#: `fallback` default: the interpreter of the `#!` line
SAME = "same"
SHIM_DIR = ".netplug"  # beside the loader, found relative to it (the installer sees the bin dir elsewhere)

# -I -S: ignore the environment and site-packages; the shim needs the standard library only.
# -X utf8: no locale lookup at start-up (4% of the interpreter's instructions). One word: the
# kernel passes the rest of a #! line as a single argument.
LOADER = '''#!{python} -ISXutf8
"""netplug CNI plugin, written by `netplug install-cni`: runs the shim in .netplug/shim beside
it, from the code compiled at install time (see runtime/install.py in netplug)."""
import marshal
import sys

SHIM = (__file__.rpartition("/")[0] or ".") + "/{shim_dir}/shim"
try:
    with open(SHIM, "rb") as f:
        magic, source, compiled = marshal.loads(f.read())
except (OSError, ValueError, EOFError, TypeError) as exc:
    import json
    sys.stdout.write(json.dumps({{"cniVersion": "1.1.0", "code": 11, "msg": "netplug is not installed completely "
                                 "(run netplug install-cni again)", "details": "%s: %s" % (SHIM, exc)}}) + "\\n")
    sys.exit(1)
if magic == sys.modules["_frozen_importlib_external"].MAGIC_NUMBER:
    code = marshal.loads(compiled)
else:  # compiled by another Python version than this one
    code = compile(source, SHIM, "exec")
exec(code, {{"__name__": "__main__", "__file__": SHIM}})
'''


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


def install_shim(bin_dir: str, python: str, socket_path: str = DEFAULT_SOCKET,
                 state_dir: str = DEFAULT_STATE_DIR, *, fallback: str = SAME, node_root: str = "/") -> str:
    """Install the shim into `bin_dir` as `netplug`, with `#!python -IS` (python as the node sees
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
    baked = {"DEFAULT_SOCKET": socket_path, "DEFAULT_STATE_DIR": state_dir, "FALLBACK_PYTHON": fallback}
    for n, line in enumerate(lines):
        key = line.split(" = ", 1)[0]
        if key in baked and line.startswith(key + " = "):
            lines[n] = f"{key} = {baked.pop(key)!r}\n"
    if baked:  # the shim and this installer disagree: never install a shim with wrong defaults
        raise NetplugError(f"{SHIM_SOURCE}: no {', '.join(sorted(baked))} line to set")
    source = "".join(lines)
    shim_dir = os.path.join(bin_dir, SHIM_DIR)
    os.makedirs(shim_dir, mode=0o755, exist_ok=True)
    shim = os.path.join(shim_dir, "shim")
    magic = sys.modules["_frozen_importlib_external"].MAGIC_NUMBER
    # one file, so that the source and its code are replaced together; a tuple of str and
    # bytes, which every Python 3 reads, so that another version finds the source
    # replaced atomically: a runtime never execs or reads a half-written file
    replace_file(shim, marshal.dumps((magic, source, marshal.dumps(compile(source, shim, "exec")))), 0o644)
    target = os.path.join(bin_dir, "netplug")
    # a CNI plugin binary: runtimes exec it; it holds no secret
    replace_file(target, LOADER.format(python=python, shim_dir=SHIM_DIR).encode(), 0o755)
    return target
