"""netplug.cni.skel: the CNI protocol checks a runtime meets before any binding runs.

Every refusal must carry the CNI spec's error code and a message that names the variable or
field and the offending value, because that message is all a user sees in `kubectl describe`.
"""

from __future__ import annotations

import json

import pytest

from netplug.cni.skel import (
    MAX_CONFIG_BYTES,
    decode_config,
    load_binding,
    parse_cni_args,
    parse_request,
    version_reply,
)
from netplug.errors import NetplugError
from netplug.model.netconf import MasqueradeConf

SUPPORTED = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]

FULL_ENV = {
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "3f2a9c1e0b7d",
    "CNI_NETNS": "/run/netns/cni-1234",
    "CNI_IFNAME": "eth0",
    "CNI_PATH": "/opt/cni/bin:/usr/lib/cni",
}


def env(command: str = "ADD", **overrides: str | None) -> dict[str, str]:
    """The full environment for `command`; an override of None removes the variable."""
    result = {**FULL_ENV, "CNI_COMMAND": command}
    for key, value in overrides.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def config(**fields: object) -> bytes:
    base: dict[str, object] = {
        "cniVersion": "1.0.0", "name": "pod-network", "type": "netplug", "binding": "masquerade",
    }
    base.update(fields)
    return json.dumps(base).encode()


def refused(func, *args) -> NetplugError:
    with pytest.raises(NetplugError) as info:
        func(*args)
    return info.value


def binding(env_: dict[str, str] | None = None, **fields: object) -> MasqueradeConf:
    conf = load_binding(parse_request(env_ or env(), config(**fields)))
    assert isinstance(conf, MasqueradeConf)
    return conf


# --- the command and the environment ---------------------------------------------------------


@pytest.mark.parametrize("command", ["", "add", "FOO", "DELETE"])
def test_unknown_command_is_code_4_and_named(command: str) -> None:
    error = refused(parse_request, env(command), config())
    assert error.cni_code == 4
    assert f'CNI_COMMAND "{command}"' in error.msg


def test_missing_command_variable_is_code_4() -> None:
    error = refused(parse_request, env(CNI_COMMAND=None), config())
    assert error.cni_code == 4
    assert "CNI_COMMAND" in error.msg


@pytest.mark.parametrize(
    ("command", "required"),
    [
        ("ADD", ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"]),
        ("DEL", ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"]),
        ("CHECK", ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"]),
        ("GC", ["CNI_PATH"]),
    ],
)
def test_missing_variables_are_all_listed(command: str, required: list[str]) -> None:
    bare = {"CNI_COMMAND": command}
    error = refused(parse_request, bare, config(cniVersion="1.1.0"))
    assert error.cni_code == 4
    for name in required:
        assert name in error.msg
    for name in set(FULL_ENV) - set(required) - {"CNI_COMMAND"}:
        assert name not in error.msg, f"{command} does not need {name}"


@pytest.mark.parametrize("name", ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"])
@pytest.mark.parametrize("value", [None, ""])
def test_add_names_the_one_missing_variable(name: str, value: str | None) -> None:
    error = refused(parse_request, env(**{name: value}), config())
    assert error.cni_code == 4
    assert name in error.msg
    assert [n for n in FULL_ENV if n in error.msg and n != name] == []


def test_del_does_not_need_a_netns() -> None:
    request = parse_request(env("DEL", CNI_NETNS=None), config())
    assert request.command == "DEL"
    assert request.netns == ""


def test_status_needs_no_variables() -> None:
    request = parse_request({"CNI_COMMAND": "STATUS"}, config(cniVersion="1.1.0"))
    assert request.command == "STATUS"


def test_version_needs_neither_environment_nor_config() -> None:
    assert parse_request({"CNI_COMMAND": "VERSION"}, b"").command == "VERSION"


def test_a_valid_add_request_is_parsed() -> None:
    request = parse_request(env(CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=vm-a"), config())
    assert request.container_id == "3f2a9c1e0b7d"
    assert request.netns == "/run/netns/cni-1234"
    assert request.ifname == "eth0"
    assert request.path == ["/opt/cni/bin", "/usr/lib/cni"]
    assert request.args == {"IgnoreUnknown": "1", "K8S_POD_NAME": "vm-a"}
    assert request.version == "1.0.0"


@pytest.mark.parametrize("container_id", ["-abc", ".abc", "abc def", "abc/def", "abc:def", "äbc", "a$b"])
def test_container_id_charset(container_id: str) -> None:
    error = refused(parse_request, env(CNI_CONTAINERID=container_id), config())
    assert error.cni_code == 4
    assert "CNI_CONTAINERID" in error.msg and container_id in error.msg


@pytest.mark.parametrize("container_id", ["a", "0ab_c.d-e", "K8S-pod_1.2"])
def test_container_id_accepted(container_id: str) -> None:
    assert parse_request(env(CNI_CONTAINERID=container_id), config()).container_id == container_id


def test_container_id_with_trailing_newline_is_refused() -> None:
    error = refused(parse_request, env(CNI_CONTAINERID="abc\n"), config())
    assert error.cni_code == 4


@pytest.mark.parametrize("ifname", ["a" * 16, ".", "..", "eth/0", "eth:0", "eth 0", "eth\t0"])
def test_bad_interface_name(ifname: str) -> None:
    error = refused(parse_request, env(CNI_IFNAME=ifname), config())
    assert error.cni_code == 4
    assert "CNI_IFNAME" in error.msg and f'"{ifname}"' in error.msg


def test_interface_name_of_15_characters_is_accepted() -> None:
    assert parse_request(env(CNI_IFNAME="a" * 15), config()).ifname == "a" * 15


def test_interface_name_longer_than_15_bytes_is_refused() -> None:
    ifname = "é" * 9  # 9 characters, 18 bytes
    error = refused(parse_request, env(CNI_IFNAME=ifname), config())
    assert error.cni_code == 4


@pytest.mark.parametrize(
    "netns",
    ["/tmp/ns", "/proc/self/ns/net", "/proc/123/ns/mnt", "/run/netns/a/b", "run/netns/x",
     "/run/netns/", "/proc/12a/ns/net"],
)
def test_netns_must_be_a_netns_path(netns: str) -> None:
    error = refused(parse_request, env(CNI_NETNS=netns), config())
    assert error.cni_code == 4
    assert "CNI_NETNS" in error.msg and f'"{netns}"' in error.msg


@pytest.mark.parametrize(
    "netns",
    ["/proc/4242/ns/net", "/proc/4242/task/4243/ns/net", "/run/netns/cni-1", "/var/run/netns/x.y_z"],
)
def test_netns_paths_accepted(netns: str) -> None:
    assert parse_request(env(CNI_NETNS=netns), config()).netns == netns


@pytest.mark.parametrize("netns", ["/run/netns/..", "/run/netns/."])
def test_netns_dot_names_are_refused(netns: str) -> None:
    error = refused(parse_request, env(CNI_NETNS=netns), config())
    assert error.cni_code == 4


def test_netns_with_trailing_newline_is_refused() -> None:
    error = refused(parse_request, env(CNI_NETNS="/run/netns/x\n"), config())
    assert error.cni_code == 4


# --- CNI_ARGS ---------------------------------------------------------------------------------


def test_cni_args_are_split_into_pairs() -> None:
    assert parse_cni_args("IgnoreUnknown=1;K8S_POD_NAME=vm;K8S_POD_NAMESPACE=") == {
        "IgnoreUnknown": "1", "K8S_POD_NAME": "vm", "K8S_POD_NAMESPACE": "",
    }
    assert parse_cni_args("") == {}


@pytest.mark.parametrize("bad", ["NOEQUALS", "A=1=2", "=value"])
def test_bad_cni_args_pair_is_code_4_and_named(bad: str) -> None:
    error = refused(parse_cni_args, f"K8S_POD_NAME=vm;{bad}")
    assert error.cni_code == 4
    assert "CNI_ARGS" in error.msg and f'"{bad}"' in error.msg


def test_bad_cni_args_refuse_the_request() -> None:
    assert refused(parse_request, env(CNI_ARGS="A=1=2"), config()).cni_code == 4


# --- the config on stdin ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stdin", "words"),
    [
        (b'{"cniVersion": "1.0.0", "name": "\xff"}', ["UTF-8"]),
        (b"this is not json", ["not JSON", "line 1"]),
        (b'{"cniVersion": "1.0.0",', ["not JSON"]),
        (b'["cniVersion", "1.0.0"]', ["JSON object", "list"]),
        (b'"1.0.0"', ["JSON object", "str"]),
        (b"[" * 100_000 + b"]" * 100_000, ["nested"]),
    ],
    ids=["not-utf8", "not-json", "truncated", "array", "string", "deep"],
)
def test_undecodable_config_is_code_6(stdin: bytes, words: list[str]) -> None:
    error = refused(parse_request, env(), stdin)
    assert error.cni_code == 6
    for word in words:
        assert word in error.msg


def test_config_over_one_mib_is_code_7_with_its_size() -> None:
    stdin = config(padding="x" * MAX_CONFIG_BYTES)
    error = refused(parse_request, env(), stdin)
    assert error.cni_code == 7
    assert str(len(stdin)) in error.msg and str(MAX_CONFIG_BYTES) in error.msg


def test_config_of_exactly_one_mib_is_decoded() -> None:
    head = config()
    stdin = head[:-1] + b" " * (MAX_CONFIG_BYTES - len(head)) + b"}"
    assert len(stdin) == MAX_CONFIG_BYTES
    assert decode_config(stdin)["binding"] == "masquerade"


@pytest.mark.parametrize("version", [None, "", 1])
def test_missing_cni_version_is_code_7(version: object) -> None:
    fields = json.loads(config())
    if version is None:
        del fields["cniVersion"]
    else:
        fields["cniVersion"] = version
    error = refused(parse_request, env(), json.dumps(fields).encode())
    assert error.cni_code == 7
    assert "cniVersion" in error.msg


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0", "9.9.9", "1.2.0"])
def test_unsupported_cni_version_is_code_1(version: str) -> None:
    error = refused(parse_request, env(), config(cniVersion=version))
    assert error.cni_code == 1
    assert f'"{version}"' in error.msg


@pytest.mark.parametrize("version", SUPPORTED)
def test_every_supported_version_is_accepted_for_add(version: str) -> None:
    assert parse_request(env(), config(cniVersion=version)).version == version


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1"])
def test_check_needs_0_4_0(version: str) -> None:
    error = refused(parse_request, env("CHECK"), config(cniVersion=version))
    assert error.cni_code == 1
    assert "CHECK" in error.msg and version in error.msg


def test_check_with_0_4_0_is_accepted() -> None:
    assert parse_request(env("CHECK"), config(cniVersion="0.4.0")).command == "CHECK"


@pytest.mark.parametrize("command", ["STATUS", "GC"])
@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
def test_status_and_gc_need_1_1_0(command: str, version: str) -> None:
    error = refused(parse_request, env(command), config(cniVersion=version))
    assert error.cni_code == 1
    assert command in error.msg and version in error.msg


# --- VERSION ----------------------------------------------------------------------------------


@pytest.mark.parametrize("asked", SUPPORTED)
def test_version_reply_echoes_a_supported_version(asked: str) -> None:
    reply = version_reply(json.dumps({"cniVersion": asked}).encode())
    assert reply == {"cniVersion": asked, "supportedVersions": SUPPORTED}


@pytest.mark.parametrize("stdin", [b"", b"garbage", b'{"cniVersion": "0.2.0"}', b"\xff", b"[]"])
def test_version_reply_without_a_supported_asked_version_answers_the_latest(stdin: bytes) -> None:
    assert version_reply(stdin) == {"cniVersion": "1.1.0", "supportedVersions": SUPPORTED}


# --- the binding's config ---------------------------------------------------------------------


def test_defaults_of_a_minimal_masquerade_config() -> None:
    conf = binding()
    assert conf.vmNetworkCIDR == "10.0.2.0/24"
    assert conf.ports == [] and conf.mac is None and conf.queues == 1


@pytest.mark.parametrize("name", [None, 5, "bridgeish", "Masquerade"])
def test_unknown_binding_is_code_7_and_named(name: object) -> None:
    fields = json.loads(config())
    if name is None:
        del fields["binding"]
    else:
        fields["binding"] = name
    error = refused(load_binding, parse_request(env(), json.dumps(fields).encode()))
    assert error.cni_code == 7
    assert "binding" in error.msg and str(name) in error.msg
    assert "masquerade" in error.msg  # what the user could have written


def test_unknown_top_level_key_is_code_2_with_key_and_value() -> None:
    error = refused(load_binding, parse_request(env(), config(vmNetworkCidr="10.9.0.0/24")))
    assert error.cni_code == 2
    assert '"vmNetworkCidr"' in error.msg and "10.9.0.0/24" in error.msg


def test_keys_the_runtime_adds_are_not_rejected() -> None:
    conf = binding(
        prevResult={"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}]},
        runtimeConfig={"portMappings": [{"hostPort": 8080, "containerPort": 80}]},
        args={"cni": {"labels": ["a"]}, "k8s": {"pod": "x"}},
        capabilities={"mac": True},
        deviceID="0000:3b:00.2",
        **{"cni.dev/valid-attachments": [{"containerID": "x", "ifname": "eth0"}]},
    )
    assert conf.binding == "masquerade"


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("vmNetworkCIDR", "10.0.2.0/33", ["not an IPv4 network"]),
        ("vmNetworkCIDR", "foo", ["not an IPv4 network"]),
        ("vmNetworkCIDR", "10.0.2.1/24", ["host bits"]),
        ("vmNetworkCIDR", "10.0.2.0/31", ["too small"]),
        ("vmNetworkCIDR", "fd10:0:2::/120", ["not an IPv4 network"]),
        ("mac", "01:00:5e:00:00:01", ["multicast"]),
        ("mac", "ff:ff:ff:ff:ff:ff", ["multicast"]),
        ("mac", "zz", ["not a MAC"]),
        ("mac", "00:00:00:00:00:00", ["all-zero"]),
        ("mtu", 100, []),
        ("podInterface", "eth 0", ["spaces"]),
    ],
)
def test_bad_field_is_code_7_with_field_and_value(field: str, value: object, words: list[str]) -> None:
    error = refused(load_binding, parse_request(env(), config(**{field: value})))
    assert error.cni_code == 7
    assert field in error.msg and json.dumps(value) in error.msg
    for word in words:
        assert word in error.msg


@pytest.mark.parametrize(
    ("ports", "where", "value"),
    [
        ([{"port": 0}], "ports.0.port", "0"),
        ([{"port": 80}, {"port": 65536}], "ports.1.port", "65536"),
        ([{"port": 80, "protocol": "SCTP"}], "ports.0.protocol", '"SCTP"'),
    ],
)
def test_bad_port_is_code_7_with_field_and_value(ports: list, where: str, value: str) -> None:
    error = refused(load_binding, parse_request(env(), config(ports=ports)))
    assert error.cni_code == 7
    assert where in error.msg and f"(value {value})" in error.msg


def test_duplicate_port_is_code_7() -> None:
    error = refused(load_binding, parse_request(env(), config(ports=[{"port": 80}, {"port": 80, "protocol": "tcp"}])))
    assert error.cni_code == 7
    assert "TCP/80" in error.msg and "twice" in error.msg


def test_duplicate_port_error_names_the_ports_field() -> None:
    error = refused(load_binding, parse_request(env(), config(ports=[{"port": 80}, {"port": 80}])))
    assert error.msg.startswith("config: ports")


def test_same_port_number_on_tcp_and_udp_is_allowed() -> None:
    conf = binding(ports=[{"port": 53}, {"port": 53, "protocol": "udp"}])
    assert [(p.protocol, p.port) for p in conf.ports] == [("TCP", 53), ("UDP", 53)]


# --- where `mac` (and the other binding keys) come from ----------------------------------------

CONFIG_MAC = "02:00:00:00:00:01"
CNI_ARGS_MAC = "02:00:00:00:00:02"
ARGS_CNI_MAC = "02:00:00:00:00:03"
RUNTIME_MAC = "02:00:00:00:00:04"


@pytest.mark.parametrize(
    ("sources", "expected"),
    [
        ({"config", "cni_args", "args_cni", "runtime"}, RUNTIME_MAC),
        ({"config", "cni_args", "args_cni"}, ARGS_CNI_MAC),
        ({"config", "cni_args"}, CNI_ARGS_MAC),
        ({"config"}, CONFIG_MAC),
        (set(), None),
    ],
)
def test_mac_precedence(sources: set[str], expected: str | None) -> None:
    fields: dict[str, object] = {}
    if "config" in sources:
        fields["mac"] = CONFIG_MAC
    if "args_cni" in sources:
        fields["args"] = {"cni": {"mac": ARGS_CNI_MAC}}
    if "runtime" in sources:
        fields["runtimeConfig"] = {"mac": RUNTIME_MAC}
    cni_args = f"IgnoreUnknown=1;MAC={CNI_ARGS_MAC}" if "cni_args" in sources else "IgnoreUnknown=1"
    assert binding(env(CNI_ARGS=cni_args), **fields).mac == expected


def test_a_bad_mac_from_runtime_config_is_refused() -> None:
    error = refused(load_binding, parse_request(env(), config(runtimeConfig={"mac": "zz"})))
    assert error.cni_code == 7 and "mac" in error.msg and '"zz"' in error.msg


def test_args_cni_keys_of_the_binding_are_taken_and_others_ignored() -> None:
    conf = binding(args={"cni": {
        "ports": [{"port": 8080}], "vmNetworkCIDR": "10.11.12.0/24",
        "allowPrivilegeEscalation": True, "labels": {"a": "b"},
        "binding": "sriov", "type": "other", "cniVersion": "0.3.1",
    }})
    assert [p.port for p in conf.ports] == [8080]
    assert conf.vmNetworkCIDR == "10.11.12.0/24"
    assert conf.binding == "masquerade" and conf.type == "netplug" and conf.cniVersion == "1.0.0"


def test_runtime_config_keys_of_other_plugins_are_ignored() -> None:
    conf = binding(runtimeConfig={"portMappings": [{"hostPort": 1}], "bandwidth": {}, "queues": 4})
    assert conf.queues == 4


@pytest.mark.parametrize("fields", [{"args": {"cni": ["x"]}}, {"runtimeConfig": "mac"}, {"args": "x"}])
def test_args_and_runtime_config_must_be_objects(fields: dict) -> None:
    error = refused(load_binding, parse_request(env(), config(**fields)))
    assert error.cni_code == 7
    assert next(iter(fields)) in error.msg


def test_a_pod_cannot_set_paths_devices_or_switches_through_cni_args() -> None:
    """args.cni comes from the pod's own annotation: it may name the VM, not a file, a VF,
    an IPAM delegate or the spoof check."""
    request = parse_request(env(), json.dumps({
        "cniVersion": "1.0.0", "name": "n", "type": "netplug", "binding": "bridge", "prevResult": None,
        "args": {"cni": {"resolvConf": "/etc/shadow", "ipam": {"type": "host-local"}, "spoofCheck": False,
                         "tapUid": 0, "vmName": "vm1", "mac": "02:00:00:00:00:09"}}}).encode())
    conf = load_binding(request)
    assert (conf.resolvConf, conf.ipam, conf.spoofCheck) == ("/etc/resolv.conf", None, True)
    assert (conf.vmName, conf.mac) == ("vm1", "02:00:00:00:00:09")


def test_a_pod_can_ask_for_a_multi_queue_tap_through_cni_args_within_the_kernels_limit() -> None:
    """networkInterfaceMultiqueue: the tap's queues are a per-interface setting (1-256)."""
    assert binding(args={"cni": {"queues": 4}}).queues == 4
    error = refused(load_binding, parse_request(env(), config(args={"cni": {"queues": 257}})))
    assert error.cni_code == 7 and "queues" in error.msg and "257" in error.msg


def test_kubevirt_binding_plugin_cni_args_pick_the_logical_networks_pod_interface() -> None:
    """Registered as a KubeVirt binding plugin, netplug runs as its own delegate (CNI_IFNAME
    net2) with cni-args {logicNetworkName}: it binds that network's pod<h>, not net2."""
    config = {"cniVersion": "1.0.0", "name": "netplug-bridge", "type": "netplug", "binding": "bridge",
              "args": {"cni": {"logicNetworkName": "blue"}}}
    conf = load_binding(parse_request(env(CNI_IFNAME="net2"), json.dumps(config).encode()))
    assert (conf.podInterface, conf.vmInterface) == ("pod16477688c0e", "blue")
    pinned = {**config, "podInterface": "eth0"}  # a NAD for the pod network says so itself
    assert load_binding(parse_request(env(CNI_IFNAME="net2"), json.dumps(pinned).encode())).podInterface == "eth0"
