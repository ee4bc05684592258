"""The admission webhook answers real AdmissionReview requests over HTTPS: for each KubeVirt
network rule (and netplug's), an allowed and a denied example, the denial naming the exact
field path and the value; a body that is no AdmissionReview gets a 400."""

from __future__ import annotations

import copy
import json
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from runtime.webhook import WebhookServer

TESTVM = yaml.safe_load((Path(__file__).parents[2] / "manifests" / "examples" / "testvm.yaml").read_text())
NADS = {("default", "blue"), ("sriov", "sriov-net")}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed (Debian package openssl)")
    work = tmp_path_factory.mktemp("tls")
    cert, key = work / "tls.crt", work / "tls.key"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    server = WebhookServer(("127.0.0.1", 0), str(cert), str(key), nad_exists=lambda ns, name: (ns, name) in NADS)
    server.start()
    context = ssl.create_default_context(cafile=str(cert))
    url = f"https://127.0.0.1:{server.server_address[1]}/validate"

    def post_raw(body: bytes) -> tuple[int, bytes]:
        req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, context=context, timeout=10) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
    yield post_raw
    server.shutdown()


@pytest.fixture(scope="module")
def webhook(server):
    def post(obj: dict) -> dict:
        code, body = server(json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                        "request": {"uid": "u-1", "operation": "CREATE", "object": obj}}).encode())
        assert code == 200, body
        return json.loads(body)["response"]
    return post


def vm(mutate) -> dict:
    doc = copy.deepcopy(TESTVM)
    mutate(doc["spec"]["template"]["spec"])
    return doc


def iface(spec: dict) -> dict:
    return spec["domain"]["devices"]["interfaces"][0]


def add_multus(spec: dict, name: str = "blue", network: str = "blue", binding: str = "bridge", **extra) -> None:
    spec["domain"]["devices"]["interfaces"].append({"name": name, binding: {}, **extra})
    spec["networks"].append({"name": name, "multus": {"networkName": network}})


# (rule, allowed mutation, denied mutation, field the denial names)
RULES = [
    ("one source per network", lambda s: None,
     lambda s: s["networks"][0].update(multus={"networkName": "blue"}), "spec.template.spec.networks[0]"),
    ("interface needs a network", lambda s: None,
     lambda s: s["domain"]["devices"]["interfaces"].append({"name": "extra", "bridge": {}}),
     "spec.template.spec.domain.devices.interfaces[1].name"),
    ("network needs an interface", lambda s: None,
     lambda s: s["networks"].append({"name": "lonely", "multus": {"networkName": "blue"}}), "networks[1].name"),
    ("one pod network", lambda s: add_multus(s),
     lambda s: (add_multus(s), s["networks"][1].update(multus={"networkName": "blue", "default": True})), "networks"),
    ("masquerade only on the pod network", lambda s: add_multus(s),
     lambda s: add_multus(s, binding="masquerade"), "interfaces[1].masquerade"),
    ("exactly one binding", lambda s: None,
     lambda s: iface(s).update(bridge={}), "interfaces[0]"),
    ("discontinued binding", lambda s: None,
     lambda s: (iface(s).pop("masquerade"), iface(s).update(slirp={})), "interfaces[0].slirp"),
    ("interface name charset", lambda s: None,
     lambda s: (iface(s).update(name="de fault"), s["networks"][0].update(name="de fault")), "interfaces[0].name"),
    ("model allow-list", lambda s: iface(s).update(model="e1000e"),
     lambda s: iface(s).update(model="virtio9000"), "interfaces[0].model"),
    ("MAC format", lambda s: iface(s).update(macAddress="DE-AD-00-00-BE-AF"),
     lambda s: iface(s).update(macAddress="de:ad:00:00:be"), "interfaces[0].macAddress"),
    ("MAC reserved for the bridge", lambda s: iface(s).update(macAddress="02:00:00:00:00:01"),
     lambda s: iface(s).update(macAddress="02:00:00:00:00:00"), "interfaces[0].macAddress"),
    ("PCI address format", lambda s: iface(s).update(pciAddress="0000:81:01.0"),
     lambda s: iface(s).update(pciAddress="0000:81:01.10"), "interfaces[0].pciAddress"),
    ("port is mandatory", lambda s: iface(s).update(ports=[{"port": 80}]),
     lambda s: iface(s).update(ports=[{"port": 0}]), "ports"),
    ("port protocol", lambda s: iface(s).update(ports=[{"port": 53, "protocol": "UDP"}]),
     lambda s: iface(s).update(ports=[{"port": 53, "protocol": "SCTP"}]), "protocol"),
    ("port names unique", lambda s: iface(s).update(ports=[{"name": "a", "port": 1}, {"name": "b", "port": 2}]),
     lambda s: iface(s).update(ports=[{"name": "a", "port": 1}, {"name": "a", "port": 2}]), "ports[1].name"),
    ("DHCP private option range", lambda s: iface(s).update(dhcpOptions={"privateOptions": [{"option": 240, "value": "x"}]}),
     lambda s: iface(s).update(dhcpOptions={"privateOptions": [{"option": 223, "value": "x"}]}), "privateOptions"),
    ("NTP servers are IPv4", lambda s: iface(s).update(dhcpOptions={"ntpServers": ["10.0.0.1"]}),
     lambda s: iface(s).update(dhcpOptions={"ntpServers": ["fd00::1"]}), "ntpServers"),
    ("state values", lambda s: iface(s).update(state="down"),
     lambda s: iface(s).update(state="sideways"), "interfaces[0].state"),
    ("absent only for bridge, never on the pod network", lambda s: add_multus(s, state="absent"),
     lambda s: iface(s).update(state="absent"), "interfaces[0].state"),
    ("SR-IOV without link state", lambda s: add_multus(s, "sriov-net", "sriov/sriov-net", "sriov"),
     lambda s: add_multus(s, "sriov-net", "sriov/sriov-net", "sriov", state="down"), "interfaces[1].state"),
    ("boot order unique", lambda s: iface(s).update(bootOrder=2),
     lambda s: (iface(s).update(bootOrder=1), s["domain"]["devices"]["disks"][0].update(bootOrder=1)),
     "interfaces[0].bootOrder"),
    ("netplug: the NAD exists", lambda s: add_multus(s),
     lambda s: add_multus(s, network="missing"), "networks[1].multus.networkName"),
]


@pytest.mark.parametrize("rule, allowed, denied, field", RULES, ids=[r[0] for r in RULES])
def test_rule_allows_and_denies(webhook, rule, allowed, denied, field):
    good = webhook(vm(allowed))
    assert good == {"uid": "u-1", "allowed": True}, good
    bad = webhook(vm(denied))
    assert bad["allowed"] is False and bad["uid"] == "u-1"
    status = bad["status"]
    assert (status["code"], status["reason"]) == (422, "Invalid")
    assert any(field in cause["field"] or field in cause["message"] for cause in status["details"]["causes"]), status


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
