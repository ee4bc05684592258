"""netplug.naming: KubeVirt's names, so a user who knows KubeVirt finds the links in the pod."""

from __future__ import annotations

import hashlib

import pytest

from netplug import naming


def test_pod_network() -> None:
    assert (naming.bridge_name("eth0"), naming.tap_name("eth0")) == ("k6t-eth0", "tap0")


def test_secondary_network_pod_interface_is_kubevirts() -> None:
    # KubeVirt's GenerateHashedInterfaceName("blue"); pinned, not recomputed
    assert naming.pod_interface_for_network("blue") == "pod16477688c0e"
    assert naming.network_hash("blue") == hashlib.sha256(b"blue").hexdigest()[:11]


def test_secondary_network_links() -> None:
    assert naming.bridge_name("pod16477688c0e") == "k6t-16477688c0e"
    assert naming.tap_name("pod16477688c0e") == "tap16477688c0e"


def test_the_links_of_a_pod_interface_from_the_guest_outwards() -> None:
    links = naming.interface_links("pod16477688c0e")
    assert links.from_the_guest() == ("tap16477688c0e", "k6t-16477688c0e", "16477688c0e-nic", "pod16477688c0e")
    assert naming.interface_links("eth0").from_the_guest() == ("tap0", "k6t-eth0", "eth0-nic", "eth0")
    assert naming.interface_links("eth0").nft_table == "netplug_eth0"


@pytest.mark.parametrize(("pod_interface", "bridge", "tap"),
                         [("net1", "k6t-net1", "tap1"), ("net12", "k6t-net12", "tap12")])
def test_ordinal_secondary_interfaces(pod_interface: str, bridge: str, tap: str) -> None:
    assert (naming.bridge_name(pod_interface), naming.tap_name(pod_interface)) == (bridge, tap)


@pytest.mark.parametrize(
    "pod_interface",
    ["eth1", "a", "x" * 15, "enp0s31f6", "pod1234", "podXYZ16477688c", "net", "netA", "vlan.100"],
)
def test_other_names_are_hashed_and_fit(pod_interface: str) -> None:
    h = hashlib.sha256(pod_interface.encode()).hexdigest()[:11]
    assert naming.bridge_name(pod_interface) == f"k6t-{h}"
    assert naming.tap_name(pod_interface) == f"tap{h}"


@pytest.mark.parametrize(
    "pod_interface",
    ["eth0", "net1", "net99", "pod16477688c0e", "eth1", "x" * 15, "a-very-long-interface-name-indeed"],
)
def test_every_name_fits_ifnamsiz(pod_interface: str) -> None:
    assert len(naming.bridge_name(pod_interface)) <= naming.IFNAMSIZ
    assert len(naming.tap_name(pod_interface)) <= naming.IFNAMSIZ


def test_long_ordinal_names_fit_ifnamsiz() -> None:
    assert len(naming.bridge_name("net123456789")) <= naming.IFNAMSIZ


def test_names_are_stable_and_distinct() -> None:
    names = ["eth0", "net1", "net2", "eth1", "eth2", naming.pod_interface_for_network("red"),
             naming.pod_interface_for_network("blue")]
    bridges = [naming.bridge_name(n) for n in names]
    taps = [naming.tap_name(n) for n in names]
    assert bridges == [naming.bridge_name(n) for n in names]
    assert len(set(bridges)) == len(names) and len(set(taps)) == len(names)


@pytest.mark.parametrize(("pod_interface", "table"),
                         [("eth0", "netplug_eth0"), ("pod16477688c0e", "netplug_pod16477688c0e"),
                          ("vlan.100", "netplug_vlan_100"), ("a-b", "netplug_a_b")])
def test_nft_table_name(pod_interface: str, table: str) -> None:
    assert naming.nft_table_name(pod_interface) == table


def test_attachment_tag_is_stable_and_per_attachment() -> None:
    tag = naming.attachment_tag("3f2a9c1e0b7d", "eth0")
    assert tag == naming.attachment_tag("3f2a9c1e0b7d", "eth0")
    assert len(tag) == 16 and int(tag, 16) >= 0
    assert tag != naming.attachment_tag("3f2a9c1e0b7d", "net1")
    assert tag != naming.attachment_tag("other", "eth0")
