"""The shim as a cluster node runs it: installed by the agent DaemonSet's init container
(manifests/base/agent.yaml) with the manifest's own command, then exec'd the way kubelet's
runtime execs a CNI plugin: by its path, the kernel reading its `#!` line, with nothing in
the environment but the CNI variables, from `/`.

No kubelet or container runtime runs here: the init container's volumes are local
directories (tests/support/pods.py), and the node's python3 is this machine's /usr/bin/python3
(Debian 12's 3.11), the interpreter a node would have. The agent is a fake on a unix socket
(tests/unit/test_shim.py's FakeAgent): what is shown is the shim's side.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.cli import build_parser
from runtime.install import LOADER, SHIM_PYTHON_FLOOR, SHIM_SOURCE
from tests.support.pods import ROOT, container, container_argv, workload
from tests.unit.test_shim import CONFIG, FakeAgent, cni_env

NODE_PYTHON = "/usr/bin/python3"
INIT = container(workload("DaemonSet", "netplug-agent"), "install-cni")


def install_as_the_init_container(tmp_path: Path, python: str | None = NODE_PYTHON) -> subprocess.CompletedProcess:
    """Run the init container's command with its volumes as local directories: the node's
    CNI bin dir and the node's python3 (a symlink to `python`, as /usr/bin/python3 is)."""
    node = tmp_path / "node"
    (node / "opt" / "cni" / "bin").mkdir(parents=True)
    (node / "usr" / "bin").mkdir(parents=True)
    if python is not None:
        (node / "usr" / "bin" / "python3").symlink_to(python)
    argv = container_argv(INIT, {"cni-bin": node / "opt" / "cni" / "bin", "node-python": node / "usr" / "bin" / "python3"},
                          {"/host": node})
    assert argv[0] == "netplug"
    build_parser().parse_args(argv[1:])  # a valid netplug command line
    return subprocess.run([sys.executable, "-m", "runtime.cli", *argv[1:]], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)


@pytest.fixture
def shim(tmp_path: Path) -> Path:
    done = install_as_the_init_container(tmp_path)
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip())
    assert path == tmp_path / "node" / "opt" / "cni" / "bin" / "netplug"
    return path


def run_as_kubelet(shim: Path, env: dict[str, str], stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([str(shim)], input=stdin, env=env, capture_output=True, cwd="/", timeout=60)


def test_the_installed_shim_names_the_nodes_python_not_the_images_venv(shim: Path) -> None:
    first = shim.read_text().splitlines()[0]
    assert first == f"#!{NODE_PYTHON} -ISXutf8"
    assert os.access(shim, os.X_OK)
    for mount in INIT["volumeMounts"]:  # the manifest mounts the interpreter it names
        if mount["name"] == "node-python":
            assert mount["mountPath"] == "/host" + NODE_PYTHON and mount.get("readOnly")


def test_kubelet_runs_it_with_the_cni_variables_only(shim: Path, tmp_path: Path) -> None:
    proc = run_as_kubelet(shim, {"CNI_COMMAND": "VERSION"}, b'{"cniVersion": "1.0.0"}')
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout)["cniVersion"] == "1.0.0"

    sock = tmp_path / "agent.sock"
    agent = FakeAgent(sock, b'0\n{"cniVersion": "1.0.0", "interfaces": [{"name": "tap0"}]}\n')
    proc = run_as_kubelet(shim, {**cni_env(), "NETPLUG_AGENT_SOCKET": str(sock)}, json.dumps(CONFIG).encode())
    sent_env, sent_stdin = agent.close()
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout)["interfaces"] == [{"name": "tap0"}]
    assert sent_env["CNI_CONTAINERID"] == cni_env()["CNI_CONTAINERID"] and json.loads(sent_stdin) == CONFIG


@pytest.mark.parametrize("command, code", [("ADD", 11), ("DEL", 11), ("CHECK", 11), ("STATUS", 50)])
def test_no_agent_on_a_node_is_try_again_later(shim: Path, tmp_path: Path, command: str, code: int) -> None:
    """netplug is not installed on a cluster node: no in-process fallback, a CNI error kubelet
    retries (11; STATUS: 50, plugin not available) instead of a Python traceback."""
    env = {**cni_env(command), "NETPLUG_AGENT_SOCKET": str(tmp_path / "no-agent.sock")}
    proc = run_as_kubelet(shim, env, json.dumps({**CONFIG, "cniVersion": "0.4.0"}).encode())
    assert proc.returncode == 1
    error = json.loads(proc.stdout)
    assert (error["code"], error["cniVersion"]) == (code, "0.4.0")
    assert str(tmp_path / "no-agent.sock") in error["msg"] and "try again" in error["msg"]
    assert proc.stderr == b""


def test_a_node_without_python3_fails_the_install_in_one_line(tmp_path: Path) -> None:
    done = install_as_the_init_container(tmp_path, python=None)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "/usr/bin/python3 is not an executable file" in done.stderr
    assert not (tmp_path / "node" / "opt" / "cni" / "bin" / "netplug").exists()


def test_a_node_python_older_than_the_floor_is_refused(tmp_path: Path) -> None:
    # a stand-in for an old interpreter: it answers -V as Python 3.6 does (none is installed here)
    old = tmp_path / "python3.6"
    old.write_text("#!/bin/sh\necho 'Python 3.6.8'\n")
    old.chmod(0o755)
    done = install_as_the_init_container(tmp_path, python=str(old))
    assert done.returncode == 2 and "is Python 3.6; the shim needs 3.8 or later" in done.stderr
    assert not (tmp_path / "node" / "opt" / "cni" / "bin" / "netplug").exists()


def test_the_shims_syntax_fits_the_python_floor() -> None:
    """Only 3.11 runs here: the floor is checked as far as the grammar goes (the shim's API
    calls are 3.8's: os.memfd_create is the newest), for the shim and the loader that runs it."""
    ast.parse(SHIM_SOURCE.read_text(), feature_version=SHIM_PYTHON_FLOOR)
    ast.parse(LOADER.format(python=NODE_PYTHON, shim_dir=".netplug"), feature_version=SHIM_PYTHON_FLOOR)
