"""The CNI protocol, without I/O: environment checks, config loading, binding config merge.

What the Go `skel` package does before a plugin's cmdAdd/cmdDel runs, in the same order and
with the same error codes: required variables per verb (code 4, naming them), the config
decoded and its version checked (codes 6, 7, 1), the container ID charset and the interface
name rules (code 4). On top, `load_binding` turns the config into the binding's model with
the priority the reference plugins use: runtimeConfig > args.cni > CNI_ARGS > the config.

May import: pydantic, netplug.errors, netplug.model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from pydantic import ValidationError

from netplug import naming
from netplug.errors import (
    DecodeFailure,
    IncompatibleVersion,
    InvalidConfig,
    InvalidEnvironment,
    UnsupportedField,
)
from netplug.model import first_error
from netplug.model.cni import LATEST, SUPPORTED_VERSIONS, at_least, require_supported
from netplug.model.netconf import BINDING_MODELS, BindingBase, validate_ifname

COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC")
#: largest config accepted on stdin; NADs and chained configs are a few KiB
MAX_CONFIG_BYTES = 1 << 20

_REQUIRED = {
    "CNI_CONTAINERID": ("ADD", "DEL", "CHECK"),
    "CNI_NETNS": ("ADD", "CHECK"),
    "CNI_IFNAME": ("ADD", "DEL", "CHECK"),
    "CNI_PATH": ("ADD", "DEL", "CHECK", "GC"),
}
# used with fullmatch: "$" would also accept a trailing newline
_CONTAINER_ID = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]*")
_NETNS_PATH = re.compile(r"/proc/[0-9]+(/task/[0-9]+)?/ns/net|/(var/)?run/netns/[A-Za-z0-9_\-][A-Za-z0-9_.\-]*")

#: what a pod may set through args.cni (Multus cni-args, which the pod's own annotation
#: controls): its VM's identity and per-interface settings, never a file path, a device,
#: an IPAM delegate or a security switch. `queues` is one of those settings: it only makes
#: the pod's own tap multi-queue (IFF_MULTI_QUEUE), bounded by the model (1-256, the kernel's
#: own limit), and creates no queue by itself: each queue is an fd QEMU opens in the pod.
#: `dns` is the guest's DNS (what the pod's own resolv.conf says, given by the controller), the
#: way dhcpOptions are the guest's DHCP options.
POD_SETTABLE = {"vmInterface", "vmName", "vmNamespace", "mac", "ports", "dhcpOptions", "hostname",
                "vmNetworkCIDR", "vmIPv6NetworkCIDR", "mtu", "queues", "dns"}

#: keys the runtime (libcni, Multus) puts into a plugin's config; never binding fields
_RUNTIME_KEYS = {
    "prevResult", "runtimeConfig", "args", "capabilities", "cniVersions", "disableCheck",
    "disableGC", "deviceID", "pciBusID", "logLevel", "logFile",
}


@dataclass
class Request:
    """One CNI invocation: the verb, its environment and the decoded config."""

    command: str
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    args: dict[str, str] = field(default_factory=dict)
    path: list[str] = field(default_factory=list)
    config: dict = field(default_factory=dict)

    @property
    def version(self) -> str:
        return self.config.get("cniVersion", LATEST)


def parse_cni_args(text: str) -> dict[str, str]:
    """`K1=V1;K2=V2` as the reference parser reads it: one `=` per pair."""
    args: dict[str, str] = {}
    for pair in filter(None, text.split(";")):
        key, sep, value = pair.partition("=")
        if not sep or "=" in value or not key:
            raise InvalidEnvironment(f'CNI_ARGS: invalid pair "{pair}" (want KEY=VALUE)')
        args[key] = value
    return args


def decode_config(stdin: bytes) -> dict:
    if len(stdin) > MAX_CONFIG_BYTES:
        raise InvalidConfig(
            f"config on stdin is {len(stdin)} bytes; netplug accepts at most {MAX_CONFIG_BYTES}"
        )
    try:
        text = stdin.decode("utf-8")
        config = json.loads(text)
    except UnicodeDecodeError as exc:
        raise DecodeFailure(f"config on stdin is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise DecodeFailure("config on stdin is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise DecodeFailure(f"config on stdin is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(config, dict):
        raise DecodeFailure(f"config on stdin must be a JSON object, got {type(config).__name__}")
    return config


def asked_version(stdin: bytes) -> str | None:
    """The cniVersion a config on stdin names, if it can be read at all (for VERSION and for
    answering an error in the caller's version)."""
    try:
        config = json.loads(stdin.decode("utf-8") or "{}")
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    version = config.get("cniVersion") if isinstance(config, dict) else None
    return version if isinstance(version, str) and version else None


def version_reply(stdin: bytes) -> dict:
    """The VERSION answer; echoes the asked version when netplug supports it (spec)."""
    asked = asked_version(stdin)
    return {"cniVersion": asked if asked in SUPPORTED_VERSIONS else LATEST,
            "supportedVersions": list(SUPPORTED_VERSIONS)}


def parse_request(env: dict[str, str], stdin: bytes) -> Request:
    """Validate env and config the way the Go skel does; VERSION needs neither."""
    command = env.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        raise InvalidEnvironment(f'unknown CNI_COMMAND "{command}"; expected one of {list(COMMANDS)}')
    request = Request(command=command)
    if command == "VERSION":
        return request
    missing = [name for name, verbs in _REQUIRED.items() if command in verbs and not env.get(name)]
    if missing:
        raise InvalidEnvironment(f"required env variables {missing} missing")

    request.config = decode_config(stdin)
    version = request.config.get("cniVersion")
    if not isinstance(version, str) or not version:
        raise InvalidConfig("config: cniVersion is required")
    require_supported(version)
    if command == "CHECK" and not at_least(version, "0.4.0"):
        raise IncompatibleVersion(f'config version "{version}" does not allow CHECK (needs 0.4.0 or later)')
    if command in ("STATUS", "GC") and not at_least(version, "1.1.0"):
        raise IncompatibleVersion(f'config version "{version}" does not allow {command} (needs 1.1.0)')

    request.container_id = env.get("CNI_CONTAINERID", "")
    if request.container_id and not _CONTAINER_ID.fullmatch(request.container_id):
        raise InvalidEnvironment(
            f'CNI_CONTAINERID "{request.container_id}" has invalid characters '
            "(allowed: letters, digits, _ . -; first a letter or digit)"
        )
    request.ifname = env.get("CNI_IFNAME", "")
    if request.ifname:
        try:
            validate_ifname(request.ifname)
        except ValueError as exc:
            raise InvalidEnvironment(f"CNI_IFNAME: {exc}") from None
    request.netns = env.get("CNI_NETNS", "")
    if request.netns and not _NETNS_PATH.fullmatch(request.netns):
        raise InvalidEnvironment(
            f'CNI_NETNS "{request.netns}" is not a network namespace path '
            "(want /proc/<pid>/ns/net or /run/netns/<name>)"
        )
    request.args = parse_cni_args(env.get("CNI_ARGS", ""))
    request.path = [p for p in env.get("CNI_PATH", "").split(":") if p]
    return request


def logic_network_name(config: dict) -> str | None:
    """The logical network KubeVirt names in cni-args when netplug is its binding plugin."""
    args = config.get("args")
    cni = args.get("cni") if isinstance(args, dict) else None
    name = cni.get("logicNetworkName") if isinstance(cni, dict) else None
    return name if isinstance(name, str) and name else None


def load_binding(request: Request) -> BindingBase:
    """The binding's config model, merged from config, CNI_ARGS, args.cni and runtimeConfig."""
    config = request.config
    binding = config.get("binding")
    model = BINDING_MODELS.get(binding) if isinstance(binding, str) else None
    if model is None:
        raise InvalidConfig(
            f'config: unknown binding "{binding}"; netplug knows {sorted(BINDING_MODELS)}'
        )
    fields = set(model.model_fields)
    # runtime keys a binding does use (sriov's deviceID, which Multus injects) are kept
    merged = {k: v for k, v in config.items()
              if (k not in _RUNTIME_KEYS or k in fields) and not k.startswith("cni.dev/")}
    if "MAC" in request.args:
        merged["mac"] = request.args["MAC"]
    for source_name in ("args", "runtimeConfig"):
        source = config.get(source_name) or {}
        if not isinstance(source, dict):
            raise InvalidConfig(f"config: {source_name} must be an object")
        allowed = fields - {"binding", "type", "cniVersion", "name"}
        if source_name == "args":
            source = source.get("cni") or {}
            if not isinstance(source, dict):
                raise InvalidConfig("config: args.cni must be an object")
            allowed &= POD_SETTABLE
        # args and runtimeConfig may carry keys for other plugins: take only ours.
        merged.update({k: v for k, v in source.items() if k in allowed})
    logic_network = logic_network_name(config)
    if logic_network:
        # KubeVirt's network binding plugin: the NAD runs as its own Multus delegate (as netN)
        # with cni-args {logicNetworkName}; the pod interface is that network's pod<h> (the
        # handler falls back to eth0 when the logical network is the pod network).
        merged.setdefault("podInterface", naming.pod_interface_for_network(logic_network))
        merged.setdefault("vmInterface", logic_network)
    try:
        return model.model_validate(merged)
    except ValidationError as exc:
        raise _config_error(exc, merged) from None


def _config_error(exc: ValidationError, merged: dict) -> InvalidConfig | UnsupportedField:
    where, first = first_error(exc)
    if first["type"] == "extra_forbidden":
        value = json.dumps(merged.get(first["loc"][0]))[:80] if first["loc"] else ""
        return UnsupportedField(f'config: unsupported field "{where}" (value {value})')
    value = json.dumps(first.get("input"), default=str)[:80]
    message = first["msg"].removeprefix("Value error, ")
    return InvalidConfig(f"config: {where}: {message} (value {value})")
