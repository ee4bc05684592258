"""networkInterfaceMultiqueue with 2 vCPUs boots and gets its lease: the pod's binding config
(netplug.pod, as `netplug up` and the controller write it) asks the CNI for a multi-queue
tap, and the launcher gives the guest's NIC one queue per vCPU on it. Without that, libvirt's
second open of a single-queue tap fails (EINVAL) and the VM never starts; so on a tap made
single-queue (a binding config written without `queues`) the launcher gives one queue."""

from __future__ import annotations

import os

import pytest

from netplug.model.vm import vmi_from_document
from netplug.pod import NodeNetwork, plan_pod
from tests.e2e.conftest import vm_document
from tests.support.fixtures import assert_nothing_left


@pytest.mark.parametrize("tap_from", ["the pod's binding config", "a config without queues"])
def test_multiqueue_vm_with_two_vcpus_boots_and_gets_its_lease(netplug_agent, pod_network, pod, launcher, tap_from):
    document = vm_document("mqvm", [{"name": "default", "masquerade": {}}], [{"name": "default", "pod": {}}])
    domain = document["spec"]["template"]["spec"]["domain"]
    domain["cpu"] = {"cores": 2}
    domain["devices"]["networkInterfaceMultiqueue"] = True
    (attachment,) = plan_pod(vmi_from_document(document), [], NodeNetwork()).attachments
    binding = attachment.conflist["plugins"][-1]
    assert binding["queues"] == 2
    multi_queue = tap_from == "the pod's binding config"
    if not multi_queue:
        del binding["queues"]
    conflist = pod_network.conflist("1.0.0", {**binding, "resolvConf": "/dev/null"})
    ids = {"container_id": "ctr-e2e-mq", "netns": pod.path, "ifname": "eth0"}
    result = netplug_agent.runtime.add(conflist, **ids)
    assert pod.links()["tap0"]["linkinfo"]["info_data"]["multi_queue"] is multi_queue

    vm = launcher.start(document, pod, "e2e.hold=0")
    lease = vm.wait_for(r"E2E: DHCP-OK iface=eth0 ip=(\S+) mask=(\S+) router=(\S+)")
    assert lease.groups() == ("10.0.2.2", "24", "10.0.2.1")
    vm.wait_for(r"E2E: DONE")
    xml = open(os.path.join(vm.state_dir, "domain.xml")).read()
    assert "<vcpu>2</vcpu>" in xml
    assert ('<driver queues="2"' in xml) is multi_queue  # never more queues than the tap takes
    assert vm.stop() == 0 and vm.status()["phase"] == "Succeeded"
    netplug_agent.runtime.delete(conflist, result, **ids)
    assert_nothing_left(netplug_agent, pod, keep=("lo",))
