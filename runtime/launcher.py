"""`netplug launch`: run one VM inside its pod's network namespace (KubeVirt's virt-launcher).

    netplug launch VMI.yaml [--netns /run/netns/POD] --state-dir DIR \\
        [--kernel K --initrd I --cmdline C] [--disk VOLUME=PATH] [--network-status FILE] \\
        [--termination-log FILE]

(--network-status: the pod's k8s.v1.cni.cncf.io/network-status, as the downward API mounts
it; SR-IOV interfaces take their VF's PCI address from its device-info. Without --netns the
launcher is already in its pod, as the compute container of a launcher pod: its netns and
mount namespace are the pod's own, and it may run as an unprivileged user with no capability
(netplug.cluster.launcher_pod). --termination-log: where the final reason goes, the
container's terminationMessagePath, which the controller reads. --disk PATH may be a
directory holding one image file, a containerDisk's copy. A cloudInitNoCloud volume without
--disk gets its NoCloud seed written into DIR, from the VMI.)

1. with --netns, enter the pod netns for good and give the process a private /run (libvirt
   leaves nothing on the host);
2. observe how the pod was wired for each VM interface (tap, MTU, the pod identity's MAC);
3. plan the domain (netplug.guest), log it, start it with libvirt's embedded QEMU driver
   (TCG unless KVM can really run guests: detected, not configured);
4. report status to DIR/status.json — phase Scheduled → Running → Succeeded/Failed, and
   `interfaces` as KubeVirt puts them in a VMI's status; DIR/ready exists while the domain
   runs (a launcher pod's readiness probe reads it);
5. serve hotplug on DIR/control.sock (one JSON request per connection: attach or detach an
   interface on a network the pod was already wired for);
6. on SIGTERM or SIGINT destroy the domain; exit when the domain has stopped.

Why the embedded driver: no daemon to start, supervise and clean up per pod; QEMU is this
process's child and lives in its netns, so it opens the taps the CNI made (`managed='no'`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import yaml

from netplug import naming
from netplug.bindings import DOMAIN_DEVICES
from netplug.bindings.base import WiredInterface
from netplug.errors import InvalidConfig, NetplugError
from netplug.guest import (
    MAX_QUEUES,
    BootSource,
    domain_name,
    interface_queues,
    plan_domain,
    pod_interface_of,
    sriov_pci_addresses,
)
from netplug.model import one_line
from netplug.model.multus import NetworkStatus, parse_network_status
from netplug.model.vm import Interface, Network, VirtualMachineInstance, vmi_from_document
from netplug.ops import link, netns
from netplug.ops.files import replace_file
from netplug.ops.libvirt import EmbeddedHypervisor, hardware_virtualization
from netplug.render.libvirt_xml import (
    domain_to_xml,
    interface_from_xml,
    interface_to_xml,
    to_string,
)
from runtime import logs
from runtime.seed import write_seed

log = logging.getLogger("netplug.launcher")
EMULATOR = "/usr/bin/qemu-system-x86_64"
LIBVIRT_ROOT = "/run/netplug-launcher/libvirt"


def observe(vmi: VirtualMachineInstance, interfaces: list[Interface],
            statuses: list[NetworkStatus]) -> dict[str, WiredInterface]:
    wired = {}
    vfs = sriov_pci_addresses(vmi, statuses, dict(os.environ))
    with link.session() as links:
        for iface in interfaces:
            network = vmi.network(iface.name)
            if network is None:
                raise InvalidConfig(f"interface {iface.name}: no network of that name in spec.networks")
            pod_iface = pod_interface_of(network)
            tap = links.get(naming.tap_name(pod_iface)) if iface.binding != "sriov" else None
            if iface.binding != "sriov" and tap is None:
                raise InvalidConfig(f"interface {iface.name}: tap {naming.tap_name(pod_iface)} is missing "
                                    "(was the pod wired by netplug's CNI?)")
            identity = links.get(pod_iface)
            wired[iface.name] = WiredInterface(
                name=iface.name, binding=iface.binding or "", tap=tap.name if tap else None,
                tap_queues=MAX_QUEUES if tap and tap.multi_queue else 1,
                mtu=tap.mtu if tap else None, identity_mac=identity.mac if identity else None,
                pod_addresses=identity.addresses if identity else [], pci_address=vfs.get(iface.name))
    return wired


def interface_status(vmi: VirtualMachineInstance, domain_xml: str, wired: dict[str, WiredInterface]) -> list[dict]:
    """status.interfaces as KubeVirt reports them without a guest agent: the pod IPs, the MAC
    the domain uses, and where the facts come from."""
    macs = {}
    for el in ET.fromstring(domain_xml).iter("interface"):  # nosec B314  # libvirt's XML of our own domain
        iface = interface_from_xml(el)
        if iface.alias and iface.alias.startswith("ua-"):
            macs[iface.alias[3:]] = iface.mac
    status = []
    for iface in vmi.spec.domain.devices.interfaces:
        if iface.name not in wired:
            continue
        network = vmi.network(iface.name)
        addresses = [a.split("/")[0] for a in wired[iface.name].pod_addresses if not a.startswith("fe80:")]
        entry = {"name": iface.name, "mac": macs.get(iface.name), "infoSource": "domain",
                 "podInterfaceName": pod_interface_of(network) if network else None}
        if network is not None and network.multus is not None:
            entry["infoSource"] = "domain, multus-status"
        if addresses:
            entry["ipAddress"], entry["ipAddresses"] = addresses[0], addresses
        status.append({k: v for k, v in entry.items() if v is not None})
    return status


def write_status_file(state_dir: str, status: dict) -> None:
    replace_file(os.path.join(state_dir, "status.json"), json.dumps(status))


class Launcher:
    def __init__(self, vmi: VirtualMachineInstance, state_dir: str, boot: BootSource,
                 statuses: list[NetworkStatus] | None = None, termination_log: str | None = None) -> None:
        self.vmi = vmi
        self.statuses = statuses or []
        self.state_dir = state_dir
        self.boot = boot
        self.stopped = threading.Event()
        #: SIGTERM arrived (possibly before the domain existed: it is destroyed once it does)
        self.terminating = threading.Event()
        self.stop_reason = ""
        self.status: dict = {"phase": "Scheduled", "domain": domain_name(vmi)}
        self.hypervisor: EmbeddedHypervisor | None = None
        self.dom = None
        self.wired: dict[str, WiredInterface] = {}
        self.termination_log = termination_log

    def write_status(self, **changes: object) -> None:
        self.status.update(changes, updated=time.time())
        write_status_file(self.state_dir, self.status)
        ready = os.path.join(self.state_dir, "ready")
        if self.status["phase"] == "Running":
            with open(ready, "w") as f:
                f.write(self.status["domain"] + "\n")
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(ready)
        if self.status["phase"] in ("Succeeded", "Failed") and self.termination_log:
            with contextlib.suppress(OSError), open(self.termination_log, "w") as f:
                f.write(f'{self.status["phase"]}: {self.status.get("reason") or "the domain stopped"}')
        log.info("status %s", self.status["phase"], extra={"data": self.status})

    def start(self) -> None:
        self.write_status()
        interfaces = [i for i in self.vmi.spec.domain.devices.interfaces if i.state != "absent"]
        self.wired = observe(self.vmi, interfaces, self.statuses)
        for iface in interfaces:
            if interface_queues(self.vmi, iface) and self.wired[iface.name].tap_queues == 1:
                log.warning("interface %s: networkInterfaceMultiqueue, but tap %s is single-queue: one queue",
                            iface.name, self.wired[iface.name].tap)
        accelerated = hardware_virtualization()
        domain = plan_domain(self.vmi, self.wired, self.boot, accelerated=accelerated,
                             serial_log=os.path.join(self.state_dir, "serial.log"), emulator=EMULATOR)
        xml = to_string(domain_to_xml(domain))
        with open(os.path.join(self.state_dir, "domain.xml"), "w") as f:
            f.write(xml)
        log.info("starting domain %s (%s)", domain.name, "KVM" if accelerated else "TCG: no usable KVM")
        # libvirt's root lives in the private /run: short paths (QEMU's monitor socket must fit
        # a unix socket address) and nothing left behind when the launcher exits
        self.hypervisor = EmbeddedHypervisor(LIBVIRT_ROOT)
        self.dom = self.hypervisor.start(xml, self.on_stop)
        live = self.hypervisor.live_xml(self.dom)
        self.write_status(phase="Running", qemuPid=self.hypervisor.qemu_pid(self.dom),
                          interfaces=interface_status(self.vmi, live, self.wired))

    def on_stop(self, reason: str) -> None:
        self.stop_reason = reason
        self.stopped.set()

    def stop(self) -> None:
        self.terminating.set()
        if self.hypervisor is not None and self.dom is not None and not self.stopped.is_set():
            log.info("destroying the domain")
            self.hypervisor.destroy(self.dom)

    def finish(self) -> int:
        failed = self.stop_reason in ("crashed", "failed")
        self.write_status(phase="Failed" if failed else "Succeeded", reason=self.stop_reason)
        if self.hypervisor is not None:
            self.hypervisor.close()
        return 1 if failed else 0

    # --- hotplug -------------------------------------------------------------------------

    def control(self, request: dict) -> dict:
        op = request.get("op")
        if self.dom is None or self.hypervisor is None or self.stopped.is_set():
            return {"error": "the domain is not running"}
        if op == "attach":
            iface = Interface.model_validate(request["interface"])
            network = Network.model_validate(request["network"])
            # as KubeVirt's dynamic networks: a bridge on a secondary network; checked before the
            # VM's spec learns of the network, so a refusal changes nothing
            if iface.binding != "bridge":
                return {"error": f"interface {iface.name}: only bridge interfaces can be hot-plugged"}
            if self.vmi.network(network.name) is None:
                self.vmi.spec.networks.append(network)
            self.wired.update(observe(self.vmi, [iface], self.statuses))
            self.vmi.spec.domain.devices.interfaces.append(iface)
            device = DOMAIN_DEVICES[iface.binding](self.vmi, iface, self.wired[iface.name], None)
            self.hypervisor.attach(self.dom, to_string(interface_to_xml(device)))
        elif op == "detach":
            name = request.get("name")
            live = ET.fromstring(self.hypervisor.live_xml(self.dom))  # nosec B314  # libvirt's XML of our own domain
            match = [el for el in live.iter("interface") if interface_from_xml(el).alias == f"ua-{name}"]
            if not match:
                return {"error": f"interface {name} is not attached"}
            self.hypervisor.detach(self.dom, ET.tostring(match[0], encoding="unicode"))
            self.vmi.spec.domain.devices.interfaces = [
                i for i in self.vmi.spec.domain.devices.interfaces if i.name != name]
            self.wired.pop(name, None)
        else:
            return {"error": f"unknown op {op!r}; want attach or detach"}
        live = self.hypervisor.live_xml(self.dom)
        self.write_status(interfaces=interface_status(self.vmi, live, self.wired))
        return {"ok": True}

    def serve_control(self) -> None:
        path = os.path.join(self.state_dir, "control.sock")
        try:
            os.unlink(path)  # left by an earlier launcher with this state dir
        except FileNotFoundError:
            pass
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            with _socket_path(self.state_dir, "control.sock") as short:
                server.bind(short)
        finally:
            os.umask(old)
        server.listen(4)

        def loop() -> None:
            while True:
                conn, _ = server.accept()
                with conn:
                    data = b""
                    while chunk := conn.recv(65536):
                        data += chunk
                    try:
                        request = json.loads(data)
                        if not isinstance(request, dict):
                            raise ValueError("a request is a JSON object")
                        answer = self.control(request)
                    except NetplugError as exc:
                        answer = {"error": exc.msg}
                    except Exception as exc:  # one bad request never stops the control loop
                        answer = {"error": f"{type(exc).__name__}: {exc}"}
                    conn.sendall(json.dumps(answer).encode())
        threading.Thread(target=loop, name="control", daemon=True).start()


@contextlib.contextmanager
def _socket_path(directory: str, name: str) -> Iterator[str]:
    """A path to `directory/name` short enough for a unix socket address (108 bytes), however
    deep the state dir is: through an open descriptor of the directory."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{name}"
    finally:
        os.close(fd)


def control_request(state_dir: str, request: dict, timeout: float = 60) -> dict:
    """Send one hotplug request to a running launcher (what virt-handler does in KubeVirt)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock, _socket_path(state_dir, "control.sock") as path:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(json.dumps(request).encode())
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return json.loads(data)


def run(args: argparse.Namespace) -> int:
    logs.setup(args.log_level)
    os.makedirs(args.state_dir, mode=0o700, exist_ok=True)
    state_dir = os.path.realpath(args.state_dir)
    launcher: Launcher | None = None
    try:
        launcher = _prepare(args, state_dir)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: launcher.stop())
        launcher.serve_control()  # before the domain exists: a bind failure then leaves no VM behind
        launcher.start()
    except Exception as exc:
        # whatever went wrong, status.json says Failed and why (up and the controller read it)
        if launcher is None:
            write_status_file(state_dir, {"phase": "Failed", "reason": one_line(exc), "updated": time.time()})
        else:
            launcher.write_status(phase="Failed", reason=one_line(exc))
        raise
    if launcher.terminating.is_set():
        launcher.stop()  # told to stop while the domain was being created
    while not launcher.stopped.wait(0.5):
        pass
    return launcher.finish()


def _prepare(args: argparse.Namespace, state_dir: str) -> Launcher:
    """The Launcher for the VM file and boot source, inside the pod netns."""
    try:
        with open(args.vmi) as f:
            vmi = vmi_from_document(yaml.safe_load(f))
    except yaml.YAMLError as exc:
        raise InvalidConfig(f"{args.vmi}: not YAML ({str(exc).splitlines()[0]})") from None
    for name in ("kernel", "initrd"):
        path = getattr(args, name)
        if path and (not os.path.isabs(path) or not os.path.isfile(path)):
            raise InvalidConfig(f"--{name} {path}: not an absolute path to a file")
    disks = parse_disks(args.disk or [])
    for volume in vmi.spec.volumes:  # cloudInitNoCloud without an image given: its seed, made here
        if "cloudInitNoCloud" in volume and volume.get("name") not in disks:
            disks[volume["name"]] = write_seed(vmi, volume["name"], state_dir)
    if args.netns:  # in a cluster the launcher already runs in its pod's netns
        netns.enter_for_process(args.netns)
        netns.private_run_dir()
    statuses = []
    if args.network_status:
        with open(args.network_status) as f:
            text = f.read()
        # empty when the pod has no network-status (the downward API writes the annotation as is)
        statuses = parse_network_status(text) if text.strip() else []
    return Launcher(vmi, state_dir, BootSource(kernel=args.kernel, initrd=args.initrd, cmdline=args.cmdline,
                                               disks=disks, formats={v: image_format(p) for v, p in disks.items()}),
                    statuses, termination_log=args.termination_log)


def parse_disks(items: list[str]) -> dict[str, str]:
    """`--disk VOLUME=PATH` (of `up` and `launch`): volume -> image, each volume once, each
    path an absolute path to a file, or to a directory holding exactly one (a containerDisk
    copied into a launcher pod: KubeVirt's rule for an image's /disk)."""
    disks: dict[str, str] = {}
    for item in items:
        volume, sep, path = item.partition("=")
        if sep and volume and os.path.isabs(path) and os.path.isdir(path):
            found = sorted(e.path for e in os.scandir(path) if e.is_file())
            if len(found) != 1:
                raise InvalidConfig(f'--disk "{item}": the directory must hold one image file, it holds '
                                    f"{len(found)}{': ' + ', '.join(os.path.basename(f) for f in found) if found else ''}")
            path = found[0]
        if not sep or not volume or not os.path.isabs(path) or not os.path.isfile(path):
            raise InvalidConfig(f'--disk "{item}": want VOLUME=/absolute/path/to/an/image/file')
        if volume in disks:
            raise InvalidConfig(f'--disk "{item}": volume {volume} is given twice')
        disks[volume] = path
    return disks


QCOW2_MAGIC = b"QFI\xfb"


def image_format(path: str) -> str:
    """What libvirt must be told an image is: qcow2 (by its magic), else raw."""
    with open(path, "rb") as f:
        return "qcow2" if f.read(4) == QCOW2_MAGIC else "raw"
