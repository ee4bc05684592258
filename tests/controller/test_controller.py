"""`netplug controller` against an emulated API server (KMock, see apiserver.py) with the real
`kubernetes` client and real watch streams: what a user sees after `kubectl apply`.

No kubelet, scheduler or Multus can run here: where a test needs a launcher pod to run, it
patches the pod's status and Multus's network-status annotation itself (Cluster.kubelet_runs)
and says so."""

from __future__ import annotations

import json
import urllib.request

import pytest
import yaml

from netplug import naming
from netplug.bindings.base import stable_mac
from netplug.model.multus import NETWORKS_ANNOTATION
from runtime.controller.metrics import MetricsServer
from tests.controller.conftest import EXAMPLES, eventually

pytestmark = pytest.mark.timeout(90)


def networks_of(pod: dict) -> list[dict]:
    return json.loads(pod["metadata"]["annotations"][NETWORKS_ANNOTATION])


def printable(cluster, name: str) -> str | None:
    return ((cluster.vm(name) or {}).get("status") or {}).get("printableStatus")


def test_testvm_yields_a_vmi_and_a_launcher_pod(cluster, controller) -> None:
    vm = cluster.apply_file(EXAMPLES / "testvm.yaml")
    pod = eventually(lambda: cluster.launcher_pod("testvm"), "a launcher pod for testvm")
    vmi = cluster.vmi("testvm")

    # ownership: VM → VMI → pod, and the controller's finalizers keep deletion orderly
    assert vmi["metadata"]["ownerReferences"] == [{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                                                   "name": "testvm", "uid": vm["metadata"]["uid"],
                                                   "controller": True, "blockOwnerDeletion": True}]
    assert "netplug.io/controller" in vmi["metadata"]["finalizers"]
    assert pod["metadata"]["ownerReferences"][0]["uid"] == vmi["metadata"]["uid"]
    assert vmi["spec"] == yaml.safe_load((EXAMPLES / "testvm.yaml").read_text())["spec"]["template"]["spec"]
    assert pod["metadata"]["labels"]["kubevirt.io/domain"] == "testvm"  # the template's labels reach the pod

    # the masquerade interface on the pod network: netplug's binding entry for eth0
    assert networks_of(pod) == [{"name": "netplug-masquerade", "namespace": "netplug-system",
                                 "cni-args": {"vmInterface": "default", "vmName": "testvm",
                                              "vmNamespace": "default", "hostname": "testvm"}}]
    compute = pod["spec"]["containers"][0]
    assert compute["command"][:3] == ["netplug", "launch", "/etc/podinfo/vmi"]
    assert compute["command"][compute["command"].index("--network-status") + 1] == "/etc/podinfo/network-status"
    items = {i["path"]: i["fieldRef"]["fieldPath"] for i in pod["spec"]["volumes"][0]["downwardAPI"]["items"]}
    assert items == {"vmi": "metadata.annotations['netplug.io/vmi']",
                     "network-status": "metadata.annotations['k8s.v1.cni.cncf.io/network-status']"}
    shown = json.loads(pod["metadata"]["annotations"]["netplug.io/vmi"])
    assert shown["metadata"]["uid"] == vmi["metadata"]["uid"] and shown["spec"] == vmi["spec"]
    assert pod["spec"]["automountServiceAccountToken"] is False

    status = eventually(lambda: (cluster.vm("testvm") or {}).get("status", {}).get("created") and
                        cluster.vm("testvm")["status"], "VM status created")
    assert status["printableStatus"] == "Starting" and status["ready"] is False
    events = {e["reason"] for e in cluster.events("testvm")}
    assert {"SuccessfulCreate"} <= events


def test_secondary_bridge_and_sriov_networks(cluster, controller) -> None:
    cluster.apply_file(EXAMPLES / "nad-blue.yaml")
    cluster.apply_file(EXAMPLES / "nad-sriov.yaml")
    vm = yaml.safe_load((EXAMPLES / "testvm-secondary.yaml").read_text())
    vm["metadata"]["name"] = "multi"
    spec = vm["spec"]["template"]["spec"]
    spec["domain"]["devices"]["interfaces"].append({"name": "sriov-net", "sriov": {}, "macAddress": "02:00:00:5A:01:01"})
    spec["networks"].append({"name": "sriov-net", "multus": {"networkName": "default/sriov-network"}})
    cluster.apply(vm)
    pod = eventually(lambda: cluster.launcher_pod("multi"), "a launcher pod for multi")

    blue, sriov = naming.pod_interface_for_network("blue"), naming.pod_interface_for_network("sriov-net")
    assert networks_of(pod) == [
        {"name": "netplug-masquerade", "namespace": "netplug-system",
         "cni-args": {"vmInterface": "default", "vmName": "multi", "vmNamespace": "default",
                      "ports": [{"name": "http", "protocol": "TCP", "port": 8080}], "hostname": "multi"}},
        {"name": "blue", "namespace": "default", "interface": blue},
        {"name": "netplug-bridge", "namespace": "netplug-system",
         "cni-args": {"vmInterface": "blue", "vmName": "multi", "vmNamespace": "default",
                      "logicNetworkName": "blue", "hostname": "multi"}},
        {"name": "sriov-network", "namespace": "default", "interface": sriov, "mac": "02:00:00:5a:01:01"},
    ]
    resources = pod["spec"]["containers"][0]["resources"]
    assert resources["requests"]["intel.com/sriov_netdevice"] == "1"
    assert resources["limits"] == {"intel.com/sriov_netdevice": "1"}
    assert {"name": "KUBEVIRT_RESOURCE_NAME_sriov_net", "value": "intel.com/sriov_netdevice"} in \
        pod["spec"]["containers"][0]["env"]


def test_a_running_pod_makes_the_vm_running_and_ready(cluster, controller) -> None:
    cluster.apply_file(EXAMPLES / "nad-blue.yaml")
    cluster.apply_file(EXAMPLES / "testvm-secondary.yaml")
    pod = eventually(lambda: cluster.launcher_pod("testvm"), "a launcher pod")
    blue = naming.pod_interface_for_network("blue")
    # played here: the scheduler binds the pod, Multus writes its network-status, the kubelet
    # reports the compute container ready (the launcher's domain runs)
    cluster.kubelet_runs(pod, node="node-1", network_status=[
        {"name": "k8s-pod-network", "interface": "eth0", "ips": ["10.244.1.5", "fd00::5"], "default": True},
        {"name": "default/blue", "interface": blue, "ips": ["192.168.77.3"], "mac": "0a:58:c0:a8:4d:03"},
        {"name": "netplug-system/netplug-bridge", "interface": blue, "mac": stable_mac("default", "testvm", "blue")},
    ], ips=("10.244.1.5", "fd00::5"))

    vmi = eventually(lambda: (cluster.vmi("testvm") or {}).get("status", {}).get("phase") == "Running"
                     and cluster.vmi("testvm"), "VMI Running")
    status = vmi["status"]
    assert status["nodeName"] == "node-1"
    assert status["interfaces"] == [
        {"name": "default", "podInterfaceName": "eth0", "infoSource": "domain",
         "mac": stable_mac("default", "testvm", "default"),
         "ipAddress": "10.244.1.5", "ipAddresses": ["10.244.1.5", "fd00::5"]},
        {"name": "blue", "podInterfaceName": blue, "infoSource": "domain, multus-status",
         "mac": stable_mac("default", "testvm", "blue"),
         "ipAddress": "192.168.77.3", "ipAddresses": ["192.168.77.3"]},
    ]
    assert {"type": "Ready", "status": "True"} == {k: v for k, v in status["conditions"][0].items()
                                                   if k in ("type", "status")}
    vm = eventually(lambda: printable(cluster, "testvm") == "Running" and cluster.vm("testvm"), "VM Running")
    assert vm["status"]["ready"] is True and vm["status"]["created"] is True

    # stopping the VM (running: false) removes the VMI and its pod
    cluster.patch_vm("testvm", {"spec": {"running": False}})
    eventually(lambda: cluster.vmi("testvm") is None and not cluster.pods(), "VMI and pod gone")
    vm = eventually(lambda: printable(cluster, "testvm") == "Stopped" and not cluster.vm("testvm")["status"]["created"]
                    and cluster.vm("testvm"), "VM Stopped, without a VMI")
    assert vm["status"]["ready"] is False
    assert "SuccessfulDelete" in {e["reason"] for e in cluster.events("testvm")}


def test_a_failed_launcher_is_reported_and_restarted_after_a_backoff(cluster, controller) -> None:
    cluster.apply_file(EXAMPLES / "testvm.yaml")
    pod = eventually(lambda: cluster.launcher_pod("testvm"), "a launcher pod")
    failed_uid = cluster.vmi("testvm")["metadata"]["uid"]
    # played here: the kubelet reports the launcher's exit and its termination message
    cluster.patch_pod_status(pod, {"phase": "Failed", "containerStatuses": [{
        "name": "compute", "ready": False, "restartCount": 0, "image": "netplug", "imageID": "",
        "state": {"terminated": {"exitCode": 2, "reason": "Error",
                                 "message": "Failed: libvirt refused the domain: no space left"}}}]})
    eventually(lambda: any(e["reason"] == "LauncherFailed" and "no space left" in e["message"]
                           for e in cluster.events("testvm")), "a LauncherFailed event")
    # runStrategy Always: the failed VMI (it never ran) is replaced after the start backoff
    # (1 s in these tests, 10 s doubling by default), and the VM keeps count
    vmi = eventually(lambda: (cluster.vmi("testvm") or {}).get("metadata", {}).get("uid") not in (None, failed_uid)
                     and cluster.vmi("testvm"), "a new VMI")
    failure = cluster.vm("testvm")["status"]["startFailure"]
    assert failure["consecutiveFailCount"] == 1 and failure["lastFailedVMIUID"] == failed_uid
    assert [p["metadata"]["ownerReferences"][0]["uid"] for p in eventually(cluster.pods, "the new pod")] == \
        [vmi["metadata"]["uid"]]


def test_deleting_the_vm_removes_vmi_pod_and_vm_in_order(cluster, controller) -> None:
    cluster.apply_file(EXAMPLES / "testvm.yaml")
    pod = eventually(lambda: cluster.launcher_pod("testvm"), "a launcher pod")
    cluster.kubelet_runs(pod)  # played here, as above
    eventually(lambda: printable(cluster, "testvm") == "Running", "VM Running")
    cluster.delete_vm("testvm")
    eventually(lambda: cluster.vm("testvm") is None, "the VM gone")
    assert cluster.vmi("testvm") is None and cluster.pods() == []


def test_an_api_error_mid_reconcile_is_retried(cluster, controller) -> None:
    server = cluster.server
    server.fail("POST", "pods", status=500)  # creating the launcher pod fails once
    server.fail("PATCH", "virtualmachineinstances", subresource="status", status=409, reason="Conflict")
    server.fail("GET", "network-attachment-definitions", status=503, reason="ServiceUnavailable")
    cluster.apply_file(EXAMPLES / "nad-blue.yaml")
    cluster.apply_file(EXAMPLES / "testvm-secondary.yaml")
    pod = eventually(lambda: cluster.launcher_pod("testvm"), "a launcher pod despite the errors")
    cluster.kubelet_runs(pod)  # played here, as above
    eventually(lambda: printable(cluster, "testvm") == "Running", "VM Running after the retries")
    assert {(f[0], f[1]) for f in server.failed} == {("POST", "pods"), ("PATCH", "virtualmachineinstances"),
                                                   ("GET", "network-attachment-definitions")}
    assert len([p for p in cluster.pods()]) == 1  # retried, not duplicated
    metrics = controller.metrics
    assert metrics.errors["vmi"] >= 2 and metrics.reconciles["vmi"] > metrics.errors["vmi"]


def test_an_invalid_vm_gets_an_event_and_an_error_status_and_nothing_else(cluster, controller) -> None:
    vm = yaml.safe_load((EXAMPLES / "testvm-secondary.yaml").read_text())
    cluster.apply(vm)  # its network "blue" names a NAD that does not exist
    field = "spec.template.spec.networks[1].multus.networkName"
    event = eventually(lambda: next((e for e in cluster.events("testvm") if e["reason"] == "FailedCreate"), None),
                       "a FailedCreate event")
    assert event["type"] == "Warning" and field in event["message"] and '(value "blue")' in event["message"]
    status = eventually(lambda: (cluster.vm("testvm") or {}).get("status"), "a VM status")
    failure = next(c for c in status["conditions"] if c["type"] == "Failure")
    assert failure["status"] == "True" and failure["reason"] == "FailedCreate" and field in failure["message"]
    assert status["printableStatus"] == "Stopped" and status["created"] is False
    assert cluster.vmi("testvm") is None and cluster.pods() == []  # nothing half-made

    # level-based: once the NAD exists, the same VM starts (and the failure goes away)
    cluster.apply_file(EXAMPLES / "nad-blue.yaml")
    eventually(lambda: cluster.launcher_pod("testvm"), "a launcher pod once the NAD exists")
    eventually(lambda: not any(c["type"] == "Failure" for c in cluster.vm("testvm")["status"]["conditions"]),
               "the Failure condition cleared")


def test_two_controllers_elect_one_leader_and_the_other_takes_over(cluster, start_controller) -> None:
    first = start_controller("controller-a")
    holder = eventually(lambda: cluster.lease_holder(), "a lease holder")
    assert holder == "controller-a"
    second = start_controller("controller-b")
    cluster.apply_file(EXAMPLES / "testvm.yaml", name="one")
    eventually(lambda: cluster.launcher_pod("one"), "a pod for VM one")
    assert first.metrics.leader == 1 and second.metrics.leader == 0
    assert second.metrics.reconciles == {}  # the standby does no work
    assert cluster.lease_holder() == "controller-a"

    first.stop()  # releases the lease: the standby takes over within a retry period
    assert first.result == [True]
    eventually(lambda: cluster.lease_holder() == "controller-b", "controller-b holding the lease")
    cluster.apply_file(EXAMPLES / "testvm.yaml", name="two")
    eventually(lambda: cluster.launcher_pod("two"), "a pod for VM two, made by the new leader")
    assert second.metrics.leader == 1 and second.metrics.reconciles


def test_a_leader_that_dies_is_replaced_after_the_lease_expires(cluster, start_controller) -> None:
    first = start_controller("controller-a")
    eventually(lambda: cluster.lease_holder() == "controller-a", "controller-a leading")
    second = start_controller("controller-b")
    # the leader stops renewing without releasing (as a killed process would)
    first.controller.elector.release = lambda: None
    first.controller.elector.try_acquire_or_renew = lambda: False
    eventually(lambda: cluster.lease_holder() == "controller-b", "controller-b after the lease expired",
               timeout=20)
    eventually(lambda: first.result == [False], "controller-a stepping down (lease lost)")
    assert second.metrics.leader == 1


def test_metrics_endpoint_counts_reconciles(cluster, controller) -> None:
    server = MetricsServer(("127.0.0.1", 0), controller.metrics)
    server.start()
    try:
        cluster.apply_file(EXAMPLES / "testvm.yaml")
        url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        text = eventually(lambda: (t := urllib.request.urlopen(url, timeout=10).read().decode()) and
                          'reconciles_total{kind="vmi"}' in t and 'reconciles_total{kind="vm"}' in t and t,
                          "both kinds reconciled")
    finally:
        server.shutdown()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    assert samples['netplug_controller_reconciles_total{kind="vm"}'] >= 1
    assert samples['netplug_controller_reconciles_total{kind="vmi"}'] >= 1
    assert 'netplug_controller_reconcile_errors_total{kind="vmi"}' in samples
    assert samples["netplug_controller_leader"] == 1
    count = samples['netplug_controller_reconcile_duration_seconds_count{kind="vmi"}']
    assert samples['netplug_controller_reconcile_duration_seconds_bucket{kind="vmi",le="+Inf"}'] == count
    buckets = [v for k, v in samples.items() if k.startswith('netplug_controller_reconcile_duration_seconds_bucket{kind="vmi"')]
    assert buckets == sorted(buckets)  # cumulative
    assert "# TYPE netplug_controller_reconcile_duration_seconds histogram" in text


def test_netplug_controller_the_command(cluster, tmp_path) -> None:
    """The console command: leads, serves /metrics and /healthz, and on SIGTERM stops and
    releases the lease (exit 0)."""
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:  # a free port for the metrics endpoint
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "runtime.cli", "controller", "--server", cluster.url, "--identity", "cli-1",
               "--metrics-address", "127.0.0.1", "--metrics-port", str(port), "--retry-period", "0.2",
               "--renew-deadline", "1", "--lease-duration", "2", "--cluster-dns", "10.96.0.10,fd00:10:96::a",
               "--cluster-domain", "k8s.example", "--kvm-resource", "devices.kubevirt.io/kvm"]
    log = (tmp_path / "controller.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        eventually(lambda: cluster.lease_holder() == "cli-1", "the command leading")
        cluster.apply_file(EXAMPLES / "testvm.yaml")
        pod = eventually(lambda: cluster.launcher_pod("testvm"), "a launcher pod made by the command")
        # the flags reach the pod: the guest's DNS, /dev/kvm from the device plugin
        assert networks_of(pod)[0]["cni-args"]["dns"] == {
            "nameservers": ["10.96.0.10", "fd00:10:96::a"],
            "search": ["default.svc.k8s.example", "svc.k8s.example", "k8s.example"]}
        assert pod["spec"]["containers"][0]["resources"]["limits"] == {"devices.kubevirt.io/kvm": "1"}
        health = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).read()
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert health == b"ok\n" and "netplug_controller_leader 1" in metrics
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, (tmp_path / "controller.log").read_text()
    finally:
        if process.poll() is None:
            process.kill()
    assert cluster.lease_holder() is None  # released for the next leader


def test_the_guests_dns_is_the_cluster_dns_services(cluster, controller) -> None:
    """No --cluster-dns: the cluster DNS is the kube-dns Service's cluster IPs, as kubelet's
    clusterDNS is on kubeadm, kind, k3s, GKE and EKS clusters; a VM made before the Service
    existed got its node's resolvers (no dns), as kubelet's pods do without a clusterDNS."""
    cluster.apply_file(EXAMPLES / "testvm.yaml", name="early")
    early = eventually(lambda: cluster.launcher_pod("early"), "a launcher pod before the Service")
    assert "dns" not in networks_of(early)[0]["cni-args"]
    cluster.core.create_namespaced_service("kube-system", {
        "metadata": {"name": "kube-dns", "namespace": "kube-system"},
        "spec": {"clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10"]}})
    cluster.apply_file(EXAMPLES / "testvm.yaml")
    pod = eventually(lambda: cluster.launcher_pod("testvm"), "a launcher pod")
    assert networks_of(pod)[0]["cni-args"]["dns"] == {
        "nameservers": ["10.43.0.10"], "search": ["default.svc.cluster.local", "svc.cluster.local", "cluster.local"]}


def test_stopping_a_watch_that_already_ended(cluster) -> None:
    from runtime.controller.kube import PODS, Kube, load_api_client

    watch = Kube(load_api_client(server=cluster.url)).watch(PODS, None)
    watch.response.release_conn()  # what the end of the stream does
    watch.stop()  # the informer's halt() then: quietly nothing
