"""Render a `NatPlan` into one nftables JSON document, applied atomically by `nft -j -f -`.

The document owns one table (`add table`, `flush table`, then every chain and rule), so
applying it twice gives the same ruleset and deleting the table removes everything. Each
rule's comment carries the attachment tag. The ruleset is KubeVirt's masquerade layout:

    prerouting  (nat, dstnat)   iifname <pod iface> jump inbound
    inbound                     [<proto> dport {ports}] dnat to <vm>
    output      (nat, -100)     <family> daddr <loopback> [<proto> dport {ports}] dnat to <vm>
    postrouting (nat, srcnat)   <family> saddr <vm> masquerade
                                oifname <bridge> jump postinbound
    postinbound                 <family> saddr <loopback> [<proto> dport {ports}] snat to <gateway>
    forward     (filter, 0)     iifname <bridge> <family> saddr != <vm> drop

The forward chain is netplug's, not KubeVirt's: only the VM's own address is masqueraded, so
a guest that sends from any other source (another pod's address, another address of the VM
network) would leave the pod under that source; it is dropped instead.

The translating rules (masquerade, dnat, snat) carry counters, so `netplug doctor` can
tell rules that are there from rules that are used.

`render_spoof_guard` renders a bridge-family table whose one chain (prerouting, priority
-300, before the bridge forwards or delivers anything) drops frames that enter a bridge from
the guest's port (its tap) with another source MAC, or with another source address than
the guest's own (IPv4, ARP sender, IPv6 and neighbour advertisement target: the guest's
addresses and the link-local address its MAC gives it), and router advertisements or
redirects from the guest. DHCP discovery and duplicate address detection, which a guest needs
before it has an address, pass; every drop rule counts what it dropped. `render_service_fence` keeps the guest's router
advertisements and DHCPv6 answers, sent by the pod's bridge, from leaving through the pod's
uplink.

May import: netplug.model.
"""

from __future__ import annotations

import ipaddress

from netplug.model.netspec import NatPlan, ServiceFencePlan, SpoofGuardPlan

_BASE_CHAINS = {
    "prerouting": ("prerouting", -100),
    "output": ("output", -100),
    "postrouting": ("postrouting", 100),
}


def _match(left: dict, right: object, op: str = "==") -> dict:
    return {"match": {"op": op, "left": left, "right": right}}


def _meta(key: str) -> dict:
    return {"meta": {"key": key}}


def _payload(protocol: str, field: str) -> dict:
    return {"payload": {"protocol": protocol, "field": field}}


def _port_matches(plan: NatPlan) -> list[list[dict]]:
    """One match list per protocol with listed ports; [[]] (match all) when none are listed."""
    if not plan.ports:
        return [[]]
    matches = []
    for protocol in ("TCP", "UDP"):
        ports = sorted({p.port for p in plan.ports if p.protocol == protocol})
        if ports:
            right = ports[0] if len(ports) == 1 else {"set": ports}
            matches.append([_match(_payload(protocol.lower(), "dport"), right)])
    return matches


def render_nat(plan: NatPlan) -> dict:
    family, table = plan.family, plan.table
    comment = f"netplug:{plan.tag}"
    commands: list[dict] = [
        {"add": {"table": {"family": family, "name": table}}},
        {"flush": {"table": {"family": family, "name": table}}},
    ]
    for name, (hook, prio) in _BASE_CHAINS.items():
        commands.append({"add": {"chain": {
            "family": family, "table": table, "name": name,
            "type": "nat", "hook": hook, "prio": prio, "policy": "accept",
        }}})
    commands.append({"add": {"chain": {
        "family": family, "table": table, "name": "forward",
        "type": "filter", "hook": "forward", "prio": 0, "policy": "accept",
    }}})
    for name in ("inbound", "postinbound"):
        commands.append({"add": {"chain": {"family": family, "table": table, "name": name}}})

    def rule(chain: str, *expr: dict) -> dict:
        return {"add": {"rule": {
            "family": family, "table": table, "chain": chain, "expr": list(expr), "comment": comment,
        }}}

    addr = "ip" if family == "ip" else "ip6"
    counter = {"counter": None}  # each NAT rule counts the connections it translated (doctor)
    commands.append(rule("prerouting", _match(_meta("iifname"), plan.pod_interface), {"jump": {"target": "inbound"}}))
    commands.append(rule("postrouting", _match(_payload(addr, "saddr"), plan.vm_address), counter, {"masquerade": None}))
    commands.append(rule("postrouting", _match(_meta("oifname"), plan.bridge), {"jump": {"target": "postinbound"}}))
    commands.append(rule("forward", _match(_meta("iifname"), plan.bridge),
                         _match(_payload(addr, "saddr"), plan.vm_address, "!="), {"drop": None}))
    for ports in _port_matches(plan):
        commands.append(rule("inbound", *ports, counter, {"dnat": {"addr": plan.vm_address}}))
        commands.append(rule("output", _match(_payload(addr, "daddr"), plan.loopback), *ports, counter,
                             {"dnat": {"addr": plan.vm_address}}))
        commands.append(rule("postinbound", _match(_payload(addr, "saddr"), plan.loopback), *ports, counter,
                             {"snat": {"addr": plan.gateway}}))
    return {"nftables": [{"metainfo": {"json_schema_version": 1}}, *commands]}


def _address_set(addresses: list[str], *extra: object) -> dict:
    items: list[object] = []
    for address in [*addresses, *extra]:
        if isinstance(address, str) and "/" in address:
            net, length = address.split("/")
            items.append({"prefix": {"addr": net, "len": int(length)}})
        else:
            items.append(address)
    return {"set": items}


def render_spoof_guard(plan: SpoofGuardPlan) -> dict:
    family, table, chain = "bridge", plan.table, "guard"
    comment = f"netplug:{plan.tag}"

    drop = {"drop": None}

    def rule(*expr: dict) -> dict:
        if expr[-1] == drop:  # each drop counts what it stopped (doctor)
            expr = (*expr[:-1], {"counter": None}, drop)
        return {"add": {"rule": {"family": family, "table": table, "chain": chain,
                                 "expr": list(expr), "comment": comment}}}

    ether_type = {"meta": {"key": "protocol"}}
    commands: list[dict] = [
        {"add": {"table": {"family": family, "name": table}}},
        {"flush": {"table": {"family": family, "name": table}}},
        {"add": {"chain": {"family": family, "table": table, "name": chain, "type": "filter",
                           "hook": "prerouting", "prio": -300, "policy": "accept"}}},
        rule(_match(_meta("iifname"), plan.port, "!="), {"return": None}),
        rule(_match(_payload("ether", "saddr"), plan.vm_mac, "!="), drop),
        rule(_match(ether_type, "arp"), _match(_payload("arp", "saddr ether"), plan.vm_mac, "!="), drop),
    ]
    # where netplug serves the guest its addresses, the guest serves nobody else's: no DHCP or
    # DHCPv6 answers from it (on a pure L2 network, with no addresses known, a VM may well be
    # that network's DHCP server)
    if plan.ipv4:
        commands.append(rule(_match(ether_type, "ip"), _match(_payload("udp", "sport"), 67), drop))
    if plan.ipv6:
        commands.append(rule(_match(ether_type, "ip6"), _match(_payload("udp", "sport"), 547), drop))
    if plan.ipv4:
        commands.append(rule(_match(ether_type, "arp"),
                             _match(_payload("arp", "saddr ip"), _address_set(plan.ipv4, "0.0.0.0"), "!="), drop))  # nosec B104  # a probe's unspecified sender, matched, not bound
        commands.append(rule(_match(ether_type, "ip"), _match(_payload("ip", "saddr"), "0.0.0.0"),  # nosec B104  # DHCPDISCOVER's source, matched, not bound
                             _match(_payload("udp", "dport"), 67), {"return": None}))
        commands.append(rule(_match(ether_type, "ip"), _match(_payload("ip", "saddr"), _address_set(plan.ipv4), "!="), drop))
    if plan.ipv6:
        # "::": duplicate address detection and MLD before the guest has an address
        allowed = _address_set(plan.ipv6, "::")
        commands.append(rule(_match(ether_type, "ip6"), _match(_payload("ip6", "saddr"), allowed, "!="), drop))
        # the guest is nobody's router: its router advertisements and redirects stay home
        commands.append(rule(_match(ether_type, "ip6"),
                             _match(_payload("icmpv6", "type"), {"set": ["nd-router-advert", "nd-redirect"]}),
                             drop))
        # nft 1.0 has no name for the neighbour advertisement's target: it is the 128 bits at
        # bit 64 of the ICMPv6 header. An advertisement whose target's top bits match an
        # allowed prefix (an address is a /128) passes; any other is dropped.
        advert = _match(_payload("icmpv6", "type"), "nd-neighbor-advert")
        for allowed in plan.ipv6:
            net = ipaddress.IPv6Network(allowed)
            top = int(net.network_address) >> (128 - net.prefixlen)
            bits = {"payload": {"base": "th", "offset": 64, "len": net.prefixlen}}
            commands.append(rule(_match(ether_type, "ip6"), advert,
                                 _match(bits, f"0x{top:0{(net.prefixlen + 3) // 4}x}"), {"return": None}))
        commands.append(rule(_match(ether_type, "ip6"), advert, drop))
    return {"nftables": [{"metainfo": {"json_schema_version": 1}}, *commands]}


def render_service_fence(plan: ServiceFencePlan) -> dict:
    """A bridge-family table whose chain sees what the pod's bridge itself sends through its
    ports (hook output): router advertisements and DHCPv6 answers are dropped on the uplink."""
    family, table, chain = "bridge", plan.table, "fence"
    comment = f"netplug:{plan.tag}"
    on_uplink = _match(_meta("oifname"), plan.uplink)
    ip6 = _match({"meta": {"key": "protocol"}}, "ip6")
    return {"nftables": [
        {"metainfo": {"json_schema_version": 1}},
        {"add": {"table": {"family": family, "name": table}}},
        {"flush": {"table": {"family": family, "name": table}}},
        {"add": {"chain": {"family": family, "table": table, "name": chain, "type": "filter",
                           "hook": "output", "prio": 0, "policy": "accept"}}},
        *({"add": {"rule": {"family": family, "table": table, "chain": chain, "comment": comment,
                            "expr": [on_uplink, ip6, match, {"drop": None}]}}}
          for match in (_match(_payload("icmpv6", "type"), "nd-router-advert"),
                        _match(_payload("udp", "sport"), 547))),
    ]}
