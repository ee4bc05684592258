#!/usr/bin/env python3
"""Churn: ADD/DEL cycles of netplug's masquerade binding chained after bridge + host-local, at
several concurrencies, against bridge + host-local alone at the same concurrency, in one run;
then a census that nothing is left.

A cycle is what a runtime does for one pod: ADD the chain in the pod's sandbox, then DEL it.
The sandboxes (fresh netns) are made before each timed phase and removed after it, so the
figure is the CNI's own: attachments per second = cycles / wall time of the phase, with
`concurrency` cycles in flight. A cycle that fails is counted as failed and, after the phase,
DELeted again (untimed) until that succeeds, as a runtime retries DEL. Both peers run on one
node (one agent, one node bridge), phase after phase, reference first at each concurrency.

After the cycles the benchmark checks and says that nothing is left: links and nftables
objects inside every sandbox (before it is removed), links, netns and nftables in the node,
dnsmasq processes, host-local allocations, netplug's state records and service files.

Usage (root): .venv/bin/python bench/churn.py [--cycles 500] [--concurrency 1,4,16] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (  # noqa: E402
    Chain,
    ChainRun,
    Node,
    PluginError,
    in_parallel,
    machine,
    make_sandboxes,
    node_leftovers,
    ratio,
    reexec_isolated,
    report_leftovers,
    sandbox_leftovers,
    table,
    verdict,
)


def retry(job, attempts: int = 5) -> str | None:
    """Run `job` until it raises no PluginError, at most `attempts` times; the last error."""
    for attempt in range(attempts):
        try:
            job()
            return None
        except PluginError as exc:
            if attempt == attempts - 1:
                return str(exc)[:300]
            time.sleep(1)
    return None


def phase(node: Node, chain: Chain, cycles: int, concurrency: int) -> dict:
    """`cycles` ADD/DEL cycles with `concurrency` in flight; rate, cycle times, failures, and
    what was left in the sandboxes."""
    sandboxes = make_sandboxes(cycles)
    failures: list[str] = []

    unfinished: list[ChainRun] = []

    def cycle(sandbox) -> float | None:
        start = time.perf_counter()
        run = ChainRun(sandbox, "eth0", None, [])
        try:
            run = node.add(sandbox, chain)
            node.delete(run, chain)
        except PluginError as exc:
            failures.append(str(exc)[:300])
            unfinished.append(run)
            return None
        return (time.perf_counter() - start) * 1000

    try:
        wall, times = in_parallel([lambda s=s: cycle(s) for s in sandboxes], concurrency)
        for run in unfinished:  # as a runtime does after a failed ADD or DEL: DEL until it succeeds
            error = retry(lambda run=run: node.delete(run, chain))
            if error:
                failures.append(f"DEL after the failure never succeeded: {error}")
        left = sandbox_leftovers(sandboxes)
    finally:
        for sandbox in sandboxes:
            sandbox.delete()
    done = [t for t in times if t is not None]
    return {"rate": len(done) / wall, "cycle_ms": statistics.median(done) if done else float("nan"),
            "failures": failures, "left": left}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=500)
    parser.add_argument("--concurrency", default="1,4,16", help="comma-separated (default 1,4,16)")
    parser.add_argument("--quick", action="store_true", help="60 cycles per phase")
    args = parser.parse_args()
    if (status := reexec_isolated()) is not None:
        return status
    cycles = 60 if args.quick else args.cycles
    levels = [int(c) for c in args.concurrency.split(",")]

    print(f"churn: {cycles} ADD/DEL cycles per phase, concurrency {', '.join(map(str, levels))}")
    print(f"machine: {machine()}")
    rows, failures = [], []
    left: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="netplug-bench-") as workdir:
        node = Node(workdir)
        reference = node.pod_network()
        chained = node.pod_network(node.binding())
        try:
            node.start_agent()
            phase(node, chained, 4, 1)  # warm-up: the agent's first requests import and cache
            for concurrency in levels:
                results = {}
                for label, chain in (("reference", reference), ("netplug", chained)):
                    results[label] = found = phase(node, chain, cycles, concurrency)
                    failures += [f"{label} at concurrency {concurrency}: {f}" for f in found["failures"]]
                    for what, items in found["left"].items():
                        left.setdefault(what, []).extend(items)
                    failed = f", {len(found['failures'])} failed" if found["failures"] else ""
                    print(f"  concurrency {concurrency:2}, {label:9}: {found['rate']:6.1f} attachments/s{failed}",
                          flush=True)
                ref, np = results["reference"], results["netplug"]
                rows.append((concurrency, f"{ref['rate']:.1f}", f"{np['rate']:.1f}",
                             f"{ratio(np['rate'], ref['rate']):.2f}x", f"{ref['cycle_ms']:.0f}", f"{np['cycle_ms']:.0f}"))
            left.update(node_leftovers([node]))
        finally:
            node.close()

    print()
    print("attachments per second (ADD + DEL cycles / wall time), and the median cycle in ms")
    table(rows, ("concurrency", "bridge+host-local", "+ netplug masquerade", "ratio", "cycle ms ref", "cycle ms netplug"))
    print()
    print("left behind after every cycle (agent still running)")
    clean = report_leftovers(left)
    for failure in failures[:10]:
        print(f"  failed cycle: {failure}")
    print()
    print("targets (issue 8 sets no throughput figure for churn: the ratio is reported, not judged)")
    verdict("every cycle succeeded", not failures, f"{len(failures)} failed" if failures else "")
    verdict("nothing is left: links, netns, nftables, dnsmasq, IPAM allocations, state records", clean)
    return 0


if __name__ == "__main__":
    sys.exit(main())
