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

Usage (root): .venv/bin/python bench/cni_latency.py [--iterations N] [--quick]
It runs itself in private network and mount namespaces, so the host is never touched.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import Node, Sandbox, Stats, machine, ratio, reexec_isolated, verdict  # noqa: E402

WARM_UP = 2  # rounds not counted: the first execs fill caches


def measure(iterations: int, with_netplug: bool, agent: bool, workdir: str) -> dict[str, list[float]]:
    node = Node(workdir)
    chain = node.pod_network(node.binding()) if with_netplug else node.pod_network()
    samples: dict[str, list[float]] = {k: [] for k in ("bridge_add", "netplug_add", "bridge_del", "netplug_del")}
    if agent:
        node.start_agent()
    try:
        for i in range(iterations + WARM_UP):
            sandbox = Sandbox.create()
            try:
                run = node.add(sandbox, chain)
                removed = node.delete(run, chain)
            finally:
                sandbox.delete()
            if i < WARM_UP:
                continue
            samples["bridge_add"].append(run.add_ms[0])
            samples["bridge_del"].append(removed[0])
            if with_netplug:
                samples["netplug_add"].append(run.add_ms[1])
                samples["netplug_del"].append(removed[1])
    finally:
        node.close()
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--quick", action="store_true", help="10 iterations")
    args = parser.parse_args()
    if (status := reexec_isolated()) is not None:
        return status
    iterations = 10 if args.quick else args.iterations

    with tempfile.TemporaryDirectory(prefix="netplug-bench-") as workdir:
        reference = measure(iterations, False, False, os.path.join(workdir, "reference"))
        with_agent = measure(iterations, True, True, os.path.join(workdir, "agent"))
        in_process = measure(iterations, True, False, os.path.join(workdir, "in-process"))

    ref_add, ref_del = Stats.of(reference["bridge_add"]), Stats.of(reference["bridge_del"])
    print(f"CNI latency, {iterations} iterations each, wall ms per exec (median / p90)")
    print(f"machine: {machine()}")
    print()
    print(f"{'':44} {'ADD':>17} {'DEL':>17}")
    print(f"{'bridge+host-local alone':44} {ref_add} {ref_del}")
    rows = []
    for label, samples in (("agent running", with_agent), ("no agent (in-process fallback)", in_process)):
        np_add, np_del = Stats.of(samples["netplug_add"]), Stats.of(samples["netplug_del"])
        chain_add = Stats.of(a + b for a, b in zip(samples["bridge_add"], samples["netplug_add"], strict=True))
        chain_del = Stats.of(a + b for a, b in zip(samples["bridge_del"], samples["netplug_del"], strict=True))
        print(f"{'chain bridge+host-local+netplug, ' + label:44.44} {chain_add} {chain_del}")
        print(f"{'  netplug share, ' + label:44.44} {np_add} {np_del}")
        rows.append((label, ratio(np_add.median, ref_add.median), ratio(np_del.median, ref_del.median)))
    print()
    print("ratios of netplug's share to the reference bridge plugin (median)")
    for label, add_ratio, del_ratio in rows:
        print(f"  {label:36} ADD {add_ratio:5.2f}x   DEL {del_ratio:5.2f}x")
    print()
    print("targets (agent running, the steady state)")
    label, add_ratio, del_ratio = rows[0]
    verdict("netplug's ADD <= 1.5x the bridge plugin's ADD", add_ratio <= 1.5, f"{add_ratio:.2f}x")
    verdict("netplug's DEL <= 1.0x the bridge plugin's DEL", del_ratio <= 1.0, f"{del_ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
