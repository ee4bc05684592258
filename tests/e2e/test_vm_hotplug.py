"""Interface hotplug on a running VM, the way KubeVirt's dynamic networks do it: the pod gets
the new network (CNI ADD of the secondary network's chain, as Multus would run it), then the
launcher attaches the guest NIC through libvirt; detach reverses both."""

from __future__ import annotations

from netplug import naming
from runtime.launcher import control_request
from tests.e2e.conftest import vm_document
from tests.support.fixtures import assert_nothing_left
from tests.support.topology import Netns, sh, tcp_request, unique


def _ips(result: dict, name: str) -> list[str]:
    index = next(i for i, iface in enumerate(result["interfaces"]) if iface["name"] == name and iface.get("sandbox"))
    return [ip["address"].split("/")[0] for ip in result["ips"] if ip["interface"] == index]


def test_attach_and_detach_a_bridge_interface(netplug_agent, pod_network, pod, launcher, tmp_path):
    masq = {"type": "netplug", "binding": "masquerade", "vmInterface": "default", "resolvConf": "/dev/null"}
    primary = pod_network.conflist("1.0.0", masq)
    ids = {"container_id": "ctr-e2e-hotplug", "netns": pod.path, "ifname": "eth0"}
    primary_result = netplug_agent.runtime.add(primary, **ids)
    vm = launcher.start(vm_document("hotvm", [{"name": "default", "masquerade": {}}], [{"name": "default", "pod": {}}]),
                        pod, "e2e.serve=8080 e2e.hold=forever")
    vm.wait_for(r"E2E: READY")

    node_bridge = unique("nphot")
    peer = Netns.create("nppeer")
    blue = {"cniVersion": "1.0.0", "name": "blue", "plugins": [
        {"type": "bridge", "bridge": node_bridge,
         "ipam": {"type": "host-local", "subnet": "10.62.0.0/24", "dataDir": str(tmp_path / "ipam")}},
        {"type": "netplug", "binding": "bridge", "vmName": "hotvm", "vmNamespace": "default",
         "vmInterface": "blue", "resolvConf": "/dev/null"},
    ]}
    plain_blue = {**blue, "plugins": blue["plugins"][:1]}
    blue_ids = {"container_id": "ctr-e2e-hotplug", "netns": pod.path, "ifname": naming.pod_interface_for_network("blue")}
    try:
        peer_result = netplug_agent.runtime.add(plain_blue, container_id="ctr-peer", netns=peer.path, ifname="eth0")
        blue_result = netplug_agent.runtime.add(blue, **blue_ids)
        blue_ip = _ips(blue_result, blue_ids["ifname"])[0]

        answer = control_request(vm.state_dir, {"op": "attach", "interface": {"name": "blue", "bridge": {}},
                                                "network": {"name": "blue", "multus": {"networkName": "blue"}}})
        assert answer == {"ok": True}, answer
        vm.wait_for(r"E2E: LINK-NEW iface=eth1")
        assert vm.wait_for(r"E2E: DHCP-OK iface=eth1 ip=(\S+)").group(1) == blue_ip
        assert "hello" in (tcp_request(peer, blue_ip, 8080, timeout=5) or "")
        names = [i["name"] for i in vm.status()["interfaces"]]
        assert names == ["default", "blue"]

        answer = control_request(vm.state_dir, {"op": "detach", "name": "blue"})
        assert answer == {"ok": True}, answer
        vm.wait_for(r"E2E: LINK-GONE iface=eth1", timeout=60)
        assert [i["name"] for i in vm.status()["interfaces"]] == ["default"]
        netplug_agent.runtime.delete(blue, blue_result, **blue_ids)
        assert set(pod.links()) == {"lo", "eth0", "k6t-eth0", "tap0"}

        bad = control_request(vm.state_dir, {"op": "detach", "name": "blue"})
        assert "not attached" in bad["error"]
        # only bridge interfaces hot-plug; a refused attach leaves the running VM as it was
        for binding in ("sriov", "masquerade"):
            bad = control_request(vm.state_dir, {"op": "attach", "interface": {"name": "red", binding: {}},
                                                 "network": {"name": "red", "multus": {"networkName": "red"}}})
            assert "only bridge interfaces can be hot-plugged" in bad["error"], bad
        assert [i["name"] for i in vm.status()["interfaces"]] == ["default"]
        assert vm.stop() == 0
        netplug_agent.runtime.delete(plain_blue, peer_result, container_id="ctr-peer", netns=peer.path, ifname="eth0")
        netplug_agent.runtime.delete(primary, primary_result, **ids)
        assert_nothing_left(netplug_agent, pod, keep=("lo",))
    finally:
        peer.delete()
        sh("ip", "link", "del", node_bridge, check=False)
