"""netplug.model.multus: the NPWG multi-network formats, read as Multus and KubeVirt write them.

A NAD that netplug reads differently from Multus attaches the VM to the wrong network (or to
none); a networks annotation read wrongly picks the wrong NAD or interface name; a
network-status entry written wrongly makes KubeVirt map the VM's NIC to the wrong VF or report
the wrong IP. The YAML/JSON documents in data/multus/ are copies of what users, Multus and the
sriov-network-operator actually write.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from netplug.errors import InvalidConfig
from netplug.model.cni import parse_result
from netplug.model.multus import (
    NETWORKS_ANNOTATION,
    STATUS_ANNOTATION,
    DeviceInfo,
    NetworkAttachmentDefinition,
    NetworkSelectionElement,
    NetworkStatus,
    parse_network_status,
    parse_networks,
    render_network_status,
    render_networks,
    status_from_result,
)

DATA = Path(__file__).parent / "data" / "multus"


def load_nad_document(name: str) -> dict:
    return yaml.safe_load((DATA / name).read_text())


def nad_document(config: object, *, name: str = "macvlan-conf", namespace: str = "default") -> dict:
    """A NAD document as `kubectl get -o json` shows it; `config` is put in spec.config
    verbatim when it is a string, JSON-encoded otherwise."""
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"config": config if isinstance(config, str) else json.dumps(config)},
    }


# --- NetworkAttachmentDefinition --------------------------------------------------------------


def test_single_plugin_config_becomes_a_one_plugin_conflist_named_after_the_nad():
    nad = NetworkAttachmentDefinition.from_document(load_nad_document("macvlan-conf.yaml"))

    assert nad.key == "default/macvlan-conf"
    assert nad.resource_name is None
    assert nad.conflist() == {
        "cniVersion": "0.3.0",
        "name": "macvlan-conf",
        "plugins": [{
            "type": "macvlan",
            "master": "eth0",
            "mode": "bridge",
            "ipam": {
                "type": "host-local",
                "subnet": "192.168.1.0/24",
                "rangeStart": "192.168.1.200",
                "rangeEnd": "192.168.1.216",
                "routes": [{"dst": "0.0.0.0/0"}],
                "gateway": "192.168.1.1",
            },
        }],
    }


def test_conflist_keeps_its_plugins_in_order_and_takes_the_nad_name():
    nad = NetworkAttachmentDefinition.from_document(load_nad_document("br-net-conflist.yaml"))

    assert nad.key == "vms/br-net"
    conflist = nad.conflist()
    assert conflist["name"] == "br-net"
    assert conflist["cniVersion"] == "0.3.1"
    assert [p["type"] for p in conflist["plugins"]] == ["bridge", "tuning"]
    assert conflist["plugins"][0] == {"type": "bridge", "bridge": "br1", "vlan": 100, "ipam": {}}
    assert conflist["plugins"][1]["sysctl"] == {"net.ipv6.conf.IFNAME.accept_ra": "0"}


def test_sriov_nad_exposes_its_device_plugin_resource_and_keeps_its_own_config_name():
    nad = NetworkAttachmentDefinition.from_document(load_nad_document("sriov-net.yaml"))

    assert nad.resource_name == "intel.com/intel_sriov_netdevice"
    conflist = nad.conflist()
    # Multus (GetCNIConfigFromSpec) only fills the name in when the config has none.
    assert conflist["name"] == "sriov-network"
    assert conflist["cniVersion"] == "1.0.0"
    (plugin,) = conflist["plugins"]
    assert plugin["type"] == "sriov"
    assert plugin["vlan"] == 1000
    assert plugin["capabilities"] == {"mac": True, "ips": True}
    assert "cniVersion" not in plugin and "name" not in plugin


def test_conflist_with_an_empty_name_is_named_after_the_nad():
    nad = NetworkAttachmentDefinition.from_document(nad_document(
        {"cniVersion": "1.0.0", "name": "", "plugins": [{"type": "bridge"}]}, name="blue"))

    assert nad.conflist()["name"] == "blue"


def test_nad_without_namespace_is_in_default():
    document = load_nad_document("macvlan-conf.yaml")
    assert "namespace" not in document["metadata"]

    assert NetworkAttachmentDefinition.from_document(document).metadata.namespace == "default"


def test_conflist_does_not_change_the_nad():
    nad = NetworkAttachmentDefinition.from_document(load_nad_document("br-net-conflist.yaml"))
    first = nad.conflist()
    first["plugins"].append({"type": "evil"})
    first["name"] = "changed"

    assert nad.conflist()["name"] == "br-net"
    assert len(json.loads(nad.spec.config)["plugins"]) == 2


@pytest.mark.parametrize(("change", "field"), [
    (lambda d: d.update(kind="Pod"), "kind"),
    (lambda d: d.pop("kind"), "kind"),
    (lambda d: d.update(apiVersion="k8s.cni.cncf.io/v1beta1"), "apiVersion"),
    (lambda d: d.pop("apiVersion"), "apiVersion"),
    (lambda d: d["metadata"].pop("name"), "metadata.name"),
    (lambda d: d.pop("metadata"), "metadata"),
    # a common mistake: spec.config written as a YAML mapping instead of a JSON string
    (lambda d: d["spec"].update(config={"cniVersion": "1.0.0", "type": "bridge"}), "spec.config"),
], ids=["wrong-kind", "no-kind", "wrong-apiVersion", "no-apiVersion", "no-name", "no-metadata",
        "config-not-a-string"])
def test_malformed_nad_document_is_refused_naming_the_field(change, field):
    document = load_nad_document("macvlan-conf.yaml")
    change(document)

    with pytest.raises(InvalidConfig) as info:
        NetworkAttachmentDefinition.from_document(document)
    assert field in info.value.msg


@pytest.mark.parametrize("change", [
    lambda d: d.update(kind="NetworkAttachment"),
    lambda d: d.update(apiVersion="k8s.cni.cncf.io/v1beta1"),
], ids=["wrong-kind", "wrong-apiVersion"])
def test_wrong_kind_or_api_version_error_names_the_nad(change):
    document = load_nad_document("macvlan-conf.yaml")
    change(document)

    with pytest.raises(InvalidConfig) as info:
        NetworkAttachmentDefinition.from_document(document)
    assert "macvlan-conf" in info.value.msg


def test_non_mapping_document_is_refused():
    with pytest.raises(InvalidConfig, match="NetworkAttachmentDefinition: the document is not an object"):
        NetworkAttachmentDefinition.from_document(["not", "a", "document"])


@pytest.mark.parametrize(("config", "complaint"), [
    ('{"cniVersion": "1.0.0", "type": "macvlan",', "not JSON"),
    ("", "empty"),
    ("   \n", "empty"),
    ('[{"cniVersion": "1.0.0", "type": "macvlan"}]', "JSON object"),
    ({"type": "macvlan", "master": "eth0"}, "cniVersion"),
    ({"cniVersion": 1.0, "type": "macvlan"}, "cniVersion"),
    ({"cniVersion": "1.0.0", "plugins": []}, "plugins"),
    ({"cniVersion": "1.0.0", "plugins": [{"type": "bridge"}, {"capabilities": {"mac": True}}]}, "plugins"),
    ({"cniVersion": "1.0.0", "plugins": {"type": "bridge"}}, "plugins"),
    ({"cniVersion": "1.0.0", "plugins": ["bridge"]}, "plugins"),
    ({"cniVersion": "1.0.0", "master": "eth0"}, "type"),
], ids=["not-json", "empty", "blank", "a-list", "no-cniVersion", "numeric-cniVersion",
        "plugins-empty", "plugin-without-type", "plugins-not-a-list", "plugin-not-an-object",
        "plugin-config-without-type"])
def test_bad_spec_config_is_refused_naming_the_nad_and_spec_config(config, complaint):
    with pytest.raises(InvalidConfig) as info:
        NetworkAttachmentDefinition.from_document(nad_document(config, name="red", namespace="vms"))

    msg = info.value.msg
    assert "spec.config" in msg
    assert "vms/red" in msg
    assert complaint in msg


def test_nad_without_spec_is_refused_as_empty_config():
    document = nad_document("{}", name="implicit")
    del document["spec"]

    with pytest.raises(InvalidConfig, match=r"default/implicit: spec.config is empty"):
        NetworkAttachmentDefinition.from_document(document)


def test_not_json_error_points_at_the_line():
    config = '{\n  "cniVersion": "1.0.0",\n  "type": "macvlan"\n  "master": "eth0"\n}'

    with pytest.raises(InvalidConfig, match="line 4"):
        NetworkAttachmentDefinition.from_document(nad_document(config))


# --- k8s.v1.cni.cncf.io/networks ------------------------------------------------------------


def test_short_form_names_and_namespaces():
    elements = parse_networks("net-a,net-b,other-ns/net-c", default_namespace="vms")

    assert [(e.namespace, e.name, e.interface) for e in elements] == [
        (None, "net-a", None), (None, "net-b", None), ("other-ns", "net-c", None)]
    assert [e.nad_key("vms") for e in elements] == ["vms/net-a", "vms/net-b", "other-ns/net-c"]


def test_short_form_interface_after_at():
    (element,) = parse_networks("ns/name@eth2")

    assert (element.namespace, element.name, element.interface) == ("ns", "name", "eth2")
    assert element.nad_key("default") == "ns/name"


def test_short_form_tolerates_whitespace_and_allows_repeats():
    elements = parse_networks("  net-a , other-ns/net-c@net5,\n net-a ")

    assert [(e.namespace, e.name, e.interface) for e in elements] == [
        (None, "net-a", None), ("other-ns", "net-c", "net5"), (None, "net-a", None)]


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_empty_annotation_selects_no_network(text):
    assert parse_networks(text) == []


def test_json_form_as_kubevirt_writes_it():
    text = '[{"name":"br-net","namespace":"default","interface":"pod16477688c0e"}]'

    (element,) = parse_networks(text, default_namespace="vms")

    assert element.name == "br-net"
    assert element.namespace == "default"
    assert element.interface == "pod16477688c0e"
    assert element.nad_key("vms") == "default/br-net"
    assert element.ips == [] and element.mac is None and element.default_route == []


FULL_ELEMENT = {
    "name": "sriov-net-a",
    "namespace": "sriov",
    "interface": "net1",
    "mac": "ca:fe:c0:ff:ee:01",
    "ips": ["10.56.217.171/24", "fd00:56::171/64"],
    "cni-args": {"vlan": "1000", "trust": "on"},
    "default-route": ["10.56.217.1"],
    "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
    "bandwidth": {"ingressRate": 1000000, "ingressBurst": 1000000,
                  "egressRate": 2000000, "egressBurst": 2000000},
    "infiniband-guid": "c2:11:22:33:44:55:66:77",
}


def test_json_form_reads_every_field():
    (element,) = parse_networks(json.dumps([FULL_ELEMENT, {"name": "br-net"}]))[:1]

    assert element.name == "sriov-net-a"
    assert element.namespace == "sriov"
    assert element.interface == "net1"
    assert element.mac == "ca:fe:c0:ff:ee:01"
    assert element.ips == ["10.56.217.171/24", "fd00:56::171/64"]
    assert element.cni_args == {"vlan": "1000", "trust": "on"}
    assert element.default_route == ["10.56.217.1"]
    assert element.portMappings == [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]
    assert element.bandwidth == FULL_ELEMENT["bandwidth"]
    assert element.infiniband_guid == "c2:11:22:33:44:55:66:77"


def test_json_form_with_leading_whitespace_is_json():
    (element,) = parse_networks('\n  [ {"name": "br-net", "interface": "net1"} ]\n')

    assert (element.name, element.interface) == ("br-net", "net1")


@pytest.mark.parametrize("text", [
    json.dumps([FULL_ELEMENT, {"name": "br-net"}]),
    '[{"name":"br-net","namespace":"default","interface":"pod16477688c0e"}]',
    json.dumps([{"name": "claimed", "ipam-claim-reference": "vm-a.net1"}]),
    "net-a,other-ns/net-c@eth2,net-a",
])
def test_render_then_parse_gives_the_same_selection(text):
    elements = parse_networks(text)
    rendered = render_networks(elements)

    assert rendered.startswith("[")
    assert parse_networks(rendered) == elements


def test_render_writes_spec_keys_and_omits_unset_fields():
    rendered = json.loads(render_networks([
        NetworkSelectionElement(name="br-net"),
        NetworkSelectionElement.model_validate(FULL_ELEMENT),
    ]))

    assert rendered[0] == {"name": "br-net"}
    assert rendered[1] == FULL_ELEMENT


def test_unknown_reverse_dns_keys_survive_a_round_trip():
    text = json.dumps([{"name": "claimed", "ipam-claim-reference": "vm-a.net1",
                        "example.com/extra": {"x": 1}}])

    rendered = json.loads(render_networks(parse_networks(text)))

    assert rendered == [{"name": "claimed", "ipam-claim-reference": "vm-a.net1",
                         "example.com/extra": {"x": 1}}]


@pytest.mark.parametrize(("text", "where"), [
    ('[{"name": "br-net", "interface": "net1"}', NETWORKS_ANNOTATION),
    ('[{"name": "br-net"}, {"interface": "net2"}]', f"{NETWORKS_ANNOTATION}[1].name"),
    ('[{"name": "br-net"}, "net-b"]', f"{NETWORKS_ANNOTATION}[1]"),
    ('[{"name": "Br-Net"}]', f"{NETWORKS_ANNOTATION}[0].name"),
    ('[{"name": "br-net"}, {"name": "vms/br-net"}]', f"{NETWORKS_ANNOTATION}[1].name"),
    ('[{"name": "br-net", "namespace": "My_NS"}]', f"{NETWORKS_ANNOTATION}[0].namespace"),
    ('[{"name": "br-net", "ips": "10.0.0.5/24"}]', f"{NETWORKS_ANNOTATION}[0].ips"),
    ("net-a,Net-B", f"{NETWORKS_ANNOTATION}[1].name"),
    ("net-a,,net-b", f"{NETWORKS_ANNOTATION}[1]"),
    ("net-a,", f"{NETWORKS_ANNOTATION}[1]"),
    ("other-ns/", f"{NETWORKS_ANNOTATION}[0]"),
    ("net-a,ns/@eth1", f"{NETWORKS_ANNOTATION}[1]"),
    ("net-a,a/b/c", f"{NETWORKS_ANNOTATION}[1].namespace"),
    ("net-a,net_b", f"{NETWORKS_ANNOTATION}[1].name"),
    ("-net-a", f"{NETWORKS_ANNOTATION}[0].name"),
], ids=["invalid-json", "element-without-name", "element-not-an-object", "uppercase-name",
        "slash-in-name", "bad-namespace", "ips-not-a-list", "short-uppercase", "short-empty-name",
        "short-trailing-comma", "short-namespace-only", "short-empty-name-with-iface",
        "short-two-slashes", "short-underscore", "short-leading-dash"])
def test_malformed_networks_annotation_is_refused_naming_key_and_index(text, where):
    with pytest.raises(InvalidConfig) as info:
        parse_networks(text)

    assert info.value.msg.startswith(where)


def test_bad_name_error_quotes_the_value():
    with pytest.raises(InvalidConfig, match='"Br-Net" is not a valid name'):
        parse_networks('[{"name": "Br-Net"}]')


def test_json_object_instead_of_list_is_reported_as_such():
    text = '{"name": "br-net", "interface": "net1"}'

    with pytest.raises(InvalidConfig) as info:
        parse_networks(text)

    assert info.value.msg.startswith(NETWORKS_ANNOTATION)
    assert "list" in info.value.msg
    assert "not a valid name" not in info.value.msg


def test_json_object_instead_of_list_is_refused():
    with pytest.raises(InvalidConfig) as info:
        parse_networks('{"name": "br-net"}')

    assert info.value.msg.startswith(NETWORKS_ANNOTATION)


# --- k8s.v1.cni.cncf.io/network-status ------------------------------------------------------


def load_status_text() -> str:
    return (DATA / "network-status.json").read_text()


def test_parse_real_multus_network_status():
    default, sriov = parse_network_status(load_status_text())

    assert default.name == "kindnet"
    assert default.default is True
    assert default.interface == "eth0"
    assert default.ips == ["10.244.1.9", "fd00:10:244:1::9"]
    assert default.mac == "2a:9c:c4:41:3b:0e"
    assert default.mtu == 1500
    assert default.gateway == ["10.244.1.1"]
    assert default.dns["nameservers"] == ["10.96.0.10"]
    assert default.dns["search"][0] == "default.svc.cluster.local"
    assert default.device_info is None

    assert sriov.name == "default/sriov-net-a"
    assert sriov.default is False
    assert sriov.interface == "net1"
    assert sriov.gateway == []
    assert sriov.device_info is not None
    assert sriov.device_info.type == "pci"
    assert sriov.device_info.version == "1.1.0"
    assert sriov.device_info.pci == {"pci-address": "0000:18:02.5", "pf-pci-address": "0000:18:00.0"}


def test_gateway_is_read_under_the_spec_key_default_route():
    (status,) = parse_network_status(
        '[{"name": "default/br-net", "interface": "net1", "ips": ["192.168.1.200"],'
        ' "default-route": ["192.168.1.1"]}]')

    assert status.gateway == ["192.168.1.1"]


def test_gateway_key_wins_over_default_route_when_both_are_present():
    (status,) = parse_network_status(
        '[{"name": "n", "gateway": ["10.0.0.1"], "default-route": ["10.9.9.9"]}]')

    assert status.gateway == ["10.0.0.1"]


def test_render_writes_gateway_and_omits_empty_fields_and_default_false():
    statuses = [
        NetworkStatus(name="kindnet", interface="eth0", ips=["10.244.1.9"], mac="2a:9c:c4:41:3b:0e",
                      default=True, gateway=["10.244.1.1"], dns={"nameservers": ["10.96.0.10"]}),
        NetworkStatus(name="default/br-net", interface="net1"),
    ]

    rendered = json.loads(render_network_status(statuses))

    assert rendered[0] == {"name": "kindnet", "interface": "eth0", "ips": ["10.244.1.9"],
                           "mac": "2a:9c:c4:41:3b:0e", "default": True,
                           "dns": {"nameservers": ["10.96.0.10"]}, "gateway": ["10.244.1.1"]}
    assert "default-route" not in rendered[0]
    assert rendered[1] == {"name": "default/br-net", "interface": "net1"}


def test_render_writes_device_info_under_its_spec_key():
    status = NetworkStatus(name="default/sriov-net-a", interface="net1",
                           device_info=DeviceInfo(type="pci", pci={"pci-address": "0000:18:02.5"}))

    (entry,) = json.loads(render_network_status([status]))

    assert entry["device-info"] == {"type": "pci", "version": "1.1.0",
                                    "pci": {"pci-address": "0000:18:02.5"}}
    assert "device_info" not in entry


def test_network_status_round_trip():
    statuses = parse_network_status(load_status_text())

    again = parse_network_status(render_network_status(statuses))

    assert again == statuses
    # the empty "dns": {} Multus writes for the SR-IOV entry is dropped, nothing else
    rendered = json.loads(render_network_status(statuses))
    original = json.loads(load_status_text())
    del original[1]["dns"]
    assert rendered == original


def test_other_device_info_types_survive_a_round_trip():
    text = json.dumps([{"name": "default/vdpa-net", "interface": "net1", "device-info": {
        "type": "vdpa", "version": "1.1.0",
        "vdpa": {"parent-device": "vdpa:0000:65:00.3", "driver": "vhost", "path": "/dev/vhost-vdpa-1",
                 "pci-address": "0000:65:00.3"}}}])

    (entry,) = json.loads(render_network_status(parse_network_status(text)))

    assert entry["device-info"]["type"] == "vdpa"
    assert entry["device-info"]["vdpa"]["path"] == "/dev/vhost-vdpa-1"


def test_status_read_with_default_route_is_written_with_gateway_only():
    (status,) = parse_network_status(
        '[{"name": "default/br-net", "interface": "net1", "default-route": ["192.168.1.1"]}]')

    (entry,) = json.loads(render_network_status([status]))
    assert entry["gateway"] == ["192.168.1.1"]
    assert "default-route" not in entry

    status.gateway = []
    (again,) = parse_network_status(render_network_status([status]))
    assert again.gateway == []


@pytest.mark.parametrize(("text", "where"), [
    ('[{"name": "kindnet",', STATUS_ANNOTATION),
    ('{"name": "kindnet"}', STATUS_ANNOTATION),
    ('[{"name": "kindnet"}, {"interface": "net1"}]', f"{STATUS_ANNOTATION}[1].name"),
    ('[{"name": "kindnet", "mtu": "jumbo"}]', f"{STATUS_ANNOTATION}[0].mtu"),
    ('[{"name": "n", "device-info": {"version": "1.1.0"}}]', f"{STATUS_ANNOTATION}[0].device-info.type"),
])
def test_malformed_network_status_is_refused_naming_key_and_index(text, where):
    with pytest.raises(InvalidConfig) as info:
        parse_network_status(text)

    assert info.value.msg.startswith(where)


# --- status_from_result ---------------------------------------------------------------------


def bridge_result() -> dict:
    """What the bridge plugin (with host-local) returns for a pod: bridge, host veth, eth0."""
    return {
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": "br1", "mac": "3a:1b:7c:00:00:01"},
            {"name": "veth3c5a9e1f", "mac": "3a:1b:7c:00:00:02"},
            {"name": "eth0", "mac": "0a:58:c0:a8:01:c8", "mtu": 1450,
             "sandbox": "/var/run/netns/cni-5b9d6a5e-1f0c-4bd2-8e6d-a0d4e8c2b1aa"},
        ],
        "ips": [
            {"address": "192.168.1.200/24", "gateway": "192.168.1.1", "interface": 2},
        ],
        "routes": [
            {"dst": "0.0.0.0/0", "gw": "192.168.1.1"},
            {"dst": "10.10.0.0/16", "gw": "192.168.1.254"},
        ],
        "dns": {"nameservers": ["10.96.0.10"], "domain": "cluster.local",
                "search": ["default.svc.cluster.local"]},
    }


def test_status_from_bridge_result():
    result = parse_result(bridge_result(), "1.0.0")

    status = status_from_result("default/br-net", result)

    assert status.name == "default/br-net"
    assert status.interface == "eth0"
    assert status.ips == ["192.168.1.200"]
    assert status.mac == "0a:58:c0:a8:01:c8"
    assert status.mtu == 1450
    assert status.gateway == ["192.168.1.1"]
    assert status.default is False
    assert status.dns == {"nameservers": ["10.96.0.10"], "domain": "cluster.local",
                          "search": ["default.svc.cluster.local"]}
    assert status.device_info is None


def test_status_from_result_renders_like_multus():
    status = status_from_result("kindnet", parse_result(bridge_result(), "1.0.0"), default=True)

    (entry,) = json.loads(render_network_status([status]))

    assert entry == {"name": "kindnet", "interface": "eth0", "ips": ["192.168.1.200"],
                     "mac": "0a:58:c0:a8:01:c8", "mtu": 1450, "default": True,
                     "dns": {"nameservers": ["10.96.0.10"], "domain": "cluster.local",
                             "search": ["default.svc.cluster.local"]},
                     "gateway": ["192.168.1.1"]}


def test_status_from_result_takes_only_the_sandbox_interface_ips():
    data = bridge_result()
    data["ips"].insert(0, {"address": "192.168.1.2/24", "interface": 0})
    data["ips"].append({"address": "fd00:1::c8/64", "gateway": "fd00:1::1", "interface": 2})

    status = status_from_result("default/br-net", parse_result(data, "1.0.0"))

    assert status.ips == ["192.168.1.200", "fd00:1::c8"]


def test_status_from_old_version_result():
    data = bridge_result()
    data["cniVersion"] = "0.3.1"
    data["ips"][0]["version"] = "4"

    status = status_from_result("default/br-net", parse_result(data, "0.3.1"))

    assert (status.interface, status.ips, status.gateway) == ("eth0", ["192.168.1.200"], ["192.168.1.1"])


def test_default_route_without_gw_uses_the_ip_gateway():
    data = bridge_result()
    data["routes"] = [{"dst": "0.0.0.0/0"}]

    status = status_from_result("default/macvlan-conf", parse_result(data, "1.0.0"))

    assert status.gateway == ["192.168.1.1"]


def test_no_default_route_means_no_gateway():
    data = bridge_result()
    data["routes"] = [{"dst": "10.10.0.0/16", "gw": "192.168.1.254"}]

    status = status_from_result("default/br-net", parse_result(data, "1.0.0"))

    assert status.gateway == []
    assert "gateway" not in json.loads(render_network_status([status]))[0]


def test_ipv6_default_route_gateway():
    data = bridge_result()
    data["ips"] = [{"address": "fd00:1::c8/64", "gateway": "fd00:1::1", "interface": 2}]
    data["routes"] = [{"dst": "::/0", "gw": "fd00:1::1"}]

    status = status_from_result("default/br-net", parse_result(data, "1.0.0"))

    assert status.ips == ["fd00:1::c8"]
    assert status.gateway == ["fd00:1::1"]


def test_dual_stack_default_route_without_gw_uses_the_ip_gateway_of_its_family():
    data = bridge_result()
    data["ips"].append({"address": "fd00:1::c8/64", "gateway": "fd00:1::1", "interface": 2})
    data["routes"] = [{"dst": "0.0.0.0/0", "gw": "192.168.1.1"}, {"dst": "::/0"}]

    status = status_from_result("default/br-net", parse_result(data, "1.0.0"))

    assert sorted(status.gateway) == ["192.168.1.1", "fd00:1::1"]


def test_ipv4_only_default_route_does_not_report_the_ipv6_gateway():
    data = bridge_result()
    data["ips"].append({"address": "fd00:1::c8/64", "gateway": "fd00:1::1", "interface": 2})
    data["routes"] = [{"dst": "0.0.0.0/0"}]

    status = status_from_result("default/br-net", parse_result(data, "1.0.0"))

    assert status.gateway == ["192.168.1.1"]


def test_device_info_is_carried_into_the_status():
    info = DeviceInfo(type="pci", pci={"pci-address": "0000:18:02.5"})
    data = bridge_result()
    data["interfaces"] = [{"name": "net1", "mac": "ca:fe:c0:ff:ee:01",
                           "sandbox": "/var/run/netns/cni-1"}]
    data["ips"][0]["interface"] = 0

    status = status_from_result("default/sriov-net-a", parse_result(data, "1.0.0"),
                                device_info=info)

    assert status.interface == "net1"
    assert status.device_info == info
    (entry,) = json.loads(render_network_status([status]))
    assert entry["device-info"]["pci"]["pci-address"] == "0000:18:02.5"


def test_result_without_sandbox_interface_keeps_all_ips():
    data = {"cniVersion": "1.0.0", "ips": [{"address": "10.1.2.3/24", "gateway": "10.1.2.1"}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.2.1"}]}

    status = status_from_result("default/ipvlan", parse_result(data, "1.0.0"))

    assert status.interface is None and status.mac is None
    assert status.ips == ["10.1.2.3"]
    assert status.gateway == ["10.1.2.1"]


def test_status_from_result_does_not_change_the_result():
    result = parse_result(bridge_result(), "1.0.0")
    before = copy.deepcopy(result)

    status_from_result("default/br-net", result, default=True)

    assert result == before


def test_empty_namespace_means_the_pods_own() -> None:
    (element,) = parse_networks('[{"name": "x", "namespace": ""}]')
    assert element.namespace is None and element.nad_key("vms") == "vms/x"
