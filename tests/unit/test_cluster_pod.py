"""A VMI's launcher pod (netplug.cluster.launcher_pod) and the VMI status read back from it
(netplug.cluster.instance_status): pure decisions, no API."""

from __future__ import annotations

import copy
import datetime as dt
import json

import pytest

from netplug import naming
from netplug.bindings.base import stable_mac
from netplug.cluster.instance_status import phase_of, vmi_status
from netplug.cluster.launcher_pod import (
    QEMU_UID,
    STATE_DIR,
    LauncherSettings,
    launcher_pod,
    pod_name,
    vmi_model,
)
from netplug.errors import InvalidConfig, InvalidField
from netplug.model.multus import NetworkAttachmentDefinition, parse_networks

NOW = dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=dt.UTC)
SETTINGS = LauncherSettings(image="registry.example/netplug:1")


def nad(name: str, namespace: str = "default", resource: str | None = None,
        config: str = '{"cniVersion": "1.0.0", "type": "bridge", "bridge": "br1"}') -> NetworkAttachmentDefinition:
    meta = {"name": name, "namespace": namespace}
    if resource:
        meta["annotations"] = {"k8s.v1.cni.cncf.io/resourceName": resource}
    return NetworkAttachmentDefinition.from_document({"apiVersion": "k8s.cni.cncf.io/v1",
                                                      "kind": "NetworkAttachmentDefinition", "metadata": meta,
                                                      "spec": {"config": config}})


def vmi(interfaces: list[dict], networks: list[dict], **spec) -> dict:
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
            "metadata": {"name": "vm1", "namespace": "ns1", "uid": "vmi-uid", "labels": {"app": "web"}},
            "spec": {"domain": {"devices": {"interfaces": interfaces}, "resources": {"requests": {"memory": "1Gi"}}},
                     "networks": networks, **spec}}


POD_NET = [{"name": "default", "pod": {}}]


def annotation(pod: dict) -> list[dict]:
    return json.loads(pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"])


def test_pod_network_bindings_and_the_pod_around_them() -> None:
    doc = vmi([{"name": "default", "masquerade": {}, "ports": [{"port": 22}], "macAddress": "02:AA:00:00:00:01"}],
              [{"name": "default", "pod": {"vmNetworkCIDR": "10.11.0.0/24"}}], hostname="web-1",
              nodeSelector={"disk": "ssd"}, terminationGracePeriodSeconds=90)
    pod = launcher_pod(doc, [], SETTINGS)
    assert annotation(pod) == [{"name": "netplug-masquerade", "namespace": "netplug-system", "cni-args": {
        "vmInterface": "default", "vmName": "vm1", "vmNamespace": "ns1", "mac": "02:AA:00:00:00:01",
        "ports": [{"protocol": "TCP", "port": 22}], "vmNetworkCIDR": "10.11.0.0/24", "hostname": "web-1"}}]
    assert pod["metadata"]["name"] == pod_name(doc) == "virt-launcher-vm1-" + pod["metadata"]["name"][-5:]
    assert pod["metadata"]["labels"]["app"] == "web" and pod["metadata"]["labels"]["kubevirt.io"] == "virt-launcher"
    assert pod["spec"]["nodeSelector"] == {"disk": "ssd"} and pod["spec"]["terminationGracePeriodSeconds"] == 90
    assert pod["spec"]["hostname"] == "web-1"
    compute = pod["spec"]["containers"][0]
    assert compute["image"] == "registry.example/netplug:1"
    assert compute["resources"] == {"requests": {"memory": f"{1024 + SETTINGS.memory_overhead_mib}Mi", "cpu": "100m"}}
    assert "--netns" not in compute["command"]  # the launcher is in its pod already
    bridge_on_eth0 = launcher_pod(vmi([{"name": "default", "bridge": {}}], POD_NET), [], SETTINGS)
    assert annotation(bridge_on_eth0)[0]["name"] == "netplug-bridge-eth0"


def test_a_pod_per_vmi_incarnation() -> None:
    doc = vmi([{"name": "default", "bridge": {}}], POD_NET)
    other = copy.deepcopy(doc)
    other["metadata"]["uid"] = "another-uid"
    assert pod_name(doc) != pod_name(other) and pod_name(doc) == pod_name(copy.deepcopy(doc))


def test_secondary_networks_in_interface_order_with_sriov_resources() -> None:
    doc = vmi([{"name": "default", "masquerade": {}},
               {"name": "red", "sriov": {}},
               {"name": "blue", "bridge": {}, "macAddress": "02:00:00:00:0B:01"},
               {"name": "gone", "bridge": {}, "state": "absent"},
               {"name": "green", "sriov": {}}],
              POD_NET + [{"name": "red", "multus": {"networkName": "sriov/vf-pool"}},
                         {"name": "blue", "multus": {"networkName": "br-blue"}},
                         {"name": "gone", "multus": {"networkName": "br-blue"}},
                         {"name": "green", "multus": {"networkName": "sriov/vf-pool"}}])
    nads = [nad("vf-pool", "sriov", resource="intel.com/sriov"), nad("br-blue", "ns1")]
    pod = launcher_pod(doc, nads, SETTINGS)
    red, blue, green = (naming.pod_interface_for_network(n) for n in ("red", "blue", "green"))
    assert [(e["name"], e.get("namespace"), e.get("interface"), e.get("mac"), (e.get("cni-args") or {}).get(
        "logicNetworkName")) for e in annotation(pod)] == [
        ("netplug-masquerade", "netplug-system", None, None, None),
        ("vf-pool", "sriov", red, None, None),
        ("br-blue", "ns1", blue, "02:00:00:00:0b:01", None),
        ("netplug-bridge", "netplug-system", None, None, "blue"),
        ("vf-pool", "sriov", green, None, None),
    ]
    compute = pod["spec"]["containers"][0]
    assert compute["resources"]["requests"]["intel.com/sriov"] == "2"  # one VF per network
    assert compute["resources"]["limits"] == {"intel.com/sriov": "2"}
    assert compute["env"][:2] == [{"name": "KUBEVIRT_RESOURCE_NAME_red", "value": "intel.com/sriov"},
                                  {"name": "KUBEVIRT_RESOURCE_NAME_green", "value": "intel.com/sriov"}]
    parse_networks(pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"])  # Multus reads it


def test_a_multus_default_network_replaces_the_pod_network() -> None:
    doc = vmi([{"name": "main", "bridge": {}}], [{"name": "main", "multus": {"networkName": "ovn", "default": True}}])
    pod = launcher_pod(doc, [nad("ovn", "ns1")], SETTINGS)
    assert pod["metadata"]["annotations"]["v1.multus-cni.io/default-network"] == "ns1/ovn"
    assert annotation(pod) == [{"name": "netplug-bridge-eth0", "namespace": "netplug-system", "cni-args": {
        "vmInterface": "main", "vmName": "vm1", "vmNamespace": "ns1", "hostname": "vm1"}}]


@pytest.mark.parametrize("interfaces, networks, base, message", [
    ([{"name": "blue", "bridge": {}}], [{"name": "blue", "multus": {"networkName": "nope"}}], "spec",
     "spec.networks[0].multus.networkName: names no NetworkAttachmentDefinition (value \"nope\")"),
    ([{"name": "blue", "masquerade": {}}], [{"name": "blue", "multus": {"networkName": "br-blue"}}],
     "spec.template.spec", "spec.template.spec.domain.devices.interfaces[0].masquerade: masquerade is only"),
    ([{"name": "default", "masquerade": {}, "ports": [{"port": 0}]}], POD_NET, "spec.template.spec",
     "spec.template.spec.domain.devices.interfaces[0].ports[0].port: Input should be greater than or equal to 1"),
])
def test_what_keeps_a_pod_from_being_made_names_the_field(interfaces, networks, base, message) -> None:
    with pytest.raises(InvalidConfig) as error:
        launcher_pod(vmi(interfaces, networks), [nad("br-blue", "ns1")], SETTINGS, base=base)
    assert error.value.msg.startswith(message)


# --- the VMI status read back from the pod ----------------------------------------------------

def pod(phase: str | None = "Running", ready: bool = True, state: dict | None = None, **status) -> dict:
    doc = {"metadata": {"name": "virt-launcher-vm1-abcde", "uid": "pod-uid", "annotations": {}},
           "spec": {"nodeName": "node-7"}, "status": {"phase": phase, **status}}
    doc["status"]["containerStatuses"] = [{"name": "compute", "ready": ready,
                                           "state": state or {"running": {"startedAt": "t"}}}]
    return doc


def with_phase(phase: str, **meta) -> dict:
    doc = vmi([{"name": "default", "masquerade": {}}], POD_NET)
    doc["status"] = {"phase": phase}
    doc["metadata"].update(meta)
    return doc


@pytest.mark.parametrize("instance, launcher, expected", [
    (with_phase("Pending"), None, ("Pending", "")),
    (with_phase("Pending"), pod("Pending", ready=False), ("Scheduling", "")),
    (with_phase("Scheduling"), pod("Running", ready=False), ("Scheduled", "")),
    (with_phase("Scheduled"), pod("Running"), ("Running", "")),
    (with_phase("Running"), pod("Running", ready=False), ("Running", "")),  # a failing probe is not a stop
    (with_phase("Running"), pod("Running", ready=False, state={"terminated": {"exitCode": 0}}), ("Succeeded", "")),
    (with_phase("Running"), pod("Failed", ready=False, state={"terminated": {
        "exitCode": 1, "message": "Failed: libvirt refused the domain: boom"}}),
     ("Failed", "Failed: libvirt refused the domain: boom")),
    (with_phase("Running"), None, ("Failed", "the launcher pod disappeared")),
    (with_phase("Running", deletionTimestamp="t"), None, ("Succeeded", "")),
    (with_phase("Succeeded"), pod("Running"), ("Succeeded", "")),  # a finished phase stays
])
def test_vmi_phase_from_the_pod(instance, launcher, expected) -> None:
    assert phase_of(instance, launcher) == expected


def test_an_unschedulable_or_unpullable_pod_shows_in_the_conditions() -> None:
    unschedulable = pod("Pending", ready=False, conditions=[
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes: no VF"}])
    status = vmi_status(with_phase("Pending"), None, unschedulable, NOW)
    scheduled = next(c for c in status["conditions"] if c["type"] == "PodScheduled")
    assert (scheduled["status"], scheduled["reason"], scheduled["message"]) == ("False", "Unschedulable",
                                                                                "0/3 nodes: no VF")
    pulling = pod("Pending", ready=False, state={"waiting": {"reason": "ErrImagePull", "message": "not found"}})
    synchronized = next(c for c in vmi_status(with_phase("Pending"), None, pulling, NOW)["conditions"]
                        if c["type"] == "Synchronized")
    assert (synchronized["status"], synchronized["reason"]) == ("False", "ErrImagePull")


def test_interfaces_from_network_status_and_the_binding_macs() -> None:
    doc = vmi([{"name": "default", "masquerade": {}, "macAddress": "02:AA:00:00:00:01"},
               {"name": "blue", "bridge": {}},
               {"name": "red", "sriov": {}}],
              POD_NET + [{"name": "blue", "multus": {"networkName": "br-blue"}},
                         {"name": "red", "multus": {"networkName": "sriov/vf-pool"}}])
    blue, red = naming.pod_interface_for_network("blue"), naming.pod_interface_for_network("red")
    launcher = pod(podIPs=[{"ip": "10.1.0.9"}])
    launcher["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"] = json.dumps([
        {"name": "cbr0", "interface": "eth0", "ips": ["10.1.0.9", "fe80::1"], "default": True},
        {"name": "ns1/br-blue", "interface": blue, "ips": ["192.168.7.4"], "mac": "0a:00:00:00:00:07"},
        {"name": "netplug-system/netplug-bridge", "interface": blue, "mac": "02:00:00:00:00:99"},
        {"name": "sriov/vf-pool", "interface": red, "mac": "3c:fd:fe:00:00:01",
         "device-info": {"type": "pci", "version": "1.1.0", "pci": {"pci-address": "0000:65:00.3"}}},
    ])
    model = vmi_model(doc)
    status = vmi_status(doc, model, launcher, NOW)
    assert status["phase"] == "Running" and status["nodeName"] == "node-7"
    assert status["activePods"] == {"pod-uid": "node-7"}
    assert status["interfaces"] == [
        {"name": "default", "podInterfaceName": "eth0", "infoSource": "domain", "mac": "02:aa:00:00:00:01",
         "ipAddress": "10.1.0.9", "ipAddresses": ["10.1.0.9"]},  # no link-local address
        {"name": "blue", "podInterfaceName": blue, "infoSource": "domain, multus-status",
         "mac": stable_mac("ns1", "vm1", "blue"), "ipAddress": "192.168.7.4", "ipAddresses": ["192.168.7.4"]},
        {"name": "red", "podInterfaceName": red, "infoSource": "domain, multus-status", "mac": "3c:fd:fe:00:00:01"},
    ]
    # before the domain runs only what Multus reported is known
    starting = pod("Running", ready=False, podIPs=[{"ip": "10.1.0.9"}]) | {"metadata": launcher["metadata"]}
    scheduled = vmi_status(with_phase("Scheduling"), model, starting, NOW)
    assert [(i["name"], i["infoSource"]) for i in scheduled["interfaces"]] == [
        ("blue", "multus-status"), ("red", "multus-status")]
    assert scheduled["conditions"][0]["status"] == "False"


def test_netplug_render_pod_shows_the_controllers_launcher_pod(capsys) -> None:
    from pathlib import Path

    import yaml

    from runtime.cli import main

    examples = Path(__file__).parents[2] / "manifests" / "examples"
    assert main(["render", "pod", str(examples / "testvm-secondary.yaml"), "--nad", str(examples / "nad-blue.yaml")]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert [e["name"] for e in annotation(shown)] == ["netplug-masquerade", "blue", "netplug-bridge"]
    assert shown["spec"]["containers"][0]["command"][:2] == ["netplug", "launch"]


# --- what the launcher may do, and where it writes ------------------------------------------------


def test_nothing_in_the_launcher_pod_runs_as_root_or_with_a_capability() -> None:
    doc = vmi([{"name": "default", "masquerade": {}}], POD_NET,
              volumes=[{"name": "root", "containerDisk": {"image": "registry.example/disk:1"}}])
    pod = launcher_pod(doc, [], SETTINGS)
    containers = pod["spec"]["initContainers"] + pod["spec"]["containers"]
    assert [c["name"] for c in containers] == ["netplug-bin", "disk-0", "disks-writable", "compute"]
    for container in containers:
        assert container["securityContext"] == {
            "runAsUser": QEMU_UID, "runAsGroup": QEMU_UID, "runAsNonRoot": True, "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}, container["name"]
    assert pod["spec"]["automountServiceAccountToken"] is False


def test_the_launcher_writes_only_into_its_volumes() -> None:
    """A read-only root file system: the state dir, libvirt's root and QEMU's HOME are volumes."""
    from runtime import launcher

    pod = launcher_pod(vmi([{"name": "default", "masquerade": {}}], POD_NET), [], SETTINGS)
    compute = pod["spec"]["containers"][0]
    mounts = {m["mountPath"]: m["name"] for m in compute["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    home = next(e["value"] for e in compute["env"] if e["name"] == "HOME")
    for path in (STATE_DIR, launcher.LIBVIRT_ROOT, home):
        mount = next(m for m in mounts if path == m or path.startswith(m + "/"))
        assert "emptyDir" in volumes[mounts[mount]], path
    assert volumes[mounts["/dev/net/tun"]]["hostPath"] == {"path": "/dev/net/tun", "type": "CharDevice"}
    assert compute["command"][compute["command"].index("--state-dir") + 1] == STATE_DIR


def test_kvm_comes_from_a_device_plugin_when_one_is_named() -> None:
    doc = vmi([{"name": "default", "masquerade": {}}], POD_NET)
    assert "devices.kubevirt.io/kvm" not in launcher_pod(doc, [], SETTINGS)["spec"]["containers"][0]["resources"][
        "requests"]  # no /dev/kvm: TCG
    kvm = LauncherSettings(kvm_resource="devices.kubevirt.io/kvm")
    resources = launcher_pod(doc, [], kvm)["spec"]["containers"][0]["resources"]
    assert resources["requests"]["devices.kubevirt.io/kvm"] == resources["limits"]["devices.kubevirt.io/kvm"] == "1"


# --- disks -----------------------------------------------------------------------------------


def test_container_disks_are_copied_in_by_init_containers_cloud_init_made_by_the_launcher() -> None:
    doc = vmi([{"name": "default", "masquerade": {}}], POD_NET, volumes=[
        {"name": "root", "containerDisk": {"image": "registry.example/fedora:40", "imagePullPolicy": "Always",
                                           "imagePullSecret": "regcred"}},
        {"name": "data", "containerDisk": {"image": "registry.example/data:1", "path": "/custom/data.raw",
                                           "imagePullSecret": "regcred"}},
        {"name": "cloudinitdisk", "cloudInitNoCloud": {"userData": "#cloud-config\n"}}])
    pod = launcher_pod(doc, [], SETTINGS)
    netplug_bin, root, data, writable = pod["spec"]["initContainers"]
    assert (writable["image"], writable["command"]) == (
        SETTINGS.image, ["/bin/busybox", "chmod", "-R", "u+w", "/var/run/netplug/disks/root",
                         "/var/run/netplug/disks/data"])
    assert (netplug_bin["image"], netplug_bin["command"]) == (
        SETTINGS.image, ["/bin/busybox", "cp", "/bin/busybox", "/var/run/netplug/bin/busybox"])
    assert (root["image"], root["imagePullPolicy"], root["command"]) == (
        "registry.example/fedora:40", "Always",
        ["/var/run/netplug/bin/busybox", "cp", "-rL", "/disk/.", "/var/run/netplug/disks/root"])
    assert (data["image"], "imagePullPolicy" in data, data["command"]) == (
        "registry.example/data:1", False,  # the kubelet's default for the tag
        ["/var/run/netplug/bin/busybox", "cp", "/custom/data.raw", "/var/run/netplug/disks/data"])
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    command = pod["spec"]["containers"][0]["command"]
    assert [command[i + 1] for i, a in enumerate(command) if a == "--disk"] == [
        "root=/var/run/netplug/disks/root", "data=/var/run/netplug/disks/data"]  # the seed is the launcher's
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["disks"] == {"name": "disks", "emptyDir": {}} and volumes["netplug-bin"]["emptyDir"] == {}
    # without containerDisks, no init container at all
    plain = launcher_pod(vmi([{"name": "default", "masquerade": {}}], POD_NET, volumes=[
        {"name": "cloudinitdisk", "cloudInitNoCloud": {"userData": "x"}}]), [], SETTINGS)
    assert "initContainers" not in plain["spec"] and "--disk" not in plain["spec"]["containers"][0]["command"]


@pytest.mark.parametrize("volume, field, message", [
    ({"name": "pvc", "persistentVolumeClaim": {"claimName": "c"}}, "spec.template.spec.volumes[0]",
     "netplug's launcher pods take containerDisk and cloudInitNoCloud volumes only"),
    ({"name": "Root_Disk", "containerDisk": {"image": "i"}}, "spec.template.spec.volumes[0].name",
     "must be a DNS-1123 label"),
    ({"name": "root", "containerDisk": {}}, "spec.template.spec.volumes[0].containerDisk.image", "is required"),
    ({"name": "root", "containerDisk": {"image": "i", "path": "/disk/../../etc/shadow"}},
     "spec.template.spec.volumes[0].containerDisk.path", 'without ".."'),
    ({"name": "root", "containerDisk": {"image": "i", "imagePullPolicy": "Sometimes"}},
     "spec.template.spec.volumes[0].containerDisk.imagePullPolicy", "must be one of Always"),
    ({"name": "ci", "cloudInitNoCloud": {"secretRef": {"name": "s"}}},
     "spec.template.spec.volumes[0].cloudInitNoCloud.secretRef", "from userData/networkData"),
])
def test_a_volume_the_pod_cannot_give_is_refused_naming_the_field(volume, field, message) -> None:
    doc = vmi([{"name": "default", "masquerade": {}}], POD_NET, volumes=[volume])
    with pytest.raises(InvalidField) as error:
        launcher_pod(doc, [], SETTINGS, base="spec.template.spec")
    assert error.value.field == field and message in error.value.message


def test_an_init_container_that_cannot_pull_or_copy_shows_in_the_vmi() -> None:
    waiting = pod("Pending", ready=False, state={"waiting": {"reason": "PodInitializing"}})
    waiting["status"]["initContainerStatuses"] = [
        {"name": "netplug-bin", "state": {"terminated": {"exitCode": 0}}},
        {"name": "disk-0", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "no such image"}}}]
    synchronized = next(c for c in vmi_status(with_phase("Pending"), None, waiting, NOW)["conditions"]
                        if c["type"] == "Synchronized")
    assert (synchronized["reason"], synchronized["message"]) == ("ImagePullBackOff", "no such image")
    failed = pod("Failed", ready=False, state={"waiting": {"reason": "PodInitializing"}})
    failed["status"]["initContainerStatuses"] = [
        {"name": "disk-0", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]
    assert phase_of(with_phase("Scheduling"), failed) == ("Failed", "init container disk-0 exited with code 1: Error")


# --- the guest's DNS -------------------------------------------------------------------------------

CLUSTER = LauncherSettings(cluster_dns=["10.96.0.10"], cluster_domain="cluster.local")


def dns_args(pod: dict) -> list:
    return [(e.get("cni-args") or {}).get("dns") for e in annotation(pod) if e.get("cni-args")]


@pytest.mark.parametrize("spec, settings, dns", [
    ({}, CLUSTER, {"nameservers": ["10.96.0.10"], "search": ["ns1.svc.cluster.local", "svc.cluster.local",
                                                             "cluster.local"]}),
    ({"subdomain": "web", "dnsConfig": {"nameservers": ["10.0.0.53", "10.96.0.10"], "searches": ["corp.example"],
                                        "options": [{"name": "ndots", "value": "2"}]}}, CLUSTER,
     {"nameservers": ["10.96.0.10", "10.0.0.53"], "options": ["ndots:2"],
      "search": ["web.ns1.svc.cluster.local", "ns1.svc.cluster.local", "svc.cluster.local", "cluster.local",
                 "corp.example"]}),
    ({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1", "8.8.8.8", "9.9.9.9", "8.8.4.4"],
                                         "searches": ["a.example"]}}, CLUSTER,
     {"nameservers": ["1.1.1.1", "8.8.8.8", "9.9.9.9"], "search": ["a.example"]}),  # kubelet keeps 3
    ({"dnsPolicy": "Default", "dnsConfig": {"nameservers": ["1.1.1.1"]}}, CLUSTER, None),  # the node's
    ({}, LauncherSettings(), None),  # no cluster DNS known: kubelet falls back to Default too
], ids=["cluster-first", "subdomain-and-dns-config", "none", "default", "no-cluster-dns"])
def test_the_guest_gets_the_dns_kubelet_gives_the_pod(spec, settings, dns) -> None:
    doc = vmi([{"name": "default", "masquerade": {}}, {"name": "blue", "bridge": {}}],
              POD_NET + [{"name": "blue", "multus": {"networkName": "br-blue"}}], **spec)
    pod = launcher_pod(doc, [nad("br-blue", "ns1")], settings)
    assert dns_args(pod) == [dns, dns]  # every netplug binding entry: masquerade and blue's bridge
    for key in ("dnsPolicy", "dnsConfig", "subdomain"):  # the pod's own resolv.conf says the same
        assert pod["spec"].get(key) == spec.get(key)


@pytest.mark.parametrize("spec, field, message", [
    ({"dnsPolicy": "Cluster"}, "spec.dnsPolicy", "must be one of ClusterFirst"),
    ({"dnsConfig": {"nameservers": ["10.0.0.300"]}}, "spec.dnsConfig.nameservers",
     'nameserver "10.0.0.300" is not an IP address'),
    ({"dnsConfig": {"searches": ["bad domain"]}}, "spec.dnsConfig.searches", '"bad domain" is not a DNS domain name'),
    ({"dnsConfig": {"nameservers": "10.0.0.1"}}, "spec.dnsConfig.nameservers", "must be a list of strings"),
])
def test_a_dns_config_the_guest_cannot_take_is_refused_naming_the_field(spec, field, message) -> None:
    doc = vmi([{"name": "default", "masquerade": {}}], POD_NET, **spec)
    with pytest.raises(InvalidField) as error:
        launcher_pod(doc, [], CLUSTER)
    assert error.value.field == field and message in error.value.message
