"""The admission webhook answers real AdmissionReview requests over HTTPS: for each KubeVirt
network rule (and netplug's), an allowed and a denied example, the denial naming the exact
field path and the value; a body that is no AdmissionReview gets a 400."""

from __future__ import annotations

import copy
import json
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from runtime.controller.kube import load_api_client
from runtime.webhook import WebhookServer
from tests.controller.apiserver import running

TESTVM = yaml.safe_load((Path(__file__).parents[2] / "manifests" / "examples" / "testvm.yaml").read_text())
NADS = {("default", "blue"), ("sriov", "sriov-net")}


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> tuple[str, str]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed (Debian package openssl)")
    work = tmp_path_factory.mktemp("tls")
    cert, key = work / "tls.crt", work / "tls.key"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return str(cert), str(key)


def poster(url: str, cert: str):
    context = ssl.create_default_context(cafile=cert)

    def post_raw(body: bytes) -> tuple[int, bytes]:
        req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, context=context, timeout=10) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
    return post_raw


def review_of(obj: dict) -> bytes:
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "request": {"uid": "u-1", "operation": "CREATE", "object": obj}}).encode()


@pytest.fixture(scope="module")
def server(tls):
    cert, key = tls
    server = WebhookServer(("127.0.0.1", 0), str(cert), str(key), nad_exists=lambda ns, name: (ns, name) in NADS)
    server.start()
    yield poster(f"https://127.0.0.1:{server.server_address[1]}/validate", cert)
    server.shutdown()


@pytest.fixture(scope="module")
def webhook(server):
    def post(obj: dict) -> dict:
        code, body = server(review_of(obj))
        assert code == 200, body
        return json.loads(body)["response"]
    return post


def vm(mutate) -> dict:
    doc = copy.deepcopy(TESTVM)
    mutate(doc)
    return doc


def spec(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


def iface(doc: dict, n: int = 0) -> dict:
    return spec(doc)["domain"]["devices"]["interfaces"][n]


def add_multus(doc: dict, name: str = "blue", network: str = "blue", binding: str = "bridge", **extra) -> None:
    spec(doc)["domain"]["devices"]["interfaces"].append({"name": name, binding: {}, **extra})
    spec(doc)["networks"].append({"name": name, "multus": {"networkName": network}})


def set_memory(quantity: str):
    return lambda d: spec(d)["domain"]["resources"]["requests"].update(memory=quantity)


def nothing(doc: dict) -> None:
    pass


P = "spec.template.spec."
IF0, IF1 = P + "domain.devices.interfaces[0].", P + "domain.devices.interfaces[1]."

# (rule, allowed mutation, denied mutation, the field path the denial names, the value it names)
RULES = [
    # the VM's identity (it names the libvirt domain and the standalone state)
    ("name is a DNS-1123 subdomain", lambda d: d["metadata"].update(name="web-1.prod"),
     lambda d: d["metadata"].update(name="../../tmp/evil"), "metadata.name", "../../tmp/evil"),
    ("name has at most 63 characters", lambda d: d["metadata"].update(name="a" * 63),
     lambda d: d["metadata"].update(name="a" * 64), "metadata.name", "a" * 64),
    ("name is required", nothing, lambda d: d["metadata"].update(name=""), "metadata.name", ""),
    ("namespace is a DNS-1123 label", lambda d: d["metadata"].update(namespace="team-a"),
     lambda d: d["metadata"].update(namespace="team_a"), "metadata.namespace", "team_a"),
    # networks
    ("one source per network", nothing,
     lambda d: spec(d)["networks"][0].update(multus={"networkName": "blue"}), P + "networks[0]", "default"),
    ("network names unique", lambda d: add_multus(d),
     lambda d: (add_multus(d), spec(d)["networks"][1].update(name="default")), P + "networks[1].name", "default"),
    ("multus networkName not empty", lambda d: add_multus(d),
     lambda d: add_multus(d, network=""), P + "networks[1].multus.networkName", ""),
    ("one pod network", lambda d: add_multus(d),
     lambda d: (add_multus(d), spec(d)["networks"][1]["multus"].update(default=True)), P + "networks",
     ["default", "blue"]),
    ("netplug: the NAD exists", lambda d: add_multus(d),
     lambda d: add_multus(d, network="missing"), P + "networks[1].multus.networkName", "missing"),
    ("network needs an interface", nothing,
     lambda d: spec(d)["networks"].append({"name": "lonely", "multus": {"networkName": "blue"}}),
     P + "networks[1].name", "lonely"),
    # what the guest needs
    ("memory is a quantity", set_memory("1Gi"), set_memory("lots"), P + "domain.resources.requests.memory", "lots"),
    ("memory at least 16Mi", set_memory("16Mi"), set_memory("8Mi"), P + "domain.resources.requests.memory", "8Mi"),
    ("guest memory wins and is checked", lambda d: spec(d)["domain"].update(memory={"guest": "96Mi"}),
     lambda d: spec(d)["domain"].update(memory={"guest": "1Mi"}), P + "domain.memory.guest", "1Mi"),
    ("CPU topology at least 1", lambda d: spec(d)["domain"].update(cpu={"cores": 2}),
     lambda d: spec(d)["domain"].update(cpu={"cores": 0}), P + "domain.cpu.cores", 0),
    ("at most 512 vCPUs", lambda d: spec(d)["domain"].update(cpu={"cores": 16, "sockets": 32}),
     lambda d: spec(d)["domain"].update(cpu={"cores": 16, "sockets": 33}), P + "domain.cpu",
     {"cores": 16, "sockets": 33, "threads": 1}),
    ("cloud-init base64", lambda d: spec(d)["volumes"][1]["cloudInitNoCloud"].update(userDataBase64="aGk="),
     lambda d: spec(d)["volumes"][1]["cloudInitNoCloud"].update(userDataBase64="not base64!"),
     P + "volumes[1].cloudInitNoCloud.userDataBase64", "not base64!"),
    ("disk boot order greater than 0", lambda d: spec(d)["domain"]["devices"]["disks"][0].update(bootOrder=1),
     lambda d: spec(d)["domain"]["devices"]["disks"][0].update(bootOrder=0), P + "domain.devices.disks[0].bootOrder", 0),
    ("disk boot orders unique", lambda d: [disk.update(bootOrder=n + 1) for n, disk in
                                           enumerate(spec(d)["domain"]["devices"]["disks"])],
     lambda d: [disk.update(bootOrder=1) for disk in spec(d)["domain"]["devices"]["disks"]],
     P + "domain.devices.disks[1].bootOrder", 1),
    # interfaces
    ("interface name charset", nothing,
     lambda d: (iface(d).update(name="de fault"), spec(d)["networks"][0].update(name="de fault")),
     IF0 + "name", "de fault"),
    ("interface names unique", lambda d: add_multus(d),
     lambda d: (add_multus(d), iface(d, 1).update(name="default")), IF1 + "name", "default"),
    ("interface needs a network", nothing,
     lambda d: spec(d)["domain"]["devices"]["interfaces"].append({"name": "extra", "bridge": {}}),
     IF1 + "name", "extra"),
    ("discontinued binding", nothing,
     lambda d: (iface(d).pop("masquerade"), iface(d).update(slirp={})), IF0 + "slirp", {}),
    ("exactly one binding", nothing, lambda d: iface(d).update(bridge={}), IF0[:-1], "default"),
    ("binding plugins are not netplug's", lambda d: add_multus(d),
     lambda d: (add_multus(d), iface(d, 1).pop("bridge"), iface(d, 1).update(binding={"name": "passt"})),
     IF1 + "binding", {"name": "passt"}),
    ("masquerade only on the pod network", lambda d: add_multus(d),
     lambda d: add_multus(d, binding="masquerade"), IF1 + "masquerade", {}),
    ("SR-IOV needs a Multus network", lambda d: add_multus(d, "sriov-net", "sriov/sriov-net", "sriov"),
     lambda d: (iface(d).pop("masquerade"), iface(d).update(sriov={})), IF0 + "sriov", {}),
    ("model allow-list", lambda d: iface(d).update(model="e1000e"),
     lambda d: iface(d).update(model="virtio9000"), IF0 + "model", "virtio9000"),
    ("MAC format", lambda d: iface(d).update(macAddress="DE-AD-00-00-BE-AE"),
     lambda d: iface(d).update(macAddress="de:ad:00:00:be"), IF0 + "macAddress", "de:ad:00:00:be"),
    ("MAC reserved for the bridge", lambda d: iface(d).update(macAddress="02:00:00:00:00:01"),
     lambda d: iface(d).update(macAddress="02:00:00:00:00:00"), IF0 + "macAddress", "02:00:00:00:00:00"),
    ("PCI address format", lambda d: iface(d).update(pciAddress="0000:81:01.0"),
     lambda d: iface(d).update(pciAddress="0000:81:01.10"), IF0 + "pciAddress", "0000:81:01.10"),
    ("PCI slot at most 0x1f", lambda d: iface(d).update(pciAddress="0000:81:1f.0"),
     lambda d: iface(d).update(pciAddress="0000:81:20.0"), IF0 + "pciAddress", "0000:81:20.0"),
    ("PCI addresses unique", lambda d: (iface(d).update(pciAddress="0000:81:01.0"),
                                        add_multus(d, pciAddress="0000:81:02.0")),
     lambda d: (iface(d).update(pciAddress="0000:81:01.0"), add_multus(d, pciAddress="0000:81:01.0")),
     IF1 + "pciAddress", "0000:81:01.0"),
    ("acpiIndex between 1 and 16383", lambda d: iface(d).update(acpiIndex=16383),
     lambda d: iface(d).update(acpiIndex=0), IF0 + "acpiIndex", 0),
    ("acpiIndex unique", lambda d: (iface(d).update(acpiIndex=1), add_multus(d, acpiIndex=2)),
     lambda d: (iface(d).update(acpiIndex=1), add_multus(d, acpiIndex=1)), IF1 + "acpiIndex", 1),
    ("port is mandatory", lambda d: iface(d).update(ports=[{"port": 80}]),
     lambda d: iface(d).update(ports=[{"port": 0}]), IF0 + "ports[0].port", 0),
    ("port below 65536", lambda d: iface(d).update(ports=[{"port": 65535}]),
     lambda d: iface(d).update(ports=[{"port": 65536}]), IF0 + "ports[0].port", 65536),
    ("port protocol", lambda d: iface(d).update(ports=[{"port": 53, "protocol": "UDP"}]),
     lambda d: iface(d).update(ports=[{"port": 53, "protocol": "SCTP"}]), IF0 + "ports[0].protocol", "SCTP"),
    ("port names are IANA service names", lambda d: iface(d).update(ports=[{"name": "http-alt", "port": 8080}]),
     lambda d: iface(d).update(ports=[{"name": "HTTP_ALT", "port": 8080}]), IF0 + "ports[0].name", "HTTP_ALT"),
    ("port names unique", lambda d: iface(d).update(ports=[{"name": "a", "port": 1}, {"name": "b", "port": 2}]),
     lambda d: iface(d).update(ports=[{"name": "a", "port": 1}, {"name": "a", "port": 2}]), IF0 + "ports[1].name", "a"),
    ("DHCP private option range",
     lambda d: iface(d).update(dhcpOptions={"privateOptions": [{"option": 240, "value": "x"}]}),
     lambda d: iface(d).update(dhcpOptions={"privateOptions": [{"option": 223, "value": "x"}]}),
     IF0 + "dhcpOptions.privateOptions[0].option", 223),
    ("NTP servers are IPv4", lambda d: iface(d).update(dhcpOptions={"ntpServers": ["10.0.0.1"]}),
     lambda d: iface(d).update(dhcpOptions={"ntpServers": ["fd00::1"]}), IF0 + "dhcpOptions.ntpServers", ["fd00::1"]),
    ("state values", lambda d: iface(d).update(state="down"),
     lambda d: iface(d).update(state="sideways"), IF0 + "state", "sideways"),
    ("SR-IOV without link state", lambda d: add_multus(d, "sriov-net", "sriov/sriov-net", "sriov"),
     lambda d: add_multus(d, "sriov-net", "sriov/sriov-net", "sriov", state="down"), IF1 + "state", "down"),
    ("absent only for bridge", lambda d: add_multus(d, state="absent"),
     lambda d: add_multus(d, "sriov-net", "sriov/sriov-net", "sriov", state="absent"), IF1 + "state", "absent"),
    ("the default network's interface is never absent", lambda d: add_multus(d, state="absent"),
     lambda d: (iface(d).pop("masquerade"), iface(d).update(bridge={}, state="absent")), IF0 + "state", "absent"),
    ("boot order greater than 0", lambda d: iface(d).update(bootOrder=1),
     lambda d: iface(d).update(bootOrder=0), IF0 + "bootOrder", 0),
    ("boot order unique", lambda d: iface(d).update(bootOrder=2),
     lambda d: (iface(d).update(bootOrder=1), spec(d)["domain"]["devices"]["disks"][0].update(bootOrder=1)),
     IF0 + "bootOrder", 1),
]


@pytest.mark.parametrize("rule, allowed, denied, field, value", RULES, ids=[r[0] for r in RULES])
def test_rule_allows_and_denies(webhook, rule, allowed, denied, field, value):
    good = webhook(vm(allowed))
    assert good == {"uid": "u-1", "allowed": True}, good
    bad = webhook(vm(denied))
    assert bad["allowed"] is False and bad["uid"] == "u-1"
    status = bad["status"]
    assert (status["code"], status["reason"]) == (422, "Invalid")
    causes = {cause["field"]: cause["message"] for cause in status["details"]["causes"]}
    assert field in causes, status
    assert f"(value {json.dumps(value)})" in causes[field], causes[field]


def test_a_vmi_is_reviewed_under_spec(webhook):
    vmi = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance", "metadata": {"name": "x"},
           "spec": copy.deepcopy(TESTVM["spec"]["template"]["spec"])}
    vmi["spec"]["domain"]["devices"]["interfaces"][0]["model"] = "bogus"
    vmi["spec"]["domain"]["devices"]["interfaces"][0]["ports"] = [{"port": 70000}]
    causes = webhook(vmi)["status"]["details"]["causes"]
    assert [c["field"] for c in causes] == ["spec.domain.devices.interfaces[0].ports[0].port"]  # the model reads first
    del vmi["spec"]["domain"]["devices"]["interfaces"][0]["ports"]
    (cause,) = webhook(vmi)["status"]["details"]["causes"]
    assert cause["field"] == "spec.domain.devices.interfaces[0].model" and '(value "bogus")' in cause["message"]


@pytest.mark.parametrize("body", [b"[]", b"not json", b'{"request": 5}', b'{"request": {"uid": "u", "object": 5}}',
                                  b'{"request": {"uid": "u", "operation": "CREATE"}}'])
def test_a_body_that_is_no_admission_review_is_answered_400(server, body):
    code, answer = server(body)
    assert code == 400 and b"AdmissionReview" in answer


def test_a_delete_is_allowed_without_an_object(server):
    code, answer = server(b'{"request": {"uid": "u-2", "operation": "DELETE"}}')
    assert code == 200 and json.loads(answer)["response"] == {"uid": "u-2", "allowed": True}


@pytest.fixture
def deployed_webhook(tls, tmp_path):
    """`netplug webhook` as deployed, its NAD lookup going to a Kubernetes API (KMock's
    emulator, tests/controller/apiserver.py: no kube-apiserver can run here) through the
    `kubernetes` client; the NAD default/blue exists there."""
    cert, key = tls
    with running() as (api, url):
        client.CustomObjectsApi(load_api_client(server=url)).create_namespaced_custom_object(
            "k8s.cni.cncf.io", "v1", "default", "network-attachment-definitions",
            {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
             "metadata": {"name": "blue", "namespace": "default"}, "spec": {"config": "{}"}})
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        log = open(tmp_path / "webhook.log", "w")
        proc = subprocess.Popen([sys.executable, "-m", "runtime.cli", "webhook", "--cert", cert, "--key", key,
                                 "--address", "127.0.0.1", "--port", str(port), "--server", url],
                                cwd=Path(__file__).parents[2], stdout=log, stderr=log)
        try:
            post = poster(f"https://127.0.0.1:{port}/validate", cert)
            deadline = time.monotonic() + 30
            while True:
                try:
                    post(b"")
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"netplug webhook did not start: {(tmp_path / 'webhook.log').read_text()}")
                    time.sleep(0.1)
            yield api, lambda obj: json.loads(post(review_of(obj))[1])["response"]
        finally:
            proc.terminate()
            proc.wait(10)


def test_the_deployed_webhook_looks_the_nad_up_in_the_api(deployed_webhook):
    api, post = deployed_webhook
    assert post(vm(lambda d: add_multus(d, network="blue")))["allowed"] is True
    denied = post(vm(lambda d: add_multus(d, network="missing")))
    (cause,) = denied["status"]["details"]["causes"]
    assert cause["field"] == P + "networks[1].multus.networkName" and '(value "missing")' in cause["message"]
    assert post(vm(nothing))["allowed"] is True  # no Multus network: nothing to look up


def test_a_nad_lookup_the_api_refuses_denies_the_vm(deployed_webhook):
    api, post = deployed_webhook
    api.fail("GET", "network-attachment-definitions", status=403, reason="Forbidden")
    denied = post(vm(lambda d: add_multus(d, network="blue")))
    assert denied["allowed"] is False and denied["status"]["code"] == 500
    assert '"default/blue"' in denied["status"]["message"] and "403" in denied["status"]["message"]
