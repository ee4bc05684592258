"""netplug.model.cni: results in, results out, in the exact shape of each spec version.

A runtime parses netplug's result with its own version's schema: a field of another version
(or a missing `ips[].version` before 1.0.0) breaks the pod, and a field netplug drops from a
prevResult is lost for every plugin after it in the chain.
"""

from __future__ import annotations

import copy

import pytest

from netplug.errors import NetplugError
from netplug.model.cni import DNS, Interface, IPConfig, Result, Route, parse_result, result_to_wire
from tests.support.spec import validate_result

OLD_VERSIONS = ["0.3.0", "0.3.1", "0.4.0"]
ALL_VERSIONS = [*OLD_VERSIONS, "1.0.0", "1.1.0"]


def wire_result(version: str) -> dict:
    """A realistic result (dual-stack pod interface) in the exact shape of `version`."""
    result: dict = {
        "cniVersion": version,
        "interfaces": [
            {"name": "cni0", "mac": "3a:1b:7c:00:00:01"},
            {"name": "vethab12", "mac": "3a:1b:7c:00:00:02"},
            {"name": "eth0", "mac": "0a:58:0a:f4:01:05", "sandbox": "/run/netns/cni-1"},
        ],
        "ips": [
            {"address": "10.244.1.5/24", "gateway": "10.244.1.1", "interface": 2},
            {"address": "fd00:10:244:1::5/64", "gateway": "fd00:10:244:1::1", "interface": 2},
        ],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}, {"dst": "::/0"}],
        "dns": {"nameservers": ["10.96.0.10"], "domain": "cluster.local",
                "search": ["default.svc.cluster.local"], "options": ["ndots:5"]},
    }
    if version in OLD_VERSIONS:
        result["ips"][0]["version"] = "4"
        result["ips"][1]["version"] = "6"
    if version == "1.1.0":
        result["interfaces"][2].update(mtu=1450, socketPath="/run/vhost/sock0", pciID="0000:00:04.0")
        result["routes"][0].update(mtu=1400, advmss=1360, priority=100, table=254, scope=0)
    return result


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_round_trip_keeps_the_result_of_each_version(version: str) -> None:
    wire = wire_result(version)
    back = result_to_wire(parse_result(copy.deepcopy(wire), version), version)
    assert back == wire
    validate_result(back, version)


@pytest.mark.parametrize("version", OLD_VERSIONS)
def test_versions_before_1_0_0_carry_ips_version_per_family(version: str) -> None:
    canonical = parse_result(wire_result("1.1.0"), "1.1.0")
    wire = result_to_wire(canonical, version)
    assert [(ip["address"], ip["version"]) for ip in wire["ips"]] == [
        ("10.244.1.5/24", "4"), ("fd00:10:244:1::5/64", "6"),
    ]


@pytest.mark.parametrize("version", ["1.0.0", "1.1.0"])
def test_versions_from_1_0_0_have_no_ips_version(version: str) -> None:
    canonical = parse_result(wire_result("0.4.0"), "0.4.0")
    wire = result_to_wire(canonical, version)
    assert all("version" not in ip for ip in wire["ips"])
    assert [ip["address"] for ip in wire["ips"]] == ["10.244.1.5/24", "fd00:10:244:1::5/64"]


def test_1_1_0_keeps_interface_and_route_fields() -> None:
    wire = result_to_wire(parse_result(wire_result("1.1.0"), "1.1.0"), "1.1.0")
    assert wire["interfaces"][2] == {
        "name": "eth0", "mac": "0a:58:0a:f4:01:05", "sandbox": "/run/netns/cni-1",
        "mtu": 1450, "socketPath": "/run/vhost/sock0", "pciID": "0000:00:04.0",
    }
    assert wire["routes"][0] == {
        "dst": "0.0.0.0/0", "gw": "10.244.1.1", "mtu": 1400, "advmss": 1360,
        "priority": 100, "table": 254, "scope": 0,
    }


@pytest.mark.parametrize("version", [*OLD_VERSIONS, "1.0.0"])
def test_1_1_0_fields_are_dropped_for_older_versions(version: str) -> None:
    wire = result_to_wire(parse_result(wire_result("1.1.0"), "1.1.0"), version)
    assert wire["cniVersion"] == version
    assert wire["interfaces"][2] == {"name": "eth0", "mac": "0a:58:0a:f4:01:05", "sandbox": "/run/netns/cni-1"}
    assert wire["routes"][0] == {"dst": "0.0.0.0/0", "gw": "10.244.1.1"}
    validate_result(wire, version)


def test_result_to_wire_does_not_change_the_canonical_result() -> None:
    canonical = parse_result(wire_result("1.1.0"), "1.1.0")
    result_to_wire(canonical, "0.3.1")
    assert result_to_wire(canonical, "1.1.0") == wire_result("1.1.0")


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_empty_fields_are_omitted(version: str) -> None:
    assert result_to_wire(Result(), version) == {"cniVersion": version}
    parsed = parse_result({"interfaces": [], "ips": [], "routes": [], "dns": {}}, version)
    assert result_to_wire(parsed, version) == {"cniVersion": version}


def test_unset_and_empty_subfields_are_omitted() -> None:
    result = Result(
        interfaces=[Interface(name="tap0")],
        ips=[IPConfig(address="10.0.2.2/24")],
        routes=[Route(dst="0.0.0.0/0")],
        dns=DNS(nameservers=["10.96.0.10"], domain="", search=[]),
    )
    assert result_to_wire(result, "1.1.0") == {
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "tap0"}],
        "ips": [{"address": "10.0.2.2/24"}],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {"nameservers": ["10.96.0.10"]},
    }


def test_null_lists_in_a_prev_result_are_treated_as_empty() -> None:
    parsed = parse_result({"cniVersion": "1.0.0", "interfaces": None, "ips": None, "routes": None,
                           "dns": None}, "1.0.0")
    assert result_to_wire(parsed, "1.0.0") == {"cniVersion": "1.0.0"}


@pytest.mark.parametrize("version", ["0.3.1", "1.1.0"])
def test_unknown_fields_are_preserved(version: str) -> None:
    wire = wire_result(version)
    wire["cilium.io/identity"] = {"id": 4711}
    wire["interfaces"][2]["x-vendor"] = "kept"
    wire["ips"][0]["x-pool"] = "pool-a"
    wire["routes"][1]["x-hint"] = 3
    wire["dns"]["x-resolver"] = "stub"
    assert result_to_wire(parse_result(copy.deepcopy(wire), version), version) == wire


def test_result_version_follows_the_asked_version_not_the_input() -> None:
    wire = result_to_wire(parse_result(wire_result("0.3.1"), "0.3.1"), "1.0.0")
    assert wire["cniVersion"] == "1.0.0"


@pytest.mark.parametrize("legacy", [{"ip4": {"ip": "10.1.0.5/24"}}, {"ip6": {"ip": "fd00::5/64"}}])
def test_0_2_0_result_is_code_1(legacy: dict) -> None:
    with pytest.raises(NetplugError) as info:
        parse_result({"cniVersion": "0.2.0", **legacy}, "0.3.1")
    assert info.value.cni_code == 1
    assert "prevResult" in info.value.msg and "0.2.0" in info.value.msg


@pytest.mark.parametrize("address", ["10.0.0.300/24", "not-an-ip", "10.0.0.1/33", ""])
def test_bad_address_is_code_6_naming_field_and_value(address: str) -> None:
    with pytest.raises(NetplugError) as info:
        parse_result({"ips": [{"address": address}]}, "1.0.0", field="ipamResult")
    assert info.value.cni_code == 6
    assert "ipamResult.ips" in info.value.msg and f'"{address}"' in info.value.msg


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"ips": [{"gateway": "10.0.0.1"}]}, "prevResult.ips.0.address"),
        ({"interfaces": [{"mac": "0a:58:0a:f4:01:05"}]}, "prevResult.interfaces.0.name"),
        ({"routes": [{"dst": "0.0.0.0/0", "mtu": "big"}]}, "prevResult.routes.0.mtu"),
    ],
)
def test_malformed_result_is_code_6_naming_the_field(data: dict, where: str) -> None:
    with pytest.raises(NetplugError) as info:
        parse_result(data, "1.0.0")
    assert info.value.cni_code == 6
    assert where in info.value.msg


@pytest.mark.parametrize("data", [[], "result", None])
def test_result_that_is_not_an_object_is_code_6(data: object) -> None:
    with pytest.raises(NetplugError) as info:
        parse_result(data, "1.0.0")
    assert info.value.cni_code == 6
    assert "prevResult" in info.value.msg


def test_address_without_prefix_is_code_6() -> None:
    with pytest.raises(NetplugError) as info:
        parse_result({"ips": [{"address": "10.244.1.5"}]}, "1.0.0")
    assert info.value.cni_code == 6


def test_bad_gateway_is_code_6() -> None:
    with pytest.raises(NetplugError) as info:
        parse_result({"ips": [{"address": "10.244.1.5/24", "gateway": "10.244.1.300"}]}, "1.0.0")
    assert info.value.cni_code == 6


@pytest.mark.parametrize(
    ("data", "text"),
    [
        ({"ips": -1}, "prevResult.ips must be a list"),
        ({"ips": {"address": "10.0.0.5/24"}}, "prevResult.ips must be a list"),
        ({"interfaces": [{"name": "eth0"}], "ips": [{"address": "10.0.0.5/24", "interface": 1}]},
         "interface 1 is not an index"),
        ({"ips": [{"address": "10.0.0.5/24", "interface": -1}]}, "interface -1 is not an index"),
        ({"routes": [{"dst": ""}]}, 'invalid route ""'),
        ({"routes": [{"dst": "10.0.0.0/8", "gw": "10.0.0.256"}]}, 'via "10.0.0.256"'),
        ({"routes": [{"dst": "default"}]}, 'invalid route "default"'),
    ],
)
def test_inconsistent_result_is_code_6_naming_the_field(data: dict, text: str) -> None:
    """Found by the reliability fuzzer: these went into the result (or crashed) before."""
    with pytest.raises(NetplugError) as info:
        parse_result(data, "1.0.0")
    assert info.value.cni_code == 6
    assert text in info.value.msg


def test_a_route_with_host_bits_is_accepted_as_go_parses_it() -> None:
    assert parse_result({"routes": [{"dst": "10.1.2.3/8"}]}, "1.0.0").routes[0].dst == "10.1.2.3/8"
