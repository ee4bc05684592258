"""Fuzzed CNI input through the real `cni/netplug` shim, the way a runtime (or an attacker
who controls a NAD or a pod annotation) can call it.

Hypothesis draws the whole invocation: the environment (CNI_COMMAND, CNI_CONTAINERID,
CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH, and the shim's own NETPLUG_TIMEOUT; each may be
missing, empty, valid, hostile or not UTF-8) and stdin (a well-formed config of every binding
and verb with fields deleted, mistyped or replaced by hostile values; truncated, huge, deeply
nested, non-UTF-8 or binary input). Whatever it draws:

- the answer is a spec-valid result (ADD; then CHECK passes and DEL cleans it up) or nothing
  (DEL, CHECK, STATUS, GC), with exit code 0; or exactly one spec-valid error JSON line
  `{cniVersion, code, msg[, details]}` with exit code 1, in the request's cniVersion;
- no traceback on stdout or stderr, and none in the agent's log (no "failed unexpectedly");
- nothing is left behind: the pod's links, addresses, nftables and sysctls are as before, the
  node has no new link, no DHCP service runs, no state record or service file remains, the
  IPAM allocation dir is empty; the agent is still running.

With the agent running, most cases are refused in about 10 ms (a warm agent, a shim that starts
without site-packages), so CI runs NETPLUG_FUZZ_EXAMPLES (2000) of them in about a minute;
the in-process fallback (a Python start with pydantic per case) gets a smaller share.
Cases are derandomized (the same every run) unless NETPLUG_FUZZ_SEED picks a seed.
"""

from __future__ import annotations

import collections
import copy
import json
import os
import subprocess

import pytest
from hypothesis import HealthCheck, assume, given, seed, settings
from hypothesis import strategies as st
from pyroute2 import IPRoute

from netplug.model.cni import SUPPORTED_VERSIONS
from tests.support.cnirt import exec_with_env
from tests.support.fixtures import Netplug, primary_by_hand
from tests.support.spec import validate_error, validate_result
from tests.support.topology import Netns, host_local_allocations

EXAMPLES = int(os.environ.get("NETPLUG_FUZZ_EXAMPLES", "2000"))
INPROCESS_EXAMPLES = int(os.environ.get("NETPLUG_FUZZ_INPROCESS_EXAMPLES", "60"))
NETWORK = "fuzznet"
GUEST_MAC = "52:54:00:fa:22:01"
MAX_CONFIG = 1 << 20
#: error codes a netplug answer may carry: the spec's, the Go skel's 999, netplug's own (>=100)
SPEC_CODES = {1, 2, 3, 4, 5, 6, 7, 11, 50, 51}
KNOWN_COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC", "")
SHAPES = ("masquerade", "masquerade-ipam", "masquerade-args", "bridge", "delegate", "sriov", "gc", "status")


def _fuzz_settings(examples: int):
    chosen = os.environ.get("NETPLUG_FUZZ_SEED")
    config = settings(max_examples=examples, deadline=None, database=None, derandomize=chosen is None,
                      print_blob=True,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                             HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])

    def apply(fn):
        fn = config(fn)
        return seed(int(chosen))(fn) if chosen is not None else fn
    return apply


# --- the world a case runs against ------------------------------------------------------------


class World:
    """A pod (eth0 made by hand, as a primary CNI would), an empty pod, a process living in
    the pod (for /proc/<pid>/ns/net paths), a plain file under /run/netns, host-local's data
    dir, and netplug (agent or in-process): everything a case may name, and the baseline that
    'nothing left' is measured against."""

    def __init__(self, np: Netplug, workdir: str) -> None:
        self.np = np
        self.workdir = workdir
        self.pod = Netns.create("npfz")
        self.empty_pod = Netns.create("npfe")
        self.primary = primary_by_hand(self.pod)
        self.sleeper = subprocess.Popen(["ip", "netns", "exec", self.pod.name, "sleep", "infinity"])
        self.not_a_netns = f"/run/netns/npfile{os.getpid()}"
        with open(self.not_a_netns, "w"):
            pass
        self.ipam_dir = os.path.join(workdir, "ipam")
        self.resolv = os.path.join(workdir, "resolv.conf")
        with open(self.resolv, "w") as f:
            f.write("nameserver 10.96.0.10\nsearch fuzz.svc.cluster.local\n")
        self.cni_path = ":".join(np.runtime.cni_path)
        self.log_offset = 0
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.pod_baseline = self.pod.snapshot()
        self.empty_baseline = self.empty_pod.snapshot()
        self.node_baseline = self.node_links()

    def close(self) -> None:
        self.sleeper.kill()
        self.sleeper.wait()
        os.unlink(self.not_a_netns)
        self.pod.delete()
        self.empty_pod.delete()

    @property
    def pod_pid_path(self) -> str:
        return f"/proc/{self.sleeper.pid}/ns/net"

    def allowed_proc_paths(self) -> set[str]:
        """The only /proc/<pid>/ns/net paths a case may name: under scripts/isolated there is no
        pid namespace, so /proc/1/ns/net is the real host's netns and must never be wired."""
        own = {self.pod_pid_path, f"/proc/{os.getpid()}/ns/net"}
        if self.np.agent is not None:
            own.add(f"/proc/{self.np.agent.pid}/ns/net")
        return own

    @staticmethod
    def node_links() -> set[str]:
        with IPRoute() as ipr:  # in-process: this runs after every case
            return {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}

    def allocations(self) -> list[str]:
        return [os.path.join(self.ipam_dir, name) for name in host_local_allocations(self.ipam_dir)]

    def new_agent_log(self) -> str:
        path = os.path.join(self.np.workdir, "agent.log")
        if not os.path.exists(path):
            return ""
        with open(path, errors="replace") as f:
            f.seek(self.log_offset)
            text = f.read()
            self.log_offset = f.tell()
        return text

    def force_clean(self) -> None:
        """After a failed case: DEL whatever is recorded, stop stray services, drop allocations,
        so that the next case (and hypothesis's replay of this one) starts from the baseline."""
        for name in self.np.records():
            container_id, ifname = os.path.split(name[: -len(".json")])
            env = {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": container_id, "CNI_IFNAME": ifname,
                   "CNI_NETNS": "", "CNI_PATH": self.cni_path}
            _run(self, env, json.dumps({"cniVersion": "1.0.0", "name": NETWORK, "type": "netplug",
                                        "binding": "masquerade"}).encode())
        for pid in self.np.services():
            os.kill(pid, 9)
        for path in self.allocations():
            os.unlink(path)

    def assert_nothing_left(self, what: str, netns: str | None = None) -> None:
        """The state dir, services, allocations and node links after every case; a pod's links,
        addresses, nftables and sysctls after a case that named it (`netns`), or, with None,
        both pods (at the end of the run, which also catches a pod changed by a case that did
        not name it)."""
        assert self.np.records() == [], f"state records left after {what}: {self.np.records()}"
        assert self.np.services() == [], f"DHCP services left running after {what}"
        assert self.np.service_files() == [], f"service files left after {what}: {self.np.service_files()}"
        assert self.allocations() == [], f"IPAM allocations left after {what}: {self.allocations()}"
        assert self.node_links() == self.node_baseline, f"node links changed after {what}"
        if netns is None or self.pod.name in netns or netns == self.pod_pid_path:
            assert self.pod.snapshot() == self.pod_baseline, f"the pod is not as before after {what}"
        if netns is None or self.empty_pod.name in netns:
            assert self.empty_pod.snapshot() == self.empty_baseline, f"the empty pod changed after {what}"


# --- strategies -------------------------------------------------------------------------------

_TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=40)
# bytes that are not UTF-8 reach a plugin's environment as they are: os.environ holds them as
# surrogate escapes, and subprocess encodes them back
_NON_UTF8 = st.binary(min_size=1, max_size=24).filter(lambda b: b"\0" not in b).map(os.fsdecode)
_ENV_NOISE = st.one_of(_TEXT, _NON_UTF8, st.sampled_from(["", " ", "\n", "-", ".", "..", "/", "*", "$(id)", "a;b"]))
_NASTY = st.sampled_from([
    "", " ", "\n", "x" * 300, "../../etc/passwd", "/etc/passwd", "\u00e9\u4e2d", "a\nb=c", "$(reboot)",
    "10.0.2.0/33", "52:54:00:zz:00:01", "01:00:5e:00:00:01", "0.0.0.0/0", "::/0", "fe80::1/64",
    -1, 0, 1, 65535, 65536, 2**31, 2**64, 1e308, -0.0, True, False, None, [], {}, [None], {"": None},
])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=8,
)


def _paths(value, prefix=()):
    """Every place in a config a mutation can hit: dict keys and list items, nested."""
    found = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        path = (*prefix, key)
        if path == ("ipam", "dataDir"):
            continue  # host-local writes there: it stays ours (see _safe)
        found.append(path)
        found += _paths(child, path)
    return found


def _set(config, path, value, delete=False):
    target = config
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value


@st.composite
def configs(draw, world: World, shape: str) -> dict:
    """A well-formed config of one of the shapes netplug meets, then mutated."""
    version = draw(st.sampled_from([*SUPPORTED_VERSIONS, "1.1.0", "0.2.0", "2.0.0", "1.0", "banana"]))
    prev_version = version if version in SUPPORTED_VERSIONS else "1.0.0"
    prev = world.primary.prev_result(prev_version)
    base = {"cniVersion": version, "name": NETWORK, "type": "netplug"}
    if shape == "masquerade":
        config = {**base, "binding": "masquerade", "vmInterface": "default", "prevResult": prev}
    elif shape == "masquerade-ipam":
        config = {**base, "binding": "masquerade", "vmInterface": "default", "prevResult": prev,
                  "ports": [{"name": "http", "port": 8080}, {"port": 53, "protocol": "UDP"}],
                  "resolvConf": world.resolv, "vmNetworkCIDR": "10.0.3.0/24", "mac": GUEST_MAC,
                  "dhcpOptions": {"ntpServers": ["10.0.0.5"], "privateOptions": [{"option": 240, "value": "x"}]},
                  "ipam": {"type": "host-local", "dataDir": world.ipam_dir,
                           "ranges": [[{"subnet": "10.81.0.0/24"}]]}}
    elif shape == "masquerade-args":
        config = {**base, "binding": "masquerade", "prevResult": prev, "capabilities": {"mac": True},
                  "runtimeConfig": {"mac": GUEST_MAC, "portMappings": [{"hostPort": 80, "containerPort": 80}]},
                  "args": {"cni": {"vmInterface": "default", "ports": [{"port": 22}], "hostname": "vm-1"}}}
    elif shape == "bridge":
        config = {**base, "binding": "bridge", "vmInterface": "default", "mac": GUEST_MAC, "prevResult": prev}
    elif shape == "delegate":
        config = {**base, "binding": "bridge", "podInterface": "eth0", "vmName": "vm", "vmNamespace": "ns"}
    elif shape == "sriov":
        config = {**base, "binding": "sriov", "deviceID": "0000:81:00.2", "vlan": 10}
    elif shape == "gc":
        config = {**base, "binding": "masquerade",
                  "cni.dev/valid-attachments": [{"containerID": "ctr-fuzz", "ifname": "eth0"}],
                  "cni.dev/attachments": [{"containerID": "ctr-fuzz", "ifname": "eth0"}]}
    else:
        config = {**base, "binding": "masquerade", "ipam": {"type": "host-local", "dataDir": world.ipam_dir,
                                                            "ranges": [[{"subnet": "10.81.0.0/24"}]]}}
    config = json.loads(json.dumps(config))
    for _ in range(draw(st.integers(0, 3))):
        paths = _paths(config)
        op = draw(st.sampled_from(["delete", "nasty", "json", "add"]))
        if op == "add" or not paths:
            key = draw(st.one_of(_TEXT, st.sampled_from(["ipam", "dns", "podInterface", "spoofCheck",
                                                         "queues", "tapUid", "mtu", "ports", "mac",
                                                         "runtimeConfig", "args", "prevResult"])))
            config[key] = copy.deepcopy(draw(st.one_of(_NASTY, _JSON)))  # _NASTY's lists are shared
            continue
        path = draw(st.sampled_from(paths))
        if op == "delete":
            _set(config, path, None, delete=True)
        else:
            _set(config, path, copy.deepcopy(draw(_NASTY if op == "nasty" else _JSON)))
    return config


@st.composite
def stdins(draw, world: World, shape: str) -> bytes:
    form = draw(st.sampled_from(["json"] * 20 + ["not-utf8", "truncated", "nested", "huge", "binary",
                                                  "empty", "not-object", "edge-size"]))
    if form in ("binary", "empty"):
        return draw(st.binary(max_size=200)) if form == "binary" else b""
    if form == "not-object":
        return json.dumps(draw(_JSON)).encode()
    if form == "nested":
        depth = draw(st.sampled_from([50, 2000, 200_000]))
        inner = draw(st.sampled_from([b"[", b'{"a":']))
        close = b"]" if inner == b"[" else b"}"
        return b'{"cniVersion": "1.0.0", "name": "fuzznet", "binding": "masquerade", "x": ' + \
            inner * depth + b"1" + close * depth + b"}"
    data = json.dumps(draw(configs(world, shape))).encode()
    if form == "not-utf8":
        at = draw(st.integers(0, len(data)))
        return data[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"])) + data[at:]
    if form == "truncated":
        return data[: draw(st.integers(0, max(0, len(data) - 1)))]
    if form in ("huge", "edge-size"):
        total = (3 << 20) if form == "huge" else MAX_CONFIG + draw(st.integers(-2, 2))
        pad = total - len(data) - len(b', "pad": ""')
        return data[:-1] + b', "pad": "' + b"x" * max(0, pad) + b'"}'
    return data


def _weighted(*choices):
    """One of the strategies, each drawn about `weight` times in every sum-of-weights draws;
    None stands for "the variable is not set"."""
    # sampled_from, not one_of: one_of drops repeated strategies, and with them the weights
    return st.sampled_from([st.none() if strategy is None else strategy
                            for weight, strategy in choices for _ in range(weight)]).flatmap(lambda s: s)


def _netns_values(world: World):
    return _weighted(
        (11, st.just(world.pod.path)), (2, st.just(world.pod_pid_path)),
        (1, st.just(f"/var/run/netns/{world.pod.name}")),
        (3, st.sampled_from([
            "", world.empty_pod.path, world.not_a_netns, "/run/netns", "/run/netns/",
            "/run/netns/np-no-such-ns", f"/run/netns/../netns/{world.pod.name}",
            f"/run/netns/{world.pod.name}/", f"/run/netns/{world.pod.name} ", "/proc/self/ns/net",
            f"/proc/{os.getpid()}/ns/net", f"/proc/{os.getpid()}/ns/mnt", "/etc/passwd", "/dev/null",
            "/proc/999999999/ns/net", "run/netns/x", "/run/netns/.", "/run/netns/..",
        ])),
        (2, _ENV_NOISE.filter(lambda v: "/proc/" not in v)),  # no path into someone else's netns
        (1, None),
    )


@st.composite
def invocations(draw, world: World) -> dict:
    """(env, stdin) of one plugin exec; a variable drawn as None is not set."""
    valid_id = st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]{0,63}", fullmatch=True)
    shape = draw(st.sampled_from(SHAPES))
    # most cases run the verb the config is made for, so that they get past the first checks
    verb = {"gc": "GC", "status": "STATUS"}.get(shape, "ADD")
    fields = {
        "CNI_COMMAND": _weighted(
            (24, st.just(verb)), (4, st.just("DEL")), (2, st.sampled_from(["ADD", "CHECK", "GC", "STATUS"])),
            (1, st.sampled_from(["VERSION", "add", "", "FROB", "ADD "])), (1, _ENV_NOISE), (1, None)),
        "CNI_CONTAINERID": _weighted(
            (12, st.just("ctr-fuzz")), (2, valid_id), (1, _ENV_NOISE),
            (1, st.sampled_from(["../etc", "-x", "a b", "a/b", "x" * 300, ""])), (1, None)),
        "CNI_NETNS": _netns_values(world),
        "CNI_IFNAME": _weighted(
            (14, st.just("eth0")),
            (2, st.sampled_from(["net1", "k6t-eth0", "tap0", ".", "..", "a/b", "a b", "eth0:1", "x" * 16,
                                 "x" * 15, "\u00e9" * 8, "lo", ""])),
            (1, _ENV_NOISE), (1, None)),
        "CNI_ARGS": _weighted(
            (8, st.just("")), (5, st.just("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod")),
            (2, st.sampled_from(["MAC=52:54:00:fa:22:02", "MAC=zz", "K8S_POD_NAME", "=x", "a=b=c",
                                 "IgnoreUnknown=1;;;", "K8S_POD_NAME=" + "p" * 300])),
            (1, _ENV_NOISE), (1, None)),
        "CNI_PATH": _weighted(
            (14, st.just(world.cni_path)),
            (1, st.sampled_from(["", "/nonexistent", f"/nonexistent:{world.cni_path}", ":::", world.np.bin_dir])),
            (1, _ENV_NOISE.filter(lambda v: "/" not in v)), (1, None)),
        "NETPLUG_TIMEOUT": _weighted(
            (12, None), (1, st.sampled_from(["", "90", "0", "-1", "nan", "inf", "-inf", "1e999", "abc"]))),
    }
    env = {}
    for name, strategy in fields.items():
        value = draw(strategy)
        if value is not None:
            env[name] = value
    return {"env": env, "stdin": draw(stdins(world, shape))}


# --- judging one answer -----------------------------------------------------------------------


def _decoded(stdin: bytes) -> dict | None:
    try:
        config = json.loads(stdin.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return config if isinstance(config, dict) else None


def _spec_valid(prev, version: str) -> bool:
    if prev is None:
        return True
    try:
        validate_result({**prev, "cniVersion": version}, version)
    except (AssertionError, KeyError, TypeError, ValueError, AttributeError):
        return False
    return True


def _safe(case: dict, world: World) -> bool:
    """Cases that could write outside this test's own world are not run (never reached by
    accident, but checked rather than trusted): IPAM delegates other than host-local (with its
    data dir ours and a network name that stays inside it) and static, resolv.conf paths that
    are not regular files (a FIFO would block the read), /proc/<pid>/ns/net of other pids."""
    netns = case["env"].get("CNI_NETNS", "")
    if "/proc/" in netns and netns not in world.allowed_proc_paths():
        return False
    config = _decoded(case["stdin"]) if len(case["stdin"]) <= MAX_CONFIG else None  # the shim refuses more
    if config is None:
        return True
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ipam = node.get("ipam")
            if isinstance(ipam, dict) and isinstance(ipam.get("type"), str) and \
                    os.path.exists(os.path.join("/usr/lib/cni", ipam["type"])):
                if ipam["type"] not in ("host-local", "static"):
                    return False
                name = config.get("name")
                if ipam["type"] == "host-local" and (ipam.get("dataDir") != world.ipam_dir or (
                        isinstance(name, str) and ("/" in name or name.startswith(".")))):
                    return False
            resolv = node.get("resolvConf")
            if isinstance(resolv, str) and os.path.exists(resolv) and not os.path.isfile(resolv):
                return False
            stack += list(node.values())
        elif isinstance(node, list):
            stack += node
    return True


def _run(world: World, env: dict, stdin: bytes):
    return exec_with_env(world.np.shim, {**world.np.runtime.extra_env, **env}, stdin, timeout=120)


def judge(world: World, case: dict) -> None:
    env, stdin = case["env"], case["stdin"]
    command = env.get("CNI_COMMAND", "")
    run = _run(world, env, stdin)
    what = f"{command or '(no command)'} rc={run.returncode} stdout={run.stdout[:600]!r}"
    assert "Traceback" not in run.stdout and "Traceback" not in run.stderr, f"{what} stderr={run.stderr[-3000:]}"
    config = _decoded(stdin) if len(stdin) <= MAX_CONFIG else None
    asked = config.get("cniVersion") if config else None

    if not command:
        assert (run.returncode, run.stdout) == (0, ""), what  # the "about" line goes to stderr
    elif run.returncode == 0:
        if command == "VERSION":
            reply = json.loads(run.stdout)
            assert reply["supportedVersions"] == list(SUPPORTED_VERSIONS), what
        elif command == "ADD":
            result = json.loads(run.stdout)
            cleanup = {**config, "prevResult": result}
            try:
                assert run.stdout.count("\n") == 1, what
                if _spec_valid(config.get("prevResult"), asked):
                    validate_result(result, asked)  # netplug never breaks a valid prevResult
                else:  # what came in was already off-spec (e.g. no sandbox on eth0): passed on as it is
                    assert result["cniVersion"] == asked and all(i["name"] for i in result["interfaces"]), what
                if asked >= "0.4.0":
                    check = _run(world, {**env, "CNI_COMMAND": "CHECK"}, json.dumps(cleanup).encode())
                    assert check.returncode == 0, f"CHECK right after {what}: {check.stdout}"
            finally:
                delete = _run(world, {**env, "CNI_COMMAND": "DEL"}, json.dumps(cleanup).encode())
            assert (delete.returncode, delete.stdout) == (0, ""), f"DEL after {what}: {delete.stdout}"
        else:
            assert run.stdout == "", what
    else:
        assert run.returncode == 1, what
        assert run.stdout.count("\n") == 1 and run.stdout.endswith("\n"), f"one error line: {what}"
        error = json.loads(run.stdout)
        validate_error(error)
        assert "cniVersion" in error, what
        assert error["code"] in SPEC_CODES or error["code"] >= 100, what
        if isinstance(asked, str) and asked in SUPPORTED_VERSIONS:
            assert error["cniVersion"] == asked, what

    world.outcomes[f"{command if command in KNOWN_COMMANDS else 'other command'}: "
                   + ("ok" if run.returncode == 0 else f"code {json.loads(run.stdout)['code']}")] += 1
    log = world.new_agent_log()
    assert "failed unexpectedly" not in log and "Traceback" not in log, \
        f"{what}: the agent hit an unexpected exception:\n{log[-4000:]}"
    for line in filter(None, log.splitlines()):
        assert line.startswith("{"), f"{what}: the agent wrote a line that is not JSON: {line[:300]}"
    if world.np.agent is not None:
        assert world.np.agent.poll() is None, f"the agent died after {what}"
    world.assert_nothing_left(what, env.get("CNI_NETNS", ""))


def _fuzz(np: Netplug, tmp_path, examples: int) -> None:
    world = World(np, str(tmp_path))
    try:
        @_fuzz_settings(examples)
        @given(case=invocations(world))
        def run_case(case):
            assume(_safe(case, world))
            try:
                judge(world, case)
            finally:
                world.force_clean()
        run_case()
        world.assert_nothing_left("the whole run")
    finally:
        world.close()
        print(f"\nfuzzed cases by verb and answer ({sum(world.outcomes.values())} run):")  # pytest -s shows it
        for outcome, count in sorted(world.outcomes.items()):
            print(f"  {count:5d}  {outcome}")


@pytest.mark.timeout(900)
def test_fuzzed_input_with_the_agent(netplug_agent, tmp_path):
    _fuzz(netplug_agent, tmp_path, EXAMPLES)


@pytest.mark.timeout(600)
def test_fuzzed_input_in_process(netplug_inprocess, tmp_path):
    _fuzz(netplug_inprocess, tmp_path, INPROCESS_EXAMPLES)
