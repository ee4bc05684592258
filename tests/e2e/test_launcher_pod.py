"""A launcher pod as the controller renders it, run as closely as this machine allows.

The pod (netplug.cluster.launcher_pod) for a VM with a masquerade interface, a containerDisk
and a cloudInitNoCloud volume, the cluster's DNS known. What a cluster would do, done here:

- Multus: the pod network (the reference bridge + host-local) on eth0, then netplug's binding
  NAD from manifests/base/bindings.yaml as its own delegate with the pod's cni-args, through
  the real shim and agent (so the tap is made for the launcher's user, as the NAD says);
- kubelet: the init containers' own commands (netplug's static busybox copied, the disk copied
  out of the containerDisk "image", a local directory here), then the compute container's own
  `netplug launch` command, each with the pod's volumes as local directories
  (tests/support/pods.py), as the securityContext says: uid/gid 107, no capability,
  no_new_privs, read-only root, the emptyDirs writable, /dev/net/tun as a node gives it
  (tests/support/as_container.py; not reproduced: seccomp, the device cgroup, AppArmor).

Shown: the guest (the project's test guest: no bootable disk image can be built here, so it
boots its kernel directly and the containerDisk is a second disk) gets its lease with the
cluster's DNS server; QEMU runs as 107 with no capability; the domain has the copied disk and
the seed; the readiness probe's command succeeds while it runs; SIGTERM stops it with the
termination message the controller reads.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from netplug.cluster.launcher_pod import (
    LIBVIRT_DIR,
    QEMU_UID,
    TERMINATION_LOG,
    VMI_ANNOTATION,
    LauncherSettings,
    launcher_pod,
)
from netplug.model.multus import NetworkAttachmentDefinition, parse_networks
from tests.e2e.conftest import BOOT_TIMEOUT, REPO
from tests.support.cnirt import sandbox_ips
from tests.support.fixtures import assert_nothing_left
from tests.support.pods import container, container_argv, local_path, manifest_objects, mount_paths
from tests.support.topology import processes_mentioning

VMI = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
       "metadata": {"name": "podvm", "namespace": "default", "uid": "3c1f0e2a-8d4b-4c1e-9f6a-5b7d2e9c0a11"},
       "spec": {"domain": {"resources": {"requests": {"memory": "128Mi"}},
                           "devices": {"disks": [{"name": "data", "disk": {"bus": "virtio"}},
                                                 {"name": "cloudinitdisk", "disk": {"bus": "virtio"}}],
                                       "interfaces": [{"name": "default", "masquerade": {}}]}},
                "networks": [{"name": "default", "pod": {}}],
                "volumes": [{"name": "data", "containerDisk": {"image": "registry.example/data-disk:1"}},
                            {"name": "cloudinitdisk", "cloudInitNoCloud": {"userData": "#cloud-config\n"}}]}}
SETTINGS = LauncherSettings(cluster_dns=["10.96.0.10"])


@pytest.fixture
def world():
    """A directory every user can reach (pytest's tmp_path is root's alone): the pod's
    volumes (emptyDirs are 0777) and the containerDisk image's files."""
    path = Path(tempfile.mkdtemp(prefix="np-launcher-pod-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _binding_nad(name: str) -> dict:
    document = next(d for d in manifest_objects("bindings.yaml") if d["metadata"]["name"] == name)
    return NetworkAttachmentDefinition.from_document(document).conflist()


def _as_container(pod_netns: str, spec: dict, workdir: Path, **popen) -> subprocess.Popen:
    spec_file = workdir / f"spec-{time.monotonic_ns()}.json"
    spec_file.write_text(json.dumps(spec))
    return subprocess.Popen(["nsenter", f"--net={pod_netns}", "unshare", "--mount", "--propagation", "private",
                             sys.executable, "-m", "tests.support.as_container", str(spec_file)], cwd=REPO, **popen)


def _netplug(argv: list[str], python: str) -> list[str]:
    """`netplug ...` as the image runs it: here, this repository's CLI with `python`."""
    return [python, "-m", "runtime.cli", *argv[1:]] if argv[0] == "netplug" else argv


CHECKOUT_PARTS = ("netplug", "runtime", ".venv")  # what `python -m runtime.cli` reads of the checkout


def _checkout_view(world: Path) -> tuple[Path, list[list[str]], str]:
    """Where the containers see this checkout, the binds that make it (every container gets
    them), and this run's interpreter there: the code and the venv bound into a directory of
    `world`, as an image holds netplug at a path its user can read. The checkout's own
    directory or its parents may be closed to the containers' user (a clone under /root, or
    into a 0700 temporary directory)."""
    view = world / "netplug"
    view.mkdir()
    checkout = Path(REPO)
    binds = [[str(checkout / part), str(view / part)] for part in CHECKOUT_PARTS if (checkout / part).exists()]
    inside = os.path.relpath(sys.executable, REPO)
    return view, binds, sys.executable if inside.startswith("..") else str(view / inside)


def test_a_launcher_pod_runs_its_vm_unprivileged(netplug_agent, pod_network, pod, guest_image, world):
    manifest = launcher_pod(VMI, [], SETTINGS)
    spec = manifest["spec"]

    # --- Multus: eth0, then netplug's binding NAD as its own delegate with the pod's cni-args
    primary = pod_network.conflist("1.0.0")
    ids = {"container_id": "ctr-e2e-launcher-pod", "netns": pod.path}
    result = netplug_agent.runtime.add(primary, **ids, ifname="eth0")
    (element,) = parse_networks(manifest["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"])
    binding = _binding_nad(element.name)
    for plugin in binding["plugins"]:
        plugin["args"] = {"cni": element.cni_args}  # what Multus does with cni-args
    bound = netplug_agent.runtime.add(binding, **ids, ifname="net1")
    pod_ip = sandbox_ips(result)[0]

    # --- the pod's volumes, the downward API's files, the containerDisk image
    volumes = {v["name"]: world / "volumes" / v["name"] for v in spec["volumes"]}
    for path in volumes.values():
        path.mkdir(parents=True)
        path.chmod(0o777)
    (volumes["podinfo"] / "vmi").write_text(manifest["metadata"]["annotations"][VMI_ANNOTATION])
    (volumes["podinfo"] / "network-status").write_text(json.dumps(
        [{"name": "podnet", "interface": "eth0", "ips": [pod_ip], "default": True}]))
    image = world / "image"
    (image / "disk").mkdir(parents=True)
    (image / "disk" / "data.raw").write_bytes(b"\0" * (1 << 20))
    os.chown(image / "disk" / "data.raw", QEMU_UID, QEMU_UID)  # as KubeVirt asks containerDisk images
    (image / "disk" / "data.raw").chmod(0o440)
    termination = world / "termination-log"
    termination.write_text("")
    termination.chmod(0o666)  # kubelet makes it writable for any user

    view, binds, python = _checkout_view(world)

    def run_spec(c: dict, extra_dirs: dict[str, Path] | None = None) -> dict:
        context = c["securityContext"]
        assert context["capabilities"] == {"drop": ["ALL"]} and context["allowPrivilegeEscalation"] is False
        mounts = mount_paths(c, volumes)
        argv = container_argv(c, volumes, {TERMINATION_LOG: termination, **(extra_dirs or {})})
        libvirt = [[LIBVIRT_DIR, "0777"]] if LIBVIRT_DIR in mounts else []
        return {"uid": context["runAsUser"], "gid": context["runAsGroup"], "cwd": "/",
                "read_only_root": context["readOnlyRootFilesystem"],
                # the volumes, and the termination log kubelet mounts
                "writable": [str(p) for p in mounts.values()] + [str(termination)],
                "tmpfs": libvirt + ([["/dev/net", "0755"]] if "/dev/net/tun" in mounts else []),
                "binds": binds,
                "devices": [["/dev/net/tun", 10, 200, 0o666]] if "/dev/net/tun" in mounts else [],
                "env": {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(view),
                        **{e["name"]: e["value"] for e in c.get("env", [])}},
                "argv": _netplug(argv, python)}

    # --- kubelet: the init containers, in order, then the compute container
    for init in spec["initContainers"]:
        extra = {"/disk": image / "disk"} if init["image"] != SETTINGS.image else {}
        done = _as_container(pod.path, run_spec(init, extra), world, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        output = done.communicate(timeout=60)[0]
        assert done.returncode == 0, f"init container {init['name']}: {output}"
    copied = volumes["disks"] / "data" / "data.raw"
    assert copied.stat().st_size == 1 << 20

    compute = container(spec, "compute")
    run = run_spec(compute)
    guest = guest_image  # direct kernel boot: see the module's docstring
    run["argv"] += ["--kernel", f"{guest}/vmlinuz", "--initrd", f"{guest}/initramfs.cpio.gz",
                    "--cmdline", "console=ttyS0 panic=-1 quiet e2e.hold=forever"]
    state = volumes["state"]
    log = open(world / "launcher.log", "w")
    launcher = _as_container(pod.path, run, world, stdout=log, stderr=log)
    try:
        serial = state / "serial.log"
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline and "E2E: DHCP-OK" not in (serial.read_text(errors="replace")
                                                                        if serial.exists() else ""):
            assert launcher.poll() is None, (world / "launcher.log").read_text()[-3000:]
            time.sleep(0.2)
        console = serial.read_text(errors="replace")
        lease = next((line for line in console.splitlines() if "E2E: DHCP-OK iface=eth0" in line), None)
        assert lease, f"no lease:\n{console[-2000:]}\n{(world / 'launcher.log').read_text()[-3000:]}"
        assert " ip=10.0.2.2 " in lease and " dns=10.96.0.10" in lease  # the cluster's DNS, not the node's

        status = json.loads((state / "status.json").read_text())
        assert status["phase"] == "Running"
        with open(f"/proc/{status['qemuPid']}/status") as f:
            proc = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
        assert proc["Uid"].split()[:2] == [str(QEMU_UID)] * 2 and int(proc["CapEff"], 16) == 0
        domain = (state / "domain.xml").read_text()
        assert str(copied) in domain and str(state / "cloudinitdisk.iso") in domain
        probe = compute["readinessProbe"]["exec"]["command"]
        assert subprocess.run([local_path(a, mount_paths(compute, volumes)) for a in probe],
                              capture_output=True).returncode == 0

        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(60) == 0, (world / "launcher.log").read_text()[-3000:]
        assert termination.read_text() == "Succeeded: destroyed"
    finally:
        if launcher.poll() is None:
            launcher.kill()
        for pid in processes_mentioning("guest=default_podvm,"):
            os.kill(pid, signal.SIGKILL)
    assert not processes_mentioning("guest=default_podvm,"), "QEMU outlived its launcher"

    netplug_agent.runtime.delete(binding, bound, **ids, ifname="net1")
    netplug_agent.runtime.delete(primary, result, **ids, ifname="eth0")
    assert_nothing_left(netplug_agent, pod, keep=("lo",))
    assert yaml.safe_dump(manifest)  # the pod is plain data the API takes
