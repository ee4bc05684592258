"""Multus's job on one machine: a pod with the pod network plus two secondary networks from
NetworkAttachmentDefinition YAML (the reference bridge plugin to two node bridges, one with
host-local IPAM, one pure L2, each with netplug's bridge binding chained), delegated in order,
bound to guest stand-ins; the network-status is Multus's; DEL in reverse leaves nothing; a
failing delegate undoes the ones before it."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from netplug import naming
from netplug.errors import DelegateError
from netplug.model import one_line
from netplug.model.multus import (
    NetworkAttachmentDefinition,
    parse_network_status,
    parse_networks,
    render_network_status,
)
from runtime.cnirt import CNIRuntime
from runtime.multus import Multus, PodSandbox
from tests.support.cnirt import exec_plugin
from tests.support.fixtures import REFERENCE_PLUGINS, attach_guest
from tests.support.topology import dhcp_lease, host_local_allocations, sh, unique

NAD_TEMPLATE = """
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: {name}
  namespace: default
spec:
  config: '{config}'
"""


def _nad(name: str, plugins: list[dict]) -> NetworkAttachmentDefinition:
    config = json.dumps({"cniVersion": "1.0.0", "plugins": plugins})
    return NetworkAttachmentDefinition.from_document(yaml.safe_load(NAD_TEMPLATE.format(name=name, config=config)))


def test_pod_with_two_secondary_networks(netplug, pod_network, pod, guests, node_bridges, tmp_path):
    red_br, green_br = unique("npred"), unique("npgrn")
    node_bridges += [red_br, green_br]
    binding = {"type": "netplug", "binding": "bridge", "resolvConf": "/dev/null", "capabilities": {"mac": True}}
    nads = [
        _nad("red", [{"type": "bridge", "bridge": red_br,
                      "ipam": {"type": "host-local", "subnet": "10.63.0.0/24", "dataDir": str(tmp_path / "ipam-red")}},
                     binding]),
        _nad("green", [{"type": "bridge", "bridge": green_br, "ipam": {}}, binding]),
    ]
    red_if, green_if = naming.pod_interface_for_network("red"), naming.pod_interface_for_network("green")
    annotation = json.dumps([{"name": "red", "interface": red_if},
                             {"name": "green", "namespace": "default", "interface": green_if,
                              "mac": "02:00:00:00:0a:0b", "cni-args": {"vmInterface": "green"}}])
    multus = Multus(CNIRuntime(netplug.runtime.cni_path, str(tmp_path / "cache"), netplug.runtime.extra_env), nads)
    sandbox = PodSandbox(namespace="default", name="virt-launcher-vm1", container_id="ctr-multus", netns=pod.path)
    default = pod_network.conflist("1.0.0", {"type": "netplug", "binding": "masquerade", "resolvConf": "/dev/null"})
    delegates = multus.delegates(sandbox, default, parse_networks(annotation))
    assert [d.attachment.ifname for d in delegates] == ["eth0", red_if, green_if]

    statuses = multus.attach(delegates)
    written = render_network_status(statuses)
    entries = json.loads(written)
    assert [e["name"] for e in entries] == ["default/podnet", "default/red", "default/green"]
    assert [e["interface"] for e in entries] == ["eth0", red_if, green_if]
    assert entries[0]["default"] is True and "default" not in entries[1]
    assert entries[0]["ips"][0].startswith(f"10.250.{pod_network.index}.")
    assert entries[1]["ips"] == ["10.63.0.2"] and "ips" not in entries[2]
    assert entries[2]["mac"] == "02:00:00:00:0a:0b"  # the selection's mac reached the binding
    assert entries[0]["gateway"] == [pod_network.gateway]
    assert parse_network_status(written) == statuses  # what we write, we read back

    # CHECK through the CNI runtime, from its cache: the pod network's chain is as ADD made it,
    # until its tap goes down; then netplug's own error comes back as netplug gave it
    multus.runtime.check(delegates[0].conflist, delegates[0].attachment)
    pod.ip("link", "set", "tap0", "down")
    with pytest.raises(DelegateError) as broken:
        multus.runtime.check(delegates[0].conflist, delegates[0].attachment)
    assert broken.value.cni_code == 107 and "link tap0 is down" in broken.value.msg
    assert broken.value.details.startswith("netplug CHECK")
    pod.ip("link", "set", "tap0", "up")

    links = pod.links()
    assert {"k6t-eth0", "tap0", f"k6t-{naming.network_hash('red')}", f"{naming.network_hash('red')}-nic",
            f"tap{naming.network_hash('green')}"} <= set(links)
    assert links[green_if]["address"] == "02:00:00:00:0a:0b"

    red_guest = attach_guest(pod, f"k6t-{naming.network_hash('red')}", entries[1]["mac"],
                             as_tap=f"tap{naming.network_hash('red')}")
    guests.append(red_guest)
    assert dhcp_lease(red_guest.ns, "eth0", str(tmp_path))["ip"] == "10.63.0.2"
    assert len(netplug.services()) == 2  # the pod network and red; green is pure L2

    multus.detach(delegates)
    red_guest.remove()
    guests.clear()
    assert set(pod.links()) == {"lo"}
    assert not pod.nft_ruleset() and not netplug.services() and not netplug.records()
    assert os.listdir(tmp_path / "cache" / "results") == []
    assert host_local_allocations(str(tmp_path / "ipam-red"), "red") == {}


def test_a_failing_delegate_undoes_the_ones_before(netplug, pod_network, pod, node_bridges, tmp_path):
    red_br = unique("npred")
    node_bridges.append(red_br)
    nads = [
        _nad("red", [{"type": "bridge", "bridge": red_br,
                      "ipam": {"type": "host-local", "subnet": "10.64.0.0/24", "dataDir": str(tmp_path / "ipam-red")}},
                     {"type": "netplug", "binding": "bridge", "resolvConf": "/dev/null"}]),
        # a bridge name that is a veth already: the reference plugin refuses it
        _nad("broken", [{"type": "bridge", "bridge": "lo", "ipam": {}}]),
    ]
    multus = Multus(CNIRuntime(netplug.runtime.cni_path, str(tmp_path / "cache"), netplug.runtime.extra_env), nads)
    sandbox = PodSandbox(namespace="default", name="virt-launcher-vm2", container_id="ctr-multus-fail", netns=pod.path)
    default = pod_network.conflist("1.0.0", {"type": "netplug", "binding": "masquerade", "resolvConf": "/dev/null"})
    delegates = multus.delegates(sandbox, default, parse_networks("red@net1,default/broken"))
    with pytest.raises(DelegateError) as failure:
        multus.attach(delegates)
    # the error as the plugin gave it: the same plugin, run alone with that config, says so
    broken = delegates[2]
    direct = exec_plugin(os.path.join(REFERENCE_PLUGINS, "bridge"), "ADD",
                         {"cniVersion": "1.0.0", "name": "broken", **broken.conflist["plugins"][0]},
                         container_id="ctr-oracle", netns=pod.path, ifname="net9", cni_path=[REFERENCE_PLUGINS])
    assert direct.returncode == 1 and direct.json["code"] != 0
    assert (failure.value.cni_code, failure.value.msg) == (direct.json["code"], direct.json["msg"])
    assert failure.value.details.startswith("bridge ADD")
    assert one_line(failure.value) == f"bridge ADD: {direct.json['msg']}"  # a CLI line names the plugin
    assert set(pod.links()) == {"lo"}
    assert not pod.nft_ruleset() and not netplug.services() and not netplug.records()
    assert pod_network.allocations() == []
    assert host_local_allocations(str(tmp_path / "ipam-red"), "red") == {}


def test_unknown_nad_is_refused_before_anything_runs(netplug, pod_network, pod, tmp_path):
    multus = Multus(CNIRuntime(netplug.runtime.cni_path, str(tmp_path / "cache"), netplug.runtime.extra_env), [])
    sandbox = PodSandbox(namespace="ns1", name="p", container_id="ctr-x", netns=pod.path)
    with pytest.raises(Exception, match='"ns1/blue" not found'):
        multus.delegates(sandbox, pod_network.conflist("1.0.0"), parse_networks("blue"))
    assert set(pod.links()) == {"lo"}


def test_macvlan_with_static_ipam_as_a_plain_secondary_network(netplug, pod_network, pod, tmp_path):
    """Any CNI plugin can be a delegate: macvlan on a node uplink with static IPAM, `net1`."""
    uplink = unique("npup")
    sh("ip", "link", "add", uplink, "type", "veth", "peer", "name", unique("npuq"))
    try:
        nad = _nad("macnet", [{"type": "macvlan", "master": uplink, "mode": "bridge",
                               "ipam": {"type": "static", "addresses": [{"address": "10.65.0.9/24"}]}}])
        multus = Multus(CNIRuntime(netplug.runtime.cni_path, str(tmp_path / "cache"),
                                   netplug.runtime.extra_env), [nad])
        sandbox = PodSandbox(namespace="default", name="p-mac", container_id="ctr-mac", netns=pod.path)
        delegates = multus.delegates(sandbox, pod_network.conflist("1.0.0"), parse_networks("macnet"))
        statuses = multus.attach(delegates)
        assert (statuses[1].name, statuses[1].interface, statuses[1].ips) == ("default/macnet", "net1", ["10.65.0.9"])
        assert pod.links()["net1"]["linkinfo"]["info_kind"] == "macvlan"
        multus.detach(delegates)
        assert set(pod.links()) == {"lo"}
    finally:
        sh("ip", "link", "del", uplink, check=False)
