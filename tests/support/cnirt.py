"""A small CNI runtime for tests and benchmarks: exec plugins the way libcni does.

ADD runs a conflist's plugins in order, passing each the previous result; DEL runs them in
reverse with the final result as prevResult; CHECK runs them in order with the final result.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field


@dataclass
class PluginRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict | None:
        return json.loads(self.stdout) if self.stdout.strip() else None


def sandbox_ips(result: dict, ifname: str = "eth0") -> list[str]:
    """The addresses (without prefix length) a result gives the sandbox interface `ifname`."""
    index = next(i for i, iface in enumerate(result["interfaces"]) if iface["name"] == ifname and iface.get("sandbox"))
    return [ip["address"].split("/")[0] for ip in result["ips"] if ip.get("interface") == index]


class PluginError(Exception):
    def __init__(self, plugin: str, run: PluginRun) -> None:
        super().__init__(f"{plugin} failed ({run.returncode}): {run.stdout.strip()} {run.stderr.strip()[-2000:]}")
        self.run = run
        self.error = run.json if run.stdout.strip().startswith("{") else None


def exec_plugin(binary: str, command: str, config: dict | bytes, *, container_id: str = "",
                netns: str = "", ifname: str = "", cni_path: list[str] = (), args: str = "",
                extra_env: dict | None = None, timeout: float = 60) -> PluginRun:
    env = {
        "CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns,
        "CNI_IFNAME": ifname, "CNI_ARGS": args, "CNI_PATH": ":".join(cni_path),
        **(extra_env or {}),
    }
    stdin = config if isinstance(config, bytes) else json.dumps(config).encode()
    return exec_with_env(binary, env, stdin, timeout=timeout)


def exec_with_env(binary: str, env: dict[str, str], stdin: bytes, *, timeout: float = 60) -> PluginRun:
    """Exec a plugin with exactly `env` (plus PATH) and `stdin`: variables may be missing, or
    carry bytes that are not UTF-8 (as surrogate escapes, which is how os.environ holds them)."""
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), **env}
    proc = subprocess.run([binary], input=stdin, env=env, capture_output=True, timeout=timeout, check=False)
    return PluginRun(proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"))


@dataclass
class Runtime:
    """Finds plugins on `cni_path`; `extra_env` reaches every plugin (NETPLUG_* settings)."""

    cni_path: list[str]
    extra_env: dict = field(default_factory=dict)

    def find(self, plugin_type: str) -> str:
        for directory in self.cni_path:
            candidate = os.path.join(directory, plugin_type)
            if os.access(candidate, os.X_OK):
                return candidate
        raise FileNotFoundError(plugin_type)

    def _config(self, conflist: dict, plugin: dict, prev: dict | None) -> dict:
        config = {"cniVersion": conflist["cniVersion"], "name": conflist["name"], **plugin}
        if prev is not None:
            config["prevResult"] = prev
        return config

    def run(self, plugin: dict, command: str, config: dict, **kw) -> PluginRun:
        return exec_plugin(self.find(plugin["type"]), command, config, cni_path=self.cni_path,
                           extra_env=self.extra_env, **kw)

    def add(self, conflist: dict, **kw) -> dict:
        prev = None
        for plugin in conflist["plugins"]:
            run = self.run(plugin, "ADD", self._config(conflist, plugin, prev), **kw)
            if run.returncode != 0:
                raise PluginError(plugin["type"], run)
            prev = run.json
        return prev

    def check(self, conflist: dict, result: dict, **kw) -> None:
        for plugin in conflist["plugins"]:
            run = self.run(plugin, "CHECK", self._config(conflist, plugin, result), **kw)
            if run.returncode != 0:
                raise PluginError(plugin["type"], run)

    def delete(self, conflist: dict, result: dict | None, **kw) -> None:
        for plugin in reversed(conflist["plugins"]):
            run = self.run(plugin, "DEL", self._config(conflist, plugin, result), **kw)
            if run.returncode != 0:
                raise PluginError(plugin["type"], run)
