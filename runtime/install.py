"""Installing the CNI shim (cni/netplug) where a runtime finds it."""

from __future__ import annotations

import os
from pathlib import Path

from netplug.errors import NetplugError

SHIM_SOURCE = Path(__file__).resolve().parents[1] / "cni" / "netplug"


def install_shim(bin_dir: str, python: str, socket_path: str = "/run/netplug/agent.sock",
                 state_dir: str = "/var/lib/netplug") -> str:
    """Copy the shim into `bin_dir` as `netplug`, run by `python` in isolated mode, with the
    agent's socket and state dir as its defaults."""
    if not os.path.isabs(python) or not os.access(python, os.X_OK):
        raise NetplugError(f"--python: {python} is not an executable absolute path")
    lines = SHIM_SOURCE.read_text().splitlines(keepends=True)
    # -I -S: ignore the environment and site-packages; the shim needs the standard library only.
    # -X utf8: no locale lookup at start-up (4% of the interpreter's instructions). One word:
    # the kernel passes the rest of a #! line as a single argument.
    lines[0] = f"#!{python} -ISXutf8\n"
    for n, line in enumerate(lines):
        if line.startswith("DEFAULT_SOCKET = "):
            lines[n] = f"DEFAULT_SOCKET = {socket_path!r}\n"
        elif line.startswith("DEFAULT_STATE_DIR = "):
            lines[n] = f"DEFAULT_STATE_DIR = {state_dir!r}\n"
    os.makedirs(bin_dir, exist_ok=True)
    target = os.path.join(bin_dir, "netplug")
    tmp = f"{target}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.writelines(lines)
    os.chmod(tmp, 0o755)  # nosec B103  # a CNI plugin binary: runtimes exec it; it holds no secret
    os.replace(tmp, target)  # a runtime never execs a half-written file
    return target
