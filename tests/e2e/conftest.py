"""End-to-end fixtures: the project's test guest booted by `netplug launch` (libvirt's
embedded QEMU driver, TCG) in a pod netns wired by the real CNI shim.

The guest (scripts/build-guest: Debian cloud kernel + busybox initramfs) runs udhcpc on
every NIC, pings and serves as its kernel command line says, and reports on its serial
console with lines starting "E2E: " (see scripts/build-guest).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest
import yaml

from netplug.ops import netns
from runtime.standalone import WAIT_SECONDS
from tests.support.topology import Netns, processes_mentioning

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BOOT_TIMEOUT = 120  # TCG; the first boot in a fresh libvirt root probes QEMU for ~4 s
#: how long a `netplug up` may run: it gives up by itself after WAIT_SECONDS and says why
UP_TIMEOUT = WAIT_SECONDS + 60
#: pytest-timeout of every e2e test, longer than the waits inside one (a boot and a few
#: console waits of BOOT_TIMEOUT, or an up of UP_TIMEOUT with its down and checks), so a
#: failure shows the test's own message, or netplug's, not pytest-timeout's stack dump
E2E_TEST_TIMEOUT = 600
assert E2E_TEST_TIMEOUT > 2 * UP_TIMEOUT and E2E_TEST_TIMEOUT > 4 * BOOT_TIMEOUT


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        if str(item.path).startswith(here + os.sep) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(E2E_TEST_TIMEOUT))


@pytest.fixture(scope="session")
def guest_image() -> str:
    """The test guest's directory (vmlinuz, initramfs.cpio.gz), built once and cached."""
    done = subprocess.run([os.path.join(REPO, "scripts", "build-guest")], capture_output=True, text=True,
                          timeout=E2E_TEST_TIMEOUT - 60)
    if done.returncode != 0:
        pytest.fail(f"scripts/build-guest failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


def vm_document(name: str, interfaces: list[dict], networks: list[dict]) -> dict:
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"running": True, "template": {"spec": {
                "domain": {"resources": {"requests": {"memory": "96Mi"}},
                           "devices": {"interfaces": interfaces}},
                "networks": networks}}}}


@dataclass
class RunningVM:
    proc: subprocess.Popen
    state_dir: str
    name: str
    #: the pod netns the VM runs in (its QEMU's)
    netns: str = ""

    @property
    def serial(self) -> str:
        path = os.path.join(self.state_dir, "serial.log")
        return open(path, errors="replace").read() if os.path.exists(path) else ""

    def status(self) -> dict:
        path = os.path.join(self.state_dir, "status.json")
        return json.load(open(path)) if os.path.exists(path) else {}

    def wait_for(self, pattern: str, timeout: float = BOOT_TIMEOUT) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.serial)
            if match:
                return match
            if self.proc.poll() is not None and not re.search(pattern, self.serial):
                break
            time.sleep(0.1)
        log = open(os.path.join(self.state_dir, "launcher.log")).read()[-3000:]
        raise AssertionError(f"{pattern!r} not on the serial console of {self.name}:\n{self.serial[-3000:]}\n"
                             f"launcher log:\n{log}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout=60)


class Launcher:
    """Starts `netplug launch` for a VM in a pod and stops whatever it started."""

    def __init__(self, workdir: str, image: str) -> None:
        self.workdir, self.image = workdir, image
        self.vms: list[RunningVM] = []

    def start(self, document: dict, pod: Netns, cmdline: str) -> RunningVM:
        name = document["metadata"]["name"]
        state_dir = os.path.join(self.workdir, f"vm-{name}")
        os.makedirs(state_dir, exist_ok=True)
        path = os.path.join(state_dir, "vm.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(document, f)
        log = open(os.path.join(state_dir, "launcher.log"), "w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "runtime.cli", "launch", path, "--netns", pod.path, "--state-dir", state_dir,
             "--kernel", os.path.join(self.image, "vmlinuz"), "--initrd", os.path.join(self.image, "initramfs.cpio.gz"),
             "--cmdline", f"console=ttyS0 panic=-1 quiet {cmdline}"],
            stdout=log, stderr=log, cwd=REPO)
        vm = RunningVM(proc=proc, state_dir=state_dir, name=name, netns=pod.path)
        self.vms.append(vm)
        return vm

    def stop_all(self) -> None:
        for vm in self.vms:
            if vm.proc.poll() is None:
                vm.stop()
            pod = netns.identity(vm.netns)
            for pid in processes_mentioning(f"guest={'default_' + vm.name},"):
                # never leave a QEMU behind, whatever happened; only ours: another test run on
                # this machine may boot a VM of the same name, in another netns
                if pod is not None and netns.identity(f"/proc/{pid}/ns/net") == pod:
                    os.kill(pid, 9)


@pytest.fixture
def launcher(tmp_path, guest_image) -> Launcher:
    runner = Launcher(str(tmp_path), guest_image)
    yield runner
    runner.stop_all()

