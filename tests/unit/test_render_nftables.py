"""netplug.render.nftables: the NAT ruleset of the masquerade binding, as nft JSON.

The golden files in data/ were written by hand from KubeVirt's masquerade layout (the module
docstring): prerouting iifname <pod> jump inbound; inbound dnat to the VM; output dnat of
loopback traffic to the VM; postrouting masquerade of the VM's traffic and jump postinbound
on the bridge; postinbound snat of loopback-sourced traffic to the gateway; each translating
rule with a counter (netplug doctor reads them). `nft -c` (check mode: parsed and validated
by the kernel, never committed) proves nft accepts the document.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from netplug.model.netconf import PortSpec
from netplug.model.netspec import NatPlan
from netplug.render.nftables import render_nat

DATA = Path(__file__).parent / "data"
TAG = "5d41402abc4b2a76"
NFT = shutil.which("nft") or next((p for p in ("/usr/sbin/nft", "/sbin/nft") if os.path.exists(p)), None)


def plan(*ports: PortSpec, **overrides: str) -> NatPlan:
    fields = dict(table="netplug_eth0", pod_interface="eth0", bridge="k6t-eth0",
                  vm_address="10.0.2.2", gateway="10.0.2.1", tag=TAG)
    fields.update(overrides)
    return NatPlan(**fields, ports=list(ports))


LISTED = (PortSpec(port=443), PortSpec(port=53, protocol="UDP"), PortSpec(port=80), PortSpec(port=22))


def rules(document: dict) -> list[dict]:
    return [c["add"]["rule"] for c in document["nftables"] if "rule" in c.get("add", {})]


def port_matches(rule: dict) -> list[tuple[str, object]]:
    return [(e["match"]["left"]["payload"]["protocol"], e["match"]["right"])
            for e in rule["expr"]
            if "match" in e and e["match"]["left"].get("payload", {}).get("field") == "dport"]


@pytest.mark.parametrize(
    ("ports", "golden"),
    [((), "nat_all_ports.json"), (LISTED, "nat_listed_ports.json")],
    ids=["all-ports", "listed-ports"],
)
def test_matches_golden(ports: tuple[PortSpec, ...], golden: str) -> None:
    assert render_nat(plan(*ports)) == json.loads((DATA / golden).read_text())


@pytest.mark.parametrize("ports", [(), LISTED, (PortSpec(port=8080),)], ids=["all", "listed", "one"])
def test_every_rule_carries_the_tag_and_stays_in_its_table(ports: tuple[PortSpec, ...]) -> None:
    document = render_nat(plan(*ports, tag="feedbeef00112233"))
    assert rules(document)
    for rule in rules(document):
        assert rule["comment"] == "netplug:feedbeef00112233"
        assert (rule["family"], rule["table"]) == ("ip", "netplug_eth0")
    for command in document["nftables"][1:]:
        (obj,) = next(iter(command.values())).values()
        assert obj.get("family") == "ip"
        assert obj.get("table", obj.get("name")) == "netplug_eth0"


def test_document_replaces_the_whole_table() -> None:
    commands = render_nat(plan())["nftables"]
    assert commands[1] == {"add": {"table": {"family": "ip", "name": "netplug_eth0"}}}
    assert commands[2] == {"flush": {"table": {"family": "ip", "name": "netplug_eth0"}}}


@pytest.mark.parametrize(
    ("ports", "right"),
    [((8080,), 8080), ((8443, 8080), {"set": [8080, 8443]})],
    ids=["one-port-is-a-value", "more-are-a-sorted-set"],
)
def test_port_match_shape(ports: tuple[int, ...], right: object) -> None:
    document = render_nat(plan(*(PortSpec(port=p) for p in ports)))
    forwarding = [r for r in rules(document) if r["chain"] in ("inbound", "output", "postinbound")]
    assert [r["chain"] for r in forwarding] == ["inbound", "output", "postinbound"]
    for rule in forwarding:
        assert port_matches(rule) == [("tcp", right)]


def test_only_the_listed_protocol_is_forwarded() -> None:
    document = render_nat(plan(PortSpec(port=53, protocol="UDP"), PortSpec(port=5353, protocol="UDP")))
    inbound = [r for r in rules(document) if r["chain"] == "inbound"]
    assert [port_matches(r) for r in inbound] == [[("udp", {"set": [53, 5353]})]]


def test_names_and_addresses_come_from_the_plan() -> None:
    document = render_nat(plan(table="netplug_pod16477688c0e", pod_interface="pod16477688c0e",
                               bridge="k6t-16477688c0e", vm_address="10.11.0.2", gateway="10.11.0.1"))
    text = json.dumps(document)
    for value in ("netplug_pod16477688c0e", '"pod16477688c0e"', "k6t-16477688c0e", "10.11.0.2", "10.11.0.1"):
        assert value in text
    assert "eth0" not in text and "10.0.2." not in text


# --- nft itself accepts what netplug renders ---------------------------------------------------


def nft_check(document: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    if NFT is None:
        pytest.skip("nft is not installed (Debian package nftables)")
    if os.geteuid() != 0:
        pytest.skip("nft -c talks to the kernel's nftables and needs root (CAP_NET_ADMIN)")
    path = tmp_path / "ruleset.json"
    path.write_text(json.dumps(document))
    return subprocess.run([NFT, "-j", "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(
    "ports",
    [(), LISTED, (PortSpec(port=8080),), (PortSpec(port=53, protocol="UDP"),)],
    ids=["all-ports", "listed-ports", "one-tcp", "one-udp"],
)
def test_nft_accepts_the_document(ports: tuple[PortSpec, ...], tmp_path: Path) -> None:
    result = nft_check(render_nat(plan(*ports)), tmp_path)
    assert result.returncode == 0, result.stderr


def test_nft_accepts_a_secondary_network_document(tmp_path: Path) -> None:
    document = render_nat(plan(PortSpec(port=22), table="netplug_pod16477688c0e",
                               pod_interface="pod16477688c0e", bridge="k6t-16477688c0e"))
    result = nft_check(document, tmp_path)
    assert result.returncode == 0, result.stderr


def test_nft_check_is_not_vacuous(tmp_path: Path) -> None:
    """The check above would catch a broken document: nft refuses a bad address."""
    result = nft_check(render_nat(plan(vm_address="10.0.2.300")), tmp_path)
    assert result.returncode != 0
