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

May import: netplug.model.
"""

from __future__ import annotations

from netplug.model.netspec import NatPlan

_BASE_CHAINS = {
    "prerouting": ("prerouting", -100),
    "output": ("output", -100),
    "postrouting": ("postrouting", 100),
}


def _match(left: dict, right: object) -> dict:
    return {"match": {"op": "==", "left": left, "right": right}}


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
    for name in ("inbound", "postinbound"):
        commands.append({"add": {"chain": {"family": family, "table": table, "name": name}}})

    def rule(chain: str, *expr: dict) -> dict:
        return {"add": {"rule": {
            "family": family, "table": table, "chain": chain, "expr": list(expr), "comment": comment,
        }}}

    addr = "ip" if family == "ip" else "ip6"
    commands.append(rule("prerouting", _match(_meta("iifname"), plan.pod_interface), {"jump": {"target": "inbound"}}))
    commands.append(rule("postrouting", _match(_payload(addr, "saddr"), plan.vm_address), {"masquerade": None}))
    commands.append(rule("postrouting", _match(_meta("oifname"), plan.bridge), {"jump": {"target": "postinbound"}}))
    for ports in _port_matches(plan):
        commands.append(rule("inbound", *ports, {"dnat": {"addr": plan.vm_address}}))
        commands.append(rule("output", _match(_payload(addr, "daddr"), plan.loopback), *ports,
                             {"dnat": {"addr": plan.vm_address}}))
        commands.append(rule("postinbound", _match(_payload(addr, "saddr"), plan.loopback), *ports,
                             {"snat": {"addr": plan.gateway}}))
    return {"nftables": [{"metainfo": {"json_schema_version": 1}}, *commands]}
