"""The controller's RBAC (manifests/base/controller.yaml) against what the controller really
calls: a VM's whole life runs against the emulated API server, every request the controller
makes is recorded (by its User-Agent) as an RBAC verb on a resource, and

- each request is allowed by the ClusterRole or the namespaced Role (resourceNames included);
- each verb the rules grant was used (least privilege), but for the */finalizers update that
  kube-apiserver requires of whoever sets blockOwnerDeletion on an owner reference and that is
  never called itself."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from runtime.controller.kube import USER_AGENT
from tests.controller.conftest import EXAMPLES, ROOT, eventually

ADMISSION_ONLY = {("kubevirt.io", "virtualmachines/finalizers", "update"),
                  ("kubevirt.io", "virtualmachineinstances/finalizers", "update")}


def rbac() -> tuple[list[dict], list[dict], str]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (Debian package kubernetes-client; scripts/setup installs it)")
    out = subprocess.run([kubectl, "kustomize", str(ROOT / "manifests")], capture_output=True, text=True,
                         check=True).stdout
    documents = [d for d in yaml.safe_load_all(out) if d]
    cluster_role = next(d for d in documents if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "netplug-controller")
    role = next(d for d in documents if d["kind"] == "Role" and d["metadata"]["name"] == "netplug-controller-leader")
    binding = next(d for d in documents if d["kind"] == "RoleBinding" and d["roleRef"]["name"] == role["metadata"]["name"])
    deployment = next(d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == "netplug-controller")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == binding["subjects"][0]["name"]
    return cluster_role["rules"], role["rules"], role["metadata"]["namespace"]


def verb_of(method: str, name: str | None, query: dict) -> str:
    if method == "GET":
        return "watch" if query.get("watch") == "true" else ("get" if name else "list")
    return {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete" if name else "deletecollection"}[method]


def allowed(rules: list[dict], group: str, resource: str, verb: str, name: str | None) -> dict | None:
    for rule in rules:
        if group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"] and (
                not rule.get("resourceNames") or name in rule["resourceNames"]):
            return rule
    return None


def test_the_rbac_allows_every_call_and_grants_nothing_unused(cluster, start_controller) -> None:
    cluster_rules, role_rules, role_namespace = rbac()
    controller = start_controller("controller-a")
    eventually(lambda: cluster.lease_holder() == "controller-a", "controller-a leading")
    # a VM's whole life: invalid, then valid, running, stopped, deleted
    cluster.apply_file(EXAMPLES / "testvm-secondary.yaml")
    eventually(lambda: any(e["reason"] == "FailedCreate" for e in cluster.events("testvm")), "a FailedCreate event")
    cluster.apply_file(EXAMPLES / "nad-blue.yaml")
    pod = eventually(lambda: cluster.launcher_pod("testvm"), "a launcher pod")
    cluster.kubelet_runs(pod)  # played here: no kubelet can run (see conftest)
    eventually(lambda: (cluster.vm("testvm") or {}).get("status", {}).get("printableStatus") == "Running", "Running")
    cluster.patch_vm("testvm", {"spec": {"running": False}})
    eventually(lambda: cluster.vmi("testvm") is None, "the VMI gone")
    cluster.delete_vm("testvm")
    eventually(lambda: cluster.vm("testvm") is None, "the VM gone")
    controller.stop()  # releases the lease

    used = set()
    calls = [s for s in cluster.server.seen if s[0] == USER_AGENT]
    assert calls, "the controller made no requests"
    for _, method, resource, subresource, namespace, name, query in calls:
        plural = resource.plural + (f"/{subresource}" if subresource else "")
        verb = verb_of(method, name, query)
        rule = allowed(cluster_rules, resource.group, plural, verb, name)
        if rule is None and namespace == role_namespace:
            rule = allowed(role_rules, resource.group, plural, verb, name)
        assert rule is not None, f"RBAC does not allow {verb} {resource.group}/{plural} {namespace}/{name}"
        used.add((resource.group, plural, verb))
    granted = {(group, resource, verb) for rule in cluster_rules + role_rules for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    assert granted - used == ADMISSION_ONLY, f"granted but never used: {sorted(granted - used - ADMISSION_ONLY)}"
