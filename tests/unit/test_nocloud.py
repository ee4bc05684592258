"""cloudInitNoCloud volumes become NoCloud seed images a guest's cloud-init reads."""

from __future__ import annotations

import io

import pycdlib
import pytest

from netplug.errors import InvalidConfig
from netplug.guest import nocloud_files
from netplug.model.vm import vmi_from_document
from runtime.seed import write_nocloud_iso

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
    path = write_nocloud_iso(str(tmp_path / "seed.iso"), {"user-data": b"#cloud-config\n", "meta-data": b"x: 1\n"})
    iso = pycdlib.PyCdlib()
    iso.open(path)
    try:
        assert iso.pvd.volume_identifier.decode().strip() == "cidata"
        for name, data in (("user-data", b"#cloud-config\n"), ("meta-data", b"x: 1\n")):
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, rr_path=f"/{name}")
            assert out.getvalue() == data
    finally:
        iso.close()
