"""A real guest on an IPv6-only pod behind masquerade: its stock DHCPv6 client (dhcpcd) gets
fd10:0:2::2, netplug's router advertisements give it the default route KubeVirt never sent,
and it reaches an IPv6 server outside through NAT66."""

from __future__ import annotations

from tests.e2e.conftest import vm_document
from tests.support.fixtures import assert_nothing_left


def test_vm_gets_ipv6_address_and_default_route(netplug_agent, pod_network, pod, outside, launcher):
    masq = {"type": "netplug", "binding": "masquerade", "vmInterface": "default", "resolvConf": "/dev/null"}
    conflist = pod_network.conflist("1.0.0", masq, ipv4=False, ipv6=True)
    ids = {"container_id": "ctr-e2e-v6", "netns": pod.path, "ifname": "eth0"}
    result = netplug_agent.runtime.add(conflist, **ids)
    vm = launcher.start(vm_document("v6vm", [{"name": "default", "masquerade": {}}], [{"name": "default", "pod": {}}]),
                        pod, f"e2e.dhcp6=1 e2e.ping6={outside.address6} e2e.hold=forever")
    report = vm.wait_for(r"E2E: IPV6 iface=eth0 addrs=(\S+) router=(\S+)")
    assert report.group(1) == "fd10:0:2::2"
    assert report.group(2).startswith("fe80:"), report.group(0)
    vm.wait_for(rf"E2E: PING-OK target={outside.address6}")  # through NAT66
    assert vm.stop() == 0
    netplug_agent.runtime.delete(conflist, result, **ids)
    assert_nothing_left(netplug_agent, pod, keep=("lo",))
