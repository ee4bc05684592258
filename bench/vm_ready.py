#!/usr/bin/env python3
"""VM ready: from `netplug up` to the guest's DHCP lease, split into its parts.

`netplug up manifests/examples/testvm.yaml` (masquerade on the pod network; the project's test
guest boots under QEMU TCG) runs again and again, each followed by `netplug down`, with the
node agent running (a node's steady state) and, as a second series, without one (the shim's
in-process fallback, standalone mode on a bare machine). One warm-up run per series is not
counted. All times are on this machine's wall clock, from:

  - up's own progress lines (read as they are printed: sandbox made, CNI chain done,
    launcher started; up measures its steps on its own monotonic clock, printed with them),
  - the agent's log (its handler's time for netplug's ADD),
  - the launcher's log (JSON lines with millisecond timestamps: domain start, Running),
  - the DHCP messages on the pod's k6t-eth0 bridge, timestamped by the kernel as they pass
    (a raw socket opened as soon as the bridge exists, before the guest boots),
  - the guest's serial console (E2E: INIT uptime, on the guest's clock: kernel start to init).

The network's share is netplug's work on the way: the CNI chain (bridge + host-local +
netplug's masquerade ADD) plus the DHCP service's first answer (DISCOVER to OFFER).

Target: the network's share under 100 ms (agent running).

Usage (root): .venv/bin/python bench/vm_ready.py [--runs 5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (  # noqa: E402
    ETH_P_ALL,
    REPO,
    Node,
    machine,
    parse_dhcp_frame,
    raw_socket,
    reexec_isolated,
    table,
    verdict,
)

from netplug.errors import NetplugError  # noqa: E402
from runtime.standalone import GUEST_DIR  # noqa: E402
from tests.support.topology import Netns  # noqa: E402

TESTVM = os.path.join(REPO, "manifests", "examples", "testvm.yaml")
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
STEP = re.compile(r"^\[\s*([0-9.]+)s\] (.*)$")
WAIT = 240
SHARE = "network's share (CNI + first answer)"
CNI = "CNI chain (bridge+host-local+netplug)"
FIRST_ANSWER = "first DHCP answer (DISCOVER -> OFFER)"
TOTAL = "total: up exec -> ACK"


class DhcpSniffer(threading.Thread):
    """Waits for the VM's pod sandbox and its k6t-eth0, then records every DHCP message that
    passes the bridge: (kernel timestamp, message type)."""

    def __init__(self, record_file: str) -> None:
        super().__init__(daemon=True)
        self.record_file = record_file
        self.messages: list[tuple[float, str]] = []
        self.stopping = threading.Event()
        self.error = ""

    def _open(self) -> socket.socket | None:
        netns = None
        while not self.stopping.is_set():
            if netns is None:
                try:
                    with open(self.record_file) as f:
                        netns = json.load(f)["netns"]
                except (OSError, ValueError, KeyError):
                    pass
            if netns is not None and os.path.exists(f"/run/netns/{netns}"):
                try:
                    return raw_socket(Netns(netns), "k6t-eth0", ETH_P_ALL)
                except (OSError, NetplugError):
                    pass  # the netns is still being mounted, or the bridge is not there yet
            time.sleep(0.002)
        return None

    def run(self) -> None:
        sock = self._open()
        if sock is None:
            return
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.settimeout(0.1)
        with sock:
            while not self.stopping.is_set():
                try:
                    frame, ancillary, _, _ = sock.recvmsg(2048, 64)
                except TimeoutError:
                    continue
                except OSError as exc:  # the netns went away under us
                    self.error = str(exc)
                    return
                message = parse_dhcp_frame(frame)
                if message is None:
                    continue
                stamp = time.time()
                for level, kind, data in ancillary:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                        seconds, nanos = struct.unpack("qq", data[:16])
                        stamp = seconds + nanos / 1e9
                self.messages.append((stamp, message[0]))

    def first(self, kind: str) -> float | None:
        return next((t for t, k in self.messages if k == kind), None)


def launcher_times(log_file: str) -> dict[str, float]:
    """Wall times of the launcher's milestones, from its JSON-lines log."""
    found = {}
    with open(log_file) as f:
        for line in f:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            stamp = datetime.strptime(entry["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
            if entry["msg"].startswith("starting domain"):
                found.setdefault("starting domain", stamp)
            elif entry["msg"] == "status Running":
                found.setdefault("Running", stamp)
    return found


def agent_add_ms(agent_log: str) -> float:
    """The last ADD's time inside the agent, as its handler logs it ("ADD done in X ms")."""
    found = float("nan")
    if os.path.exists(agent_log):
        with open(agent_log) as f:
            for line in f:
                match = re.search(r'"msg": "ADD done in ([0-9.]+) ms"', line)
                if match:
                    found = float(match.group(1))
    return found


def one_up(env: dict, state_dir: str, agent_log: str) -> dict[str, float]:
    """One `netplug up` until the lease, then `netplug down`; its phases in ms."""
    vm_dir = os.path.join(state_dir, "vms", "default_testvm")
    sniffer = DhcpSniffer(os.path.join(vm_dir, "record.json"))
    sniffer.start()
    lines: list[tuple[float, float, str]] = []  # (arrival wall time, up's own offset, text)
    start = time.time()
    up = subprocess.Popen([sys.executable, "-m", "runtime.cli", "up", TESTVM], cwd=REPO, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert up.stdout is not None
    try:
        for line in up.stdout:
            arrived = time.time()
            match = STEP.match(line.strip())
            if match:
                lines.append((arrived, float(match.group(1)), match.group(2)))
        if up.wait(WAIT) != 0:
            raise SystemExit(f"netplug up failed: {[text for _, _, text in lines][-3:]}")
        time.sleep(0.3)  # the ACK may trail the lease file by a moment
    finally:
        sniffer.stopping.set()
        sniffer.join()
        launcher = launcher_times(os.path.join(vm_dir, "launcher.log")) if os.path.exists(vm_dir) else {}
        serial = open(os.path.join(vm_dir, "launcher", "serial.log"), errors="replace").read() \
            if os.path.exists(os.path.join(vm_dir, "launcher", "serial.log")) else ""
        subprocess.run([sys.executable, "-m", "runtime.cli", "down", "testvm"], cwd=REPO, env=env,
                       capture_output=True, timeout=120, check=False)

    def step(prefix: str) -> tuple[float, float]:
        return next((arrived, offset) for arrived, offset, text in lines if text.startswith(prefix))

    sandbox_at, sandbox_offset = step("pod sandbox")
    cni_at, cni_offset = step("CNI ADD")
    launched_at, _ = step("launcher started")
    lease_at, _ = step("guest lease on eth0")
    up_began = sandbox_at - sandbox_offset  # up's clock zero, on the wall clock
    discover, offer, ack = sniffer.first("DISCOVER"), sniffer.first("OFFER"), sniffer.first("ACK")
    if None in (discover, offer, ack) or "Running" not in launcher:
        raise SystemExit(f"missing milestones: DHCP {sniffer.messages} {sniffer.error}, launcher {launcher}")
    init = re.search(r"E2E: INIT uptime=([0-9.]+)", serial)
    ms = 1000.0
    return {
        "up start-up (python, YAML, plan)": (up_began - start) * ms,
        "pod sandbox (netns)": sandbox_offset * ms,
        CNI: (cni_offset - sandbox_offset) * ms,
        "  of which netplug's ADD inside the agent": agent_add_ms(agent_log),
        "until the launcher runs": (launched_at - cni_at) * ms,
        "launcher until it starts the domain": (launcher.get("starting domain", launched_at) - launched_at) * ms,
        "libvirt + QEMU until Running": (launcher["Running"] - launcher.get("starting domain", launched_at)) * ms,
        "guest boot (Running -> DISCOVER)": (discover - launcher["Running"]) * ms,
        "  of which kernel until init (guest clock)": float(init.group(1)) * ms if init else float("nan"),
        FIRST_ANSWER: (offer - discover) * ms,
        "rest of DHCP (OFFER -> ACK)": (ack - offer) * ms,
        "up notices the lease (polls 0.2 s)": (lease_at - ack) * ms,
        TOTAL: (ack - start) * ms,
        SHARE: ((cni_offset - sandbox_offset) + (offer - discover)) * ms,
    }


def series(runs: int, workdir: str, agent: bool) -> list[dict[str, float]]:
    node = Node(workdir)
    env = {**os.environ, "NETPLUG_STATE_DIR": node.state_dir, "NETPLUG_AGENT_SOCKET": node.socket,
           "NETPLUG_GUEST_DIR": GUEST_DIR, "PYTHONUNBUFFERED": "1"}
    if agent:
        node.start_agent(log_level="INFO")  # its handler logs each ADD's time
    try:
        found = []
        for i in range(runs + 1):
            figures = one_up(env, node.state_dir, node.agent_log)
            if i:  # the first run warms the caches
                found.append(figures)
            print(f"  {'agent' if agent else 'no agent'} run {i}{' (warm-up)' if not i else ''}: ready in "
                  f"{figures[TOTAL]:.0f} ms, network's share {figures[SHARE]:.0f} ms (CNI {figures[CNI]:.0f}, "
                  f"first DHCP answer {figures[FIRST_ANSWER]:.1f})", flush=True)
        return found
    finally:
        node.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="counted runs per series (default 5)")
    parser.add_argument("--quick", action="store_true", help="2 counted runs per series")
    args = parser.parse_args()
    if (status := reexec_isolated()) is not None:
        return status
    runs = 2 if args.quick else args.runs
    if not os.path.isfile(os.path.join(GUEST_DIR, "vmlinuz")):
        raise SystemExit(f"no test guest in {GUEST_DIR}: run scripts/build-guest first")

    print(f"vm ready: netplug up {os.path.relpath(TESTVM, REPO)} until the guest's lease, {runs} runs per series")
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="netplug-bench-") as workdir:
        with_agent = series(runs, os.path.join(workdir, "agent"), agent=True)
        without = series(runs, os.path.join(workdir, "no-agent"), agent=False)

    def median(runs_: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in runs_)

    print()
    print("milliseconds, median of the runs")
    table([(key, f"{median(with_agent, key):.1f}", f"{median(without, key):.1f}".replace("nan", "-"))
           for key in with_agent[0]],
          ("phase", "agent running", "no agent"))
    share = median(with_agent, SHARE)
    print()
    print("targets")
    verdict("the network's share (CNI + first DHCP answer) < 100 ms, agent running", share < 100, f"{share:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
