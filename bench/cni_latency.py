#!/usr/bin/env python3
"""ADD and DEL latency of netplug's masquerade binding chained after bridge + host-local,
measured in one run against the reference plugins on this machine.

Each iteration makes one fresh pod netns per variant, in an order that rotates from one
iteration to the next, so that whatever else the machine does falls on every variant alike:

  - reference: the chain without netplug, bridge + host-local alone (the bridge plugin execs
    host-local itself; its exec is "the reference bridge plugin's ADD/DEL");
  - bridge alone without IPAM (L2 only): a stricter reading of "the bridge plugin", shown for
    comparison (a pod network always has IPAM);
  - the chain [bridge + host-local, netplug], with the agent running (its default log level);
  - the same chain with no agent (the shim's in-process fallback);
  - with --against REV, the chain with the agent and shim of that revision of netplug too, so
    that a change's before and after are measured in the same run.

Every plugin exec is timed on its own (wall time of the exec, as a runtime sees it). Printed:
netplug's own exec, the bridge plugin's exec inside the chain (work netplug leaves to the
kernel can land on it), and netplug's cost to the chain (the chain's median minus the
reference's), with their ratios to the reference; the targets are netplug's ADD <= 1.5x the
bridge plugin's ADD and its DEL <= 1.0x.

Usage (root): .venv/bin/python bench/cni_latency.py [--iterations N] [--quick] [--against REV]
It runs itself in private network and mount namespaces, so the host is never touched.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (  # noqa: E402
    Chain,
    Node,
    Sandbox,
    Stats,
    exported_tree,
    machine,
    ratio,
    reexec_isolated,
    verdict,
)

WARM_UP = 2  # rounds not counted: the first execs fill caches


def measure(iterations: int, workdir: str, against: str | None) -> dict[str, dict[str, list[list[float]]]]:
    """{variant: {"add"/"del": [per plugin of its chain: samples]}}, interleaved."""
    reference = Node(os.path.join(workdir, "reference"))
    agent = Node(os.path.join(workdir, "agent"))
    in_process = Node(os.path.join(workdir, "in-process"))
    chains = {
        "reference": (reference, reference.pod_network()),
        "bridge-l2": (reference, Chain("benchnet-l2", [{"type": "bridge", "bridge": reference.bridge}])),
        "agent": (agent, agent.pod_network(agent.binding())),
        "in-process": (in_process, in_process.pod_network(in_process.binding())),
    }
    nodes = [agent, in_process, reference]
    if against:
        other = Node(os.path.join(workdir, "against"), tree=exported_tree(against, os.path.join(workdir, "tree")))
        chains["against"] = (other, other.pod_network(other.binding()))
        nodes.append(other)
    variants = tuple(chains)
    samples = {v: {"add": [[] for _ in chains[v][1].plugins], "del": [[] for _ in chains[v][1].plugins]}
               for v in variants}
    for node in nodes:
        if node is not in_process and node is not reference:
            node.start_agent(log_level="INFO")  # what a node runs
    try:
        for i in range(iterations + WARM_UP):
            shift = i % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                node, chain = chains[variant]
                sandbox = Sandbox.create()
                try:
                    run = node.add(sandbox, chain)
                    removed = node.delete(run, chain)
                finally:
                    sandbox.delete()
                if i >= WARM_UP:
                    for n, (added, deleted) in enumerate(zip(run.add_ms, removed, strict=True)):
                        samples[variant]["add"][n].append(added)
                        samples[variant]["del"][n].append(deleted)
    finally:
        for node in nodes:
            node.close()
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--quick", action="store_true", help="10 iterations")
    parser.add_argument("--against", metavar="REV", help="also measure this git revision's agent and shim")
    args = parser.parse_args()
    if (status := reexec_isolated()) is not None:
        return status
    iterations = 10 if args.quick else args.iterations
    with tempfile.TemporaryDirectory(prefix="netplug-bench-") as workdir:
        samples = measure(iterations, workdir, args.against)

    def stats(variant: str, verb: str, plugin: int | None = None) -> Stats:
        per_plugin = samples[variant][verb]
        if plugin is not None:
            return Stats.of(per_plugin[plugin])
        return Stats.of(sum(execs) for execs in zip(*per_plugin, strict=True))  # the whole chain

    ref = {verb: stats("reference", verb) for verb in ("add", "del")}
    l2 = {verb: stats("bridge-l2", verb) for verb in ("add", "del")}
    print(f"CNI latency, {iterations} iterations, variants interleaved, wall ms per exec (median / p90)")
    print(f"machine: {machine()}")
    print()
    print(f"{'':52} {'ADD':>17} {'DEL':>17}")
    print(f"{'bridge+host-local alone (the reference)':52} {ref['add']} {ref['del']}")
    print(f"{'bridge alone, no IPAM (L2 only)':52} {l2['add']} {l2['del']}")
    rows = {}
    labels = [("agent", "agent running"), ("in-process", "no agent (in-process)")]
    if args.against:
        labels.append(("against", f"agent running, {args.against}"))
    for variant, label in labels:
        chain = {verb: stats(variant, verb) for verb in ("add", "del")}
        own = {verb: stats(variant, verb, 1) for verb in ("add", "del")}
        bridge = {verb: stats(variant, verb, 0) for verb in ("add", "del")}
        cost = {verb: chain[verb].median - ref[verb].median for verb in ("add", "del")}
        print(f"{'chain with netplug, ' + label:52} {chain['add']} {chain['del']}")
        print(f"{'  netplug exec':52} {own['add']} {own['del']}")
        print(f"{'  bridge+host-local exec in that chain':52} {bridge['add']} {bridge['del']}")
        print(f"{'  netplug cost to the chain (chain - reference)':52} {cost['add']:7.1f} {'':9} {cost['del']:7.1f}")
        rows[variant] = (label, {verb: ratio(own[verb].median, ref[verb].median) for verb in ("add", "del")},
                         {verb: ratio(cost[verb], ref[verb].median) for verb in ("add", "del")},
                         {verb: ratio(own[verb].median, l2[verb].median) for verb in ("add", "del")})
    print()
    print("ratios to the reference (medians)")
    for label, own_ratio, cost_ratio, l2_ratio in rows.values():
        print(f"  {label}")
        print(f"    netplug exec / bridge+host-local      ADD {own_ratio['add']:5.2f}x   DEL {own_ratio['del']:5.2f}x")
        print(f"    netplug cost to the chain / reference ADD {cost_ratio['add']:5.2f}x   DEL {cost_ratio['del']:5.2f}x")
        print(f"    netplug exec / bridge without IPAM    ADD {l2_ratio['add']:5.2f}x   DEL {l2_ratio['del']:5.2f}x")
    print()
    print("targets (agent running, the steady state; the reference is bridge+host-local)")
    _, own_ratio, cost_ratio, _ = rows["agent"]
    verdict("netplug's ADD <= 1.5x the bridge plugin's ADD", own_ratio["add"] <= 1.5, f"{own_ratio['add']:.2f}x")
    verdict("netplug's DEL <= 1.0x the bridge plugin's DEL", own_ratio["del"] <= 1.0, f"{own_ratio['del']:.2f}x")
    verdict("counting what it leaves to the next plugin: netplug's cost to the chain's DEL <= 1.0x",
            cost_ratio["del"] <= 1.0, f"{cost_ratio['del']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
