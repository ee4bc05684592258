"""The shim's in-process fallback: one CNI request from this process's env and stdin.

`cni/netplug` execs `python -m runtime.agent.oneshot` (same pid, same stdio) when no agent
answers; the handler, state and locks are the agent's, so the result is the same.
"""

from __future__ import annotations

import json
import os
import sys

from netplug.errors import NetplugError
from runtime import logs
from runtime.agent.handler import Handler
from runtime.agent.store import Store, state_dir_from_env


def main() -> int:
    logs.setup(os.environ.get("NETPLUG_LOG_LEVEL", "INFO"))
    env = dict(os.environ)
    stdin = sys.stdin.buffer.read()
    try:
        store = Store(state_dir_from_env(env))
    except NetplugError as exc:  # the state dir itself is broken: still answer in CNI's format
        sys.stdout.write(json.dumps(exc.to_cni("1.1.0")) + "\n")
        return 1
    code, out = Handler(store, test_hooks=os.environ.get("NETPLUG_TEST_HOOKS") == "1").handle(env, stdin)
    sys.stdout.write(out)
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
