"""A netplug agent as the tests, the benchmarks and the demo run it, and what its state dir
holds (records, DHCP service files, live services), counted the same way by all of them.

May import: tests.support.topology, the standard library (no pytest: bench/ and
scripts/demo.py use it too).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.support.topology import processes_mentioning

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class AgentDidNotStart(RuntimeError):
    pass


def start_agent(socket: str, state_dir: str, log: str | None, *, cwd: str = REPO, env: dict | None = None,
                log_level: str | None = None, timeout: float = 60.0) -> subprocess.Popen:
    """`netplug agent --socket SOCKET --state-dir STATE_DIR`, run from the tree `cwd` (its
    runtime and netplug), with its output appended to `log` (None: this process's), once it
    listens: its socket exists. AgentDidNotStart, with the log's last lines, if it exits
    first or does not listen within `timeout` seconds."""
    argv = [sys.executable, "-m", "runtime.cli", "agent", "--socket", socket, "--state-dir", state_dir]
    if log_level:
        argv += ["--log-level", log_level]
    output = open(log, "a") if log else None
    try:
        agent = subprocess.Popen(argv, cwd=cwd, env=env, stdout=output, stderr=output)
    finally:
        if output is not None:
            output.close()  # the agent has its own copy
    deadline = time.monotonic() + timeout
    while not os.path.exists(socket):
        if agent.poll() is not None or time.monotonic() > deadline:
            if agent.poll() is None:
                agent.kill()
                agent.wait()
            tail = open(log).read()[-3000:] if log else "its output is above"
            raise AgentDidNotStart(f"the agent did not start ({socket}): {tail}")
        time.sleep(0.01)
    return agent


def stop_agent(agent: subprocess.Popen, socket: str, sig: int = signal.SIGKILL) -> None:
    """Stop the agent with `sig` (SIGKILL: a crash; SIGTERM: a rolling update) and remove its
    socket, as a restarted node would find it gone."""
    agent.send_signal(sig)
    agent.wait()
    try:
        os.unlink(socket)
    except FileNotFoundError:
        pass


class StateDirCensus:
    """What a netplug state dir (`self.state_dir`) holds; for a class that has one."""

    state_dir: str

    def records(self) -> list[str]:
        """Attachment records, as "<container ID>/<ifname>.json"."""
        base = os.path.join(self.state_dir, "attachments")
        if not os.path.isdir(base):
            return []
        return sorted(os.path.join(d, f) for d in os.listdir(base) for f in os.listdir(os.path.join(base, d)))

    def service_files(self) -> list[str]:
        """Files of DHCP services (config, pid, leases, log)."""
        base = os.path.join(self.state_dir, "services")
        return sorted(os.listdir(base)) if os.path.isdir(base) else []

    def services(self) -> list[int]:
        """Live processes (dnsmasq) started for this state dir."""
        return processes_mentioning(os.path.join(self.state_dir, "services"))
