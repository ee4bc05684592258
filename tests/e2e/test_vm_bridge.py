"""Real guests on the bridge binding: one holding the pod IP on the pod network, and two VMs
on a secondary network reaching each other."""

from __future__ import annotations

from netplug import naming
from tests.e2e.conftest import vm_document
from tests.support.fixtures import assert_nothing_left
from tests.support.topology import Netns, TcpServer, processes_mentioning, sh, unique


def _ips(result: dict, name: str) -> list[str]:
    index = next(i for i, iface in enumerate(result["interfaces"]) if iface["name"] == name and iface.get("sandbox"))
    return [ip["address"].split("/")[0] for ip in result["ips"] if ip["interface"] == index]


def test_vm_holds_the_pod_ip(netplug_agent, pod_network, pod, launcher):
    neighbour = Netns.create("nppod")
    try:
        plain = pod_network.conflist("1.0.0")
        neighbour_ip = _ips(netplug_agent.runtime.add(plain, container_id="ctr-nb", netns=neighbour.path,
                                                      ifname="eth0"), "eth0")[0]
        server = TcpServer(neighbour, 7300)
        bridge = {"type": "netplug", "binding": "bridge", "vmInterface": "default", "vmName": "bridgevm",
                  "vmNamespace": "default", "resolvConf": "/dev/null"}
        conflist = pod_network.conflist("1.0.0", bridge)
        ids = {"container_id": "ctr-e2e-bridge", "netns": pod.path, "ifname": "eth0"}
        result = netplug_agent.runtime.add(conflist, **ids)
        pod_ip = _ips(result, "eth0")[0]

        vm = launcher.start(vm_document("bridgevm", [{"name": "default", "bridge": {}}], [{"name": "default", "pod": {}}]),
                            pod, f"e2e.ping={neighbour_ip} e2e.hold=forever")
        lease = vm.wait_for(r"E2E: DHCP-OK iface=eth0 ip=(\S+) mask=(\S+) router=(\S+)")
        assert lease.groups() == (pod_ip, "24", pod_network.gateway)
        vm.wait_for(rf"E2E: PING-OK target={neighbour_ip}")
        (iface,) = vm.status()["interfaces"]
        assert iface["ipAddress"] == pod_ip and iface["mac"] == next(
            i["mac"] for i in result["interfaces"] if i["name"] == "eth0")
        assert vm.stop() == 0
        server.close()
        netplug_agent.runtime.delete(conflist, result, **ids)
        assert_nothing_left(netplug_agent, pod, keep=("lo",))
    finally:
        neighbour.delete()


def test_two_vms_on_a_secondary_network(netplug_agent, launcher, tmp_path):
    node_bridge = unique("npsec")
    network = {"cniVersion": "1.0.0", "name": "blue", "plugins": [
        {"type": "bridge", "bridge": node_bridge,
         "ipam": {"type": "host-local", "subnet": "10.61.0.0/24", "dataDir": str(tmp_path / "ipam")}},
        {"type": "netplug", "binding": "bridge", "vmNamespace": "default", "vmInterface": "blue",
         "resolvConf": "/dev/null"},
    ]}
    ifname = naming.pod_interface_for_network("blue")
    pods = [Netns.create("nppod"), Netns.create("nppod")]
    try:
        results, vms = [], []
        for n, pod in enumerate(pods):
            conflist = {**network, "plugins": [network["plugins"][0], {**network["plugins"][1], "vmName": f"secvm{n}"}]}
            results.append(netplug_agent.runtime.add(conflist, container_id=f"ctr-e2e-sec{n}", netns=pod.path, ifname=ifname))
        ips = [_ips(r, ifname)[0] for r in results]
        for n, pod in enumerate(pods):
            document = vm_document(f"secvm{n}", [{"name": "blue", "bridge": {}}],
                                   [{"name": "blue", "multus": {"networkName": "blue"}}])
            vms.append(launcher.start(document, pod, f"e2e.ping={ips[1 - n]} e2e.hold=forever"))
        for n, vm in enumerate(vms):
            assert vm.wait_for(r"E2E: DHCP-OK iface=eth0 ip=(\S+)").group(1) == ips[n]
        for n, vm in enumerate(vms):
            vm.wait_for(rf"E2E: PING-OK target={ips[1 - n]}")
            assert vm.status()["interfaces"][0]["infoSource"] == "domain, multus-status"
        for vm in vms:
            assert vm.stop() == 0
        assert not processes_mentioning("guest=default_secvm")
        for n, pod in enumerate(pods):
            conflist = {**network, "plugins": [network["plugins"][0], {**network["plugins"][1], "vmName": f"secvm{n}"}]}
            netplug_agent.runtime.delete(conflist, results[n], container_id=f"ctr-e2e-sec{n}", netns=pod.path, ifname=ifname)
        for pod in pods:
            assert_nothing_left(netplug_agent, pod, keep=("lo",))
    finally:
        for pod in pods:
            pod.delete()
        sh("ip", "link", "del", node_bridge, check=False)
