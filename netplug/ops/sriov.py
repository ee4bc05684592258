"""SR-IOV virtual functions: find a VF and its PF in sysfs, read and set the VF's settings
through the PF (netlink), and tell whether its driver leaves it to a VM (vfio-pci).

The sysfs root is configurable (NETPLUG_SYSFS_ROOT, default /sys) so the discovery runs
against a fake tree where no SR-IOV hardware exists. `get_vf_config` and `set_vf_config` are
the only netlink calls; they act on the PF in the node's netns.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from netplug.errors import InvalidConfig, KernelError

#: drivers that hand a VF to user space (a VM) rather than making a netdev
USERSPACE_DRIVERS = ("vfio-pci", "uio_pci_generic", "igb_uio")
_VIRTFN = re.compile(r"^virtfn(\d+)$")


def sysfs_root() -> str:
    return os.environ.get("NETPLUG_SYSFS_ROOT", "/sys")


@dataclass
class VirtualFunction:
    pci: str
    pf_pci: str
    pf: str  # the PF's netdev
    index: int
    driver: str | None
    #: the VF's netdev when a kernel driver owns it
    netdev: str | None

    @property
    def userspace(self) -> bool:
        return self.driver in USERSPACE_DRIVERS


def find_vf(pci: str, root: str | None = None) -> VirtualFunction:
    root = root or sysfs_root()
    device = os.path.join(root, "bus", "pci", "devices", pci)
    if not os.path.isdir(device):
        raise InvalidConfig(f'deviceID: no PCI device "{pci}" (looked in {root}/bus/pci/devices)')
    physfn = os.path.join(device, "physfn")
    if not os.path.exists(physfn):
        raise InvalidConfig(f'deviceID: PCI device "{pci}" is not an SR-IOV virtual function (no physfn)')
    pf_dir = os.path.realpath(physfn)
    pf_pci = os.path.basename(pf_dir)
    pf_nets = sorted(os.listdir(os.path.join(pf_dir, "net"))) if os.path.isdir(os.path.join(pf_dir, "net")) else []
    if not pf_nets:
        raise InvalidConfig(f'deviceID "{pci}": its PF {pf_pci} has no network device')
    try:
        with open(os.path.join(pf_dir, "sriov_numvfs")) as f:
            numvfs = int(f.read().strip() or 0)
    except (OSError, ValueError):
        numvfs = 0
    if numvfs == 0:
        raise InvalidConfig(f'deviceID "{pci}": PF {pf_nets[0]} ({pf_pci}) has no VFs enabled (sriov_numvfs is 0)')
    index = None
    for entry in os.listdir(pf_dir):
        m = _VIRTFN.match(entry)
        if m and os.path.basename(os.path.realpath(os.path.join(pf_dir, entry))) == pci:
            index = int(m.group(1))
    if index is None or index >= numvfs:
        raise InvalidConfig(f'deviceID "{pci}": not among the {numvfs} VFs of PF {pf_nets[0]}')
    driver_link = os.path.join(device, "driver")
    driver = os.path.basename(os.path.realpath(driver_link)) if os.path.exists(driver_link) else None
    net_dir = os.path.join(device, "net")
    netdevs = sorted(os.listdir(net_dir)) if os.path.isdir(net_dir) else []
    return VirtualFunction(pci=pci, pf_pci=pf_pci, pf=pf_nets[0], index=index, driver=driver,
                           netdev=netdevs[0] if netdevs and driver not in USERSPACE_DRIVERS else None)


def _pf_index(ipr: IPRoute, pf: str) -> int:
    found = ipr.link_lookup(ifname=pf)
    if not found:
        raise KernelError(f'PF "{pf}" is not a link in the node netns')
    return found[0]


def get_vf_config(pf: str, index: int) -> dict:
    """The VF's current settings as the PF reports them (IFLA_VFINFO_LIST)."""
    with IPRoute() as ipr:
        try:
            msg = ipr.link("get", index=_pf_index(ipr, pf), ext_mask=1)[0]
        except NetlinkError as exc:
            raise KernelError(f'reading the VFs of PF "{pf}": {errno.errorcode.get(exc.code, exc.code)}') from None
    vfinfo = msg.get("IFLA_VFINFO_LIST")
    for info in vfinfo.get_attrs("IFLA_VF_INFO") if vfinfo is not None else []:
        mac = info.get("IFLA_VF_MAC")
        if mac is None or mac["vf"] != index:
            continue
        vlan = info.get("IFLA_VF_VLAN") or {}
        rate = info.get("IFLA_VF_RATE") or {}
        return {
            "mac": mac["mac"], "vlan": vlan.get("vlan", 0), "qos": vlan.get("qos", 0),
            "spoofchk": bool((info.get("IFLA_VF_SPOOFCHK") or {}).get("setting", 0)),
            "trust": bool((info.get("IFLA_VF_TRUST") or {}).get("setting", 0)),
            "link_state": (info.get("IFLA_VF_LINK_STATE") or {}).get("link_state", 0),
            "min_tx_rate": rate.get("min_tx_rate", 0), "max_tx_rate": rate.get("max_tx_rate", 0),
        }
    raise KernelError(f'PF "{pf}" reports no VF {index}')


def set_vf_config(pf: str, index: int, settings: dict) -> None:
    """Set the VF's settings through the PF; keys: mac, vlan, qos, proto, spoofchk, trust,
    link_state, min_tx_rate, max_tx_rate (absent keys are left alone)."""
    vf: dict = {"vf": index}
    if settings.get("mac") is not None:
        vf["mac"] = settings["mac"]
    if settings.get("vlan") is not None:
        vlan = {"vlan": settings["vlan"], "qos": settings.get("qos") or 0}
        vf["vlan"] = [{**vlan, "proto": settings["proto"]}] if settings.get("proto") else vlan
    for key in ("spoofchk", "trust", "link_state"):
        if settings.get(key) is not None:
            vf[key] = int(settings[key])
    if settings.get("min_tx_rate") is not None or settings.get("max_tx_rate") is not None:
        vf["rate"] = {"min_tx_rate": settings.get("min_tx_rate") or 0,
                      "max_tx_rate": settings.get("max_tx_rate") or 0}
    with IPRoute() as ipr:
        try:
            ipr.link("set", index=_pf_index(ipr, pf), vf=vf)
        except NetlinkError as exc:
            raise KernelError(f'setting VF {index} of PF "{pf}": {errno.errorcode.get(exc.code, exc.code)}') from None
