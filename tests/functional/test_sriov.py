"""SR-IOV binding against a fake sysfs tree (SR-IOV hardware cannot exist on this machine).

What is faked, and only that: the sysfs tree (PF, VFs, drivers; NETPLUG_SYSFS_ROOT), and the
two netlink calls that read and set a VF through its PF (`netplug.ops.sriov.get_vf_config`,
`set_vf_config`), replaced by a recorder holding a PF's VF table, as sriov-cni's own tests
do. The VF's netdev is a real veth end in the node netns and really moves into the pod. The
handler runs in this process, as the agent runs it: called directly, or (for Multus's
delegation) behind the agent's real socket server on a thread of this process, so the real
shim, CNI runtime and Multus delegation reach it while the recorder stands in for the PF.
"""

from __future__ import annotations

import json
import os
import sys
import threading

import pytest
import yaml

from netplug import naming
from netplug.bindings.base import WiredInterface
from netplug.guest import BootSource, plan_domain
from netplug.model.cni import parse_result
from netplug.model.multus import (
    DeviceInfo,
    NetworkAttachmentDefinition,
    parse_network_status,
    parse_networks,
    render_network_status,
    status_from_result,
)
from netplug.model.vm import vmi_from_document
from netplug.ops import sriov
from runtime.agent.handler import Handler
from runtime.agent.server import AgentServer
from runtime.agent.store import Store
from runtime.cnirt import CNIRuntime
from runtime.install import install_shim
from runtime.launcher import observe
from runtime.multus import Multus, PodSandbox
from tests.support.fixtures import REFERENCE_PLUGINS
from tests.support.spec import validate_error, validate_result
from tests.support.topology import sh, unique

PF_PCI, VF0, VF1, LONE = "0000:81:00.0", "0000:81:00.2", "0000:81:00.3", "0000:82:00.0"


class VfRecorder:
    """A PF's VF table and every call made to it."""

    def __init__(self, pf: str) -> None:
        self.pf = pf
        self.vfs = {i: {"mac": f"02:00:00:00:81:0{i}", "vlan": 0, "qos": 0, "spoofchk": True, "trust": False,
                        "link_state": 0, "min_tx_rate": 0, "max_tx_rate": 0} for i in (0, 1)}
        self.calls: list[tuple[str, int, dict]] = []

    def get(self, pf: str, index: int) -> dict:
        assert pf == self.pf
        return dict(self.vfs[index])

    def set(self, pf: str, index: int, settings: dict) -> None:
        assert pf == self.pf
        self.calls.append((pf, index, dict(settings)))
        self.vfs[index].update({k: v for k, v in settings.items() if k != "proto"})


@pytest.fixture
def fake_sriov(tmp_path, monkeypatch):
    """A PF with two VFs: VF0 with a kernel driver (its netdev a real veth end), VF1 on vfio-pci;
    and a lone PCI device that is no VF."""
    root = tmp_path / "sys"
    devices = root / "bus" / "pci" / "devices"
    pf_name, vf_netdev = unique("nppf"), unique("npvf")
    for pci in (PF_PCI, VF0, VF1, LONE):
        (devices / pci).mkdir(parents=True)
    (devices / PF_PCI / "net" / pf_name).mkdir(parents=True)
    (devices / PF_PCI / "sriov_numvfs").write_text("2\n")
    for n, vf in enumerate((VF0, VF1)):
        os.symlink(f"../{vf}", devices / PF_PCI / f"virtfn{n}")
        os.symlink(f"../{PF_PCI}", devices / vf / "physfn")
    for driver in ("iavf", "vfio-pci"):
        (root / "bus" / "pci" / "drivers" / driver).mkdir(parents=True)
    os.symlink("../../drivers/iavf", devices / VF0 / "driver")
    os.symlink("../../drivers/vfio-pci", devices / VF1 / "driver")
    (devices / VF0 / "net" / vf_netdev).mkdir(parents=True)
    sh("ip", "link", "add", vf_netdev, "type", "veth", "peer", "name", unique("npvp"))
    sh("ip", "link", "set", vf_netdev, "address", "02:00:00:00:81:00")
    recorder = VfRecorder(pf_name)
    monkeypatch.setenv("NETPLUG_SYSFS_ROOT", str(root))
    monkeypatch.setenv("NETPLUG_DEVINFO_DIR", str(tmp_path / "devinfo"))
    monkeypatch.setattr(sriov, "get_vf_config", recorder.get)
    monkeypatch.setattr(sriov, "set_vf_config", recorder.set)
    yield recorder, vf_netdev, root
    sh("ip", "link", "del", vf_netdev, check=False)


def _call(handler: Handler, command: str, config: dict, netns: str, ifname: str = "net1", cid: str = "ctr-sriov"):
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": netns, "CNI_IFNAME": ifname,
           "CNI_PATH": "/usr/lib/cni"}
    code, out = handler.handle(env, json.dumps(config).encode())
    return code, (json.loads(out) if out.strip() else None)


def test_kernel_vf_is_configured_moved_and_given_back(fake_sriov, pod, tmp_path):
    recorder, vf_netdev, _ = fake_sriov
    handler = Handler(Store(str(tmp_path / "state")))
    devinfo = tmp_path / "devinfo" / "net1.json"
    config = {"cniVersion": "1.1.0", "name": "sriov-net", "type": "netplug", "binding": "sriov", "deviceID": VF0,
              "vlan": 100, "vlanQoS": 3, "mac": "02:aa:bb:cc:dd:01", "spoofchk": "on", "trust": "off",
              "link_state": "enable", "min_tx_rate": 10, "max_tx_rate": 100,
              "runtimeConfig": {"CNIDeviceInfoFile": str(devinfo)},
              "ipam": {"type": "static", "addresses": [{"address": "10.70.0.5/24", "gateway": "10.70.0.1"}]}}
    code, result = _call(handler, "ADD", config, pod.path)
    assert code == 0, result
    validate_result(result, "1.1.0")
    assert result["interfaces"] == [{"name": "net1", "mac": "02:aa:bb:cc:dd:01", "sandbox": pod.path, "pciID": VF0}]
    assert result["ips"] == [{"address": "10.70.0.5/24", "gateway": "10.70.0.1", "interface": 0}]

    # the VF settings went through the PF, to VF index 0
    (pf, index, settings), = recorder.calls
    assert (pf, index) == (recorder.pf, 0)
    assert settings == {"mac": "02:aa:bb:cc:dd:01", "vlan": 100, "qos": 3, "spoofchk": True, "trust": False,
                        "link_state": 1, "min_tx_rate": 10, "max_tx_rate": 100}
    # the VF netdev is the pod's net1 now, with its address; gone from the node
    assert pod.links()["net1"]["address"] == "02:00:00:00:81:00"
    assert pod.addresses("net1") == ["10.70.0.5/24"]
    assert sh("ip", "link", "show", vf_netdev, check=False).returncode != 0
    # device-info for Multus, and the network-status it produces
    info = json.loads(devinfo.read_text())
    assert info == {"type": "pci", "version": "1.1.0", "pci": {"pci-address": VF0, "pf-pci-address": PF_PCI}}
    status = status_from_result("sriov/sriov-net", parse_result(result, "1.1.0"), device_info=DeviceInfo(**info))
    assert status.device_info.pci["pci-address"] == VF0 and status.interface == "net1"

    assert _call(handler, "CHECK", {**config, "prevResult": result}, pod.path)[0] == 0

    code, out = _call(handler, "DEL", config, pod.path)
    assert (code, out) == (0, None)
    assert recorder.calls[-1] == (recorder.pf, 0, {"mac": "02:00:00:00:81:00", "vlan": 0, "qos": 0, "spoofchk": True,
                                                   "trust": False, "link_state": 0, "min_tx_rate": 0, "max_tx_rate": 0})
    assert recorder.vfs[0]["vlan"] == 0 and recorder.vfs[0]["mac"] == "02:00:00:00:81:00"
    assert "net1" not in pod.links()
    assert sh("ip", "link", "show", vf_netdev).returncode == 0  # back in the node, its own name
    assert not devinfo.exists()
    assert os.listdir(tmp_path / "state" / "attachments") == []
    assert _call(handler, "DEL", config, pod.path) == (0, None)  # idempotent


def test_vfio_vf_is_left_to_the_vm_and_becomes_a_hostdev(fake_sriov, pod, tmp_path):
    recorder, vf_netdev, _ = fake_sriov
    handler = Handler(Store(str(tmp_path / "state")))
    config = {"cniVersion": "1.0.0", "name": "sriov-net", "type": "netplug", "binding": "sriov", "deviceID": VF1,
              "vlan": 200}
    code, result = _call(handler, "ADD", config, pod.path, ifname="pod5862143f341")
    assert code == 0, result
    assert "pciID" not in result["interfaces"][0]  # a 1.1.0 field
    assert [c[1:] for c in recorder.calls] == [(1, {"vlan": 200, "qos": 0})]
    assert set(pod.links()) == {"lo"}  # no netdev moves for vfio-pci

    # the launcher's view: network-status device-info gives the PCI address, the domain a hostdev
    vmi = vmi_from_document({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance", "metadata": {"name": "v"},
                             "spec": {"domain": {"devices": {"interfaces": [{"name": "sriov-net", "sriov": {},
                                                                             "bootOrder": 2}]}},
                                      "networks": [{"name": "sriov-net", "multus": {"networkName": "sriov/sriov-net"}}]}})
    domain = plan_domain(vmi, {"sriov-net": WiredInterface(name="sriov-net", binding="sriov", pci_address=VF1)},
                         BootSource(kernel="/k"), accelerated=False, serial_log="/s")
    (hostdev,) = domain.hostdevs
    assert (str(hostdev.source), hostdev.alias, hostdev.managed, hostdev.boot_order) == (VF1, "ua-sriov-sriov-net", False, 2)
    assert domain.interfaces == []

    assert _call(handler, "DEL", config, pod.path, ifname="pod5862143f341") == (0, None)
    assert recorder.calls[-1][1:] == (1, {"vlan": 0, "qos": 0})


@pytest.mark.parametrize("device, text", [
    ("0000:99:00.1", "no PCI device"),
    (PF_PCI, "not an SR-IOV virtual function"),
])
def test_bad_device_ids_change_nothing(fake_sriov, pod, tmp_path, device, text):
    recorder, vf_netdev, _ = fake_sriov
    handler = Handler(Store(str(tmp_path / "state")))
    config = {"cniVersion": "1.0.0", "name": "sriov-net", "type": "netplug", "binding": "sriov", "deviceID": device}
    code, error = _call(handler, "ADD", config, pod.path)
    assert code == 1
    validate_error(error)
    assert error["code"] == 7 and text in error["msg"] and device in error["msg"]
    assert recorder.calls == [] and set(pod.links()) == {"lo"}


def test_pf_without_vfs_and_vf_in_use(fake_sriov, pod, tmp_path):
    recorder, vf_netdev, root = fake_sriov
    handler = Handler(Store(str(tmp_path / "state")))
    config = {"cniVersion": "1.0.0", "name": "sriov-net", "type": "netplug", "binding": "sriov", "deviceID": VF1}
    assert _call(handler, "ADD", config, pod.path, cid="ctr-a")[0] == 0
    calls = len(recorder.calls)
    code, error = _call(handler, "ADD", config, pod.path, cid="ctr-b")
    assert code == 1 and error["code"] == 100 and "in use by container ctr-a" in error["msg"]
    assert len(recorder.calls) == calls
    assert _call(handler, "DEL", config, pod.path, cid="ctr-a")[0] == 0

    (root / "bus" / "pci" / "devices" / PF_PCI / "sriov_numvfs").write_text("0\n")
    code, error = _call(handler, "ADD", config, pod.path, cid="ctr-c")
    assert code == 1 and error["code"] == 7 and "no VFs enabled" in error["msg"]


SRIOV_NAD = """
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: sriov-net
  namespace: sriov
  annotations:
    k8s.v1.cni.cncf.io/resourceName: intel.com/sriov_vfio
spec:
  config: '{"cniVersion": "1.1.0", "type": "netplug", "binding": "sriov", "deviceID": "%s", "vlan": 300,
            "capabilities": {"CNIDeviceInfoFile": true}}'
"""


@pytest.fixture
def agent_in_this_process(tmp_path):
    """The agent's socket server with the real handler, on a thread of the test process (so the
    VF recorder stands in for the PF), and the real shim pointed at it."""
    socket_path = str(tmp_path / "run" / "agent.sock")
    server = AgentServer(socket_path, Handler(Store(str(tmp_path / "state"))))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    bin_dir = str(tmp_path / "bin")
    install_shim(bin_dir, sys.executable)
    yield CNIRuntime([bin_dir, REFERENCE_PLUGINS], str(tmp_path / "cni-cache"),
                     {"NETPLUG_AGENT_SOCKET": socket_path, "NETPLUG_STATE_DIR": str(tmp_path / "state")})
    server.shutdown()
    server.server_close()


def test_multus_delegation_publishes_the_vfs_device_info_and_the_launcher_passes_it(
        fake_sriov, agent_in_this_process, pod_network, pod, tmp_path):
    """Multus's way, end to end but for the hardware: the SR-IOV NAD's plugin is offered
    CNIDeviceInfoFile, writes the VF's device-info there, the network-status entry carries it,
    and the launcher turns that status into the VF's hostdev; DEL removes the file."""
    recorder, _, _ = fake_sriov
    nad = NetworkAttachmentDefinition.from_document(yaml.safe_load(SRIOV_NAD % VF1))
    multus = Multus(agent_in_this_process, [nad])
    sandbox = PodSandbox(namespace="vms", name="virt-launcher-vm1", container_id="ctr-multus-sriov", netns=pod.path)
    pod_if = naming.pod_interface_for_network("sriov-net")
    selection = json.dumps([{"name": "sriov-net", "namespace": "sriov", "interface": pod_if}])
    delegates = multus.delegates(sandbox, pod_network.conflist("1.0.0"), parse_networks(selection))
    devinfo = tmp_path / "devinfo" / f"sriov-net-ctr-multus-sriov_{pod_if}"
    assert delegates[1].device_info_file == str(devinfo)  # Multus's per-attachment file name

    written = render_network_status(multus.attach(delegates))
    statuses = parse_network_status(written)
    assert [(s.name, s.interface) for s in statuses] == [("vms/podnet", "eth0"), ("sriov/sriov-net", pod_if)]
    entry = json.loads(written)[1]
    assert entry["device-info"] == {"type": "pci", "version": "1.1.0",
                                    "pci": {"pci-address": VF1, "pf-pci-address": PF_PCI}}
    assert "device-info" not in json.loads(written)[0]
    assert [c[1:] for c in recorder.calls] == [(1, {"vlan": 300, "qos": 0})]

    vmi = vmi_from_document({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
                             "metadata": {"name": "vm1", "namespace": "vms"},
                             "spec": {"domain": {"devices": {"interfaces": [{"name": "sriov-net", "sriov": {}}]}},
                                      "networks": [{"name": "sriov-net", "multus": {"networkName": "sriov/sriov-net"}}]}})
    wired = observe(vmi, vmi.spec.domain.devices.interfaces, statuses)  # the launcher's --network-status
    assert wired["sriov-net"].pci_address == VF1
    domain = plan_domain(vmi, wired, BootSource(kernel="/k"), accelerated=False, serial_log="/s")
    (hostdev,) = domain.hostdevs
    assert (str(hostdev.source), hostdev.alias) == (VF1, "ua-sriov-sriov-net")

    multus.detach(delegates)
    assert not devinfo.exists()
    assert recorder.calls[-1][1:] == (1, {"vlan": 0, "qos": 0})
    assert set(pod.links()) == {"lo"}
