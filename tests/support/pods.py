"""Running a pod's container commands on this machine, as far as that can be done without a
kubelet or a container runtime (neither can run here): a container's command with each of
its volume mounts' paths replaced by a local directory that plays the volume.

    argv = container_argv(container, {"cni-bin": tmp / "bin"})

The command then runs with this machine's programs, not the image's: what it shows is what
the command does with the files the pod spec gives it, not that the image has the programs.
"""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).parents[2]


def manifest_objects(*names: str) -> list[dict]:
    """The objects of manifests/base/<name>.yaml, as written (no kustomize needed)."""
    return [d for name in names for d in yaml.safe_load_all((ROOT / "manifests" / "base" / name).read_text()) if d]


def workload(kind: str, name: str) -> dict:
    """The pod spec of a DaemonSet or Deployment in manifests/base."""
    for document in manifest_objects("agent.yaml", "controller.yaml", "webhook.yaml"):
        if document["kind"] == kind and document["metadata"]["name"] == name:
            return document["spec"]["template"]["spec"]
    raise KeyError(f"no {kind} {name} in manifests/base")


def container(pod_spec: dict, name: str) -> dict:
    for c in pod_spec.get("initContainers", []) + pod_spec["containers"]:
        if c["name"] == name:
            return c
    raise KeyError(f"no container {name} in the pod")


def mount_paths(container: dict, volumes: dict[str, Path]) -> dict[str, Path]:
    """mountPath -> the local directory (or file) standing for the volume, for each of the
    container's mounts of a volume in `volumes`."""
    return {m["mountPath"]: volumes[m["name"]] for m in container.get("volumeMounts", []) if m["name"] in volumes}


def local_path(path: str, mounts: dict[str, Path]) -> str:
    """A path inside the container as a local path, through the deepest mount that holds it."""
    for mount in sorted(mounts, key=len, reverse=True):
        if path == mount or path.startswith(mount.rstrip("/") + "/"):
            return str(mounts[mount]) + path[len(mount.rstrip("/")):]
    return path


def container_argv(container: dict, volumes: dict[str, Path], directories: dict[str, Path] | None = None) -> list[str]:
    """The container's command + args, each argument (or the PATH of NAME=PATH) that is a path under one of its mounts
    (or under one of `directories`: paths in the container's own file system, such as the
    directory the runtime makes to hold several mounts) replaced by the local path."""
    mounts = mount_paths(container, volumes) | (directories or {})
    argv = []
    for arg in container.get("command", []) + container.get("args", []):
        key, sep, value = arg.partition("=")  # VOLUME=PATH (netplug launch --disk)
        argv.append(f"{key}={local_path(value, mounts)}" if sep and value.startswith("/") and not key.startswith("/")
                    else local_path(arg, mounts))
    return argv
