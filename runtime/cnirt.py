"""A CNI runtime in Python — what libcni is in Go: run a conflist's plugins for one attachment.

ADD runs the plugins in order, each given the previous one's result as prevResult, and caches
the final result with the config and the attachment (per network, container and interface),
so DEL and CHECK work later from the cache alone. DEL runs the plugins in reverse with the
cached result; CHECK runs them in order with it. A failed ADD is followed by a DEL of the
whole list, so nothing is left half made. Plugin errors come back as the plugin gave them
(code, msg, details) in a DelegateError.

Per plugin, `runtimeConfig` is the capabilities the plugin declares intersected with the
attachment's capability args (mac, ips, portMappings, ...), and `args.cni` carries the
attachment's cni-args, as Multus passes them.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field

from netplug.errors import StateError
from netplug.ops import plugin
from netplug.ops.files import replace_file


@dataclass
class Attachment:
    container_id: str
    netns: str
    ifname: str
    #: CNI_ARGS, e.g. {"K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": "virt-launcher-x"}
    args: dict[str, str] = field(default_factory=dict)
    #: offered to plugins that declare the capability (runtimeConfig)
    capability_args: dict = field(default_factory=dict)
    #: merged into every plugin's args.cni (Multus cni-args)
    cni_args: dict = field(default_factory=dict)

    @property
    def cni_args_env(self) -> str:
        pairs = {"IgnoreUnknown": "1", **self.args}
        return ";".join(f"{k}={v}" for k, v in pairs.items())


class CNIRuntime:
    def __init__(self, cni_path: list[str], cache_dir: str, env: dict[str, str] | None = None) -> None:
        self.cni_path = cni_path
        self.cache_dir = cache_dir
        #: variables every plugin gets besides CNI_* (e.g. where netplug's agent listens)
        self.env = env or {}

    # --- cache ---------------------------------------------------------------------------

    def _cache_path(self, network: str, attachment: Attachment) -> str:
        key = hashlib.sha256(f"{network}/{attachment.container_id}/{attachment.ifname}".encode()).hexdigest()[:24]
        return os.path.join(self.cache_dir, "results", f"{key}.json")

    def cached(self, network: str, attachment: Attachment) -> dict | None:
        try:
            with open(self._cache_path(network, attachment)) as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def _cache(self, conflist: dict, attachment: Attachment, result: dict | None) -> None:
        path = self._cache_path(conflist["name"], attachment)
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            replace_file(path, json.dumps({"kind": "netplugCniCacheV1", "config": conflist,
                                                 "attachment": asdict(attachment), "result": result}))
        except OSError as exc:
            raise StateError(f"cannot write the CNI cache {path}: {exc.strerror}") from None

    def _forget(self, network: str, attachment: Attachment) -> None:
        try:
            os.unlink(self._cache_path(network, attachment))
        except FileNotFoundError:
            pass

    # --- verbs ---------------------------------------------------------------------------

    def _config(self, conflist: dict, plugin_conf: dict, attachment: Attachment, prev: dict | None) -> dict:
        config = {"cniVersion": conflist["cniVersion"], "name": conflist["name"],
                  **{k: v for k, v in plugin_conf.items() if k != "capabilities"}}
        declared = plugin_conf.get("capabilities") or {}
        runtime_config = {k: v for k, v in attachment.capability_args.items() if declared.get(k)}
        if runtime_config:
            config["runtimeConfig"] = runtime_config
        if attachment.cni_args:
            args = dict(config.get("args") or {})
            args["cni"] = {**(args.get("cni") or {}), **attachment.cni_args}
            config["args"] = args
        if prev is not None:
            config["prevResult"] = prev
        return config

    def _env(self, attachment: Attachment) -> dict[str, str]:
        return {"CNI_CONTAINERID": attachment.container_id, "CNI_NETNS": attachment.netns,
                "CNI_IFNAME": attachment.ifname, "CNI_ARGS": attachment.cni_args_env,
                "CNI_PATH": ":".join(self.cni_path)}

    def _run(self, command: str, config: dict, attachment: Attachment) -> dict | None:
        return plugin.invoke(config["type"], command, config, self._env(attachment), self.cni_path,
                             extra_env=self.env)

    def add(self, conflist: dict, attachment: Attachment) -> dict:
        self._cache(conflist, attachment, None)  # so a DEL after a crash still knows the config
        prev = None
        try:
            for plugin_conf in conflist["plugins"]:
                prev = self._run("ADD", self._config(conflist, plugin_conf, attachment, prev), attachment)
        except Exception:
            self.delete(conflist, attachment, best_effort=True)
            raise
        self._cache(conflist, attachment, prev)
        return prev or {}

    def check(self, conflist: dict, attachment: Attachment) -> None:
        entry = self.cached(conflist["name"], attachment)
        if entry is None or entry["result"] is None:
            raise StateError(f"no cached result for {conflist['name']} {attachment.container_id}/{attachment.ifname}")
        for plugin_conf in conflist["plugins"]:
            self._run("CHECK", self._config(conflist, plugin_conf, attachment, entry["result"]), attachment)

    def delete(self, conflist: dict | None, attachment: Attachment, *, network: str | None = None,
               best_effort: bool = False) -> None:
        """DEL in reverse order with the cached result; `conflist` None: the cached config."""
        name = conflist["name"] if conflist else network or ""
        entry = self.cached(name, attachment)
        if conflist is None:
            if entry is None:
                return  # never added, or already deleted
            conflist = entry["config"]
        prev = entry["result"] if entry else None
        for plugin_conf in reversed(conflist["plugins"]):
            try:
                self._run("DEL", self._config(conflist, plugin_conf, attachment, prev), attachment)
            except Exception:
                if not best_effort:
                    raise  # the cache stays: DEL can be retried
        self._forget(name, attachment)
