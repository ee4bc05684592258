"""netplug.render.dnsmasq: the guest's DHCPv4 service, as a dnsmasq configuration file.

The golden files in data/ were written by hand: DNS off (port=0), bound to the in-pod bridge
only, a one-address range (or "static" plus a dhcp-host line when the guest's MAC is known),
then the options a KubeVirt guest gets. `dnsmasq --test` proves dnsmasq parses the file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from netplug.model.netspec import DhcpPlan
from netplug.render.dnsmasq import render_dhcp

DATA = Path(__file__).parent / "data"
DNSMASQ = shutil.which("dnsmasq") or next(
    (p for p in ("/usr/sbin/dnsmasq", "/sbin/dnsmasq") if os.path.exists(p)), None)
FILES = dict(pid_file="/run/netplug/dhcp/abc.pid", lease_file="/run/netplug/dhcp/abc.leases",
             log_file="/run/netplug/dhcp/abc.log")


def full_plan(**overrides: object) -> DhcpPlan:
    fields: dict[str, object] = dict(
        interface="k6t-eth0", vm_address="10.0.2.2", prefixlen=24, router="10.0.2.1",
        dns_servers=["10.96.0.10", "8.8.8.8"],
        search_domains=["default.svc.cluster.local", "svc.cluster.local", "cluster.local"],
        domain_name="default.svc.cluster.local", mtu=1450, hostname="vm-a",
        classless_routes=[("0.0.0.0/0", "10.0.2.1")], vm_mac="02:11:22:33:44:55",
    )
    fields.update(overrides)
    return DhcpPlan(**fields)


def minimal_plan() -> DhcpPlan:
    return DhcpPlan(interface="k6t-16477688c0e", vm_address="192.168.7.2", prefixlen=30)


def lines(text: str) -> list[str]:
    return text.splitlines()


@pytest.mark.parametrize(
    ("make_plan", "golden"),
    [(full_plan, "dnsmasq_full.conf"), (minimal_plan, "dnsmasq_minimal.conf")],
    ids=["full", "minimal"],
)
def test_matches_golden(make_plan, golden: str) -> None:
    assert render_dhcp(make_plan(), **FILES) == (DATA / golden).read_text()


def test_known_mac_gets_a_static_range_and_a_host_entry() -> None:
    text = render_dhcp(full_plan(vm_mac="52:54:00:ab:cd:ef"), **FILES)
    assert "dhcp-range=10.0.2.2,static,255.255.255.0,infinite" in lines(text)
    assert "dhcp-host=52:54:00:ab:cd:ef,10.0.2.2,infinite" in lines(text)


def test_unknown_mac_gets_a_one_address_range_and_no_host_entry() -> None:
    text = render_dhcp(full_plan(vm_mac=None), **FILES)
    assert "dhcp-range=10.0.2.2,10.0.2.2,255.255.255.0,infinite" in lines(text)
    assert not [line for line in lines(text) if line.startswith("dhcp-host=")]


@pytest.mark.parametrize(("prefixlen", "mask"), [(8, "255.0.0.0"), (16, "255.255.0.0"),
                                                 (24, "255.255.255.0"), (30, "255.255.255.252")])
def test_netmask_follows_the_prefix(prefixlen: int, mask: str) -> None:
    text = render_dhcp(full_plan(prefixlen=prefixlen, vm_mac=None), **FILES)
    assert f"dhcp-range=10.0.2.2,10.0.2.2,{mask},infinite" in lines(text)


@pytest.mark.parametrize(
    "overrides",
    [
        {"hostname": "vm\nport=53"},
        {"domain_name": "example.com\r\ndhcp-option=3,6.6.6.6"},
        {"search_domains": ["ok.example", "bad\nexample"]},
        {"interface": "k6t-eth0\nlisten-address=0.0.0.0"},
    ],
    ids=["hostname", "domain-crlf", "search", "interface"],
)
def test_a_value_with_a_line_break_is_refused(overrides: dict) -> None:
    with pytest.raises(ValueError, match="line break"):
        render_dhcp(full_plan(**overrides), **FILES)


@pytest.mark.parametrize("which", ["pid_file", "lease_file", "log_file"])
def test_a_file_path_with_a_line_break_is_refused(which: str) -> None:
    with pytest.raises(ValueError, match="line break"):
        render_dhcp(full_plan(), **{**FILES, which: "/run/x\nport=53"})


# --- dnsmasq itself accepts what netplug renders ------------------------------------------------


def dnsmasq_test(text: str, tmp_path: Path) -> subprocess.CompletedProcess:
    if DNSMASQ is None:
        pytest.skip("dnsmasq is not installed (Debian package dnsmasq-base)")
    path = tmp_path / "dnsmasq.conf"
    path.write_text(text)
    return subprocess.run([DNSMASQ, "--test", "-C", str(path)], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("make_plan", [full_plan, minimal_plan], ids=["full", "minimal"])
def test_dnsmasq_accepts_the_file(make_plan, tmp_path: Path) -> None:
    result = dnsmasq_test(render_dhcp(make_plan(), **FILES), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "syntax check OK" in result.stderr


def test_dnsmasq_check_is_not_vacuous(tmp_path: Path) -> None:
    """The check above would catch a broken file: dnsmasq refuses an unknown option."""
    result = dnsmasq_test(render_dhcp(full_plan(), **FILES) + "no-such-option=1\n", tmp_path)
    assert result.returncode != 0
