"""Render a `DhcpPlan` into a dnsmasq configuration: one option per line, in a fixed order.

dnsmasq runs with DNS disabled (`port=0`), bound to the in-pod bridge only, as the guest's
DHCPv4 server and, with an IPv6 plan, its DHCPv6 server and router advertiser. With the
guest's MAC known, both families answer that MAC only. Paths for its pid, lease and log
files are the caller's (the state layout is not the plan's business). Everything written
here was validated by the models; the renderer still refuses a newline in any value, so a
value can never become a second option.

May import: netplug.model.
"""

from __future__ import annotations

import ipaddress

from netplug.model.netspec import DhcpPlan


def render_dhcp(plan: DhcpPlan, *, pid_file: str, lease_file: str, log_file: str) -> str:
    lines = [
        "# netplug: DHCP for the guest behind " + plan.interface,
        "port=0",
        "no-resolv",
        "no-hosts",
        f"interface={plan.interface}",
        "except-interface=lo",
        "bind-interfaces",
        "dhcp-authoritative",
        # dnsmasq pings an address before its first offer and answers nothing for 3 s; every
        # address netplug serves is the guest's alone (a pod-private bridge, or the pod's own
        # IPAM address), so the check only delays the guest's first lease (bench/vm_ready.py)
        "no-ping",
    ]
    if plan.vm_address is not None and plan.prefixlen is not None:
        mask = str(ipaddress.IPv4Network(f"0.0.0.0/{plan.prefixlen}").netmask)
        # A range of one address; with the guest's MAC known, "static" hands it to that MAC only.
        range_end = "static" if plan.vm_mac else plan.vm_address
        lines.append(f"dhcp-range={plan.vm_address},{range_end},{mask},infinite")
        if plan.shared_network:
            # the bridge carries no address in the guest's subnet: serve it on the bridge anyway
            lines.append(f"shared-network={plan.interface},{plan.shared_network}")
        if plan.vm_mac:
            lines.append(f"dhcp-host={plan.vm_mac},{plan.vm_address},infinite")
            # On a shared L2 network every pod's server hears every guest: answer only ours,
            # and never NAK another server's client (an authoritative server would).
            lines.append("dhcp-ignore=tag:!known")
        if plan.router:
            lines.append(f"dhcp-option=option:router,{plan.router}")
        if plan.dns_servers:
            lines.append("dhcp-option=option:dns-server," + ",".join(plan.dns_servers))
        if plan.domain_name:
            lines.append(f"dhcp-option=option:domain-name,{plan.domain_name}")
        if plan.search_domains:
            lines.append("dhcp-option=option:domain-search," + ",".join(plan.search_domains))
        if plan.mtu:
            lines.append(f"dhcp-option=option:mtu,{plan.mtu}")
        if plan.hostname:
            lines.append(f"dhcp-option=12,{plan.hostname}")
        if plan.classless_routes:
            routes = ",".join(f"{dst},{gw}" for dst, gw in plan.classless_routes)
            lines.append(f"dhcp-option=option:classless-static-route,{routes}")
        if plan.ntp_servers:
            lines.append("dhcp-option=option:ntp-server," + ",".join(plan.ntp_servers))
        if plan.tftp_server:
            lines.append(f'dhcp-option=66,"{plan.tftp_server}"')  # quoted: a "#" is not a comment
        if plan.boot_file:
            lines.append(f'dhcp-option=67,"{plan.boot_file}"')
        for code, value in plan.private_options:
            lines.append(f'dhcp-option={code},"{value}"')
    if plan.vm_address6 is not None and plan.prefixlen6 is not None:
        # DHCPv6 hands out the address; router advertisements (M flag, on-link prefix, this
        # router as default unless told otherwise) give the guest its route, which DHCPv6 cannot.
        range_end6 = "static" if plan.vm_mac else plan.vm_address6
        lines.append(f"dhcp-range={plan.vm_address6},{range_end6},{plan.prefixlen6},infinite")
        lines.append("enable-ra")
        ra_mtu = f",mtu:{plan.mtu}" if plan.mtu else ""
        router_lifetime = 1800 if plan.ra_default_route else 0
        lines.append(f"ra-param={plan.interface}{ra_mtu},high,10,{router_lifetime}")
        if plan.vm_mac:
            lines.append(f"dhcp-host={plan.vm_mac},[{plan.vm_address6}],infinite")
            if plan.vm_address is None:
                lines.append("dhcp-ignore=tag:!known")  # the DHCPv4 part says it otherwise
        if plan.dns_servers6:
            lines.append("dhcp-option=option6:dns-server," + ",".join(f"[{a}]" for a in plan.dns_servers6))
        if plan.search_domains:
            lines.append("dhcp-option=option6:domain-search," + ",".join(plan.search_domains))
    lines += [
        f"pid-file={pid_file}",
        f"dhcp-leasefile={lease_file}",
        f"log-facility={log_file}",
        "log-dhcp",
        "user=nobody",
        "group=nogroup",
    ]
    for line in lines:
        if "\n" in line or "\r" in line:
            raise ValueError(f"refusing to render a dnsmasq line with a line break: {line!r}")
    return "\n".join(lines) + "\n"
