"""Bad input through the real shim: the right CNI error code, a message naming the field
and the value, and nothing created: no link, rule, process or state record."""

from __future__ import annotations

import os

import pytest

from tests.support.cnirt import exec_plugin
from tests.support.fixtures import primary_by_hand
from tests.support.spec import validate_error

GOOD = {"cniVersion": "1.0.0", "name": "podnet", "type": "netplug", "binding": "masquerade"}

# (id, config changes (None: drop the key), env changes, raw stdin, code, text in msg)
CASES = [
    ("not-json", None, {}, b"{not json", 6, "not JSON"),
    ("not-utf8", None, {}, b'{"cniVersion": "1.0.0\xff"}', 6, "UTF-8"),
    ("not-object", None, {}, b"[1, 2]", 6, "JSON object"),
    ("too-large", None, {}, b'{"cniVersion": "1.0.0", "pad": "' + b"x" * (10 << 20) + b'"}', 7, "bytes"),
    ("no-version", {"cniVersion": None}, {}, None, 7, "cniVersion"),
    ("old-version", {"cniVersion": "0.2.0"}, {}, None, 1, "0.2.0"),
    ("unknown-binding", {"binding": "slirp"}, {}, None, 7, '"slirp"'),
    ("unknown-field", {"vmNetworkCidr": "10.1.0.0/24"}, {}, None, 2, '"vmNetworkCidr" (value "10.1.0.0/24")'),
    ("bad-cidr", {"vmNetworkCIDR": "10.0.2.0/33"}, {}, None, 7, "vmNetworkCIDR"),
    ("tiny-cidr", {"vmNetworkCIDR": "10.0.2.0/31"}, {}, None, 7, "too small"),
    ("bad-mac", {"mac": "01:00:5e:00:00:01"}, {}, None, 7, "multicast"),
    ("not-a-mac", {"mac": "52:54:00:zz:00:01"}, {}, None, 7, "52:54:00:zz:00:01"),
    ("port-zero", {"ports": [{"port": 0}]}, {}, None, 7, "ports.0.port"),
    ("port-high", {"ports": [{"port": 65536}]}, {}, None, 7, "65536"),
    ("port-proto", {"ports": [{"port": 80, "protocol": "SCTP"}]}, {}, None, 7, "SCTP"),
    ("relative-resolv", {"resolvConf": "etc/resolv.conf"}, {}, None, 7, "resolvConf"),
    ("ipam-missing", {"ipam": {"type": "nonesuch"}}, {}, None, 7, '"nonesuch" not found'),
    ("bridge-with-ipam", {"binding": "bridge", "ipam": {"type": "host-local", "subnet": "10.9.0.0/24"}}, {}, None,
     7, "give ipam to the plugin that makes the pod interface"),
    ("no-prev-result", {"prevResult": None}, {}, None, 7, "prevResult is required"),
    ("bad-prev-result", {"prevResult": {"ips": [{"address": "banana"}]}}, {}, None, 6, "banana"),
    ("netns-not-netns", None, {"CNI_NETNS": "/etc/passwd"}, None, 4, "/etc/passwd"),
    ("netns-gone", None, {"CNI_NETNS": "/run/netns/np-no-such-ns"}, None, 102, "np-no-such-ns"),
    ("netns-mnt", None, {"CNI_NETNS": "/proc/1/ns/mnt"}, None, 4, "/proc/1/ns/mnt"),
    ("bad-container-id", None, {"CNI_CONTAINERID": "../etc"}, None, 4, "../etc"),
    ("long-ifname", None, {"CNI_IFNAME": "averyveryverylongname"}, None, 4, "averyveryverylongname"),
    ("dot-ifname", None, {"CNI_IFNAME": ".."}, None, 4, "CNI_IFNAME"),
    ("slash-ifname", None, {"CNI_IFNAME": "et/h0"}, None, 4, "et/h0"),
    ("missing-env", None, {"CNI_IFNAME": "", "CNI_NETNS": ""}, None, 4, "CNI_NETNS"),
    ("bad-cni-args", None, {"CNI_ARGS": "K8S_POD_NAME"}, None, 4, "K8S_POD_NAME"),
    # hostile input (issue 8): paths outside /proc and /run/netns, names a kernel or a path
    # join would misread, sizes and nesting that would exhaust the agent, bytes that are not text
    ("netns-outside", None, {"CNI_NETNS": "/tmp/netns-x"}, None, 4, "/tmp/netns-x"),
    ("netns-traversal", None, {"CNI_NETNS": "/run/netns/../../etc/passwd"}, None, 4, "/run/netns/../../etc/passwd"),
    ("netns-self", None, {"CNI_NETNS": "/proc/self/ns/net"}, None, 4, "/proc/self/ns/net"),
    ("netns-device", None, {"CNI_NETNS": "/dev/null"}, None, 4, "/dev/null"),
    ("space-ifname", None, {"CNI_IFNAME": "et h0"}, None, 4, "et h0"),
    ("dot-ifname-single", None, {"CNI_IFNAME": "."}, None, 4, "CNI_IFNAME"),
    ("colon-ifname", None, {"CNI_IFNAME": "eth0:1"}, None, 4, "eth0:1"),
    ("16-char-ifname", None, {"CNI_IFNAME": "x" * 16}, None, 4, "x" * 16),
    ("not-utf8-ifname", None, {"CNI_IFNAME": os.fsdecode(b"eth\xff")}, None, 4, 'interface name "eth\\xff" is not UTF-8'),
    ("not-utf8-container-id", None, {"CNI_CONTAINERID": os.fsdecode(b"ctr\xff")}, None, 4, "CNI_CONTAINERID"),
    ("one-byte-over-1mib", None, {}, b'{"cniVersion": "1.0.0", "pad": "' + b"x" * ((1 << 20) - 33) + b'"}', 7,
     str((1 << 20) + 1)),
    ("deeply-nested", None, {}, b'{"cniVersion": "1.0.0", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 6,
     "nested too deeply"),
    ("unknown-command", None, {"CNI_COMMAND": "FROB"}, None, 4, "FROB"),
    ("gc-not-a-list", {"cniVersion": "1.1.0", "prevResult": None, "cni.dev/valid-attachments": "ctr-1"},
     {"CNI_COMMAND": "GC"}, None, 7, "cni.dev/valid-attachments"),
    ("gc-list-as-id", {"cniVersion": "1.1.0", "prevResult": None,
                       "cni.dev/valid-attachments": [{"containerID": ["ctr-1"], "ifname": "eth0"}]},
     {"CNI_COMMAND": "GC"}, None, 7, '{"containerID": ["ctr-1"], "ifname": "eth0"}'),
    ("gc-no-ifname", {"cniVersion": "1.1.0", "prevResult": None, "cni.dev/valid-attachments": [{"containerID": "c"}]},
     {"CNI_COMMAND": "GC"}, None, 7, "cni.dev/valid-attachments"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_cleanly(netplug, pod, case):
    _, changes, env_changes, raw, code, text = case
    primary = primary_by_hand(pod)
    config = {**GOOD, "prevResult": primary.prev_result("1.0.0")}
    for key, value in (changes or {}).items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    env = {"CNI_CONTAINERID": "ctr-bad", "CNI_NETNS": pod.path, "CNI_IFNAME": "eth0", **env_changes}
    command = env.pop("CNI_COMMAND", "ADD")
    links_before = set(pod.links())

    run = exec_plugin(netplug.shim, command, raw if raw is not None else config,
                      container_id=env["CNI_CONTAINERID"], netns=env["CNI_NETNS"], ifname=env["CNI_IFNAME"],
                      args=env.get("CNI_ARGS", ""), cni_path=netplug.runtime.cni_path,
                      extra_env=netplug.runtime.extra_env)

    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stdout.count("\n") == 1, "exactly one JSON error line on stdout"
    error = run.json
    validate_error(error)
    assert error["code"] == code, error
    assert text in error["msg"], error
    assert set(pod.links()) == links_before
    assert not pod.nft_ruleset()
    assert not netplug.records() and not netplug.services()
