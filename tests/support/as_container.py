"""Run a command the way a container runtime would run a pod's container, as far as this
machine can without one: `python -m tests.support.as_container SPEC.json`, already inside the
pod's network namespace and a private mount namespace of its own (the caller runs it under
`nsenter --net=... unshare --mount --propagation private`). SPEC says:

    {"tmpfs": [[path, mode]], "binds": [[source, target]], "devices": [[path, major, minor, mode]],
     "read_only_root": bool, "writable": [path, ...], "uid": N, "gid": N, "env": {...}, "cwd": path,
     "argv": [...]}

tmpfs mounts stand for emptyDir volumes and for the runtime's own /run; devices stand for a
hostPath CharDevice with the mode a node's udev gives it (on this machine /dev/net/tun is
0600: the node's file is not changed, a node of the same numbers is made in a private tmpfs);
`writable` paths stay writable when the root is made read-only (readOnlyRootFilesystem: the
volumes are their own mounts); then the command runs as uid/gid with no supplementary group,
no capability in any set and no_new_privs (runAsUser, runAsGroup, capabilities drop ALL,
allowPrivilegeEscalation false), through util-linux's setpriv. Not reproduced: seccomp, the
device cgroup, AppArmor, user namespaces.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def _mount(*argv: str) -> None:
    subprocess.run(["mount", *argv], check=True)


def main(spec_path: str) -> None:
    with open(spec_path) as f:
        spec = json.load(f)
    _mount("--make-rprivate", "/")
    for path, mode in spec.get("tmpfs", []):
        os.makedirs(path, exist_ok=True)
        _mount("-t", "tmpfs", "-o", f"mode={mode}", "container-tmpfs", path)
    for source, target in spec.get("binds", []):
        os.makedirs(target, exist_ok=True)
        _mount("--bind", source, target)
    for path, major, minor, mode in spec.get("devices", []):
        os.mknod(path, 0o020000 | mode, os.makedev(major, minor))  # S_IFCHR
        os.chmod(path, mode)
    if spec.get("read_only_root"):
        for path in spec.get("writable", []):
            _mount("--bind", path, path)  # its own mount: stays writable below
        _mount("-o", "remount,bind,ro", "/")
    os.chdir(spec.get("cwd", "/"))
    argv = ["setpriv", "--reuid", str(spec["uid"]), "--regid", str(spec["gid"]), "--clear-groups",
            "--inh-caps", "-all", "--ambient-caps", "-all", "--bounding-set", "-all", "--no-new-privs",
            "--", *spec["argv"]]
    os.execvpe("setpriv", argv, spec.get("env", {}))


if __name__ == "__main__":
    main(sys.argv[1])
