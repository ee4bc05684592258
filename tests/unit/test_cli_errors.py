"""Bad input to any `netplug` subcommand is one line on stderr naming the field (or file) and
the value, with exit code 2 — never a traceback; the launcher records why it failed in
status.json. Everything here runs offline, without root."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
import yaml

from netplug.bindings.base import WiredInterface
from netplug.guest import BootSource, plan_domain
from netplug.model.vm import vmi_from_document
from runtime.cli import main
from runtime.launcher import image_format
from runtime.standalone import Standalone

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


def two_container_disks(tmp_path: Path) -> str:
    def mutate(dom: dict, doc: dict) -> None:
        dom["devices"]["disks"].append({"name": "datadisk", "disk": {"bus": "virtio"}})
        doc["spec"]["template"]["spec"]["volumes"].append(
            {"name": "datadisk", "containerDisk": {"image": "registry.example/team/data-disk:v2@sha256:abc"}})
    return vm_file(tmp_path, mutate)


@pytest.mark.parametrize("args, text", [
    (["--disk", "containerdisk={image}"], "containerDisk datadisk: no image"),
    (["--image-dir", "{images}"], "datadisk: no image (none of {images}/data-disk{{.qcow2,.raw,.img}})"),
    (["--disk", "containerdisk"], '--disk "containerdisk": want VOLUME=/absolute/path'),
    (["--disk", "containerdisk=relative.img"], "want VOLUME=/absolute/path"),
    (["--disk", "containerdisk={image}", "--disk", "containerdisk={image}"], "volume containerdisk is given twice"),
    (["--disk", "nosuchvolume={image}"], 'the VM has no volume "nosuchvolume"'),
    (["--image-dir", "{image}"], "not a directory"),
])
def test_up_refuses_disks_that_leave_a_containerdisk_without_an_image(capsys, tmp_path, args, text):
    """A partial --disk used to boot the test guest and silently drop the images given."""
    images = tmp_path / "images"
    images.mkdir()
    image = images / "cirros-container-disk-demo.img"
    image.write_bytes(b"\0" * 512)
    fill = {"image": str(image), "images": str(images)}
    err = one_line_error(*run(capsys, "up", two_container_disks(tmp_path), "--state-dir", str(tmp_path / "state"),
                              *[a.format(**fill) for a in args]))
    assert text.format(**fill) in err
    assert not os.path.exists(tmp_path / "state" / "vms" / "default_testvm"), "up made state before refusing"


def test_an_image_dir_gives_each_containerdisk_its_image_by_name(tmp_path):
    """The rule README states: image REGISTRY/PATH/NAME[:TAG][@DIGEST] is DIR/NAME.qcow2,
    DIR/NAME.raw or DIR/NAME.img, the first that exists; --disk wins over the dir."""
    images = tmp_path / "images"
    images.mkdir()
    for name in ("cirros-container-disk-demo.raw", "cirros-container-disk-demo.img", "data-disk.qcow2"):
        (images / name).write_bytes(b"\0")
    given = tmp_path / "given.img"
    given.write_bytes(b"\0")
    vmi = vmi_from_document(yaml.safe_load(Path(two_container_disks(tmp_path)).read_text()))
    standalone = Standalone(str(tmp_path / "state"))
    boot = standalone._boot_source(vmi, {}, str(images))
    assert boot["disks"] == {"containerdisk": str(images / "cirros-container-disk-demo.raw"),
                             "datadisk": str(images / "data-disk.qcow2")}
    assert boot["seeds"] == ["cloudinitdisk"] and "kernel" not in boot
    boot = standalone._boot_source(vmi, {"datadisk": str(given)}, str(images))
    assert boot["disks"]["datadisk"] == str(given)


def test_a_qcow2_image_is_given_to_libvirt_as_qcow2(tmp_path):
    qcow2, raw = tmp_path / "a.qcow2", tmp_path / "b.img"
    qcow2.write_bytes(b"QFI\xfb" + b"\0" * 508)
    raw.write_bytes(b"\0" * 512)
    assert (image_format(str(qcow2)), image_format(str(raw))) == ("qcow2", "raw")
    vmi = vmi_from_document(TESTVM)
    boot = BootSource(disks={"containerdisk": str(qcow2)}, formats={"containerdisk": "qcow2"})
    domain = plan_domain(vmi, {"default": WiredInterface(name="default", binding="masquerade", tap="tap0")}, boot,
                         accelerated=False, serial_log="/s")
    assert [(d.path, d.format) for d in domain.disks] == [(str(qcow2), "qcow2")]
