"""cni/netplug: the stdlib-only shim that kubelet and Multus exec for every CNI call.

It runs here as a real subprocess against a fake agent: a thread serving a unix socket in
tmp_path. NETPLUG_PYTHON points nowhere, so a shim that wrongly falls back to the in-process
handler fails loudly instead of touching the machine's netplug state.
"""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from netplug import naming
from runtime.agent.server import decode_request

SHIM = Path(__file__).resolve().parents[2] / "cni" / "netplug"
SUPPORTED = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
CONFIG = {"cniVersion": "1.0.0", "name": "pod-network", "type": "netplug", "binding": "masquerade"}


class FakeAgent:
    """Accepts one connection, reads the request to EOF, answers `answer` (None: never)."""

    def __init__(self, path: Path, answer: bytes | None) -> None:
        self.path = path
        self.answer = answer
        self.request: bytes | None = None
        self.release = threading.Event()
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.server.settimeout(30)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        with conn:
            conn.settimeout(30)
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
            self.request = b"".join(chunks)
            if self.answer is None:
                self.release.wait(30)  # hold the connection open until the test is done
            else:
                conn.sendall(self.answer)

    def close(self) -> tuple[dict[str, str], bytes]:
        """The (environment, stdin) the shim sent, decoded by the agent's own decoder."""
        self.release.set()
        self.thread.join(timeout=30)
        self.server.close()
        assert self.request is not None, "the shim never sent a request"
        decoded = decode_request(self.request)
        assert decoded is not None, f"the agent cannot decode the shim's request: {self.request[:80]!r}"
        return decoded


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    path = tmp_path / "agent.sock"
    if len(str(path)) >= 100:  # sun_path is 108 bytes
        pytest.skip(f"tmp_path too long for a unix socket: {path}")
    return path


def shim_env(tmp_path: Path, sock: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "NETPLUG_AGENT_SOCKET": str(sock),
        "NETPLUG_STATE_DIR": str(tmp_path / "state"),
        "NETPLUG_PYTHON": str(tmp_path / "no-such-python"),
        **extra,
    }


def cni_env(command: str = "ADD") -> dict[str, str]:
    return {
        "CNI_COMMAND": command, "CNI_CONTAINERID": "3f2a9c1e0b7d", "CNI_NETNS": "/run/netns/cni-1",
        "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin", "CNI_ARGS": "K8S_POD_NAME=vm-a",
    }


def run_shim(env: dict[str, str], stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SHIM)], input=stdin, env=env, capture_output=True,
                          timeout=60)


def cni_error(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 1, proc.stderr.decode()
    error = json.loads(proc.stdout)
    assert set(error) <= {"cniVersion", "code", "msg", "details"}
    return error


# --- shape -------------------------------------------------------------------------------------


def test_shim_imports_only_the_standard_library() -> None:
    tree = ast.parse(SHIM.read_text(), filename=str(SHIM))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import in the shim"
            modules.add(node.module.split(".")[0])
    assert modules, "found no imports at all: is this the shim?"
    assert sorted(modules - sys.stdlib_module_names) == []


def test_the_shims_own_defaults_are_the_agents() -> None:
    """The shim keeps its own copy of the agent's default socket and state dir (it imports
    nothing of netplug): a shim run without `install-cni` must find the agent that runs with
    no --socket and keeps its state where that agent does."""
    assigned = {node.targets[0].id: node.value.value for node in ast.parse(SHIM.read_text()).body
                if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Constant)}
    assert (assigned["DEFAULT_SOCKET"], assigned["DEFAULT_STATE_DIR"]) == (naming.DEFAULT_SOCKET,
                                                                           naming.DEFAULT_STATE_DIR)


# --- answered by the shim itself ---------------------------------------------------------------


def test_no_command_prints_help_to_stderr_only(tmp_path: Path, sock_path: Path) -> None:
    proc = run_shim(shim_env(tmp_path, sock_path))
    assert proc.returncode == 0
    assert proc.stdout == b""
    assert b"netplug" in proc.stderr and b"1.1.0" in proc.stderr


@pytest.mark.parametrize("asked", SUPPORTED)
def test_version_echoes_a_supported_version(tmp_path: Path, sock_path: Path, asked: str) -> None:
    proc = run_shim(shim_env(tmp_path, sock_path, CNI_COMMAND="VERSION"),
                    json.dumps({"cniVersion": asked}).encode())
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout) == {"cniVersion": asked, "supportedVersions": SUPPORTED}


@pytest.mark.parametrize("stdin", [b"", b"not json", b'{"cniVersion": "0.2.0"}'])
def test_version_otherwise_answers_the_latest(tmp_path: Path, sock_path: Path, stdin: bytes) -> None:
    proc = run_shim(shim_env(tmp_path, sock_path, CNI_COMMAND="VERSION"), stdin)
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == {"cniVersion": "1.1.0", "supportedVersions": SUPPORTED}


def test_config_over_one_mib_is_code_7_with_its_size(tmp_path: Path, sock_path: Path) -> None:
    stdin = json.dumps({**CONFIG, "padding": "x" * (3 << 20)}).encode()
    proc = run_shim(shim_env(tmp_path, sock_path, **cni_env()), stdin)
    error = cni_error(proc)
    assert error["code"] == 7
    assert str(len(stdin)) in error["msg"] and str(1 << 20) in error["msg"]
    assert not sock_path.exists()  # refused before any agent was asked


# --- forwarded to the agent --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exit_code", "stdout"),
    [
        (0, json.dumps({"cniVersion": "1.0.0", "interfaces": [{"name": "tap0"}]}) + "\n"),
        (1, json.dumps({"cniVersion": "1.0.0", "code": 7, "msg": "config: mac: bad"}) + "\n"),
        (0, ""),
    ],
    ids=["result", "error", "empty"],
)
def test_agent_answer_is_printed_verbatim(tmp_path: Path, sock_path: Path, exit_code: int, stdout: str) -> None:
    agent = FakeAgent(sock_path, f"{exit_code}\n{stdout}".encode())
    stdin = json.dumps(CONFIG).encode() + b"\n"
    env = shim_env(tmp_path, sock_path, **cni_env(), UNRELATED_SECRET="do-not-forward")
    proc = run_shim(env, stdin)
    sent_env, sent_stdin = agent.close()
    assert proc.returncode == exit_code, proc.stderr.decode()
    assert proc.stdout == stdout.encode()
    for key, value in cni_env().items():
        assert sent_env[key] == value
    assert "UNRELATED_SECRET" not in sent_env and "PATH" not in sent_env
    assert sent_stdin == stdin


@pytest.mark.parametrize(
    "answer",
    [b"this is not the protocol", b"", b"0", b"\n{}", b"zero\n{}", b"-1\n{}"],
    ids=["garbage", "nothing", "no-newline", "no-exit", "bad-exit", "negative-exit"],
)
def test_agent_garbage_is_code_11(tmp_path: Path, sock_path: Path, answer: bytes) -> None:
    agent = FakeAgent(sock_path, answer)
    stdin = json.dumps({**CONFIG, "cniVersion": "0.4.0"}).encode()
    proc = run_shim(shim_env(tmp_path, sock_path, **cni_env("DEL")), stdin)
    agent.close()
    error = cni_error(proc)
    assert error["code"] == 11
    assert error["cniVersion"] == "0.4.0"
    assert "agent" in error["msg"]


def test_agent_that_does_not_answer_in_time_is_code_11(tmp_path: Path, sock_path: Path) -> None:
    agent = FakeAgent(sock_path, None)
    proc = run_shim(shim_env(tmp_path, sock_path, **cni_env(), NETPLUG_TIMEOUT="1"),
                    json.dumps(CONFIG).encode())
    agent.close()
    error = cni_error(proc)
    assert error["code"] == 11
    assert "did not answer within 1 s" in error["msg"]


@pytest.mark.parametrize("timeout", ["nan", "inf", "1e999", "-1", "0", "abc", ""])
def test_a_timeout_that_is_not_a_positive_number_is_the_default(tmp_path: Path, sock_path: Path,
                                                                timeout: str) -> None:
    agent = FakeAgent(sock_path, b"0\n")
    proc = run_shim(shim_env(tmp_path, sock_path, **cni_env("DEL"), NETPLUG_TIMEOUT=timeout),
                    json.dumps(CONFIG).encode())
    agent.close()
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")


def test_without_an_agent_the_shim_runs_the_handler_in_process(tmp_path: Path, sock_path: Path) -> None:
    # no socket: the shim execs NETPLUG_PYTHON -m runtime.agent.oneshot, which does not exist here
    proc = run_shim(shim_env(tmp_path, sock_path, **cni_env()), json.dumps(CONFIG).encode())
    error = cni_error(proc)
    assert error["code"] == 11
    assert "no netplug agent is running" in error["msg"] and "no-such-python" in error["msg"]


# --- as install-cni installs it ----------------------------------------------------------------


def _installed(tmp_path: Path, sock: Path) -> Path:
    from runtime.install import install_shim

    return Path(install_shim(str(tmp_path / "bin"), sys.executable, socket_path=str(sock)))


def test_the_installed_shim_talks_to_the_agent_it_was_installed_for(tmp_path: Path, sock_path: Path) -> None:
    shim = _installed(tmp_path, sock_path)
    agent = FakeAgent(sock_path, b'0\n{"cniVersion": "1.0.0"}\n')
    env = {k: v for k, v in shim_env(tmp_path, sock_path, **cni_env()).items() if k != "NETPLUG_AGENT_SOCKET"}
    proc = subprocess.run([str(shim)], input=json.dumps(CONFIG).encode(), env=env, capture_output=True, timeout=60)
    _, sent_stdin = agent.close()
    assert (proc.returncode, proc.stdout) == (0, b'{"cniVersion": "1.0.0"}\n'), proc.stderr.decode()
    assert sent_stdin == json.dumps(CONFIG).encode()


def test_an_installed_shim_compiled_by_another_python_runs_from_its_source(tmp_path: Path, sock_path: Path) -> None:
    import marshal

    shim = _installed(tmp_path, sock_path)
    compiled = shim.parent / ".netplug" / "shim"
    _, source, _ = marshal.loads(compiled.read_bytes())
    compiled.write_bytes(marshal.dumps((b"\x00\x00\r\n", source, b"not code of this Python")))
    proc = subprocess.run([str(shim)], input=b'{"cniVersion": "0.4.0"}', capture_output=True, timeout=60,
                          env=shim_env(tmp_path, sock_path, CNI_COMMAND="VERSION"))
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout) == {"cniVersion": "0.4.0", "supportedVersions": SUPPORTED}


def test_an_installed_shim_without_its_code_says_so_in_cni_format(tmp_path: Path, sock_path: Path) -> None:
    shim = _installed(tmp_path, sock_path)
    (shim.parent / ".netplug" / "shim").unlink()
    proc = subprocess.run([str(shim)], input=json.dumps(CONFIG).encode(), capture_output=True, timeout=60,
                          env=shim_env(tmp_path, sock_path, **cni_env()))
    error = cni_error(proc)
    assert error["code"] == 11 and "install-cni" in error["msg"]
