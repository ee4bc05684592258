"""The agent's socket: root only (0600 in a 0700 dir, and a peer-credential check behind
that), reachable through the node's filesystem only (no IP socket, no abstract socket a guest
netns could see), and robust against a shim that goes away before its answer."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile

import pytest

from tests.support.fixtures import Netplug, assert_nothing_left, primary_by_hand
from tests.support.topology import Netns, wait_for

NOBODY = 65534
MAGIC = b"NETPLUG/1\n"


@pytest.fixture
def world_readable_agent():
    """An agent whose workdir (shim, state, socket dir) other users may traverse, as /run and
    /opt/cni/bin are on a node: only the socket's own protections keep them out. The shim runs
    with the node's python3, as `install-cni` sets it up on a node (the shim needs nothing but
    the standard library): another user may not be able to reach this test run's venv at all
    (a checkout under /root, or in a 0700 temporary directory)."""
    workdir = tempfile.mkdtemp(prefix="np-sock-", dir="/tmp")
    os.chmod(workdir, 0o755)
    np = Netplug(mode="agent", workdir=workdir, shim_python="/usr/bin/python3")
    np.start_agent()
    yield np
    np.stop_agent()
    shutil.rmtree(workdir, ignore_errors=True)


def _add_config(pod: Netns) -> dict:
    return {"cniVersion": "1.0.0", "name": "podnet", "type": "netplug", "binding": "masquerade",
            "prevResult": primary_by_hand(pod).prev_result("1.0.0")}


def _env(np: Netplug, pod: Netns, command: str = "ADD") -> dict[str, str]:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command, "CNI_CONTAINERID": "ctr-sock",
            "CNI_NETNS": pod.path, "CNI_IFNAME": "eth0", "CNI_ARGS": "", "CNI_PATH": ":".join(np.runtime.cni_path),
            **np.runtime.extra_env}


def _shim(np: Netplug, env: dict, config: dict, *, user: int | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([np.shim], input=json.dumps(config).encode(), env=env, capture_output=True,
                          timeout=60, check=False, user=user, group=user, extra_groups=[] if user else None)


def _agent_log_is_json_lines(np: Netplug) -> None:
    for line in filter(None, np.agent_log().splitlines()):
        assert line.startswith("{"), f"not a JSON log line: {line[:300]}"
    assert "Traceback" not in np.agent_log()


def test_socket_is_root_only(world_readable_agent, pod):
    np = world_readable_agent
    st = os.stat(np.socket)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0
    assert stat.S_IMODE(os.stat(os.path.dirname(np.socket)).st_mode) == 0o700

    # another user runs the shim: it cannot connect, says so in CNI's format, and does not fall
    # back to running the handler itself
    run = _shim(np, _env(np, pod), _add_config(pod), user=NOBODY)
    error = json.loads(run.stdout)
    assert run.returncode == 1 and error["code"] == 11, run.stdout + run.stderr.decode()
    assert "cannot reach the netplug agent" in error["msg"] and "Permission denied" in error["details"]
    assert_nothing_left(np, pod)


def test_peer_credentials_refuse_other_users_when_the_socket_is_open(world_readable_agent, pod):
    """Even with the socket's modes opened up (a mistake, a chmod by hand), the agent serves
    no other user: it checks SO_PEERCRED on every connection."""
    np = world_readable_agent
    os.chmod(os.path.dirname(np.socket), 0o755)
    os.chmod(np.socket, 0o666)
    config = _add_config(pod)

    run = _shim(np, _env(np, pod), config, user=NOBODY)
    assert run.returncode == 1 and json.loads(run.stdout)["code"] == 11, run.stdout
    assert wait_for(lambda: f"refused a connection from uid {NOBODY}" in np.agent_log())
    assert_nothing_left(np, pod)

    # the same request from root is served: it was the user that was refused
    run = _shim(np, _env(np, pod), config)
    assert run.returncode == 0, run.stdout
    assert len(np.records()) == 1
    assert _shim(np, _env(np, pod, "DEL"), config).returncode == 0
    assert_nothing_left(np, pod)
    _agent_log_is_json_lines(np)


def _request(env: dict[str, str], stdin: bytes) -> bytes:
    variables = b"".join(f"{k}={v}".encode() + b"\0" for k, v in env.items() if k.startswith(("CNI_", "NETPLUG_")))
    return MAGIC + variables + b"\0" + stdin


def test_a_shim_that_goes_away_before_the_answer_does_not_break_the_agent(netplug_agent, pod):
    """A shim killed by its runtime's timeout: the agent finishes the ADD, logs that nobody
    took the answer (a JSON line, no traceback), and goes on serving; DEL removes it all."""
    np = netplug_agent
    config = _add_config(pod)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(np.socket)
    client.sendall(_request(_env(np, pod), json.dumps(config).encode()))
    client.close()  # before the agent can answer: an ADD takes tens of milliseconds
    assert wait_for(lambda: "went away before its answer" in np.agent_log(), timeout=30), np.agent_log()[-2000:]
    assert np.agent.poll() is None
    _agent_log_is_json_lines(np)
    assert len(np.records()) == 1  # the runtime saw a failure; its DEL cleans up

    run = _shim(np, _env(np, pod, "DEL"), config)
    assert run.returncode == 0, run.stdout
    assert_nothing_left(np, pod)


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes


def _table_inodes(path: str, column: int) -> dict[str, list[str]]:
    """inode -> the row's fields, of a /proc/net socket table."""
    with open(path) as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return {row[column]: row for row in rows if len(row) > column}


def test_the_agent_is_reachable_through_its_socket_path_only(netplug_agent, pod):
    """No IP socket of the agent exists, so nothing on a network (a guest included) can reach
    it; its one listening socket is a pathname socket (an abstract one would be visible to
    every process in the node's netns), and no other netns lists it at all."""
    np = netplug_agent
    config = _add_config(pod)
    assert _shim(np, _env(np, pod), config).returncode == 0  # the agent has done real work
    assert _shim(np, _env(np, pod, "DEL"), config).returncode == 0

    pid = np.agent.pid

    def unknown() -> set[str]:
        # netlink sockets of the node's netns, and of the pod's: a DEL leaves its last kernel
        # waits (freeing deleted links, a closed nftables context) to threads of its own
        netlink = {**_table_inodes(f"/proc/{pid}/net/netlink", 9),
                   **{row.split()[9]: row for row in pod.exec("cat", "/proc/net/netlink").stdout.splitlines()[1:]
                      if len(row.split()) > 9}}
        return _socket_inodes(pid) - set(_table_inodes(f"/proc/{pid}/net/unix", 6)) - set(netlink)

    assert wait_for(lambda: not unknown(), timeout=10), \
        f"the agent holds sockets that are neither unix nor netlink (IP?): {unknown()}"
    inodes = _socket_inodes(pid)
    unix = _table_inodes(f"/proc/{pid}/net/unix", 6)
    paths = [unix[i][7] for i in inodes & set(unix) if len(unix[i]) > 7]
    assert np.socket in paths, paths
    assert not [p for p in paths if p.startswith("@")], f"abstract sockets: {paths}"

    in_pod = pod.exec("cat", "/proc/net/unix").stdout
    assert np.socket not in in_pod
