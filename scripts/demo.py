#!/usr/bin/env python3
"""The masquerade demo: a pod wired by kubelet's way of calling CNI, a VM stand-in behind NAT.

What it does, inside private network namespaces (nothing on the host changes):
  1. a "pod" netns gets eth0 from the reference bridge + host-local plugins (as a primary
     CNI would), then netplug's masquerade binding chained after them, through the real
     cni/netplug shim and a running netplug agent;
  2. a VM stand-in (a veth with a VM's MAC in its own netns, on k6t-eth0 like the VM's tap)
     asks for DHCP with busybox udhcpc and gets 10.0.2.2;
  3. it pings an "outside" host through the NAT, and the outside reaches a web server in
     the VM on a forwarded port (8080) of the pod IP;
  4. DEL removes everything.

Run it with ./scripts/demo (which sets the machine up first).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from runtime.cli import install_shim  # noqa: E402
from tests.support.cnirt import Runtime  # noqa: E402
from tests.support.topology import Netns, TcpServer, dhcp_lease, sh, tcp_request, unique, veth  # noqa: E402


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def main() -> int:
    if os.environ.get("NETPLUG_ISOLATED_NODE") != "1":
        env = {**os.environ, "NETPLUG_ISOLATED_NODE": "1"}
        return subprocess.call(["unshare", "--net", "--mount", "--propagation", "private", "--",
                                sys.executable, *sys.argv], env=env)
    work = tempfile.mkdtemp(prefix="netplug-demo-")
    bin_dir, state, sock = f"{work}/bin", f"{work}/state", f"{work}/agent.sock"
    install_shim(bin_dir, sys.executable)
    agent = subprocess.Popen([sys.executable, "-m", "runtime.cli", "agent", "--socket", sock,
                              "--state-dir", state, "--log-level", "WARNING"], cwd=REPO)
    while not os.path.exists(sock):
        time.sleep(0.02)
    runtime = Runtime([bin_dir, "/usr/lib/cni"], {"NETPLUG_AGENT_SOCKET": sock, "NETPLUG_STATE_DIR": state})
    pod, vm, world = Netns.create("demopod"), Netns.create("demovm"), Netns.create("demoout")
    node_bridge, node_uplink = unique("demobr"), unique("demoup")
    resolv = f"{work}/resolv.conf"
    with open(resolv, "w") as f:
        f.write("nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\n")
    conflist = {"cniVersion": "1.0.0", "name": "podnet", "plugins": [
        {"type": "bridge", "bridge": node_bridge, "isDefaultGateway": True,
         "ipam": {"type": "host-local", "subnet": "10.244.1.0/24", "dataDir": f"{work}/ipam"}},
        {"type": "netplug", "binding": "masquerade", "vmInterface": "default",
         "ports": [{"name": "http", "port": 8080}], "resolvConf": resolv},
    ]}
    ids = {"container_id": "demo-testvm", "netns": pod.path, "ifname": "eth0",
           "args": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=virt-launcher-testvm"}
    try:
        veth(None, node_uplink, world, "ext0")
        sh("ip", "addr", "add", "192.0.2.1/24", "dev", node_uplink)
        world.ip("addr", "add", "192.0.2.10/24", "dev", "ext0")
        world.ip("route", "add", "default", "via", "192.0.2.1")
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
            f.write("1")

        step("CNI ADD: bridge + host-local (eth0), then netplug masquerade (chained)")
        result = runtime.add(conflist, **ids)
        print(json.dumps(result, indent=2))
        pod_ip = result["ips"][0]["address"].split("/")[0]
        step("inside the pod")
        print(pod.exec("ip", "-br", "addr").stdout + pod.exec("nft", "list", "ruleset").stdout)

        step("VM stand-in on k6t-eth0 asks for DHCP")
        veth(pod, "demotap", vm, "eth0", b_mac="52:54:00:12:34:56")
        pod.ip("link", "set", "demotap", "master", "k6t-eth0")
        lease = dhcp_lease(vm, "eth0", work)
        print("lease: " + ", ".join(f"{k}={v}" for k, v in sorted(lease.items())))

        step("VM pings the outside host 192.0.2.10 through the NAT")
        print(vm.exec("busybox", "ping", "-c", "2", "-W", "1", "192.0.2.10", check=False).stdout)
        server = TcpServer(vm, 8080)
        step(f"the outside host connects to the pod IP {pod_ip}:8080, forwarded to the VM")
        print("VM answered: " + (tcp_request(world, pod_ip, 8080) or "nothing").strip())
        server.close()

        step("CNI DEL")
        runtime.delete(conflist, result, **ids)
        print("pod links after DEL: " + " ".join(pod.links()))
        ok = lease.get("ip") == "10.0.2.2"
        print("\ndemo " + ("OK" if ok else "FAILED"))
        return 0 if ok else 1
    finally:
        agent.terminate()
        agent.wait()
        for ns in (pod, vm, world):
            ns.delete()
        sh("ip", "link", "del", node_bridge, check=False)
        sh("ip", "link", "del", node_uplink, check=False)


if __name__ == "__main__":
    sys.exit(main())
