"""CNI spec conformance checks for results and errors, per version (tests only)."""

from __future__ import annotations

import ipaddress

V11_INTERFACE_FIELDS = {"mtu", "socketPath", "pciID"}
V11_ROUTE_FIELDS = {"mtu", "advmss", "priority", "table", "scope"}


def _vt(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def validate_result(result: dict, version: str) -> None:
    """Assert `result` is a success result of exactly spec `version`'s shape."""
    assert result["cniVersion"] == version, f"result version {result['cniVersion']} != {version}"
    interfaces = result.get("interfaces", [])
    for iface in interfaces:
        assert isinstance(iface["name"], str) and iface["name"]
        if _vt(version) < (1, 1, 0):
            assert not V11_INTERFACE_FIELDS & iface.keys(), f"1.1.0-only fields in {iface} for {version}"
    for ip in result.get("ips", []):
        ipaddress.ip_interface(ip["address"])
        assert "/" in ip["address"], f"address {ip['address']} is not CIDR"
        if _vt(version) < (1, 0, 0):
            assert ip["version"] in ("4", "6"), f"{version} needs ips[].version: {ip}"
            assert ip["version"] == str(ipaddress.ip_interface(ip["address"]).version)
        else:
            assert "version" not in ip, f"{version} has no ips[].version: {ip}"
        if "interface" in ip:
            index = ip["interface"]
            assert 0 <= index < len(interfaces), f"ips[].interface {index} out of range"
            assert interfaces[index].get("sandbox"), "ips[].interface must point at a sandbox interface"
        if ip.get("gateway"):
            ipaddress.ip_address(ip["gateway"])
    for route in result.get("routes", []):
        ipaddress.ip_network(route["dst"], strict=False)
        if _vt(version) < (1, 1, 0):
            assert not V11_ROUTE_FIELDS & route.keys()


def validate_error(error: dict) -> None:
    assert set(error) <= {"cniVersion", "code", "msg", "details"}, error
    assert isinstance(error["code"], int) and error["code"] > 0, error
    assert isinstance(error["msg"], str) and error["msg"], error
    assert "Traceback" not in error["msg"] and "Traceback" not in error.get("details", "")
