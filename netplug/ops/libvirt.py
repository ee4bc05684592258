"""libvirt with its embedded QEMU driver: no daemon, QEMU runs as this process's child.

`EmbeddedHypervisor(root)` keeps every libvirt file under `root` (config, state, logs) and
runs the event loop that delivers lifecycle events. The qemu.conf it writes is the minimal
one this machine kind needs: QEMU as root when this process is root, else as this process's
own user (a launcher pod's, with no capability), no DAC relabelling or cgroups, stdio to
files (no virtlogd). Domains are transient: `start(xml)` creates one, and it is gone once it stops.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable

import libvirt

from netplug.errors import HypervisorError
from netplug.ops.proc import live_argv, pids_mentioning

#: as root, QEMU runs as root; unprivileged (a launcher pod's user), as that user: libvirt
#: would chown its files to a user named here, which only root may
QEMU_CONF_AS_ROOT = """user = "root"
group = "root"
"""
QEMU_CONF = """dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
stdio_handler = "file"
cgroup_controllers = [ ]
namespaces = [ ]
"""

#: libvirt's reasons for a stopped domain, as words
STOP_REASONS = {
    libvirt.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED: "destroyed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_MIGRATED: "migrated",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_SAVED: "saved",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_FAILED: "failed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT: "snapshot",
}


def hardware_virtualization() -> bool:
    """True when KVM can run guests: /dev/kvm and a CPU with vmx or svm. (A /dev/kvm without
    them, as on this project's machine kind, cannot boot a normal guest: use TCG.)"""
    if not os.path.exists("/dev/kvm"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            return re.search(r"^flags\s*:.*\b(vmx|svm)\b", f.read(), re.M) is not None
    except OSError:
        return False


_event_loop_started = False
_event_loop_lock = threading.Lock()


def _start_event_loop() -> None:
    global _event_loop_started
    with _event_loop_lock:
        if _event_loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()
        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _event_loop_started = True


def _live_device_change(call: Callable[[str, int], int], device_xml: str, what: str) -> None:
    try:
        call(device_xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    except libvirt.libvirtError as exc:
        raise HypervisorError(f"cannot {what} the device: {exc}") from None


def qemu_pids(domain_name: str) -> list[int]:
    """Live QEMU processes of a domain, found by their `-name guest=<name>,` argument."""
    return [pid for pid in pids_mentioning(f"guest={domain_name},".encode())
            if b"qemu" in (live_argv(pid) or [b""])[0]]


class EmbeddedHypervisor:
    def __init__(self, root: str) -> None:
        os.makedirs(os.path.join(root, "etc"), exist_ok=True)
        with open(os.path.join(root, "etc", "qemu.conf"), "w") as f:
            f.write((QEMU_CONF_AS_ROOT if os.geteuid() == 0 else "") + QEMU_CONF)
        libvirt.registerErrorHandler(lambda *args: None, None)  # errors arrive as exceptions
        _start_event_loop()
        try:
            self.conn = libvirt.open(f"qemu:///embed?root={root}")
        except libvirt.libvirtError as exc:
            raise HypervisorError(f"cannot open libvirt's embedded QEMU driver: {exc}") from None

    def start(self, xml: str, on_stop: Callable[[str], None]) -> libvirt.virDomain:
        """Create the transient domain; `on_stop(reason)` runs when it stops."""
        def lifecycle(conn, dom, event, detail, opaque) -> None:  # noqa: ANN001
            if event == libvirt.VIR_DOMAIN_EVENT_STOPPED:
                on_stop(STOP_REASONS.get(detail, "unknown"))
        self.conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lifecycle, None)
        try:
            return self.conn.createXML(xml, 0)
        except libvirt.libvirtError as exc:
            raise HypervisorError(f"libvirt refused the domain: {exc}") from None

    @staticmethod
    def attach(dom: libvirt.virDomain, device_xml: str) -> None:
        _live_device_change(dom.attachDeviceFlags, device_xml, "attach")

    @staticmethod
    def detach(dom: libvirt.virDomain, device_xml: str) -> None:
        _live_device_change(dom.detachDeviceFlags, device_xml, "detach")

    @staticmethod
    def live_xml(dom: libvirt.virDomain) -> str:
        return dom.XMLDesc(0)

    @staticmethod
    def qemu_pid(dom: libvirt.virDomain) -> int | None:
        pids = qemu_pids(dom.name())
        return pids[0] if pids else None

    @staticmethod
    def destroy(dom: libvirt.virDomain) -> None:
        try:
            dom.destroy()
        except libvirt.libvirtError:
            pass  # already gone

    def close(self) -> None:
        try:
            self.conn.close()
        except libvirt.libvirtError:
            pass
