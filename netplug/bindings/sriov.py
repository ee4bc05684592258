"""SR-IOV binding: a virtual function for the VM (KubeVirt `sriov: {}`, sriov-cni's keys).

The VF named by `deviceID` is configured through its PF — MAC, VLAN (QoS, 802.1ad), spoof
check, trust, link state, rates — and its original settings are kept so DEL puts them back.
A VF bound to vfio-pci (or another user-space driver) is left to the VM: no netdev moves, an
IPAM address is only allocated and reported. A VF with a kernel driver has its netdev moved
into the pod as CNI_IFNAME (staged under a temporary name) and back on DEL. The device-info
file (NPWG spec) and the result's `pciID` carry the VF's PCI address, which Multus puts into
network-status and the launcher into the domain:

    <hostdev mode='subsystem' type='pci' managed='no'>
      <source><address domain='0x0000' bus='0x81' slot='0x01' function='0x0'/></source>
      <alias name='ua-sriov-<interface name>'/>
    </hostdev>

May import: netplug.bindings.base, netplug.model.
"""

from __future__ import annotations

from netplug.bindings.base import AttachmentPlan, BindingContext, WiredInterface, guest_mac
from netplug.errors import InvalidConfig
from netplug.model import vm
from netplug.model.cni import Interface, IPConfig, Result
from netplug.model.domain import DomainHostdev, PciAddress
from netplug.model.netconf import SriovConf
from netplug.model.netspec import NetSpec, VfConfig, VfPlan

LINK_STATES = {"auto": 0, "enable": 1, "disable": 2}
ETH_P_8021AD = 0x88A8


def plan_sriov(conf: SriovConf, ctx: BindingContext) -> AttachmentPlan:
    vf = ctx.vf
    assert vf is not None, "the handler observes the VF for the sriov binding"
    mac = guest_mac(conf)
    config = VfConfig(
        mac=mac, vlan=conf.vlan, qos=conf.vlanQoS,
        proto=ETH_P_8021AD if conf.vlanProto.lower() == "802.1ad" else None,
        spoofchk=None if conf.spoofchk is None else conf.spoofchk == "on",
        trust=None if conf.trust is None else conf.trust == "on",
        link_state=None if conf.link_state is None else LINK_STATES[conf.link_state],
        min_tx_rate=conf.min_tx_rate, max_tx_rate=conf.max_tx_rate,
    )
    # restore exactly what this ADD changes
    current = vf.current
    restore = VfConfig(**{key: getattr(current, key) for key, value in config.model_dump().items()
                          if value is not None and key != "proto"})
    if config.vlan is not None:
        restore.vlan, restore.qos = current.vlan or 0, current.qos or 0
    addresses = ctx.ipam_result.ips if ctx.ipam_result else []
    if vf.userspace and conf.mtu:
        raise InvalidConfig(f"mtu: VF {vf.pci} is bound to {vf.driver}; its MTU is the VM's to set")
    plan = VfPlan(
        pci=vf.pci, pf=vf.pf, index=vf.index, config=config, restore=restore,
        netdev=None if vf.userspace else vf.netdev, ifname=ctx.ifname,
        addresses=[] if vf.userspace else [ip.address for ip in addresses], mtu=conf.mtu,
        device_info_file=conf.CNIDeviceInfoFile,
        device_info={"type": "pci", "version": "1.1.0",
                     "pci": {"pci-address": vf.pci, "pf-pci-address": vf.pf_pci}},
    )
    if not vf.userspace and vf.netdev is None:
        raise InvalidConfig(f'deviceID "{vf.pci}": the VF has neither a netdev nor a user-space driver')
    netspec = NetSpec(netns=ctx.netns, vf=plan)
    result = Result(interfaces=[Interface(name=ctx.ifname, mac=mac or current.mac, sandbox=ctx.netns,
                                          mtu=conf.mtu, pciID=vf.pci)],
                    ips=[IPConfig(address=ip.address, gateway=ip.gateway, interface=0) for ip in addresses],
                    routes=ctx.ipam_result.routes if ctx.ipam_result else [],
                    dns=ctx.ipam_result.dns if ctx.ipam_result else Result().dns)
    return AttachmentPlan(netspec=netspec, result=result)


def domain_sriov(vmi: vm.VirtualMachineInstance, iface: vm.Interface, wired: WiredInterface,
                 queues: int | None) -> DomainHostdev:
    """The VF as a PCI hostdev: KubeVirt puts no MAC or model on it (the VF has its MAC)."""
    if not wired.pci_address:
        raise InvalidConfig(f"interface {iface.name}: no PCI address for its VF in network-status "
                            "device-info or the device plugin's PCIDEVICE_* environment")
    return DomainHostdev(
        source=PciAddress.parse(wired.pci_address), managed=False, alias=f"ua-sriov-{iface.name}",
        boot_order=iface.bootOrder,
        guest_address=PciAddress.parse(iface.pciAddress) if iface.pciAddress else None,
    )
