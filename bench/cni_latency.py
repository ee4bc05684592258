#!/usr/bin/env python3
"""ADD and DEL latency of netplug's masquerade binding chained after bridge + host-local,
measured in one run against the reference plugins on this machine.

For each iteration a fresh pod netns gets the chain [bridge+host-local, netplug]; every
plugin exec is timed on its own (wall time of the exec, as a runtime sees it). Printed:

  - the whole chain, and the same chain without netplug (bridge + host-local alone);
  - netplug's own share of ADD and DEL (its exec), with the agent running and without it
    (the shim's in-process fallback);
  - the ratios against the reference bridge plugin's ADD and DEL (targets: ADD <= 1.5x,
    DEL <= 1.0x).

Usage (root): .venv/bin/python bench/cni_latency.py [--iterations N]
It runs itself in private network and mount namespaces, so the host is never touched.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from runtime.install import install_shim  # noqa: E402
from tests.support.cnirt import exec_plugin  # noqa: E402
from tests.support.topology import Netns, in_isolated_world, sh, unique  # noqa: E402

REFERENCE = "/usr/lib/cni"


def _stats(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return statistics.median(ordered), p90


def _timed(binary: str, command: str, config: dict, **kw) -> tuple[float, dict | None]:
    start = time.perf_counter()
    run = exec_plugin(binary, command, config, **kw)
    elapsed = (time.perf_counter() - start) * 1000
    if run.returncode != 0:
        raise SystemExit(f"{os.path.basename(binary)} {command} failed: {run.stdout} {run.stderr[-2000:]}")
    return elapsed, run.json


def measure(iterations: int, with_netplug: bool, agent: bool, workdir: str) -> dict[str, list[float]]:
    bin_dir = os.path.join(workdir, "bin")
    state_dir = os.path.join(workdir, f"state-{with_netplug}-{agent}")
    sock = os.path.join(workdir, f"agent-{agent}.sock")
    env = {"NETPLUG_STATE_DIR": state_dir, "NETPLUG_AGENT_SOCKET": sock}
    cni_path = [bin_dir, REFERENCE]
    bridge = unique("bnbr")
    proc = None
    if with_netplug and agent:
        proc = subprocess.Popen([sys.executable, "-m", "runtime.cli", "agent", "--socket", sock,
                                 "--state-dir", state_dir, "--log-level", "WARNING"], cwd=REPO)
        while not os.path.exists(sock):
            time.sleep(0.02)
    samples: dict[str, list[float]] = {k: [] for k in ("bridge_add", "netplug_add", "bridge_del", "netplug_del")}
    base = {"cniVersion": "1.0.0", "name": "benchnet"}
    primary = {**base, "type": "bridge", "bridge": bridge, "isDefaultGateway": True,
               "ipam": {"type": "host-local", "subnet": "10.240.0.0/16", "dataDir": os.path.join(workdir, "ipam")}}
    masq = {**base, "type": "netplug", "binding": "masquerade", "resolvConf": "/dev/null"}
    try:
        for i in range(iterations + 2):  # two warm-up rounds are not counted
            pod = Netns.create("bnpod")
            ids = {"container_id": f"bench-{i}", "netns": pod.path, "ifname": "eth0",
                   "cni_path": cni_path, "extra_env": env}
            try:
                t_bridge, result = _timed(os.path.join(REFERENCE, "bridge"), "ADD", primary, **ids)
                if with_netplug:
                    t_np, result = _timed(os.path.join(bin_dir, "netplug"), "ADD", {**masq, "prevResult": result}, **ids)
                    t_np_del, _ = _timed(os.path.join(bin_dir, "netplug"), "DEL", {**masq, "prevResult": result}, **ids)
                t_bridge_del, _ = _timed(os.path.join(REFERENCE, "bridge"), "DEL", {**primary, "prevResult": result}, **ids)
            finally:
                pod.delete()
            if i < 2:
                continue
            samples["bridge_add"].append(t_bridge)
            samples["bridge_del"].append(t_bridge_del)
            if with_netplug:
                samples["netplug_add"].append(t_np)
                samples["netplug_del"].append(t_np_del)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
        sh("ip", "link", "del", bridge, check=False)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=40)
    args = parser.parse_args()
    if not in_isolated_world():
        return subprocess.call([os.path.join(REPO, "scripts", "isolated"), sys.executable, *sys.argv])

    with tempfile.TemporaryDirectory(prefix="netplug-bench-") as workdir:
        install_shim(os.path.join(workdir, "bin"), sys.executable)
        reference = measure(args.iterations, False, False, workdir)
        with_agent = measure(args.iterations, True, True, workdir)
        in_process = measure(args.iterations, True, False, workdir)

    ref_add, ref_add90 = _stats(reference["bridge_add"])
    ref_del, ref_del90 = _stats(reference["bridge_del"])
    print(f"CNI latency, {args.iterations} iterations each, wall ms per exec (median / p90)")
    print(f"machine: {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    print()
    print(f"{'':44} {'ADD':>17} {'DEL':>17}")
    print(f"{'bridge+host-local alone':44} {ref_add:7.1f} / {ref_add90:7.1f} {ref_del:7.1f} / {ref_del90:7.1f}")
    rows = []
    for label, samples in (("agent running", with_agent), ("no agent (in-process fallback)", in_process)):
        np_add, np_add90 = _stats(samples["netplug_add"])
        np_del, np_del90 = _stats(samples["netplug_del"])
        chain_add = _stats([a + b for a, b in zip(samples["bridge_add"], samples["netplug_add"], strict=True)])
        chain_del = _stats([a + b for a, b in zip(samples["bridge_del"], samples["netplug_del"], strict=True)])
        print(f"{'chain bridge+host-local+netplug, ' + label:44.44} {chain_add[0]:7.1f} / {chain_add[1]:7.1f} "
              f"{chain_del[0]:7.1f} / {chain_del[1]:7.1f}")
        print(f"{'  netplug share, ' + label:44.44} {np_add:7.1f} / {np_add90:7.1f} {np_del:7.1f} / {np_del90:7.1f}")
        rows.append((label, np_add / ref_add, np_del / ref_del))
    print()
    print("ratios of netplug's share to the reference bridge plugin (median; targets ADD <= 1.5, DEL <= 1.0)")
    for label, add_ratio, del_ratio in rows:
        verdict = "meets" if add_ratio <= 1.5 and del_ratio <= 1.0 else "misses"
        print(f"  {label:36} ADD {add_ratio:5.2f}x   DEL {del_ratio:5.2f}x   {verdict} the target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
