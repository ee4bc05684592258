"""Bad input to any `netplug` subcommand is one line on stderr naming the field (or file) and
the value, with exit code 2 — never a traceback; the launcher records why it failed in
status.json. Everything here runs offline, without root."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from runtime.cli import main

TESTVM = yaml.safe_load((Path(__file__).parents[2] / "manifests" / "examples" / "testvm.yaml").read_text())


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def vm_file(tmp_path: Path, mutate) -> str:
    doc = copy.deepcopy(TESTVM)
    mutate(doc["spec"]["template"]["spec"]["domain"], doc)
    path = tmp_path / "vm.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


# what the libvirt domain model refuses, caught by admission before anything is planned
DOMAIN_BREAKERS = [
    (lambda dom, doc: dom["devices"]["interfaces"][0].update(acpiIndex=0),
     "spec.template.spec.domain.devices.interfaces[0].acpiIndex", "0"),
    (lambda dom, doc: dom["devices"]["interfaces"][0].update(pciAddress="0000:81:20.0"),
     "spec.template.spec.domain.devices.interfaces[0].pciAddress", '"0000:81:20.0"'),
    (lambda dom, doc: dom["resources"]["requests"].update(memory="8Mi"),
     "spec.template.spec.domain.resources.requests.memory", '"8Mi"'),
    (lambda dom, doc: doc["metadata"].update(name="my vm"), "metadata.name", '"my vm"'),
    (lambda dom, doc: dom["devices"]["interfaces"][0].update(ports=[{"port": 70000}]),
     "spec.template.spec.domain.devices.interfaces[0].ports[0].port", "70000"),
]


@pytest.mark.parametrize("what", ["domain", "cni", "pod"])
@pytest.mark.parametrize("mutate, field, value", DOMAIN_BREAKERS, ids=[b[1].rsplit(".", 1)[-1] for b in DOMAIN_BREAKERS])
def test_render_names_the_field_and_value(capsys, tmp_path, what, mutate, field, value):
    err = one_line_error(*run(capsys, "render", what, vm_file(tmp_path, mutate)))
    assert f"netplug render: {field}: " in err and f"(value {value})" in err


def test_render_of_a_good_vm_still_works(capsys, tmp_path):
    assert main(["render", "domain", vm_file(tmp_path, lambda dom, doc: None)]) == 0
    assert "<domain" in capsys.readouterr().out


def test_a_missing_file_is_one_line(capsys, tmp_path):
    err = one_line_error(*run(capsys, "render", "cni", str(tmp_path / "missing.yaml")))
    assert "missing.yaml" in err and "No such file" in err


def test_webhook_without_its_certificate_is_one_line(capsys, tmp_path):
    err = one_line_error(*run(capsys, "webhook", "--cert", str(tmp_path / "tls.crt"), "--key", str(tmp_path / "tls.key"),
                              "--port", "0", "--address", "127.0.0.1"))
    assert "tls.crt" in err and "No such file" in err


@pytest.mark.parametrize("content, text", [
    (None, "No such file"),
    ("kind: [unclosed", "not YAML"),
    (yaml.safe_dump({**TESTVM, "metadata": {"name": 5}}), "metadata.name"),
])
def test_the_launcher_marks_the_vm_failed_with_the_reason(capsys, tmp_path, content, text):
    path = tmp_path / "vm.yaml"
    if content is not None:
        path.write_text(content)
    state = tmp_path / "launcher"
    err = one_line_error(*run(capsys, "launch", str(path), "--netns", "/run/netns/none", "--state-dir", str(state)))
    assert text in err
    status = json.loads((state / "status.json").read_text())
    assert status["phase"] == "Failed" and text in status["reason"]
