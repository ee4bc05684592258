"""Executing delegated CNI plugins (IPAM) the way a runtime does: env in, JSON on stdin."""

from __future__ import annotations

import json
import os
import re
import subprocess

from netplug.errors import DelegateError, InvalidConfig

_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
PASSED_ENV = ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH")


def find(plugin_type: str, cni_path: list[str]) -> str:
    if not _TYPE.match(plugin_type or ""):
        raise InvalidConfig(f'ipam.type "{plugin_type}" is not a plugin name')
    for directory in cni_path:
        candidate = os.path.join(directory, plugin_type)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise InvalidConfig(f'ipam.type: plugin "{plugin_type}" not found in CNI_PATH {cni_path}')


def invoke(plugin_type: str, command: str, config: dict, env: dict[str, str],
           cni_path: list[str], timeout: float = 60.0, extra_env: dict[str, str] | None = None) -> dict | None:
    """Run the plugin; its result (ADD, VERSION) or None; its error as DelegateError, with the
    plugin's own code and msg (`details` says which plugin and verb, then the plugin's details).
    `extra_env` reaches the plugin as it is (e.g. NETPLUG_AGENT_SOCKET for netplug's shim)."""
    binary = find(plugin_type, cni_path)
    child_env = {**(extra_env or {}), **{k: env[k] for k in PASSED_ENV if k in env}}
    child_env["CNI_COMMAND"] = command
    child_env["PATH"] = os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    try:
        proc = subprocess.run([binary], input=json.dumps(config).encode(), env=child_env,
                              capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise DelegateError(f"{plugin_type} {command} did not finish in {timeout:.0f} s", code=11) from None
    out = proc.stdout.decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        try:
            error = json.loads(out)
            code = int(error.get("code", 999))
            msg = error.get("msg")
            # the plugin's code and msg as it gave them; which plugin and verb goes in details
            details = f"{plugin_type} {command}" + (f": {error['details']}" if error.get("details") else "")
            if not isinstance(msg, str) or not msg:
                msg, details = f"{plugin_type} {command} failed with code {code}", out[:500]
            raise DelegateError(msg, details=details, code=code, plugin=plugin_type, command=command)
        except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
            stderr = proc.stderr.decode("utf-8", "replace").strip()
            raise DelegateError(f"{plugin_type} {command} failed with exit {proc.returncode}",
                                details=(out + "\n" + stderr).strip()) from None
    if not out:
        return None
    try:
        return json.loads(out)
    except json.JSONDecodeError:
        raise DelegateError(f"{plugin_type} {command} printed something that is not JSON", details=out[:500]) from None
