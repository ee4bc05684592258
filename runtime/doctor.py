"""`netplug doctor NAME`: walk a VM's network path hop by hop and say what is broken.

For each tap-bound interface (masquerade, bridge) the path is

    guest NIC ── tap ── [spoof guard] ── in-pod bridge ── NAT (masquerade) or bridge port (bridge)
        ── pod interface ── node

and each hop is checked against what ADD made (the attachment's record):

- guest NIC: the VM runs, and the guest holds a lease for every family its DHCP service
  serves, matched by the guest's MAC (IPv4: the lease's MAC; IPv6: the MAC in the client's
  DUID, or the one the DHCP log names for the exchange that handed the address out);
- tap: exists, up, on the bridge, the bridge's MTU;
- spoof guard (bridge binding with spoofCheck): its table is loaded, with the frames it dropped;
  the fence that keeps the guest's router advertisements off the uplink is loaded;
- bridge: exists, up, the MTU ADD gave it; the DHCP service runs *and answers*: its log shows
  an answer (DHCPACK, DHCPREPLY) to the guest's MAC, or a request it never answered;
- NAT (masquerade): for each family ADD NATs (ip, ip6), the table with its masquerade and
  port-forward rules and the connections each has counted;
- bridge port (bridge binding): the pod's veth, up, on the bridge, the bridge's MTU;
- pod interface: exists, up, addresses; the guest's MTU does not exceed it (masquerade);
- node: the node end of the pod's veth (found by its ifindex, and pointing back), up, the same
  MTU, on a node bridge that is up.

Each hop gets a verdict and, when it fails, the fix. The path is drawn as text, or as SVG.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field

from netplug import naming
from netplug.guest import pod_interface_of
from netplug.model.netspec import NetSpec
from netplug.model.vm import VirtualMachineInstance
from netplug.ops import dhcp, link, netns, nft

#: the DHCP messages that answer a client, and those a client sends
ANSWERS = ("DHCPACK", "DHCPREPLY")
REQUESTS = ("DHCPDISCOVER", "DHCPREQUEST", "DHCPSOLICIT", "DHCPREBIND", "DHCPRENEW", "DHCPCONFIRM")


@dataclass
class Hop:
    name: str
    ok: bool
    facts: str
    fixes: list[str] = field(default_factory=list)


def _counted(rules: list[dict], verdict: str) -> tuple[int, int]:
    """(rules with `verdict`, packets their counters saw)."""
    found = packets = 0
    for rule in rules:
        if any(verdict in expr for expr in rule["expr"]):
            found += 1
            packets += sum(e["counter"].get("packets", 0) for e in rule["expr"]
                           if isinstance(e.get("counter"), dict))
    return found, packets


def _rules(objects: list[dict] | None) -> list[dict]:
    return [o["rule"] for o in objects or [] if "rule" in o]


def _guest_leases(files, mac: str | None, events: list[dhcp.DhcpEvent]) -> dict[int, str]:
    """The guest's lease per IP version, matched by its MAC."""
    mac = (mac or "").lower()
    answered = {e.address for e in events if e.kind in ANSWERS and e.mac == mac}
    found: dict[int, str] = {}
    for lease in dhcp.leases(files.leases):
        version = 6 if ":" in lease.address else 4
        if version not in found and (lease.mac == mac or (version == 6 and lease.address in answered)):
            found[version] = lease.address
    return found


def check_interface(vmi: VirtualMachineInstance, iface_name: str, netns_path: str, files, guest_mac: str | None,
                    launcher_running: bool, netspec: NetSpec | None = None) -> list[Hop]:
    iface = next(i for i in vmi.spec.domain.devices.interfaces if i.name == iface_name)
    pod_iface = pod_interface_of(vmi.network(iface.name))
    tap_name, bridge_name, nic_name, _ = naming.interface_links(pod_iface).from_the_guest()
    if not os.path.exists(netns_path):
        return [Hop("pod", False, f"netns {netns_path} is gone", ["netplug down the VM and up it again"])]
    if netspec is None:
        return [Hop("pod", False, f"no attachment record for {pod_iface}: the CNI ADD did not finish, or a DEL ran",
                    ["netplug down the VM and up it again"])]
    bridge_binding = iface.binding == "bridge"
    plan = netspec.dhcp
    guard, fence = netspec.spoof_guard, netspec.service_fence
    wanted_mtu = next((spec.mtu for spec in netspec.links if spec.name == bridge_name), None)
    with netns.entered(netns_path), link.session() as links:
        tap, bridge, pod = links.get(tap_name), links.get(bridge_name), links.get(pod_iface)
        nic = links.get(nic_name) if bridge_binding else None
        nat = {n.family: nft.list_table(n.family, n.table) for n in netspec.nat}
        guard_table = nft.list_table(guard.family, guard.table) if guard else None
        fence_table = nft.list_table(fence.family, fence.table) if fence else None
    uplink = nic if bridge_binding else pod  # the pod's veth to the node
    with link.session() as node_links:  # this process runs in the node's netns
        peer = node_links.get_by_index(uplink.peer_index) if uplink is not None and uplink.peer_index else None
        if peer is not None and peer.peer_index != uplink.index:
            peer = None  # an ifindex of another namespace's link: not the pod's peer
        node_bridge = node_links.get(peer.master) if peer is not None and peer.master else None

    mac = (guest_mac or "").lower()
    events = dhcp.log_events(files.log)
    leases = _guest_leases(files, mac, events)
    served = {v: a for v, a in ((4, plan.vm_address if plan else None), (6, plan.vm_address6 if plan else None)) if a}
    hops: list[Hop] = []

    missing = [f"IPv{v}" for v in served if v not in leases]
    guest_fixes = []
    if not launcher_running:
        guest_fixes.append("the VM is not running: netplug console and the launcher log say why")
    elif missing:
        guest_fixes.append(f"the guest has no {' or '.join(missing)} lease: check that it runs a DHCP client for it on "
                           "this NIC (DHCPv6: dhclient -6, dhcpcd) and that its MAC is the one above (netplug console)")
    lease_facts = ", ".join(f"IPv{v} lease {leases.get(v, 'none seen')}" for v in served) or "no DHCP (pure L2)"
    hops.append(Hop(f"guest NIC ({iface.name})", not guest_fixes, f"MAC {mac or '?'}, {lease_facts}", guest_fixes))

    tap_problems = []
    if tap is None:
        tap_problems.append(f"{tap_name} is missing: the CNI ADD did not finish; netplug down and up again")
    else:
        if not tap.up:
            tap_problems.append(f"{tap_name} is down: ip -n <pod> link set {tap_name} up")
        if tap.master != bridge_name:
            tap_problems.append(f"{tap_name} is not on {bridge_name}: ip -n <pod> link set {tap_name} master {bridge_name}")
        if bridge is not None and tap.mtu != bridge.mtu:
            tap_problems.append(f"MTU {tap.mtu} differs from {bridge_name}'s {bridge.mtu}: "
                                f"ip -n <pod> link set {tap_name} mtu {bridge.mtu}")
    hops.append(Hop(tap_name, not tap_problems,
                    f"{'up' if tap and tap.up else 'down'}, master {tap.master if tap else '-'}, MTU {tap.mtu if tap else '-'}",
                    tap_problems))

    if guard is not None or fence is not None:
        guard_problems = []
        facts = []
        if guard is not None:
            if guard_table is None:
                guard_problems.append(f"the spoof guard table {guard.family} {guard.table} is missing, so the guest "
                                      "may send as anyone: netplug down and up again")
            else:
                rules, dropped = _counted(_rules(guard_table), "drop")
                facts.append(f"{rules} drop rules, {dropped} frames dropped"
                             + (f" (the guest sent as another MAC or address than {guard.vm_mac}, "
                                f"{', '.join(guard.ipv4 + guard.ipv6) or 'no address'})" if dropped else ""))
        if fence is not None:
            if fence_table is None:
                guard_problems.append(f"the fence table {fence.family} {fence.table} is missing, so the guest's router "
                                      "advertisements reach other pods: netplug down and up again")
            else:
                facts.append(f"RA/DHCPv6 kept off {fence.uplink}")
        hops.append(Hop("spoof guard", not guard_problems, "; ".join(facts) or "-", guard_problems))

    bridge_problems = []
    dhcp_facts = "no DHCP"
    if bridge is None:
        bridge_problems.append(f"{bridge_name} is missing: netplug down and up again")
    else:
        if not bridge.up:
            bridge_problems.append(f"{bridge_name} is down: ip -n <pod> link set {bridge_name} up")
        if wanted_mtu and bridge.mtu != wanted_mtu:
            bridge_problems.append(f"MTU {bridge.mtu}, ADD gave it {wanted_mtu}: ip -n <pod> link set {bridge_name} "
                                   f"mtu {wanted_mtu}")
    if plan is not None:
        pid = dhcp.running(files.conf, files.pid)
        answered = [e for e in events if e.kind in ANSWERS and e.mac == mac]
        asked = [e for e in events if e.kind in REQUESTS and e.mac == mac]
        if pid is None:
            dhcp_facts = "DHCP not running"
            bridge_problems.append("the DHCP service is not running: restart the agent (it restarts services), "
                                   "or netplug down and up again")
        elif answered:
            dhcp_facts = f"DHCP pid {pid} answered the guest ({', '.join(sorted({f'{e.kind} {e.address}' for e in answered}))})"
        elif asked:
            dhcp_facts = f"DHCP pid {pid} heard the guest ({asked[-1].kind}) but never answered"
            bridge_problems.append(f"the DHCP service does not answer the guest: its log {files.log} says why "
                                   f"(is {mac} the MAC it serves?)")
        else:
            dhcp_facts = f"DHCP pid {pid}, no request from the guest in its log yet"
    hops.append(Hop(bridge_name, not bridge_problems,
                    f"{'up' if bridge and bridge.up else 'down'}, MTU {bridge.mtu if bridge else '-'}, "
                    f"{' '.join(bridge.addresses) if bridge else '-'}, {dhcp_facts}", bridge_problems))

    if not bridge_binding:
        problems, facts = [], []
        for nat_plan in netspec.nat:
            table = nat[nat_plan.family]
            rules = _rules(table)
            masq, masq_packets = _counted(rules, "masquerade")
            forwards, forward_packets = _counted([r for r in rules if r["chain"] == "inbound"], "dnat")
            if table is None or not masq or not forwards:
                problems.append(f"the NAT table {nat_plan.family} {nat_plan.table} is "
                                f"{'missing' if table is None else 'incomplete'}: netplug down and up again")
            facts.append(f"{nat_plan.family}: " + ("no table" if table is None else
                         f"masquerade {masq_packets} pkts, port forwards {forward_packets} pkts"))
        hops.append(Hop("NAT", not problems, "; ".join(facts) or "no NAT", problems))
    else:
        problems = []
        if nic is None:
            problems.append(f"{nic_name} (the pod's uplink) is missing: netplug down and up again")
        else:
            if nic.master != bridge_name or not nic.up:
                problems.append(f"{nic_name} must be up on {bridge_name}: ip -n <pod> link set {nic_name} "
                                f"master {bridge_name} up")
            if bridge is not None and nic.mtu != bridge.mtu:
                problems.append(f"MTU {nic.mtu} differs from {bridge_name}'s {bridge.mtu}: "
                                f"ip -n <pod> link set {nic_name} mtu {bridge.mtu}")
        hops.append(Hop(nic_name, not problems, f"{'up' if nic and nic.up else 'down'}, master {nic.master if nic else '-'}, "
                        f"MTU {nic.mtu if nic else '-'}", problems))

    pod_problems = []
    if pod is None:
        pod_problems.append(f"{pod_iface} is missing: the pod network's CNI did not run")
    else:
        if not pod.up:
            pod_problems.append(f"{pod_iface} is down: ip -n <pod> link set {pod_iface} up")
        if not bridge_binding and not [a for a in pod.addresses if not a.startswith("fe80:")]:
            pod_problems.append(f"{pod_iface} has no address: the pod network's CNI gave it none")
        if not bridge_binding and bridge is not None and bridge.mtu > pod.mtu:
            pod_problems.append(f"the guest's MTU {bridge.mtu} exceeds {pod_iface}'s {pod.mtu}: "
                                f"set mtu {pod.mtu} (or less) in the binding config")
    hops.append(Hop(pod_iface, not pod_problems, f"{'up' if pod and pod.up else 'down'}, MTU {pod.mtu if pod else '-'}, "
                    f"{' '.join(pod.addresses) if pod else '-'}", pod_problems))

    node_problems = []
    if uplink is None:
        node_problems.append("no pod veth to follow to the node (see the hop before)")
    elif peer is None:
        node_problems.append(f"the node end of {uplink.name} (ifindex {uplink.peer_index}) is not in the node: "
                             "the pod's veth is cut; netplug down and up again")
    else:
        if not peer.up:
            node_problems.append(f"{peer.name} is down: ip link set {peer.name} up")
        if peer.mtu != uplink.mtu:
            node_problems.append(f"MTU {peer.mtu} differs from {uplink.name}'s {uplink.mtu}: "
                                 f"ip link set {peer.name} mtu {uplink.mtu}")
        if node_bridge is None:
            node_problems.append(f"{peer.name} is on no node bridge: the pod network's CNI puts it on one "
                                 "(ip link set <veth> master <bridge>), or netplug down and up again")
        elif not node_bridge.up:
            node_problems.append(f"node bridge {node_bridge.name} is down: ip link set {node_bridge.name} up")
    node_facts = (f"{peer.name} {'up' if peer.up else 'down'}, MTU {peer.mtu}, on "
                  f"{node_bridge.name + (' (up)' if node_bridge.up else ' (down)') if node_bridge else 'no bridge'}"
                  if peer is not None else "-")
    hops.append(Hop("node", not node_problems, node_facts, node_problems))
    return hops


def render_text(paths: dict[str, list[Hop]]) -> str:
    lines = []
    for iface, hops in paths.items():
        lines.append(f"{iface}:  " + " ── ".join(("" if h.ok else "✘ ") + h.name for h in hops))
        for hop in hops:
            lines.append(f"  {'ok  ' if hop.ok else 'FAIL'} {hop.name}: {hop.facts}")
            lines += [f"       fix: {fix}" for fix in hop.fixes]
    return "\n".join(lines) + "\n"


def render_svg(paths: dict[str, list[Hop]]) -> str:
    width = 40 + 190 * max(len(h) for h in paths.values())
    height = 40 + 110 * len(paths)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace" '
             'font-size="12">']
    for row, (iface, hops) in enumerate(paths.items()):
        y = 30 + row * 110
        parts.append(f'<text x="20" y="{y}">{html.escape(iface)}</text>')
        for col, hop in enumerate(hops):
            x = 20 + col * 190
            color = "#d4f4d4" if hop.ok else "#f8d0d0"
            parts.append(f'<rect x="{x}" y="{y + 10}" width="160" height="50" rx="6" fill="{color}" stroke="#333">'
                         f'<title>{html.escape(hop.facts)}</title></rect>')
            parts.append(f'<text x="{x + 8}" y="{y + 32}">{html.escape(hop.name[:20])}</text>')
            parts.append(f'<text x="{x + 8}" y="{y + 50}">{"ok" if hop.ok else "FAIL"}</text>')
            if col:
                parts.append(f'<line x1="{x - 30}" y1="{y + 35}" x2="{x}" y2="{y + 35}" stroke="#333"/>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
