"""A launcher pod's disks: the VMI's containerDisk and cloudInitNoCloud volumes in the pod.

- containerDisk: the image is one of the pod's init containers, which copies its disk (the
  volume's `path` in the image, or the image's `/disk` directory, which must then hold exactly
  one file, KubeVirt's rule) into the `disks` emptyDir; the compute container gets
  `--disk VOLUME=/var/run/netplug/disks/VOLUME`, which the launcher resolves (a directory: its
  one file). containerDisk images are mostly `FROM scratch`, with no program to copy with: the
  copier is the static busybox of netplug's image, put into a shared emptyDir by an init
  container of netplug's image that runs first (KubeVirt shares its container-disk binary the
  same way). The copy runs as KubeVirt's qemu user (107), the owner KubeVirt asks containerDisk
  images to give their disks, with no capabilities; a last init container makes the copies
  writable for it (they keep the image's 0440).
  KubeVirt itself never copies: virt-handler, privileged on the node, bind-mounts the image's
  disk into the launcher. netplug has no node component that does, so the disk costs its size
  in the node's ephemeral storage and its copy time at each start (an image volume, Kubernetes
  1.31+'s `volumes[].image`, would remove both once clusters have it).
- cloudInitNoCloud: nothing in the pod: the launcher writes the NoCloud seed from its VMI (the
  downward API shows it the spec) into its state dir, as `netplug up` does for standalone VMs.
- any other volume kind is refused, naming the field: a disk silently missing would boot a
  guest without it.

May import: netplug.admission, netplug.errors, the standard library.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field

from netplug.admission import name_problem
from netplug.errors import InvalidField

DISKS_DIR = "/var/run/netplug/disks"
BIN_DIR = "/var/run/netplug/bin"
#: static (busybox-static): runs in a containerDisk image that has no libc
BUSYBOX = "/bin/busybox"
#: where a containerDisk image keeps its disk when the volume names no `path`
DISK_DIR_IN_IMAGE = "/disk"
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
SUPPORTED = ("containerDisk", "cloudInitNoCloud")


@dataclass
class PodDisks:
    init_containers: list[dict] = field(default_factory=list)
    volumes: list[dict] = field(default_factory=list)
    #: the compute container's mounts and `netplug launch` arguments
    mounts: list[dict] = field(default_factory=list)
    launch_args: list[str] = field(default_factory=list)
    pull_secrets: list[dict] = field(default_factory=list)


def _volume_kind(volume: dict, where: str) -> str:
    kinds = [k for k in volume if k != "name"]
    if len(kinds) != 1 or kinds[0] not in SUPPORTED:
        raise InvalidField(where, {k: volume[k] for k in kinds},
                           "netplug's launcher pods take containerDisk and cloudInitNoCloud volumes only")
    return kinds[0]


def _copy_command(source: dict, where: str, target: str) -> list[str]:
    path = source.get("path")
    if path is None:  # the image's /disk holds the disk: copy the directory's content
        return [f"{BIN_DIR}/busybox", "cp", "-rL", f"{DISK_DIR_IN_IMAGE}/.", target]
    if not isinstance(path, str) or not path or "\0" in path or ".." in path.split("/"):
        raise InvalidField(f"{where}.path", path, 'must be a path in the image, without ".."')
    return [f"{BIN_DIR}/busybox", "cp", posixpath.join("/", path), target]


def pod_disks(spec: dict, base: str, image: str, security: Callable[[], dict]) -> PodDisks:
    """The init containers, volumes, compute mounts, launch arguments and pull secrets for the
    VMI spec's volumes (`base`: the spec's path for errors; `image`: netplug's; `security()`:
    a copier's securityContext)."""
    disks = PodDisks()
    targets: list[str] = []
    for n, volume in enumerate(spec.get("volumes") or []):
        where = f"{base}.volumes[{n}]"
        if not isinstance(volume, dict):
            raise InvalidField(where, volume, "must be an object")
        name = volume.get("name")
        if problem := name_problem(name, label=True):
            raise InvalidField(f"{where}.name", name, problem)
        kind = _volume_kind(volume, where)
        source = volume[kind]
        if not isinstance(source, dict):
            raise InvalidField(f"{where}.{kind}", source, "must be an object")
        if kind == "cloudInitNoCloud":
            for key in ("secretRef", "networkDataSecretRef"):
                if source.get(key) is not None:
                    raise InvalidField(f"{where}.cloudInitNoCloud.{key}", source[key],
                                       "netplug's launcher builds the seed from userData/networkData "
                                       "(or their Base64 forms) only")
            continue
        where = f"{where}.containerDisk"
        if not isinstance(source.get("image"), str) or not source["image"]:
            raise InvalidField(f"{where}.image", source.get("image"), "is required: the image holding the disk")
        policy = source.get("imagePullPolicy")
        if policy is not None and policy not in PULL_POLICIES:
            raise InvalidField(f"{where}.imagePullPolicy", policy, f"must be one of {', '.join(PULL_POLICIES)}")
        target = f"{DISKS_DIR}/{name}"
        copier = {"name": f"disk-{n}", "image": source["image"],
                  "command": _copy_command(source, where, target),
                  "securityContext": security(),
                  "volumeMounts": [{"name": "netplug-bin", "mountPath": BIN_DIR, "readOnly": True},
                                   {"name": "disks", "mountPath": DISKS_DIR}]}
        if policy is not None:
            copier["imagePullPolicy"] = policy
        disks.init_containers.append(copier)
        disks.launch_args += ["--disk", f"{name}={target}"]
        targets.append(target)
        secret = source.get("imagePullSecret")
        if secret and {"name": secret} not in disks.pull_secrets:
            disks.pull_secrets.append({"name": secret})
    if disks.init_containers:
        disks.init_containers.insert(0, {
            "name": "netplug-bin", "image": image, "imagePullPolicy": "IfNotPresent",
            "command": [BUSYBOX, "cp", BUSYBOX, f"{BIN_DIR}/busybox"],
            "securityContext": security(),
            "volumeMounts": [{"name": "netplug-bin", "mountPath": BIN_DIR}]})
        # the copies keep their image's mode (KubeVirt asks for 0440): QEMU writes to its disks
        # (ephemeral, as KubeVirt's containerDisk overlay is), so they are made writable for their
        # owner, the launcher's user that made them
        disks.init_containers.append({
            "name": "disks-writable", "image": image, "imagePullPolicy": "IfNotPresent",
            "command": [BUSYBOX, "chmod", "-R", "u+w", *targets], "securityContext": security(),
            "volumeMounts": [{"name": "disks", "mountPath": DISKS_DIR}]})
        disks.volumes += [{"name": "netplug-bin", "emptyDir": {}}, {"name": "disks", "emptyDir": {}}]
        disks.mounts.append({"name": "disks", "mountPath": DISKS_DIR})
    return disks
