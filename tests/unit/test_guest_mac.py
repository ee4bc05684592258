"""netplug.bindings.base.guest_mac: the MAC a guest uses, stable for the same VM.

A restarted VM lands in a new launcher pod; its guest network config (and any DHCP
reservation or firewall rule keyed on the MAC outside the cluster) keeps working only if the
MAC is the same. So the MAC is the configured one, else derived from the VM's namespace, name
and interface alone: the same in every process, different for every other VM interface,
always a unicast, locally administered address.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from netplug.bindings.base import guest_mac
from netplug.model.netconf import BridgeConf, MasqueradeConf

IDENTITY = {"vmNamespace": "ns1", "vmName": "testvm", "vmInterface": "default"}


def conf(**fields: object) -> BridgeConf:
    return BridgeConf(cniVersion="1.0.0", binding="bridge", **fields)


def octets(mac: str) -> list[int]:
    parts = mac.split(":")
    assert len(parts) == 6 and all(len(p) == 2 for p in parts), mac
    return [int(p, 16) for p in parts]


def test_same_vm_same_mac() -> None:
    assert guest_mac(conf(**IDENTITY)) == guest_mac(conf(**IDENTITY))
    # the other binding fields do not matter: only the VM's identity does
    assert guest_mac(conf(**IDENTITY, mtu=1400, queues=4, spoofCheck=False)) == guest_mac(conf(**IDENTITY))
    masquerade = MasqueradeConf(cniVersion="1.0.0", binding="masquerade", **IDENTITY)
    assert guest_mac(masquerade) == guest_mac(conf(**IDENTITY))


def test_pinned_value() -> None:
    # pinned: a netplug upgrade must not change the MAC of an existing VM
    assert guest_mac(conf(**IDENTITY)) == "da:8b:c0:49:8c:0d"


@pytest.mark.parametrize("seed", ["0", "1", "12345"])
def test_same_mac_in_another_process(seed: str) -> None:
    code = ("from netplug.bindings.base import guest_mac; from netplug.model.netconf import BridgeConf; "
            "print(guest_mac(BridgeConf(cniVersion='1.0.0', binding='bridge', vmNamespace='ns1', "
            "vmName='testvm', vmInterface='default')))")
    env = {**os.environ, "PYTHONHASHSEED": seed}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == guest_mac(conf(**IDENTITY))


@pytest.mark.parametrize(
    "change",
    [{"vmName": "testvm2"}, {"vmNamespace": "ns2"}, {"vmInterface": "blue"},
     {"vmName": "Testvm"}, {"vmNamespace": "ns1", "vmName": "testvm", "vmInterface": "default2"}],
    ids=["name", "namespace", "interface", "name-case", "interface-suffix"],
)
def test_another_vm_interface_gets_another_mac(change: dict) -> None:
    assert guest_mac(conf(**{**IDENTITY, **change})) != guest_mac(conf(**IDENTITY))


def test_fields_are_not_interchangeable() -> None:
    """Swapping namespace and name (or name and interface) is another VM interface."""
    a = guest_mac(conf(vmNamespace="x", vmName="y", vmInterface="z"))
    assert a != guest_mac(conf(vmNamespace="y", vmName="x", vmInterface="z"))
    assert a != guest_mac(conf(vmNamespace="x", vmName="z", vmInterface="y"))


def test_many_vms_get_distinct_macs() -> None:
    macs = {guest_mac(conf(vmNamespace=f"ns{n % 7}", vmName=f"vm-{n}", vmInterface=i))
            for n in range(300) for i in ("default", "blue")}
    assert len(macs) == 600


def test_derived_mac_is_unicast_and_locally_administered() -> None:
    for n in range(200):
        mac = guest_mac(conf(vmNamespace="ns", vmName=f"vm-{n}", vmInterface="default"))
        first = octets(mac)[0]
        assert first & 0x01 == 0, f"{mac}: multicast bit set, no NIC can use it"
        assert first & 0x02 == 0x02, f"{mac}: not locally administered, may clash with a vendor's MAC"
        assert mac == mac.lower()


def test_configured_mac_wins() -> None:
    assert guest_mac(conf(mac="52:54:00:12:34:56", **IDENTITY)) == "52:54:00:12:34:56"
    assert guest_mac(conf(mac="52:54:00:12:34:56")) == "52:54:00:12:34:56"
    # as KubeVirt's macAddress may be written: normalized to the form the kernel shows
    assert guest_mac(conf(mac="52-54-00-AB-CD-EF")) == "52:54:00:ab:cd:ef"


@pytest.mark.parametrize(
    "fields",
    [{}, {"vmName": "testvm"}, {"vmInterface": "default"}, {"vmNamespace": "ns1", "vmName": "testvm"},
     {"vmNamespace": "ns1", "vmInterface": "default"}],
    ids=["nothing", "name-only", "interface-only", "no-interface", "no-name"],
)
def test_without_identity_or_mac_there_is_none(fields: dict) -> None:
    assert guest_mac(conf(**fields)) is None


def test_namespace_defaults_to_default() -> None:
    without = guest_mac(conf(vmName="testvm", vmInterface="default"))
    assert without is not None
    assert without == guest_mac(conf(vmNamespace="default", vmName="testvm", vmInterface="default"))
    assert without != guest_mac(conf(vmNamespace="kube-system", vmName="testvm", vmInterface="default"))
