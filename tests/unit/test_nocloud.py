"""cloudInitNoCloud volumes become NoCloud seed images a guest's cloud-init reads."""

from __future__ import annotations

import pytest

from netplug.errors import InvalidConfig
from netplug.guest import nocloud_files
from netplug.model.vm import vmi_from_document
from runtime.seed import write_nocloud_iso
from tests.support.iso import iso_files

VMI = vmi_from_document({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
                         "metadata": {"name": "testvm", "namespace": "ns1"}})


def test_files_from_base64_and_plain_data() -> None:
    files = nocloud_files(VMI, {"name": "cloudinitdisk", "cloudInitNoCloud": {
        "userDataBase64": "SGkuXG4=", "networkData": "version: 2\n"}})
    assert files == {"meta-data": b"instance-id: ns1-testvm\nlocal-hostname: testvm\n", "user-data": b"Hi.\\n",
                     "network-config": b"version: 2\n"}


def test_bad_base64_names_the_field() -> None:
    with pytest.raises(InvalidConfig, match=r"volumes\[seed\].cloudInitNoCloud.userDataBase64"):
        nocloud_files(VMI, {"name": "seed", "cloudInitNoCloud": {"userDataBase64": "###"}})


def test_iso_is_labelled_cidata_and_holds_the_files(tmp_path) -> None:
    files = {"user-data": b"#cloud-config\n", "meta-data": b"x: 1\n"}
    path = write_nocloud_iso(str(tmp_path / "seed.iso"), files)
    assert iso_files(path, list(files)) == ("cidata", files)
