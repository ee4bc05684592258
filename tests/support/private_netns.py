"""Commands run one after another in a throwaway network namespace of their own, as argv
lists (no shell): for unit tests that need a netns for a moment (`nft -f` then `nft list`,
a bridge for `dnsmasq --test`) and nothing else.

    run_in_private_netns(["ip", "link", "add", "br0", "type", "bridge"], ["dnsmasq", "--test"])

runs `unshare -n python -m tests.support.private_netns ARGV_JSON...`: this module, in the new
netns, runs each JSON argv in turn and stops at the first that fails, with its exit status;
stdout and stderr are the commands' own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

UNSHARE = shutil.which("unshare")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_in_private_netns(*commands: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    """The commands' combined run; returncode is the first failure's (0 when all succeed).
    When the netns cannot be made, returncode is unshare's and stderr starts with "unshare"."""
    if UNSHARE is None:
        raise FileNotFoundError("unshare (util-linux) is not installed")
    return subprocess.run([UNSHARE, "-n", sys.executable, "-m", "tests.support.private_netns",
                           *(json.dumps(list(c)) for c in commands)],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


def _main(arguments: list[str]) -> int:
    for argument in arguments:
        argv = json.loads(argument)
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            print(f"not an argv list: {argument}", file=sys.stderr)
            return 2
        code = subprocess.run(argv).returncode
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
