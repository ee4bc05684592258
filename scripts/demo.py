#!/usr/bin/env python3
"""The demo: `netplug up` of KubeVirt's testvm with a masquerade interface on the pod network
and a bridge interface on a secondary network ("blue"), on this machine, as a user runs it —
inside private network namespaces, so nothing on the host changes.

It shows: `netplug up`'s progress (sandbox, CNI chains, launcher, the guest's leases), the
guest's serial console (DHCP on both NICs, a ping to an "outside" host through the NAT), a
request from the outside host to the forwarded port on the pod IP, a neighbour on the blue
network reaching the VM on its blue address, `netplug get vms`, `netplug doctor`, and
`netplug down`. containerDisk images cannot be pulled here: the project's test guest boots
(`up` says so).

Run it with ./scripts/demo (which sets the machine up and builds the guest first).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tests.support.agent import AgentDidNotStart, start_agent, stop_agent  # noqa: E402
from tests.support.topology import Netns, in_isolated_world, sh, tcp_request, veth  # noqa: E402

VM = os.path.join(REPO, "manifests", "examples", "testvm-secondary.yaml")
NAD = os.path.join(REPO, "manifests", "examples", "nad-blue.yaml")
OUTSIDE = "192.0.2.10"


def netplug(*args: str, env: dict, check: bool = True, show: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "runtime.cli", *args], cwd=REPO, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if show:
        print(f"\n$ netplug {' '.join(args)}\n{proc.stdout}", end="", flush=True)
    if check and proc.returncode != 0:
        raise SystemExit(f"netplug {args[0]} failed ({proc.returncode})")
    return proc


def main() -> int:
    if not in_isolated_world():
        return subprocess.call([os.path.join(REPO, "scripts", "isolated"), sys.executable, *sys.argv])
    work = tempfile.mkdtemp(prefix="netplug-demo-")
    env = {**os.environ, "NETPLUG_STATE_DIR": f"{work}/state", "NETPLUG_AGENT_SOCKET": f"{work}/agent.sock",
           "NETPLUG_TEST_GUEST_ARGS": f"e2e.ping={OUTSIDE}"}
    try:
        agent = start_agent(env["NETPLUG_AGENT_SOCKET"], env["NETPLUG_STATE_DIR"], None, log_level="WARNING")
    except AgentDidNotStart as exc:
        raise SystemExit(str(exc)) from None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the clean-up below runs
    world, neighbour = Netns.create("demoout"), Netns.create("demonb")
    up = False
    ok = False
    try:
        # the "outside": a host behind this machine's uplink
        veth(None, "demoup", world, "ext0")
        sh("ip", "addr", "add", "192.0.2.1/24", "dev", "demoup")
        world.ip("addr", "add", f"{OUTSIDE}/24", "dev", "ext0")
        world.ip("route", "add", "default", "via", "192.0.2.1")

        up = netplug("up", VM, "--nad", NAD, env=env).returncode == 0
        console = netplug("console", "testvm", env=env).stdout
        vmi = json.loads(netplug("get", "vmis", "-o", "json", env=env, show=False).stdout)["items"][0]
        addresses = {i["name"]: i.get("ipAddress") for i in vmi["status"]["interfaces"]}

        print(f"\n== the outside host ({OUTSIDE}) connects to the pod IP {addresses['default']}:8080 (forwarded)")
        print("  the VM answered: " + (tcp_request(world, addresses["default"], 8080, timeout=5) or "nothing").strip())

        # a neighbour on the blue network (a plain pod on blue0) reaches the VM on its blue address
        veth(None, "demonbx", neighbour, "eth0")
        sh("ip", "link", "set", "demonbx", "master", "blue0")
        neighbour.ip("addr", "add", "192.168.77.200/24", "dev", "eth0")
        print(f"\n== a neighbour on the blue network connects to the VM's blue address {addresses['blue']}:8080")
        blue = tcp_request(neighbour, addresses["blue"], 8080, timeout=5) or "nothing"
        print("  the VM answered: " + blue.strip())

        netplug("get", "vms", env=env)
        doctor = netplug("doctor", "testvm", env=env, check=False)
        ok = ("DHCP-OK iface=eth0 ip=10.0.2.2" in console and f"PING-OK target={OUTSIDE}" in console
              and "DHCP-OK iface=eth1 ip=192.168.77." in console and blue.startswith("hello")
              and doctor.returncode == 0)
    finally:
        if up:
            netplug("down", "testvm", env=env, check=False)
        stop_agent(agent, env["NETPLUG_AGENT_SOCKET"], signal.SIGTERM)
        for ns in (world, neighbour):
            ns.delete()
        for link in ("demoup", "netplug0", "blue0"):
            sh("ip", "link", "del", link, check=False)
    print("\ndemo " + ("OK" if ok else f"FAILED (state and logs: {work})"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
