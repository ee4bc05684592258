"""netplug.render.nftables.render_spoof_guard: the bridge binding's spoof guard, as nft JSON.

The golden file data/spoof_guard_dual_stack.json was written by hand (its IPv6 rules reviewed
by hand again when the guard learned the guest's own addresses) from the module docstring and
the README ("drop frames from the tap with another source MAC, or another
IPv4/IPv6 source (ARP sender and neighbour-advertisement target included) than the guest's"),
one bridge-family table, one chain at prerouting priority -300, rules in this order:

    iifname != <tap> return                           frames not from the guest pass untouched
    ether saddr != <guest MAC> drop
    ip udp sport 67 drop                              no DHCP answers from the guest (with IPv4)
    ip6 udp sport 547 drop                            no DHCPv6 answers from it (with IPv6)
    arp saddr ether != <guest MAC> drop
    arp saddr ip != {<IPv4>, 0.0.0.0} drop            0.0.0.0: ARP probes (RFC 5227)
    ip saddr 0.0.0.0 udp dport 67 return              DHCP before the guest has an address
    ip saddr != {<IPv4>} drop
    ip6 saddr != {<IPv6>..., ::} drop                 the guest's /128s and its EUI-64 link-local
                                                      address; "::" for DAD and MLD
    icmpv6 type {router advert, redirect} drop        the guest is nobody's router
    nd-neighbor-advert, target == <IPv6>: return      per address; target = ICMPv6 bits 64..191
    nd-neighbor-advert drop                           any other target

Every drop rule counts what it dropped (`netplug doctor` reports it).
`nft -c` (check mode: parsed and validated by the kernel, never committed) proves nft accepts
each document.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from netplug.model.netspec import ServiceFencePlan, SpoofGuardPlan
from netplug.render.nftables import render_service_fence, render_spoof_guard
from tests.support.private_netns import run_in_private_netns

DATA = Path(__file__).parent / "data"
TAG = "5d41402abc4b2a76"
VM_MAC = "02:7a:1c:3d:4e:5f"
VM_LINK_LOCAL = "fe80::7a:1cff:fe3d:4e5f"  # modified EUI-64 of VM_MAC
NFT = shutil.which("nft") or next((p for p in ("/usr/sbin/nft", "/sbin/nft") if os.path.exists(p)), None)
UNSHARE = shutil.which("unshare")


def plan(**overrides: object) -> SpoofGuardPlan:
    fields: dict[str, object] = dict(table="netplug_eth0_guard", port="tap0", vm_mac=VM_MAC,
                                     ipv4=["10.244.1.5"], ipv6=["fd00:10:244:1::5", VM_LINK_LOCAL], tag=TAG)
    fields.update(overrides)
    return SpoofGuardPlan(**fields)


def mac_only() -> SpoofGuardPlan:
    return plan(table="netplug_pod16477688c0e_guard", port="tap16477688c0e", ipv4=[], ipv6=[])


def rules(document: dict) -> list[dict]:
    return [c["add"]["rule"] for c in document["nftables"] if "rule" in c.get("add", {})]


def lefts(rule: dict) -> list[str]:
    """What each match of a rule looks at, e.g. "meta iifname", "arp saddr ip", "th 64/128"."""
    out = []
    for expr in rule["expr"]:
        if "match" not in expr:
            continue
        left = expr["match"]["left"]
        if "meta" in left:
            out.append("meta " + left["meta"]["key"])
        elif "protocol" in left["payload"]:
            out.append(f"{left['payload']['protocol']} {left['payload']['field']}")
        else:
            out.append(f"{left['payload']['base']} {left['payload']['offset']}/{left['payload']['len']}")
    return out


def verdict(rule: dict) -> str:
    (last,) = rule["expr"][-1].keys()
    return last


def uses(document: dict, what: str) -> bool:
    return any(what in lefts(rule) for rule in rules(document))


# --- the document -------------------------------------------------------------------------------


def test_matches_golden() -> None:
    assert render_spoof_guard(plan()) == json.loads((DATA / "spoof_guard_dual_stack.json").read_text())


def test_first_rule_lets_frames_from_other_ports_pass() -> None:
    first = rules(render_spoof_guard(plan(port="tap16477688c0e")))[0]
    assert first["expr"] == [{"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": "tap16477688c0e"}},
                             {"return": None}]


def test_one_table_one_chain_early_in_prerouting() -> None:
    document = render_spoof_guard(plan())
    commands = document["nftables"]
    assert commands[0] == {"metainfo": {"json_schema_version": 1}}
    assert commands[1] == {"add": {"table": {"family": "bridge", "name": "netplug_eth0_guard"}}}
    assert commands[2] == {"flush": {"table": {"family": "bridge", "name": "netplug_eth0_guard"}}}
    chains = [c["add"]["chain"] for c in commands if "chain" in c.get("add", {})]
    assert chains == [{"family": "bridge", "table": "netplug_eth0_guard", "name": "guard", "type": "filter",
                       "hook": "prerouting", "prio": -300, "policy": "accept"}]


@pytest.mark.parametrize("make_plan", [plan, mac_only, lambda: plan(ipv6=[]), lambda: plan(ipv4=[])],
                         ids=["dual-stack", "mac-only", "ipv4-only", "ipv6-only"])
def test_every_rule_carries_the_tag_and_stays_in_its_table(make_plan) -> None:
    guard = make_plan()
    document = render_spoof_guard(guard.model_copy(update={"tag": "feedbeef00112233"}))
    assert rules(document)
    for rule in rules(document):
        assert rule["comment"] == "netplug:feedbeef00112233"
        assert (rule["family"], rule["table"], rule["chain"]) == ("bridge", guard.table, "guard")


def test_only_mac_rules_without_addresses() -> None:
    document = render_spoof_guard(mac_only())
    assert [lefts(r) for r in rules(document)] == [
        ["meta iifname"], ["ether saddr"], ["meta protocol", "arp saddr ether"]]
    text = json.dumps(document)
    for absent in ('"ip"', '"ip6"', "saddr ip", "icmpv6", "0.0.0.0", "fe80::"):
        assert absent not in text


def test_ipv4_only_has_no_ipv6_rules() -> None:
    document = render_spoof_guard(plan(ipv6=[]))
    assert uses(document, "arp saddr ip") and uses(document, "ip saddr")
    assert not uses(document, "ip6 saddr") and not uses(document, "icmpv6 type")


def test_ipv6_only_has_no_ipv4_rules() -> None:
    document = render_spoof_guard(plan(ipv4=[]))
    assert uses(document, "ip6 saddr") and uses(document, "icmpv6 type")
    assert not uses(document, "arp saddr ip") and not uses(document, "ip saddr")
    assert uses(document, "arp saddr ether"), "the ARP sender MAC is checked whatever the addresses"


def test_several_addresses_are_all_allowed() -> None:
    document = render_spoof_guard(plan(ipv4=["10.244.1.5", "10.244.2.5"], ipv6=["fd00:10:244:1::5", "2001:db8::5"]))
    by_left = {tuple(lefts(r)): r for r in rules(document)}
    arp_ip = by_left[("meta protocol", "arp saddr ip")]["expr"][1]["match"]["right"]
    assert arp_ip == {"set": ["10.244.1.5", "10.244.2.5", "0.0.0.0"]}
    ip = by_left[("meta protocol", "ip saddr")]["expr"][1]["match"]["right"]
    assert ip == {"set": ["10.244.1.5", "10.244.2.5"]}
    ip6 = by_left[("meta protocol", "ip6 saddr")]["expr"][1]["match"]["right"]
    assert ip6 == {"set": ["fd00:10:244:1::5", "2001:db8::5", "::"]}
    targets = [r["expr"][2]["match"]["right"] for r in rules(document) if lefts(r) == ["meta protocol", "icmpv6 type", "th 64/128"]]
    assert targets == ["0xfd000010024400010000000000000005", "0x20010db8000000000000000000000005"]
    assert all(verdict(r) == "return" for r in rules(document) if lefts(r)[-1:] == ["th 64/128"])


def test_dhcp_discover_passes_before_the_source_check() -> None:
    order = [(lefts(r), verdict(r)) for r in rules(render_spoof_guard(plan()))]
    dhcp = order.index((["meta protocol", "ip saddr", "udp dport"], "return"))
    source = order.index((["meta protocol", "ip saddr"], "drop"))
    assert dhcp < source
    dhcp_rule = rules(render_spoof_guard(plan()))[dhcp]
    assert [e["match"]["right"] for e in dhcp_rule["expr"][:3]] == ["ip", "0.0.0.0", 67]


def test_own_adverts_return_before_any_other_is_dropped() -> None:
    found = rules(render_spoof_guard(plan()))
    order = [(lefts(r), verdict(r), r["expr"][1].get("match", {}).get("right")) for r in found]
    own = [i for i, o in enumerate(order) if o[:2] == (["meta protocol", "icmpv6 type", "th 64/128"], "return")]
    foreign = order.index((["meta protocol", "icmpv6 type"], "drop", "nd-neighbor-advert"))  # any other target
    assert len(own) == 2 and max(own) < foreign
    targets = [found[i]["expr"][2]["match"]["right"] for i in own]
    assert targets == ["0xfd000010024400010000000000000005", "0xfe80000000000000007a1cfffe3d4e5f"]
    assert not uses(render_spoof_guard(plan()), "th 64/10"), "no other link-local address is anyone's to claim"


def test_router_adverts_and_redirects_from_the_guest_are_dropped() -> None:
    found = [r for r in rules(render_spoof_guard(plan())) if lefts(r) == ["meta protocol", "icmpv6 type"]
             and r["expr"][1]["match"]["right"] == {"set": ["nd-router-advert", "nd-redirect"]}]
    assert [verdict(r) for r in found] == ["drop"]


# --- nft itself accepts what netplug renders ---------------------------------------------------


def need_root_nft() -> str:
    if NFT is None:
        pytest.skip("nft is not installed (Debian package nftables)")
    if os.geteuid() != 0:
        pytest.skip("nft -c talks to the kernel's nftables and needs root (CAP_NET_ADMIN)")
    return NFT


def nft_check(document: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    nft = need_root_nft()
    path = tmp_path / "guard.json"
    path.write_text(json.dumps(document))
    return subprocess.run([nft, "-j", "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(
    "make_plan",
    [plan, mac_only, lambda: plan(ipv6=[]), lambda: plan(ipv4=[]),
     lambda: plan(ipv4=["10.244.1.5", "10.244.2.5"], ipv6=["fd00:10:244:1::5", "2001:db8::5"]),
     lambda: plan(table="netplug_pod16477688c0e_guard", port="tap16477688c0e", vm_mac="52:54:00:12:34:56")],
    ids=["dual-stack", "mac-only", "ipv4-only", "ipv6-only", "several-addresses", "secondary-network"],
)
def test_nft_accepts_the_document(make_plan, tmp_path: Path) -> None:
    result = nft_check(render_spoof_guard(make_plan()), tmp_path)
    assert result.returncode == 0, result.stderr


def test_service_fence_drops_the_pods_router_adverts_and_dhcpv6_answers_on_the_uplink(tmp_path: Path) -> None:
    document = render_service_fence(ServiceFencePlan(table="netplug_eth0_fence", uplink="eth0-nic", tag=TAG))
    chains = [c["add"]["chain"] for c in document["nftables"] if "chain" in c.get("add", {})]
    assert [(c["family"], c["hook"], c["type"]) for c in chains] == [("bridge", "output", "filter")]
    found = rules(document)
    assert [lefts(r) for r in found] == [["meta oifname", "meta protocol", "icmpv6 type"],
                                         ["meta oifname", "meta protocol", "udp sport"]]
    assert [r["expr"][2]["match"]["right"] for r in found] == ["nd-router-advert", 547]
    assert {r["expr"][0]["match"]["right"] for r in found} == {"eth0-nic"}
    assert {verdict(r) for r in found} == {"drop"}
    result = nft_check(document, tmp_path)
    assert result.returncode == 0, result.stderr


def test_nft_check_is_not_vacuous(tmp_path: Path) -> None:
    """The check above would catch a broken document: nft refuses a bad MAC."""
    result = nft_check(render_spoof_guard(plan(vm_mac="02:7a:1c:3d:4e:zz")), tmp_path)
    assert result.returncode != 0


def test_nft_reads_the_rules_as_meant(tmp_path: Path) -> None:
    """Loaded into a throwaway netns, nft lists the raw neighbour-advertisement target matches
    as the guest's addresses and the sets as meant: the module says what the rules mean."""
    nft = need_root_nft()
    if UNSHARE is None:
        pytest.skip("unshare (util-linux) is not installed")
    path = tmp_path / "guard.json"
    path.write_text(json.dumps(render_spoof_guard(plan())))
    done = run_in_private_netns([nft, "-j", "-f", str(path)], [nft, "list", "ruleset"])
    if done.returncode != 0 and done.stderr.startswith("unshare"):
        pytest.skip(f"cannot make a network namespace here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    listing = [line.strip().split(" comment ")[0] for line in done.stdout.splitlines()]
    for expected in (
        'iifname != "tap0" return',
        "ether saddr != 02:7a:1c:3d:4e:5f counter packets 0 bytes 0 drop",
        "meta protocol ip udp sport 67 counter packets 0 bytes 0 drop",
        "meta protocol ip6 udp sport 547 counter packets 0 bytes 0 drop",
        "arp saddr ether != 02:7a:1c:3d:4e:5f counter packets 0 bytes 0 drop",
        "arp saddr ip != { 0.0.0.0, 10.244.1.5 } counter packets 0 bytes 0 drop",
        "ip saddr 0.0.0.0 udp dport 67 return",
        "ip saddr != 10.244.1.5 counter packets 0 bytes 0 drop",
        "ip6 saddr != { ::, fd00:10:244:1::5, fe80::7a:1cff:fe3d:4e5f } counter packets 0 bytes 0 drop",
        "icmpv6 type { nd-router-advert, nd-redirect } counter packets 0 bytes 0 drop",
        "icmpv6 type nd-neighbor-advert @th,64,128 0xfd000010024400010000000000000005 return",
        "icmpv6 type nd-neighbor-advert @th,64,128 0xfe80000000000000007a1cfffe3d4e5f return",
        "icmpv6 type nd-neighbor-advert counter packets 0 bytes 0 drop",
    ):
        assert expected in listing, f"{expected!r} not in:\n{done.stdout}"
