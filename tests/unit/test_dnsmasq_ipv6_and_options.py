"""netplug.render.dnsmasq: DHCPv6 + router advertisements, the bridge binding's shared network,
and KubeVirt's dhcpOptions.

An IPv6-only plan serves no DHCPv4 at all: one DHCPv6 range of the VM's single address (static,
for the known MAC only, when the plan has one) with
the VM network's prefix length, router advertisements (`enable-ra`) carrying the MTU, and
the IPv6 DNS. The bridge binding's bridge carries only 169.254.75.10/32, so the guest's
subnet is declared with `shared-network`. dhcpOptions become options 42 (NTP), 66 (TFTP
server), 67 (boot file) and quoted private options 224-254. The golden file
data/dnsmasq_ipv6_only.conf was written by hand. `dnsmasq --test` proves dnsmasq parses each
file; dnsmasq resolves a `shared-network` interface name while parsing, so those files are
checked in a throwaway netns where the bridge exists.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from netplug.bindings.base import BindingContext
from netplug.bindings.bridge import plan_bridge
from netplug.bindings.masquerade import plan_masquerade
from netplug.errors import InvalidConfig
from netplug.model.netconf import BridgeConf, MasqueradeConf
from netplug.model.netspec import DhcpPlan, PodInterface, RouteSpec
from netplug.render.dnsmasq import render_dhcp
from tests.support.private_netns import run_in_private_netns

DATA = Path(__file__).parent / "data"
DNSMASQ = shutil.which("dnsmasq") or next(
    (p for p in ("/usr/sbin/dnsmasq", "/sbin/dnsmasq") if os.path.exists(p)), None)
IP = shutil.which("ip") or next((p for p in ("/usr/sbin/ip", "/sbin/ip", "/bin/ip") if os.path.exists(p)), None)
UNSHARE = shutil.which("unshare")
FILES = dict(pid_file="/run/netplug/dhcp/abc.pid", lease_file="/run/netplug/dhcp/abc.leases",
             log_file="/run/netplug/dhcp/abc.log")
SEARCH = ["default.svc.cluster.local", "svc.cluster.local", "cluster.local"]
OPTIONS = {"ntpServers": ["10.0.0.123", "10.0.0.124"], "tftpServerName": "tftp.example.com",
           "bootFileName": "pxelinux.0",
           "privateOptions": [{"option": 224, "value": "hello world"}, {"option": 254, "value": "a=b;c,d"}]}


def ipv6_plan(**overrides: object) -> DhcpPlan:
    fields: dict[str, object] = dict(
        interface="k6t-eth0", vm_address6="fd10:0:2::2", prefixlen6=120, mtu=1450,
        vm_mac="02:11:22:33:44:55", dns_servers6=["fd00:10:96::a"], search_domains=SEARCH,
        # IPv4-only fields: an IPv6-only plan never sends them
        dns_servers=["10.96.0.10"], hostname="vm-a", domain_name="default.svc.cluster.local",
    )
    fields.update(overrides)
    return DhcpPlan(**fields)


def bridge_plan(**overrides: object) -> DhcpPlan:
    fields: dict[str, object] = dict(
        interface="k6t-eth0", vm_address="10.244.1.5", prefixlen=24, router="10.244.1.1",
        shared_network="10.244.1.0", mtu=1450, vm_mac="02:11:22:33:44:55",
        classless_routes=[("10.96.0.0/12", "10.244.1.1"), ("0.0.0.0/0", "10.244.1.1")],
    )
    fields.update(overrides)
    return DhcpPlan(**fields)


def options_plan(**overrides: object) -> DhcpPlan:
    fields: dict[str, object] = dict(
        interface="k6t-eth0", vm_address="10.0.2.2", prefixlen=24, router="10.0.2.1",
        ntp_servers=["10.0.0.123", "10.0.0.124"], tftp_server="tftp.example.com", boot_file="pxelinux.0",
        private_options=[(224, "hello world"), (254, "a=b;c,d")],
    )
    fields.update(overrides)
    return DhcpPlan(**fields)


def lines(text: str) -> list[str]:
    return text.splitlines()


def starting(text: str, prefix: str) -> list[str]:
    return [line for line in lines(text) if line.startswith(prefix)]


def pod_context(*addresses: str, routes: tuple[RouteSpec, ...] = ()) -> BindingContext:
    return BindingContext(container_id="3f2a9c1e0b7d", ifname="eth0", netns="/run/netns/cni-7f3e",
                          pod_interface=PodInterface(name="eth0", mac="0a:58:0a:f4:01:05", mtu=1450,
                                                     addresses=list(addresses), routes=list(routes)),
                          resolv_conf="nameserver fd00:10:96::a\nsearch svc.cluster.local\n")


# --- IPv6 only ----------------------------------------------------------------------------------


def test_ipv6_only_matches_golden() -> None:
    assert render_dhcp(ipv6_plan(), **FILES) == (DATA / "dnsmasq_ipv6_only.conf").read_text()


def test_ipv6_only_serves_no_dhcpv4() -> None:
    text = render_dhcp(ipv6_plan(), **FILES)
    assert starting(text, "dhcp-range=") == ["dhcp-range=fd10:0:2::2,static,120,infinite"]
    assert not starting(text, "dhcp-option=option:"), "no DHCPv4 option without a DHCPv4 range"
    assert not starting(text, "dhcp-option=12,")
    assert not starting(text, "shared-network=")
    assert starting(text, "dhcp-host=") == ["dhcp-host=02:11:22:33:44:55,[fd10:0:2::2],infinite"]
    assert "dhcp-ignore=tag:!known" in lines(text), "with the MAC known, DHCPv6 answers that MAC only"


@pytest.mark.parametrize(("address", "prefixlen"), [("fd10:0:2::2", 120), ("fd20::2", 64), ("2001:db8:1::2", 126)])
def test_ipv6_range_is_the_vm_address_with_the_prefix_length(address: str, prefixlen: int) -> None:
    text = render_dhcp(ipv6_plan(vm_address6=address, prefixlen6=prefixlen, vm_mac=None), **FILES)
    assert starting(text, "dhcp-range=") == [f"dhcp-range={address},{address},{prefixlen},infinite"]
    assert not starting(text, "dhcp-host=")


def test_router_advertisements_carry_the_mtu() -> None:
    text = render_dhcp(ipv6_plan(mtu=1400), **FILES)
    assert "enable-ra" in lines(text)
    assert starting(text, "ra-param=") == ["ra-param=k6t-eth0,mtu:1400,high,10,1800"]
    without = render_dhcp(ipv6_plan(mtu=None), **FILES)
    assert starting(without, "ra-param=") == ["ra-param=k6t-eth0,high,10,1800"]


def test_router_lifetime_zero_when_the_bridge_is_no_router() -> None:
    text = render_dhcp(ipv6_plan(ra_default_route=False), **FILES)
    assert starting(text, "ra-param=") == ["ra-param=k6t-eth0,mtu:1450,high,10,0"]


def test_bridge_binding_serves_the_pods_ipv6_address_on_its_prefix() -> None:
    routes = (RouteSpec(dst="::/0", gateway="fd00:10:244:1::1"),)
    plan = plan_bridge(BridgeConf(cniVersion="1.0.0", binding="bridge"),
                       pod_context("10.244.1.5/24", "fd00:10:244:1::5/64", routes=routes))
    text = lines(render_dhcp(plan.netspec.dhcp, **FILES))
    assert "dhcp-range=fd00:10:244:1::5,static,64,infinite" in text
    assert "dhcp-host=0a:58:0a:f4:01:05,[fd00:10:244:1::5],infinite" in text
    assert "ra-param=k6t-eth0,mtu:1450,high,10,1800" in text


def test_ipv6_only_plan_from_the_masquerade_binding() -> None:
    plan = plan_masquerade(MasqueradeConf(cniVersion="1.0.0", binding="masquerade", mac="52:54:00:12:34:56"),
                           pod_context("fd00:10:244:1::5/64"))
    text = render_dhcp(plan.netspec.dhcp, **FILES)
    assert starting(text, "dhcp-range=") == ["dhcp-range=fd10:0:2::2,static,120,infinite"]
    assert starting(text, "ra-param=") == ["ra-param=k6t-eth0,mtu:1450,high,10,1800"]
    assert "dhcp-host=52:54:00:12:34:56,[fd10:0:2::2],infinite" in lines(text)
    assert "dhcp-option=option6:dns-server,[fd00:10:96::a]" in lines(text)


def test_dual_stack_has_one_range_per_family() -> None:
    text = render_dhcp(ipv6_plan(vm_address="10.0.2.2", prefixlen=24, router="10.0.2.1"), **FILES)
    assert starting(text, "dhcp-range=") == ["dhcp-range=10.0.2.2,static,255.255.255.0,infinite",
                                             "dhcp-range=fd10:0:2::2,static,120,infinite"]
    assert starting(text, "dhcp-host=") == ["dhcp-host=02:11:22:33:44:55,10.0.2.2,infinite",
                                            "dhcp-host=02:11:22:33:44:55,[fd10:0:2::2],infinite"]
    assert "dhcp-option=option:mtu,1450" in lines(text) and "enable-ra" in lines(text)


# --- shared network (bridge binding) ------------------------------------------------------------


def test_shared_network_line_follows_the_range() -> None:
    text = lines(render_dhcp(bridge_plan(), **FILES))
    at = text.index("dhcp-range=10.244.1.5,static,255.255.255.0,infinite")
    assert text[at + 1] == "shared-network=k6t-eth0,10.244.1.0"
    assert "dhcp-host=02:11:22:33:44:55,10.244.1.5,infinite" in text
    assert "dhcp-option=option:router,10.244.1.1" in text
    assert "dhcp-option=option:classless-static-route,10.96.0.0/12,10.244.1.1,0.0.0.0/0,10.244.1.1" in text


def test_no_shared_network_line_without_one() -> None:
    assert not starting(render_dhcp(bridge_plan(shared_network=None), **FILES), "shared-network=")


def test_bridge_binding_plan_renders_the_shared_network_of_the_pod() -> None:
    routes = (RouteSpec(dst="0.0.0.0/0", gateway="10.244.1.1"),)
    plan = plan_bridge(BridgeConf(cniVersion="1.0.0", binding="bridge"), pod_context("10.244.1.5/24", routes=routes))
    text = render_dhcp(plan.netspec.dhcp, **FILES)
    assert "shared-network=k6t-eth0,10.244.1.0" in lines(text)
    assert "dhcp-range=10.244.1.5,static,255.255.255.0,infinite" in lines(text)
    assert "dhcp-host=0a:58:0a:f4:01:05,10.244.1.5,infinite" in lines(text)


# --- dhcpOptions --------------------------------------------------------------------------------


def test_dhcp_options_lines() -> None:
    text = render_dhcp(options_plan(), **FILES)
    assert "dhcp-option=option:ntp-server,10.0.0.123,10.0.0.124" in lines(text)  # option 42
    assert 'dhcp-option=66,"tftp.example.com"' in lines(text)
    assert 'dhcp-option=67,"pxelinux.0"' in lines(text)
    # quoted: a private option is a string, whatever it looks like
    assert 'dhcp-option=224,"hello world"' in lines(text)
    assert 'dhcp-option=254,"a=b;c,d"' in lines(text)


def test_no_dhcp_options_no_lines() -> None:
    text = render_dhcp(options_plan(ntp_servers=[], tftp_server=None, boot_file=None, private_options=[]), **FILES)
    for prefix in ("dhcp-option=option:ntp-server", "dhcp-option=66,", "dhcp-option=67,", "dhcp-option=2"):
        assert not starting(text, prefix), prefix


def test_bridge_binding_dhcp_options_reach_the_file() -> None:
    plan = plan_bridge(BridgeConf(cniVersion="1.0.0", binding="bridge", dhcpOptions=OPTIONS),
                       pod_context("10.244.1.5/24"))
    text = render_dhcp(plan.netspec.dhcp, **FILES)
    for line in ("dhcp-option=option:ntp-server,10.0.0.123,10.0.0.124", 'dhcp-option=66,"tftp.example.com"',
                 'dhcp-option=67,"pxelinux.0"', 'dhcp-option=224,"hello world"', 'dhcp-option=254,"a=b;c,d"'):
        assert line in lines(text)


def test_ntp_server_is_option_42_for_dnsmasq() -> None:
    if DNSMASQ is None:
        pytest.skip("dnsmasq is not installed (Debian package dnsmasq-base)")
    known = subprocess.run([DNSMASQ, "--help", "dhcp"], capture_output=True, text=True, timeout=30).stdout
    assert {tuple(line.split()) for line in known.splitlines()} >= {("42", "ntp-server")}


# --- dnsmasq itself accepts what netplug renders ------------------------------------------------


def dnsmasq_test(text: str, tmp_path: Path) -> subprocess.CompletedProcess:
    if DNSMASQ is None:
        pytest.skip("dnsmasq is not installed (Debian package dnsmasq-base)")
    path = tmp_path / "dnsmasq.conf"
    path.write_text(text)
    shared = [line.split("=", 1)[1].split(",")[0] for line in starting(text, "shared-network=")]
    if not shared:
        return subprocess.run([DNSMASQ, "--test", "-C", str(path)], capture_output=True, text=True, timeout=30)
    # dnsmasq looks the shared-network interface up while parsing: make it exist, privately
    if os.geteuid() != 0 or UNSHARE is None or IP is None:
        pytest.skip("dnsmasq --test needs the shared-network bridge to exist: root, unshare and ip in a private netns")
    done = run_in_private_netns(*[[IP, "link", "add", name, "type", "bridge"] for name in shared],
                                [DNSMASQ, "--test", "-C", str(path)])
    if done.returncode != 0 and done.stderr.startswith("unshare"):
        pytest.skip(f"cannot make a network namespace here: {done.stderr.strip()}")
    return done


ACCEPTED = {
    "ipv6-only": lambda: ipv6_plan(),
    "ipv6-no-mac-no-mtu": lambda: ipv6_plan(vm_mac=None, mtu=None, dns_servers6=[], search_domains=[]),
    "ipv6-/64": lambda: ipv6_plan(vm_address6="fd20::2", prefixlen6=64),
    "dual-stack": lambda: ipv6_plan(vm_address="10.0.2.2", prefixlen=24, router="10.0.2.1"),
    "shared-network": lambda: bridge_plan(),
    "shared-network-secondary": lambda: bridge_plan(interface="k6t-16477688c0e", vm_address="10.11.0.5",
                                                    shared_network="10.11.0.0", router=None,
                                                    classless_routes=[]),
    "dhcp-options": lambda: options_plan(),
    "bridge-with-options": lambda: bridge_plan(ntp_servers=["10.0.0.123"], tftp_server="10.0.0.69",
                                               boot_file="ipxe.efi", private_options=[(240, "x")]),
}


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_dnsmasq_accepts_the_file(name: str, tmp_path: Path) -> None:
    result = dnsmasq_test(render_dhcp(ACCEPTED[name](), **FILES), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "syntax check OK" in result.stderr


def test_dnsmasq_check_is_not_vacuous(tmp_path: Path) -> None:
    """The check above would catch a broken file: dnsmasq refuses a bad IPv6 range."""
    result = dnsmasq_test(render_dhcp(ipv6_plan(vm_address6="fd10:0:2::zz"), **FILES), tmp_path)
    assert result.returncode != 0


@pytest.mark.parametrize("cidr", ["fd10:0:2::/64", "fd10:0:2::/96", "fd10:0:2::/126"])
def test_accepted_ipv6_vm_network_gives_a_file_dnsmasq_accepts(cidr: str, tmp_path: Path) -> None:
    conf = MasqueradeConf(cniVersion="1.0.0", binding="masquerade", vmIPv6NetworkCIDR=cidr)
    plan = plan_masquerade(conf, pod_context("fd00:10:244:1::5/64"))
    assert plan.netspec.dhcp.prefixlen6 == ipaddress.IPv6Network(cidr).prefixlen
    result = dnsmasq_test(render_dhcp(plan.netspec.dhcp, **FILES), tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("cidr", ["fd10:0:2::/48", "fd10:0:2::/63"])
def test_short_ipv6_vm_network_is_refused_or_served(cidr: str, tmp_path: Path) -> None:
    """Either the config is refused up front (code 7), or dnsmasq accepts what is rendered."""
    try:
        conf = MasqueradeConf(cniVersion="1.0.0", binding="masquerade", vmIPv6NetworkCIDR=cidr)
        plan = plan_masquerade(conf, pod_context("fd00:10:244:1::5/64"))
    except (ValidationError, InvalidConfig):
        return
    result = dnsmasq_test(render_dhcp(plan.netspec.dhcp, **FILES), tmp_path)
    assert result.returncode == 0, result.stderr
