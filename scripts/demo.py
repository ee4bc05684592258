#!/usr/bin/env python3
"""The demo: KubeVirt's testvm (manifests/examples/testvm.yaml) booted behind netplug's
masquerade binding, inside private network namespaces (nothing on the host changes).

  1. a "pod" netns gets eth0 from the reference bridge + host-local plugins (as a primary CNI
     would), then netplug's masquerade binding chained after them, through the real
     cni/netplug shim and a running netplug agent;
  2. `netplug launch` boots the VM in that pod with libvirt + QEMU. containerDisk images cannot
     be pulled here, so the project's test guest boots instead (scripts/build-guest); it runs
     DHCP, pings an "outside" host and serves TCP on port 8080;
  3. the outside host reaches the VM through the pod IP (all ports are forwarded: the YAML
     lists none);
  4. the VM is stopped, CNI DEL removes everything.

Run it with ./scripts/demo (which sets the machine up and builds the guest first).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from runtime.install import install_shim  # noqa: E402
from tests.support.cnirt import Runtime  # noqa: E402
from tests.support.topology import Netns, in_isolated_world, sh, tcp_request, unique, veth  # noqa: E402

VM_YAML = os.path.join(REPO, "manifests", "examples", "testvm.yaml")


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def wait_serial(path: str, pattern: str, launcher: subprocess.Popen, timeout: float = 120) -> re.Match | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and launcher.poll() is None:
        text = open(path, errors="replace").read() if os.path.exists(path) else ""
        match = re.search(pattern, text)
        if match:
            return match
        time.sleep(0.1)
    return None


def main() -> int:
    guest = os.environ.get("NETPLUG_GUEST_DIR", "/var/cache/netplug/guest")
    if not in_isolated_world():
        return subprocess.call([os.path.join(REPO, "scripts", "isolated"), sys.executable, *sys.argv])
    work = tempfile.mkdtemp(prefix="netplug-demo-")
    bin_dir, state, sock = f"{work}/bin", f"{work}/state", f"{work}/agent.sock"
    install_shim(bin_dir, sys.executable)
    agent = subprocess.Popen([sys.executable, "-m", "runtime.cli", "agent", "--socket", sock,
                              "--state-dir", state, "--log-level", "WARNING"], cwd=REPO)
    while not os.path.exists(sock):
        time.sleep(0.02)
    runtime = Runtime([bin_dir, "/usr/lib/cni"], {"NETPLUG_AGENT_SOCKET": sock, "NETPLUG_STATE_DIR": state})
    pod, world = Netns.create("demopod"), Netns.create("demoout")
    node_bridge, node_uplink = unique("demobr"), unique("demoup")
    resolv = f"{work}/resolv.conf"
    with open(resolv, "w") as f:
        f.write("nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\n")
    conflist = {"cniVersion": "1.0.0", "name": "podnet", "plugins": [
        {"type": "bridge", "bridge": node_bridge, "isDefaultGateway": True,
         "ipam": {"type": "host-local", "subnet": "10.244.1.0/24", "dataDir": f"{work}/ipam"}},
        {"type": "netplug", "binding": "masquerade", "vmInterface": "default", "resolvConf": resolv},
    ]}
    ids = {"container_id": "demo-testvm", "netns": pod.path, "ifname": "eth0",
           "args": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=virt-launcher-testvm"}
    launcher = None
    result = None
    ok = False
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the clean-up below still runs
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
        print(pod.exec("ip", "-br", "addr").stdout)

        step(f"netplug launch {os.path.relpath(VM_YAML, REPO)} (containerDisk cannot be pulled here: "
             "the project's test guest boots instead, with 128Mi instead of 64M: its Debian kernel needs ~80)")
        with open(VM_YAML) as f:
            document = yaml.safe_load(f)
        document["spec"]["template"]["spec"]["domain"]["resources"]["requests"]["memory"] = "128Mi"
        vm_yaml = f"{work}/testvm.yaml"
        with open(vm_yaml, "w") as f:
            yaml.safe_dump(document, f)
        vm_dir = f"{work}/vm"
        log = open(f"{work}/launcher.log", "w")
        launcher = subprocess.Popen(
            [sys.executable, "-m", "runtime.cli", "launch", vm_yaml, "--netns", pod.path, "--state-dir", vm_dir,
             "--kernel", f"{guest}/vmlinuz", "--initrd", f"{guest}/initramfs.cpio.gz",
             "--cmdline", "console=ttyS0 panic=-1 quiet e2e.ping=192.0.2.10 e2e.serve=8080 e2e.hold=forever"],
            stdout=log, stderr=log, cwd=REPO)
        serial = f"{vm_dir}/serial.log"
        started = time.monotonic()
        for pattern in (r"E2E: DHCP-OK .*", r"E2E: PING-(OK|FAIL) .*", r"E2E: SERVING .*"):
            line = wait_serial(serial, pattern, launcher)
            print(f"  [{time.monotonic() - started:5.1f} s] guest: {line.group(0) if line else 'nothing (see ' + serial + ')'}")
        status = json.load(open(f"{vm_dir}/status.json"))
        print("  status: " + json.dumps({k: status[k] for k in ("phase", "interfaces") if k in status}))

        step(f"the outside host connects to the pod IP {pod_ip}:8080, forwarded to the VM")
        answer = (tcp_request(world, pod_ip, 8080, timeout=5) or "nothing").strip()
        print("  VM answered: " + answer)

        step("stop the VM, CNI DEL")
        launcher.terminate()
        launcher.wait(timeout=60)
        runtime.delete(conflist, result, **ids)
        result = None
        print("  pod links after DEL: " + " ".join(pod.links()))
        text = open(serial, errors="replace").read()
        ok = "DHCP-OK iface=eth0 ip=10.0.2.2" in text and "PING-OK" in text and answer.startswith("hello")
        print("\ndemo " + ("OK" if ok else f"FAILED (launcher log: {work}/launcher.log)"))
        return 0 if ok else 1
    finally:
        if launcher is not None and launcher.poll() is None:
            launcher.terminate()
            launcher.wait(timeout=60)
        if result is not None:  # interrupted before DEL
            runtime.delete(conflist, result, **ids)
        agent.terminate()
        agent.wait()
        for ns in (pod, world):
            ns.delete()
        sh("ip", "link", "del", node_bridge, check=False)
        sh("ip", "link", "del", node_uplink, check=False)


if __name__ == "__main__":
    sys.exit(main())
