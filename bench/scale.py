#!/usr/bin/env python3
"""Scale: one node grown to 200 live masquerade attachments (pod sandbox + bridge + host-local
+ netplug's masquerade with its DHCP service; no VMs), and what that costs.

Printed, at 1, 50, 100 and 200 live attachments:

  - ADD latency (p50 / p90) of netplug's exec and of the whole chain, from probe attachments
    made and deleted one at a time while the node holds that many (probes are taken on the
    way up and again on the way down, so a burst of noise on a shared machine hits one pass);
    DEL latency the same way;
  - the agent's memory (RSS and PSS) and its CPU use while idle (its DHCP-service supervisor
    runs every 2 s, whatever the load);
  - the DHCP services' memory per attachment: the PSS of every dnsmasq divided by their number
    (PSS shares each page among the processes that map it, so the shared binary and libraries
    count once; RSS per process is printed too, it counts them in every process).

Then, at 200 live, the time to restore every attachment's DHCP service after an agent
restart, until each one answers a DHCPDISCOVER (a probe on each pod's bridge): once for a
plain restart (the services keep running), once for a crash that takes the services with it
(the agent's container restarting kills its children), from the new agent's exec.

Target: ADD p90 at 200 live within 1.2x of the p90 at 1 live. On a shared machine the load
drifts over the minutes the node takes to grow, so a second node (its own agent and state
dir) holds one attachment throughout and every probe on the grown node follows one on it;
the grown node's median relative to the control's, measured at the same time, is printed
beside the target (it cancels the drift, and also whatever grows kernel-wide for both nodes).

Usage (root): .venv/bin/python bench/scale.py [--live 1,50,100,200] [--probes 15] [--quick]
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
    ChainRun,
    DhcpProbe,
    Node,
    Sandbox,
    Stats,
    cpu_seconds,
    first_offers,
    kill_all,
    machine,
    make_sandboxes,
    memory_kib,
    node_leftovers,
    ratio,
    reexec_isolated,
    report_leftovers,
    table,
    verdict,
)

IDLE_WINDOW = 6.0  # seconds: three supervisor sweeps
BRIDGE = "k6t-eth0"


def probe_mac(n: int) -> str:
    return f"52:54:00:{(n >> 16) & 0xFF:02x}:{(n >> 8) & 0xFF:02x}:{n & 0xFF:02x}"


def new_samples() -> dict[str, list[float]]:
    return {"netplug ADD": [], "chain ADD": [], "netplug DEL": []}


def probe(node: Node, chain, into: dict[str, list[float]]) -> None:
    """One probe attachment: ADD, then DEL, in a fresh sandbox; its times go `into`."""
    sandbox = Sandbox.create("bnprb")
    try:
        run = node.add(sandbox, chain)
        removed = node.delete(run, chain)
    finally:
        sandbox.delete()
    into["netplug ADD"].append(run.add_ms[1])
    into["chain ADD"].append(sum(run.add_ms))
    into["netplug DEL"].append(removed[1])


def probe_pass(count: int, grown: tuple, control: tuple) -> tuple[float, float]:
    """`count` probes on the grown node, each right after one on the control node (which
    holds one attachment throughout), so both see the same machine load. Each of `grown`
    and `control` is (node, chain, samples). The netplug ADD p90 of this pass on each."""
    adds: dict[str, list[float]] = {"grown": [], "control": []}
    for _ in range(count):
        for label, (node, chain, into) in (("control", control), ("grown", grown)):
            probe(node, chain, into)
            adds[label].append(into["netplug ADD"][-1])
    return Stats.of(adds["grown"]).p90, Stats.of(adds["control"]).p90


def idle_figures(node: Node) -> dict[str, float]:
    assert node.agent is not None
    pid = node.agent.pid
    before = cpu_seconds(pid)
    time.sleep(IDLE_WINDOW)
    cpu = (cpu_seconds(pid) - before) / IDLE_WINDOW * 100
    rss, pss = memory_kib(pid)
    services = [memory_kib(p) for p in node.services()]
    return {"agent CPU %": cpu, "agent RSS MiB": rss / 1024, "agent PSS MiB": pss / 1024,
            "services": len(services),
            "dnsmasq PSS KiB each": sum(s[1] for s in services) / max(1, len(services)),
            "dnsmasq RSS KiB each": statistics.median(s[0] for s in services) if services else 0.0}


def restore(node: Node, dhcp: list[DhcpProbe], *, crash: bool, timeout: float) -> dict[str, float]:
    """Restart the agent (a crash also kills every DHCP service) and time, from the new
    agent's exec, until its socket listens and until every service answered a DISCOVER."""
    before = set(node.services())
    node.stop_agent(kill=crash)
    if crash:
        kill_all(before)
        while node.services():
            time.sleep(0.01)
    start = time.monotonic()
    node.start_agent()
    listening = time.monotonic() - start
    offers = first_offers(dhcp, timeout)
    answered = [t - start for t in offers if t is not None]
    return {"listening s": listening, "all answered s": max(answered) if len(answered) == len(dhcp) else float("inf"),
            "median answered s": statistics.median(answered) if answered else float("inf"),
            "answered": len(answered), "of": len(dhcp), "same processes": len(before & set(node.services()))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--live", default="1,50,100,200", help="comma-separated live counts (default 1,50,100,200)")
    parser.add_argument("--probes", type=int, default=15, help="probe attachments per level and pass (default 15)")
    parser.add_argument("--quick", action="store_true", help="live 1,10,20,40 with 6 probes per pass")
    args = parser.parse_args()
    if (status := reexec_isolated()) is not None:
        return status
    levels = [1, 10, 20, 40] if args.quick else [int(n) for n in args.live.split(",")]
    count = 6 if args.quick else args.probes

    print(f"scale: up to {levels[-1]} live masquerade attachments, {count} probes per level on the way up and "
          "again on the way down")
    print(f"machine: {machine()}")
    samples = {n: new_samples() for n in levels}
    control_samples = {n: new_samples() for n in levels}
    passes: dict[int, list[tuple[float, float]]] = {n: [] for n in levels}  # (grown, control) p90 per pass
    idle: dict[int, dict[str, float]] = {}
    restarts: dict[str, dict[str, float]] = {}
    grow_ms: list[float] = []
    with tempfile.TemporaryDirectory(prefix="netplug-bench-") as workdir:
        node = Node(os.path.join(workdir, "grown"))
        control = Node(os.path.join(workdir, "control"), subnet="10.242.0.0/16")
        chain, control_chain = node.pod_network(node.binding()), control.pod_network(control.binding())
        live: list[ChainRun] = []
        dhcp: list[DhcpProbe] = []
        try:
            node.start_agent()
            control.start_agent()
            live.append(control.add(Sandbox.create(), control_chain))
            for target in (node, control):  # warm-up
                probe(target, chain if target is node else control_chain, new_samples())
            for level in levels:
                for sandbox in make_sandboxes(level - len(live) + 1):
                    run = node.add(sandbox, chain)
                    grow_ms.append(run.add_ms[1])
                    live.append(run)
                    dhcp.append(DhcpProbe(sandbox.netns, BRIDGE, probe_mac(len(live))))
                idle[level] = idle_figures(node)
                passes[level].append(probe_pass(count, (node, chain, samples[level]),
                                                (control, control_chain, control_samples[level])))
                print(f"  {level:4} live: netplug ADD p90 {passes[level][-1][0]:6.1f} ms (control node "
                      f"{passes[level][-1][1]:6.1f} ms), agent idle CPU {idle[level]['agent CPU %']:4.1f} %", flush=True)

            answered = first_offers(dhcp, 30)
            print(f"  {sum(t is not None for t in answered)} of {len(dhcp)} DHCP services answer", flush=True)
            restarts["plain restart"] = restore(node, dhcp, crash=False, timeout=120)
            restarts["crash, services killed"] = restore(node, dhcp, crash=True, timeout=300)

            for level in reversed(levels):
                while len(dhcp) > level:
                    run = live.pop()
                    dhcp.pop().close()
                    node.delete(run, chain)
                    run.sandbox.delete()
                passes[level].append(probe_pass(count, (node, chain, samples[level]),
                                                (control, control_chain, control_samples[level])))
        finally:
            for run in live[1:]:
                try:
                    node.delete(run, chain)
                finally:
                    run.sandbox.delete()
            control.delete(live[0], control_chain)
            live[0].sandbox.delete()
            left = node_leftovers([node, control])
            node.close()
            control.close()

    first, last = levels[0], levels[-1]
    print()
    print(f"latency in ms (p50 / p90) of {2 * count} probe attachments per level; the control node holds one "
          "attachment throughout, its probes interleaved with the grown node's")
    rows = []
    for level in levels:
        s = {k: Stats.of(v) for k, v in samples[level].items()}
        rows.append((level, s["netplug ADD"], " / ".join(f"{g:.1f}" for g, _ in passes[level]),
                     Stats.of(control_samples[level]["netplug ADD"]), s["chain ADD"], s["netplug DEL"]))
    table(rows, ("live", "netplug ADD", "ADD p90 up / down pass", "control node ADD", "chain ADD", "netplug DEL"))
    print(f"  growing the node, netplug ADD: {Stats.of(grow_ms)} over {len(grow_ms)} attachments")
    print()
    print("memory and idle CPU (the agent's supervisor sweeps every attachment every 2 s)")
    table([(level, f"{i['agent RSS MiB']:.1f}", f"{i['agent PSS MiB']:.1f}", f"{i['agent CPU %']:.1f}",
            i["services"], f"{i['dnsmasq PSS KiB each']:.0f}", f"{i['dnsmasq RSS KiB each']:.0f}")
           for level, i in idle.items()],
          ("live", "agent RSS MiB", "agent PSS MiB", "agent idle CPU %", "dnsmasq", "PSS KiB/attachment",
           "RSS KiB/process"))
    print()
    print(f"restoring {last} DHCP services after an agent restart (seconds from the new agent's exec)")
    table([(label, f"{r['listening s']:.2f}", f"{r['median answered s']:.2f}", f"{r['all answered s']:.2f}",
            f"{r['answered']}/{r['of']}", r["same processes"]) for label, r in restarts.items()],
          ("restart", "socket listens", "median answers", "all answer", "answered", "kept running"))
    print()
    print(f"left behind after deleting every attachment (agent running): {'nothing' if not any(left.values()) else ''}")
    clean = report_leftovers(left) if any(left.values()) else True
    print()
    p90 = {n: Stats.of(samples[n]["netplug ADD"]).p90 for n in levels}
    median = {n: Stats.of(samples[n]["netplug ADD"]).median for n in levels}
    control_median = {n: Stats.of(control_samples[n]["netplug ADD"]).median for n in levels}
    growth = ratio(p90[last], p90[first])
    relative = ratio(ratio(median[last], control_median[last]), ratio(median[first], control_median[first]))
    print(f"against the control node (medians: a p90 of {2 * count} samples is too noisy to divide): netplug ADD at "
          f"{last} live is {relative:.2f}x what it is at {first} live, relative to the control measured alongside")
    print()
    print("targets")
    verdict(f"netplug ADD p90 at {last} live <= 1.2x the p90 at {first} live", growth <= 1.2,
            f"{p90[last]:.1f} ms vs {p90[first]:.1f} ms: {growth:.2f}x")
    crash = restarts["crash, services killed"]
    verdict("every DHCP service answers again after an agent crash", crash["answered"] == crash["of"],
            f"{crash['answered']}/{crash['of']} in {crash['all answered s']:.2f} s")
    verdict("nothing is left after deleting every attachment", clean)
    return 0


if __name__ == "__main__":
    sys.exit(main())
