"""`netplug doctor NAME`: walk a VM's network path hop by hop and say what is broken.

For each tap-bound interface (masquerade, bridge) the path is

    guest NIC ── tap ── in-pod bridge ── NAT (masquerade) or bridge port (bridge) ── pod interface ── node

and each hop is checked: the link exists, is up, sits where it should, MTUs agree, addresses
are there, the NAT table is loaded, the DHCP service runs and the guest's lease is seen. Each
hop gets a verdict and, when it fails, the fix. The path is drawn as text, or as SVG.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field

from netplug import naming
from netplug.guest import pod_interface_of
from netplug.model.vm import VirtualMachineInstance
from netplug.ops import dhcp, link, netns, nft


@dataclass
class Hop:
    name: str
    ok: bool
    facts: str
    fixes: list[str] = field(default_factory=list)


def _lease_for(lease_file: str, mac: str | None) -> str | None:
    try:
        with open(lease_file) as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 3 and fields[0].isdigit() and (mac is None or fields[1] == mac or ":" in fields[2]):
                    return fields[2]
    except OSError:
        return None
    return None


def check_interface(vmi: VirtualMachineInstance, iface_name: str, netns_path: str, files, guest_mac: str | None,
                    launcher_running: bool) -> list[Hop]:
    iface = next(i for i in vmi.spec.domain.devices.interfaces if i.name == iface_name)
    pod_iface = pod_interface_of(vmi.network(iface.name))
    tap_name, bridge_name, nic_name = naming.tap_name(pod_iface), naming.bridge_name(pod_iface), naming.nic_name(pod_iface)
    hops: list[Hop] = []
    lease = _lease_for(files.leases, guest_mac)
    dhcp_pid = dhcp.running(files.conf, files.pid)
    if not os.path.exists(netns_path):
        return [Hop("pod", False, f"netns {netns_path} is gone", ["netplug down the VM and up it again"])]
    with netns.entered(netns_path), link.session() as links:
        tap, bridge = links.get(tap_name), links.get(bridge_name)
        pod = links.get(pod_iface)
        nic = links.get(nic_name) if iface.binding == "bridge" else None
        table = nft.list_table("ip", naming.nft_table_name(pod_iface)) if iface.binding == "masquerade" else None

    guest_ok = launcher_running and lease is not None
    hops.append(Hop(f"guest NIC ({iface.name})", guest_ok,
                    f"MAC {guest_mac or '?'}, lease {lease or 'none seen'}",
                    [] if guest_ok else (["the VM is not running: netplug console and the launcher log say why"]
                                         if not launcher_running else
                                         ["the guest has no DHCP lease: check that it runs a DHCP client on this NIC "
                                          "and that its MAC is the one above (netplug console)"])))
    tap_problems = []
    if tap is None:
        tap_problems.append(f"{tap_name} is missing: the CNI ADD did not finish; netplug down and up again")
    else:
        if not tap.up:
            tap_problems.append(f"{tap_name} is down: ip -n <pod> link set {tap_name} up")
        if tap.master != bridge_name:
            tap_problems.append(f"{tap_name} is not on {bridge_name}: ip -n <pod> link set {tap_name} master {bridge_name}")
        if bridge is not None and tap.mtu != bridge.mtu:
            tap_problems.append(f"MTU {tap.mtu} differs from {bridge_name}'s {bridge.mtu}")
    hops.append(Hop(tap_name, not tap_problems,
                    f"{'up' if tap and tap.up else 'down'}, master {tap.master if tap else '-'}, MTU {tap.mtu if tap else '-'}",
                    tap_problems))
    bridge_problems = []
    if bridge is None:
        bridge_problems.append(f"{bridge_name} is missing: netplug down and up again")
    else:
        if not bridge.up:
            bridge_problems.append(f"{bridge_name} is down: ip -n <pod> link set {bridge_name} up")
        if dhcp_pid is None and (iface.binding == "masquerade" or (pod and pod.addresses)):
            bridge_problems.append("the DHCP service is not running: restart the agent (it restarts services), "
                                   "or netplug down and up again")
    hops.append(Hop(bridge_name, not bridge_problems,
                    f"{'up' if bridge and bridge.up else 'down'}, {' '.join(bridge.addresses) if bridge else '-'}, "
                    f"DHCP {'pid ' + str(dhcp_pid) if dhcp_pid else 'not running'}", bridge_problems))
    if iface.binding == "masquerade":
        rules = [o["rule"] for o in table or [] if "rule" in o]
        masq = any(any("masquerade" in e for e in r["expr"]) for r in rules)
        dnat = any(any("dnat" in e for e in r["expr"]) for r in rules)
        problems = [] if table is not None and masq and dnat else [
            f"the NAT table ip {naming.nft_table_name(pod_iface)} is "
            f"{'missing' if table is None else 'incomplete'}: netplug down and up again"]
        hops.append(Hop("NAT", not problems, f"{len(rules)} rules, masquerade {'yes' if masq else 'NO'}, "
                        f"port forwards {'yes' if dnat else 'NO'}", problems))
    else:
        problems = []
        if nic is None:
            problems.append(f"{nic_name} (the pod's uplink) is missing")
        elif nic.master != bridge_name or not nic.up:
            problems.append(f"{nic_name} must be up on {bridge_name}")
        hops.append(Hop(nic_name, not problems, f"{'up' if nic and nic.up else 'down'}, master {nic.master if nic else '-'}",
                        problems))
    pod_problems = []
    if pod is None:
        pod_problems.append(f"{pod_iface} is missing: the pod network's CNI did not run")
    else:
        if not pod.up:
            pod_problems.append(f"{pod_iface} is down")
        if not [a for a in pod.addresses if not a.startswith("fe80:")]:
            pod_problems.append(f"{pod_iface} has no address" if iface.binding == "masquerade" else "")
    pod_problems = [p for p in pod_problems if p]
    hops.append(Hop(pod_iface, not pod_problems,
                    f"{'up' if pod and pod.up else 'down'}, {' '.join(pod.addresses) if pod else '-'}", pod_problems))
    return hops


def render_text(paths: dict[str, list[Hop]]) -> str:
    lines = []
    for iface, hops in paths.items():
        lines.append(f"{iface}:  " + " ── ".join(("" if h.ok else "✘ ") + h.name for h in hops) + " ── node")
        for hop in hops:
            lines.append(f"  {'ok  ' if hop.ok else 'FAIL'} {hop.name}: {hop.facts}")
            lines += [f"       fix: {fix}" for fix in hop.fixes]
    return "\n".join(lines) + "\n"


def render_svg(paths: dict[str, list[Hop]]) -> str:
    width = 40 + 190 * max(len(h) + 1 for h in paths.values())
    height = 40 + 110 * len(paths)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace" '
             'font-size="12">']
    for row, (iface, hops) in enumerate(paths.items()):
        y = 30 + row * 110
        parts.append(f'<text x="20" y="{y}">{html.escape(iface)}</text>')
        for col, hop in enumerate([*hops, Hop("node", True, "")]):
            x = 20 + col * 190
            color = "#d4f4d4" if hop.ok else "#f8d0d0"
            parts.append(f'<rect x="{x}" y="{y + 10}" width="160" height="50" rx="6" fill="{color}" stroke="#333"/>')
            parts.append(f'<text x="{x + 8}" y="{y + 32}">{html.escape(hop.name[:20])}</text>')
            parts.append(f'<text x="{x + 8}" y="{y + 50}">{"ok" if hop.ok else "FAIL"}</text>')
            if col:
                parts.append(f'<line x1="{x - 30}" y1="{y + 35}" x2="{x}" y2="{y + 35}" stroke="#333"/>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
