"""Several commands in one throwaway network namespace, without a shell (tests only).

`in_throwaway_netns(argv, argv, ...)` runs `unshare -n python -m tests.support.netns_run` with
each argv as a JSON argument; this module, inside the new netns, runs them one after another
and stops at the first that fails, so they all see the same (private, then vanished) netns.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNSHARE = shutil.which("unshare")


def in_throwaway_netns(*argvs: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    if UNSHARE is None:
        raise FileNotFoundError("unshare (util-linux) is not installed")
    return subprocess.run([UNSHARE, "-n", sys.executable, "-m", "tests.support.netns_run",
                           *(json.dumps(argv) for argv in argvs)],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)


def main(argvs: list[str]) -> int:
    for argv in argvs:
        done = subprocess.run(json.loads(argv), check=False)
        if done.returncode != 0:
            return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
