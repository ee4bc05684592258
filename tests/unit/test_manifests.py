"""The deployment manifests: kustomize renders them, every object is valid for a current
Kubernetes, the CRDs are structural and generated, and the example VMs fit the CRD schemas."""

from __future__ import annotations

import copy
import runpy
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from netplug import naming
from netplug.cluster.launcher_pod import BINDING_NADS, LauncherSettings, launcher_pod
from netplug.cluster.lifecycle import desired_vmi
from netplug.cni.skel import Request, load_binding
from netplug.model.multus import NetworkAttachmentDefinition, parse_networks

ROOT = Path(__file__).parents[2]
MANIFESTS = ROOT / "manifests"
CRDS = yaml.safe_load_all((MANIFESTS / "base" / "crds.yaml").read_text())
SCHEMAS = {c["spec"]["names"]["kind"]: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"] for c in CRDS}
EXAMPLES = sorted((MANIFESTS / "examples").glob("testvm*.yaml"))


def test_crds_are_what_the_generator_writes() -> None:
    render = runpy.run_path(str(ROOT / "scripts" / "gen-crds"))["render"]
    assert render() == (MANIFESTS / "base" / "crds.yaml").read_text(), "run scripts/gen-crds"


def _structural(node: dict, path: str) -> list[str]:
    """The structural-schema rules apiextensions enforces that a hand edit breaks most often: a
    subset, written here, as no kube-apiserver (which checks them all) can run on this machine."""
    problems = []
    if "type" not in node and not node.get("x-kubernetes-int-or-string"):
        problems.append(f"{path}: no type")
    if node.get("type") == "object" and "additionalProperties" in node and "properties" in node:
        problems.append(f"{path}: properties and additionalProperties together")
    for name, child in (node.get("properties") or {}).items():
        problems += _structural(child, f"{path}.{name}")
    if "items" in node:
        problems += _structural(node["items"], f"{path}[]")
    return problems


@pytest.mark.parametrize("kind", sorted(SCHEMAS))
def test_crds_are_structural_with_kubevirts_columns(kind: str) -> None:
    assert _structural(SCHEMAS[kind], kind) == []
    crd = next(c for c in yaml.safe_load_all((MANIFESTS / "base" / "crds.yaml").read_text())
               if c["spec"]["names"]["kind"] == kind)
    columns = [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert columns == (["Age", "Status", "Ready"] if kind == "VirtualMachine" else ["Age", "Phase", "IP", "NodeName", "Ready"])
    assert crd["spec"]["versions"][0]["subresources"] == {"status": {}}


#: every VM the repository shows: the examples and the KubeVirt binding plugin's
VMS = [(p.name, yaml.safe_load(p.read_text())) for p in EXAMPLES] + [
    ("kubevirt/binding-plugin.yaml", d) for d in yaml.safe_load_all((MANIFESTS / "kubevirt" / "binding-plugin.yaml")
                                                                     .read_text()) if d and d["kind"] == "VirtualMachine"]


@pytest.mark.parametrize("document", [d for _, d in VMS], ids=[n for n, _ in VMS])
def test_examples_fit_the_crd_schema(document: dict) -> None:
    jsonschema.validate(document, SCHEMAS[document["kind"]])


@pytest.mark.parametrize("break_it, text", [
    (lambda i: i.update(ports=[{"port": 0}]), "0 is less than the minimum"),
    (lambda i: i.update(model="virtio9000"), "is not one of"),
    (lambda i: i.update(pciAddress="0000:81:01.10"), "does not match"),
])
def test_the_schema_refuses_bad_network_fields(break_it, text: str) -> None:
    document = copy.deepcopy(yaml.safe_load((MANIFESTS / "examples" / "testvm.yaml").read_text()))
    break_it(document["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0])
    with pytest.raises(jsonschema.ValidationError, match=text):
        jsonschema.validate(document, SCHEMAS["VirtualMachine"])


@pytest.fixture(scope="module")
def rendered() -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (Debian package kubernetes-client; scripts/setup installs it)")
    out = subprocess.run([kubectl, "kustomize", str(MANIFESTS)], capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_kustomize_renders_everything(rendered: list[dict]) -> None:
    kinds = sorted(d["kind"] for d in rendered)
    assert kinds == sorted(["Namespace", "CustomResourceDefinition", "CustomResourceDefinition", "ServiceAccount",
                            "DaemonSet", "ServiceAccount", "Deployment", "Service", "ValidatingWebhookConfiguration",
                            "ClusterRole", "ClusterRoleBinding",  # the webhook's
                            "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment",
                            "Role", "RoleBinding",  # the controller's, for the cluster DNS Service
                            "NetworkAttachmentDefinition", "NetworkAttachmentDefinition",
                            "NetworkAttachmentDefinition"])


#: Multus's CRD schema for NetworkAttachmentDefinitions (k8s.cni.cncf.io/v1), which
#: kubernetes-validate does not know: a CRD of Multus's, not Kubernetes's
NAD_SCHEMA = {
    "type": "object", "required": ["apiVersion", "kind", "metadata"],
    "properties": {
        "apiVersion": {"const": "k8s.cni.cncf.io/v1"}, "kind": {"const": "NetworkAttachmentDefinition"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {"type": "object", "properties": {"config": {"type": "string"}}, "additionalProperties": False},
    },
}
NAD_EXAMPLES = sorted((MANIFESTS / "examples").glob("nad-*.yaml"))


def test_every_object_is_valid_kubernetes(rendered: list[dict]) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    version = kubernetes_validate.latest_version()
    for document in rendered:
        if document["kind"] == "NetworkAttachmentDefinition":
            jsonschema.validate(document, NAD_SCHEMA)
            NetworkAttachmentDefinition.from_document(document)
            continue
        kubernetes_validate.validate(document, version, strict=True)


@pytest.mark.parametrize("example", NAD_EXAMPLES, ids=[e.name for e in NAD_EXAMPLES])
def test_example_nads_are_valid(example: Path) -> None:
    document = yaml.safe_load(example.read_text())
    jsonschema.validate(document, NAD_SCHEMA)
    NetworkAttachmentDefinition.from_document(document).conflist()


def test_the_binding_nads_the_controller_names_are_deployed_and_take_its_cni_args(rendered: list[dict]) -> None:
    """Every netplug binding entry a launcher pod gets names a NAD the manifests deploy, and that
    NAD's config with the entry's cni-args is a binding config netplug's CNI accepts, for the
    pod interface the controller means."""
    deployed = {(d["metadata"]["namespace"], d["metadata"]["name"]): NetworkAttachmentDefinition.from_document(d)
                for d in rendered if d["kind"] == "NetworkAttachmentDefinition"}
    assert {name for _, name in deployed} == set(BINDING_NADS.values())
    examples = [NetworkAttachmentDefinition.from_document(yaml.safe_load(p.read_text())) for p in NAD_EXAMPLES]
    seen = set()
    # masquerade on eth0 and bridge on "blue"; bridge on eth0
    for vmi in (_vmi("testvm-secondary.yaml"), _vmi("testvm.yaml", [{"name": "default", "bridge": {}}])):
        pod = launcher_pod(vmi, examples, LauncherSettings())
        for element in parse_networks(pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"]):
            nad = deployed.get((element.namespace, element.name))
            if element.cni_args is None:
                continue  # a network of the user's own
            assert nad is not None, f"{element.namespace}/{element.name} is not deployed"
            config = nad.conflist()["plugins"][0] | {"cniVersion": "1.0.0", "args": {"cni": element.cni_args}}
            binding = load_binding(Request(command="ADD", ifname="net1", config=config))
            expected = "eth0" if element.name != "netplug-bridge" else naming.pod_interface_for_network("blue")
            assert (binding.binding, binding.podInterface, binding.vmInterface) == (
                config["binding"], expected, element.cni_args["vmInterface"])
            seen.add(element.name)
    assert seen == set(BINDING_NADS.values())


def _vmi(example: str, interfaces: list[dict] | None = None) -> dict:
    vm = yaml.safe_load((MANIFESTS / "examples" / example).read_text())
    vm["metadata"].update(namespace="default", uid="vm-uid")
    if interfaces is not None:
        vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"] = interfaces
    vmi = desired_vmi(vm)
    vmi["metadata"]["uid"] = "vmi-uid"
    return vmi


def test_validation_can_fail() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": {"replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, kubernetes_validate.latest_version(), strict=True)


def test_the_binding_nads_make_the_taps_for_the_launchers_user(rendered: list[dict]) -> None:
    """The launcher pod runs QEMU as an unprivileged user with no capability: it can open only
    taps that user owns, so every binding NAD makes them for it."""
    from netplug.cluster.launcher_pod import QEMU_UID, UNPRIVILEGED

    assert UNPRIVILEGED["runAsUser"] == UNPRIVILEGED["runAsGroup"] == QEMU_UID
    for document in rendered:
        if document["kind"] == "NetworkAttachmentDefinition":
            plugin = NetworkAttachmentDefinition.from_document(document).conflist()["plugins"][0]
            assert (plugin["tapUid"], plugin["tapGid"]) == (QEMU_UID, QEMU_UID), document["metadata"]["name"]
