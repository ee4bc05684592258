"""A real guest behind masquerade: DHCP lease, ping to the outside, a forwarded port."""

from __future__ import annotations

from tests.e2e.conftest import vm_document
from tests.support.cnirt import sandbox_ips
from tests.support.fixtures import assert_nothing_left
from tests.support.topology import processes_mentioning, tcp_request


def test_vm_behind_masquerade(netplug_agent, pod_network, pod, outside, launcher):
    masq = {"type": "netplug", "binding": "masquerade", "vmInterface": "default",
            "ports": [{"name": "http", "port": 8080}], "resolvConf": "/dev/null"}
    conflist = pod_network.conflist("1.0.0", masq)
    ids = {"container_id": "ctr-e2e-masq", "netns": pod.path, "ifname": "eth0"}
    result = netplug_agent.runtime.add(conflist, **ids)
    pod_ip = sandbox_ips(result)[0]

    document = vm_document("masqvm", [{"name": "default", "masquerade": {}, "ports": [{"name": "http", "port": 8080}]}],
                           [{"name": "default", "pod": {}}])
    vm = launcher.start(document, pod, f"e2e.ping={outside.address} e2e.serve=8080 e2e.hold=forever")
    lease = vm.wait_for(r"E2E: DHCP-OK iface=eth0 ip=(\S+) mask=(\S+) router=(\S+)")
    assert lease.groups() == ("10.0.2.2", "24", "10.0.2.1")
    vm.wait_for(rf"E2E: PING-OK target={outside.address}")
    vm.wait_for(r"E2E: SERVING port=8080")
    assert "hello" in (tcp_request(outside.ns, pod_ip, 8080, timeout=5) or "")

    status = vm.status()
    assert status["phase"] == "Running"
    (iface,) = status["interfaces"]
    assert (iface["name"], iface["ipAddress"], iface["infoSource"]) == ("default", pod_ip, "domain")

    assert vm.stop() == 0
    assert vm.status()["phase"] == "Succeeded"
    assert not processes_mentioning("guest=default_masqvm,"), "QEMU outlived its launcher"
    netplug_agent.runtime.delete(conflist, result, **ids)
    assert_nothing_left(netplug_agent, pod, keep=("lo",))
