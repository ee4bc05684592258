"""A launcher pod's disks end to end, as far as this machine goes: the pod the controller
renders for a VMI with containerDisks and a cloudInitNoCloud volume, its init containers' own
commands run here (this machine's static busybox, as the pod's netplug-bin copies it), with
each volume a local directory and each containerDisk image's files a local directory too
(tests/support/pods.py; no kubelet or container runtime runs here), then the compute
container's `netplug launch` command line parsed by netplug's CLI and its boot source
prepared by the launcher itself: every disk of the VMI resolves to the file the pod put there,
the seed is the VMI's user-data, and the domain attaches them in the VMI's disk order.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from netplug.cluster.launcher_pod import PODINFO_DIR, VMI_ANNOTATION, LauncherSettings, launcher_pod
from netplug.errors import InvalidConfig
from netplug.guest import plan_domain
from runtime import launcher
from runtime.cli import build_parser
from tests.support.iso import iso_files
from tests.support.pods import container, container_argv

QCOW2 = launcher.QCOW2_MAGIC + b"\0" * 508
VMI = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
       "metadata": {"name": "vm1", "namespace": "ns1", "uid": "vmi-uid"},
       "spec": {"domain": {"resources": {"requests": {"memory": "128Mi"}},
                           "devices": {"disks": [{"name": "root", "disk": {"bus": "virtio"}},
                                                 {"name": "cloudinitdisk", "disk": {"bus": "virtio"}},
                                                 {"name": "data", "disk": {"bus": "virtio"}}],
                                       "interfaces": [{"name": "default", "masquerade": {}}]}},
                "networks": [{"name": "default", "pod": {}}],
                "volumes": [{"name": "root", "containerDisk": {"image": "registry.example/fedora:40"}},
                            {"name": "cloudinitdisk", "cloudInitNoCloud": {"userData": "#cloud-config\nruncmd: [x]\n"}},
                            {"name": "data", "containerDisk": {"image": "registry.example/data:1",
                                                               "path": "/images/data.raw"}}]}}


class Pod:
    """The rendered pod's volumes as local directories, and its images' files."""

    def __init__(self, tmp_path: Path, vmi: dict, images: dict[str, dict[str, bytes]]) -> None:
        self.manifest = launcher_pod(vmi, [], LauncherSettings())
        self.spec = self.manifest["spec"]
        self.volumes = {v["name"]: tmp_path / "volumes" / v["name"] for v in self.spec["volumes"]}
        for path in self.volumes.values():
            path.mkdir(parents=True)
        # the downward API's files
        (self.volumes["podinfo"] / "vmi").write_text(self.manifest["metadata"]["annotations"][VMI_ANNOTATION])
        (self.volumes["podinfo"] / "network-status").write_text("")
        self.images = {}
        for image, files in images.items():
            root = tmp_path / "images" / image.replace("/", "_")
            for name, data in files.items():
                (root / name.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
                (root / name.lstrip("/")).write_bytes(data)
                (root / name.lstrip("/")).chmod(0o440)  # as KubeVirt asks containerDisk images
            self.images[image] = root

    def run_init_containers(self) -> None:
        for init in self.spec.get("initContainers", []):
            image_root = self.images.get(init["image"])
            # paths in the container's own image: a containerDisk's files
            directories = {f"/{top}": image_root / top for top in ("disk", "images")} if image_root else {}
            argv = container_argv(init, self.volumes, directories)
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, f"init container {init['name']}: {argv}: {done.stderr}"

    def launch_args(self):
        compute = container(self.spec, "compute")
        argv = container_argv(compute, self.volumes)
        assert argv[:2] == ["netplug", "launch"]
        return build_parser().parse_args(argv[1:])


def test_the_launchers_argv_resolves_every_disk_to_what_the_pod_put_there(tmp_path: Path) -> None:
    pod = Pod(tmp_path, VMI, {"registry.example/fedora:40": {"/disk/fedora.qcow2": QCOW2},
                              "registry.example/data:1": {"/images/data.raw": b"raw data", "/images/other": b"x"}})
    pod.run_init_containers()
    args = pod.launch_args()
    state = pod.volumes["state"]
    prepared = launcher._prepare(args, str(state))

    disks = pod.volumes["disks"]
    assert prepared.boot.disks == {"root": str(disks / "root" / "fedora.qcow2"), "data": str(disks / "data"),
                                   "cloudinitdisk": str(state / "cloudinitdisk.iso")}
    assert (disks / "root" / "fedora.qcow2").read_bytes() == QCOW2
    assert all(os.stat(p).st_mode & 0o200 for p in (disks / "root" / "fedora.qcow2", disks / "data"))  # QEMU writes
    assert (disks / "data").read_bytes() == b"raw data"
    assert prepared.boot.formats == {"root": "qcow2", "data": "raw", "cloudinitdisk": "raw"}

    label, files = iso_files(str(state / "cloudinitdisk.iso"), ["user-data", "meta-data"])
    assert label == "cidata" and files["meta-data"] == b"instance-id: vmi-uid\nlocal-hostname: vm1\n"
    user_data = files["user-data"]
    assert user_data == b"#cloud-config\nruncmd: [x]\n"

    domain = plan_domain(prepared.vmi, {"default": launcher.WiredInterface(name="default", binding="masquerade",
                                                                            tap="tap0", mtu=1500)},
                         prepared.boot, accelerated=False, serial_log=str(state / "serial.log"))
    assert [(d.path, d.target) for d in domain.disks] == [
        (str(disks / "root" / "fedora.qcow2"), "vda"), (str(state / "cloudinitdisk.iso"), "vdb"),
        (str(disks / "data"), "vdc")]


def test_the_init_containers_copy_again_when_they_run_again(tmp_path: Path) -> None:
    """Init containers run again when the pod's sandbox is made anew: the copy still lands
    where the launcher looks, not one level deeper."""
    pod = Pod(tmp_path, VMI, {"registry.example/fedora:40": {"/disk/fedora.qcow2": QCOW2},
                              "registry.example/data:1": {"/images/data.raw": b"raw data"}})
    pod.run_init_containers()
    pod.run_init_containers()
    assert sorted(p.name for p in (pod.volumes["disks"] / "root").iterdir()) == ["fedora.qcow2"]


@pytest.mark.parametrize("files, found", [({}, "0"), ({"/disk/a.qcow2": QCOW2, "/disk/b.qcow2": QCOW2}, "2: a.qcow2, b.qcow2")])
def test_a_container_disk_without_one_disk_fails_the_launch_naming_what_it_found(tmp_path: Path, files, found) -> None:
    vmi = json.loads(json.dumps(VMI))
    vmi["spec"]["volumes"] = vmi["spec"]["volumes"][:1]
    vmi["spec"]["domain"]["devices"]["disks"] = vmi["spec"]["domain"]["devices"]["disks"][:1]
    pod = Pod(tmp_path, vmi, {"registry.example/fedora:40": files or {"/disk/.keep-dir": b""}})
    if not files:
        (pod.images["registry.example/fedora:40"] / "disk" / ".keep-dir").unlink()
    pod.run_init_containers()
    with pytest.raises(InvalidConfig, match=f"the directory must hold one image file, it holds {found}"):
        launcher._prepare(pod.launch_args(), str(pod.volumes["state"]))


def test_the_podinfo_mount_is_where_the_launch_command_reads() -> None:
    pod = launcher_pod(VMI, [], LauncherSettings())
    compute = container(pod["spec"], "compute")
    mounts = {m["name"]: m["mountPath"] for m in compute["volumeMounts"]}
    assert mounts["podinfo"] == PODINFO_DIR and compute["command"][2] == f"{PODINFO_DIR}/vmi"
