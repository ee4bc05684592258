"""netplug's image (Containerfile, scripts/build-image) and the commands the manifests run in it.

No container engine runs on this project's machines (docker's CLI may be installed, with no
daemon), so the image is never built here. What is checked instead: every Debian package the
Containerfile installs is one scripts/setup installs (so it exists in Debian 12 and is installed
here), every program and library netplug runs at run time comes from those packages or their
dependencies, netplug is on the image's PATH as pyproject's console script, every command a
manifest or a launcher pod runs is a valid `netplug` command line for runtime.cli's own parser
in the image the manifests name, and scripts/build-image runs the engine it finds with an argv
(a stand-in podman records it) or says clearly that there is none.
"""

from __future__ import annotations

import ctypes.util
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from netplug.cluster import launcher_disks
from netplug.cluster.launcher_pod import IMAGE, LauncherSettings, launcher_pod
from netplug.cluster.lifecycle import desired_vmi
from netplug.model.multus import NetworkAttachmentDefinition
from netplug.ops import dhcp
from runtime import launcher
from runtime.cli import build_parser
from tests.support.pods import ROOT, manifest_objects

CONTAINERFILE = ROOT / "Containerfile"
BUILD_IMAGE = ROOT / "scripts" / "build-image"


def stages() -> list[list[tuple[str, str]]]:
    """The Containerfile's stages, each a list of (INSTRUCTION, arguments), continuations joined."""
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    result: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        if instruction == "FROM":
            result.append([])
        result[-1].append((instruction, rest.strip()))
    return result


def apt_packages(stage: list[tuple[str, str]]) -> list[str]:
    packages = []
    for instruction, rest in stage:
        if instruction != "RUN":
            continue
        for command in rest.split("&&"):
            words = shlex.split(command)
            if words[:2] == ["apt-get", "install"]:
                packages += [w for w in words[2:] if not w.startswith("-")]
    return packages


def setup_packages() -> set[str]:
    text = (ROOT / "scripts" / "setup").read_text()
    return set(re.search(r"^apt_packages=\(\n(.*?)^\)", text, re.S | re.M)[1].split())


def installed(package: str) -> bool:
    done = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return done.stdout == "install ok installed"


def test_the_image_installs_debian_packages_that_setup_installs() -> None:
    build, final = stages()
    assert build[0][1].startswith("docker.io/library/debian:12") and final[0][1].startswith("docker.io/library/debian:12")
    for stage in (build, final):
        packages = apt_packages(stage)
        assert packages, "no apt-get install in a stage"
        assert sorted(set(packages) - setup_packages()) == [], "scripts/setup does not install these"
        assert [p for p in packages if not installed(p)] == [], "not installed here by scripts/setup"
    # the QEMU driver's user, as scripts/setup makes it
    assert any("useradd" in rest and "libvirt-qemu" in rest for _, rest in final)
    assert "useradd" in (ROOT / "scripts" / "setup").read_text()


def _depends_closure(packages: list[str]) -> set[str]:
    """The packages and everything they depend on, as dpkg has them installed here."""
    done = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${Depends}, ${Pre-Depends}\n"],
                          capture_output=True, text=True, check=True)
    depends = {}
    for line in done.stdout.splitlines():
        name, _, fields = line.partition("\t")
        alternatives = [[re.split(r"[ (:]", a.strip())[0] for a in d.split("|")] for d in fields.split(",") if d.strip()]
        depends[name] = alternatives
    closure, todo = set(), list(packages)
    while todo:
        package = todo.pop()
        if package in closure:
            continue
        closure.add(package)
        for alternatives in depends.get(package, []):
            todo += [next((a for a in alternatives if a in depends), alternatives[0])]
    return closure


def _owner(path: str) -> str:
    done = subprocess.run(["dpkg-query", "-S", os.path.realpath(path)], capture_output=True, text=True)
    if done.returncode != 0:  # usrmerge: dpkg knows /bin/x as /bin/x, the real path is /usr/bin/x
        done = subprocess.run(["dpkg-query", "-S", path], capture_output=True, text=True, check=True)
    return done.stdout.split(":")[0]


def test_every_program_netplug_runs_comes_with_the_image() -> None:
    final = stages()[-1]
    closure = _depends_closure(apt_packages(final))
    libnftables = ctypes.util.find_library("nftables")
    programs = {
        "the launcher's QEMU": launcher.EMULATOR,
        "the DHCP service": shutil.which(dhcp.DNSMASQ),
        "nft (the agent's STATUS)": shutil.which("nft"),
        "libnftables": next(p for p in ("/usr/lib/x86_64-linux-gnu/" + libnftables,) if os.path.exists(p)),
        "the containerDisk copier": launcher_disks.BUSYBOX,
        "python3 (the venv's)": "/usr/bin/python3",
    }
    owners = {what: _owner(path) for what, path in programs.items()}
    assert {what: owner for what, owner in owners.items() if owner not in closure} == {}


def test_netplug_is_the_images_console_script_on_its_path() -> None:
    build, final = stages()
    copies = [rest for instruction, rest in build if instruction == "COPY"]
    assert copies == [". /opt/netplug/src"]
    runs = " && ".join(rest for instruction, rest in build if instruction == "RUN")
    assert "python3 -m venv /opt/netplug/venv" in runs and "/opt/netplug/venv/bin/pip install" in runs
    assert re.search(r"pip install [^&]*-e /opt/netplug/src", runs), "the shim is copied from the source tree"
    assert ("COPY", "--from=build /opt/netplug /opt/netplug") in final
    env = dict(rest.split("=", 1) for instruction, rest in final if instruction == "ENV")
    assert env["PATH"].split(":")[0] == "/opt/netplug/venv/bin"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"netplug": "runtime.cli:main"}
    # the build context keeps what install-cni copies
    ignored = [p for p in (ROOT / ".dockerignore").read_text().splitlines() if p and not p.startswith("#")]
    assert not any(Path("cni/netplug").match(p) or p.strip("/") in ("cni", "runtime", "netplug") for p in ignored)


def _examples() -> list[dict]:
    examples = ROOT / "manifests" / "examples"
    nads = [NetworkAttachmentDefinition.from_document(yaml.safe_load(p.read_text())) for p in examples.glob("nad-*.yaml")]
    pods = []
    for path in sorted(examples.glob("testvm*.yaml")):
        vm = yaml.safe_load(path.read_text())
        vm["metadata"].update(namespace="default", uid="vm-uid")
        vmi = desired_vmi(vm)
        vmi["metadata"]["uid"] = "vmi-uid"
        pods.append(launcher_pod(vmi, nads, LauncherSettings()))
    return pods


def _pod_specs() -> list[tuple[str, dict]]:
    specs = [(f"{d['kind']} {d['metadata']['name']}", d["spec"]["template"]["spec"])
             for d in manifest_objects("agent.yaml", "controller.yaml", "webhook.yaml")
             if d["kind"] in ("DaemonSet", "Deployment")]
    return specs + [(f"launcher pod {p['metadata']['name']}", p["spec"]) for p in _examples()]


@pytest.mark.parametrize("where, pod_spec", _pod_specs(), ids=[w for w, _ in _pod_specs()])
def test_every_command_is_a_netplug_command_line_in_netplugs_image(where: str, pod_spec: dict) -> None:
    parser = build_parser()
    seen = 0
    for container in pod_spec.get("initContainers", []) + pod_spec["containers"]:
        command = container["command"] + container.get("args", [])
        if container["image"] != IMAGE:  # a containerDisk's own image: it runs netplug's busybox
            assert command[0].startswith("/var/run/netplug/"), f"{where}: {container['name']}"
            continue
        assert container["imagePullPolicy"] == "IfNotPresent"  # a built image is not pulled from Docker Hub
        if command[0] != "netplug":
            continue
        try:
            parser.parse_args(command[1:])
        except SystemExit:
            pytest.fail(f"{where}: container {container['name']}: not a netplug command line: {command}")
        seen += 1
    assert seen, f"{where}: runs no netplug command"


def test_the_manifests_and_the_controller_name_the_image_build_image_builds() -> None:
    controller = next(d for d in manifest_objects("controller.yaml") if d["kind"] == "Deployment")
    env = {e["name"]: e.get("value") for e in controller["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["NETPLUG_LAUNCHER_IMAGE"] == IMAGE == LauncherSettings().image
    assert re.search(r"^tag=(\S+)$", BUILD_IMAGE.read_text(), re.M)[1] == IMAGE


# --- scripts/build-image -------------------------------------------------------------------


def _path_with(tmp_path: Path, *programs: str) -> str:
    """A PATH with bash and dirname (what build-image needs) and the given programs only."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("bash", "dirname", *programs):
        if not (bin_dir / name).exists():
            (bin_dir / name).symlink_to(shutil.which(name) or name)
    return str(bin_dir)


def _build_image(path: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BUILD_IMAGE), *args], capture_output=True, text=True, env={"PATH": path, **env},
                          timeout=60)


def test_build_image_without_an_engine_says_so(tmp_path: Path) -> None:
    done = _build_image(_path_with(tmp_path))
    assert done.returncode == 1
    assert done.stderr.strip() == ("build-image: no container engine to build with (podman: not installed; "
                                   "docker: not installed; buildah: not installed): install podman, docker or buildah")


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI on this machine")
def test_build_image_with_a_docker_that_has_no_daemon_says_so(tmp_path: Path) -> None:
    done = _build_image(_path_with(tmp_path, "docker"), DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock")
    assert done.returncode == 1 and "docker: installed, but no docker daemon answers" in done.stderr


def test_build_image_runs_the_engine_with_an_argv(tmp_path: Path) -> None:
    # a stand-in podman that records its argv, one argument a line (no engine runs here)
    record = tmp_path / "argv"
    podman = tmp_path / "podman"
    podman.write_text(f'#!/bin/sh\nprintf "%s\\n" "$0" "$@" > {record}\n')
    podman.chmod(0o755)
    path = _path_with(tmp_path) + ":" + str(tmp_path)
    done = _build_image(path, "--tag", "registry.example/netplug:1", "--build-arg", "A=b c")
    assert done.returncode == 0, done.stderr
    assert record.read_text().splitlines() == [str(podman), "build", "--file", str(CONTAINERFILE), "--tag",
                                               "registry.example/netplug:1", "--build-arg", "A=b c", str(ROOT)]
    done = _build_image(path, NETPLUG_IMAGE_ENGINE="buildah")
    assert done.returncode == 1 and "(buildah: not installed)" in done.stderr
