"""The RBAC of the controller (manifests/base/controller.yaml) and of the webhook
(manifests/base/webhook.yaml) against what each really calls: the controller runs a VM's
whole life, the webhook (`netplug webhook` as deployed) checks VMs whose Multus networks name an
existing and a missing NAD, each against the emulated API server; every request each makes is
recorded (by its User-Agent) as an RBAC verb on a resource, and

- each request is allowed by a rule bound to its ServiceAccount (a ClusterRole, or a Role in
  the request's namespace; resourceNames included);
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
from tests.unit.test_webhook import add_multus, deployed_webhook, tls, vm  # noqa: F401 (two fixtures)

ADMISSION_ONLY = {("kubevirt.io", "virtualmachines/finalizers", "update"),
                  ("kubevirt.io", "virtualmachineinstances/finalizers", "update")}


def rendered() -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (Debian package kubernetes-client; scripts/setup installs it)")
    out = subprocess.run([kubectl, "kustomize", str(ROOT / "manifests")], capture_output=True, text=True,
                         check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def rbac(account: str, deployment_kind: str = "Deployment") -> tuple[list[dict], dict[str, list[dict]]]:
    """(the ClusterRoles' rules, {namespace: its Roles' rules}) bound to the ServiceAccount
    netplug-system/`account`, which the workload of the same name runs as, with a token."""
    documents = rendered()
    workload = next(d for d in documents if d["kind"] == deployment_kind and d["metadata"]["name"] == account)
    pod = workload["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account and pod.get("automountServiceAccountToken") is not False
    service_account = next(d for d in documents if d["kind"] == "ServiceAccount" and d["metadata"]["name"] == account)
    assert service_account.get("automountServiceAccountToken") is not False, "the workload needs its token"
    subject = {"kind": "ServiceAccount", "name": account, "namespace": "netplug-system"}
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d["rules"]
             for d in documents if d["kind"] in ("ClusterRole", "Role")}
    cluster_rules: list[dict] = []
    namespaced: dict[str, list[dict]] = {}
    for binding in (d for d in documents if d["kind"] in ("ClusterRoleBinding", "RoleBinding")):
        if subject not in binding["subjects"]:
            continue
        namespace = binding["metadata"].get("namespace")
        ref = binding["roleRef"]
        rules = roles[(ref["kind"], namespace if ref["kind"] == "Role" else None, ref["name"])]
        if binding["kind"] == "ClusterRoleBinding":
            cluster_rules += rules
        else:
            namespaced.setdefault(namespace, []).extend(rules)
    return cluster_rules, namespaced


def check_calls(seen: list, user_agent: str, cluster_rules: list[dict], namespaced: dict[str, list[dict]],
                never_called: set = frozenset()) -> None:
    used = set()
    calls = [s for s in seen if s[0] == user_agent]
    assert calls, f"{user_agent} made no requests"
    for _, method, resource, subresource, namespace, name, query in calls:
        plural = resource.plural + (f"/{subresource}" if subresource else "")
        verb = verb_of(method, name, query)
        rule = allowed(cluster_rules, resource.group, plural, verb, name) or allowed(
            namespaced.get(namespace, []), resource.group, plural, verb, name)
        assert rule is not None, f"RBAC does not allow {user_agent} to {verb} {resource.group}/{plural} {namespace}/{name}"
        used.add((resource.group, plural, verb))
    granted = {(group, resource, verb) for rule in cluster_rules + [r for rs in namespaced.values() for r in rs]
               for group in rule["apiGroups"] for resource in rule["resources"] for verb in rule["verbs"]}
    assert granted - used == set(never_called), f"granted but never used: {sorted(granted - used - set(never_called))}"


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


def test_the_controllers_rbac_allows_every_call_and_grants_nothing_unused(cluster, start_controller) -> None:
    cluster_rules, namespaced = rbac("netplug-controller")
    # the cluster's DNS Service, which the controller reads for the guests' DNS
    cluster.core.create_namespaced_service("kube-system", {"metadata": {"name": "kube-dns", "namespace": "kube-system"},
                                                           "spec": {"clusterIP": "10.96.0.10"}})
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
    check_calls(cluster.server.seen, USER_AGENT, cluster_rules, namespaced, ADMISSION_ONLY)


def test_the_webhooks_rbac_allows_its_nad_lookups_and_nothing_more(request) -> None:
    cluster_rules, namespaced = rbac("netplug-webhook")
    api, post = request.getfixturevalue("deployed_webhook")  # netplug webhook as deployed (test_webhook.py)
    assert post(vm(lambda d: add_multus(d, network="blue")))["allowed"] is True
    assert post(vm(lambda d: add_multus(d, network="missing")))["allowed"] is False
    check_calls(api.seen, "netplug-webhook", cluster_rules, namespaced)
