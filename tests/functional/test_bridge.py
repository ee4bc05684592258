"""Bridge binding through the real shim: on the pod network (the guest holds the pod's IP,
IPv4, IPv6 or both) and on secondary networks (pod<h>, made by the reference bridge plugin as
a Multus delegate would), with the spoof guard (addresses, ARP, neighbour discovery),
dhcpOptions, and DEL giving the pod interface back as the primary CNI made it."""

from __future__ import annotations

import ipaddress
import json
import socket

import pytest

from netplug import naming
from tests.support.cnirt import exec_plugin
from tests.support.fixtures import assert_nothing_left, attach_guest
from tests.support.spec import validate_result
from tests.support.topology import (
    Netns,
    TcpServer,
    UdpSink,
    default_route6,
    dhcp6_lease,
    dhcp_lease,
    neighbour_mac,
    send_neighbour_advert,
    tcp_request,
    unique,
    wait_for,
)

VM_MAC = "52:54:00:aa:bb:01"
BRIDGE = {"type": "netplug", "binding": "bridge", "vmInterface": "default", "mac": VM_MAC}


def _sandbox_ips(result: dict, name: str) -> list[str]:
    index = next(i for i, iface in enumerate(result["interfaces"]) if iface["name"] == name and iface.get("sandbox"))
    return [ip["address"] for ip in result["ips"] if ip["interface"] == index]


def _netplug(np, command: str, conflist: dict, prev: dict | None, **ids):
    """Run only netplug's plugin of a conflist (its CHECK/DEL without the reference plugin's)."""
    plugin = conflist["plugins"][-1]
    config = {"cniVersion": conflist["cniVersion"], "name": conflist["name"], **plugin}
    if prev is not None:
        config["prevResult"] = prev
    return exec_plugin(np.shim, command, config, cni_path=np.runtime.cni_path, extra_env=np.runtime.extra_env, **ids)


def test_guest_holds_the_pod_ip(netplug, pod_network, guests, tmp_path):
    pod, neighbour = Netns.create("nppod"), Netns.create("nppod")
    try:
        plain = pod_network.conflist("1.0.0")
        neighbour_result = netplug.runtime.add(plain, container_id="ctr-neigh", netns=neighbour.path, ifname="eth0")
        neighbour_ip = _sandbox_ips(neighbour_result, "eth0")[0].split("/")[0]

        conflist = pod_network.conflist("1.0.0", {**BRIDGE, "dhcpOptions": {
            "ntpServers": ["10.250.0.123"], "tftpServerName": "tftp.example.org", "bootFileName": "pxelinux.0",
            "privateOptions": [{"option": 240, "value": "hello"}]}})
        ids = {"container_id": "ctr-bridge", "netns": pod.path, "ifname": "eth0"}
        result = netplug.runtime.add(conflist, **ids)
        validate_result(result, "1.0.0")
        pod_cidr = _sandbox_ips(result, "eth0")[0]
        pod_ip = pod_cidr.split("/")[0]
        eth0_entry = next(i for i in result["interfaces"] if i["name"] == "eth0")
        assert eth0_entry["mac"] == VM_MAC  # the pod's identity, as the guest uses it
        assert [i["name"] for i in result["interfaces"]][-3:] == ["k6t-eth0", "eth0-nic", "tap0"]

        links = pod.links()
        assert links["eth0"]["linkinfo"]["info_kind"] == "ifb"
        assert links["eth0"]["address"] == VM_MAC
        assert pod.addresses("eth0") == [pod_cidr]
        assert links["eth0-nic"]["master"] == "k6t-eth0"
        assert links["eth0-nic"]["address"] == links["k6t-eth0"]["address"]
        assert links["eth0-nic"]["linkinfo"]["info_slave_data"]["learning"] is False
        assert pod.addresses("eth0-nic") == []
        assert pod.sysctl("net/ipv4/conf/all/arp_ignore") == "1"

        assert _netplug(netplug, "CHECK", conflist, result, **ids).returncode == 0
        guest = attach_guest(pod, "k6t-eth0", VM_MAC, as_tap="tap0")
        guests.append(guest)
        check = _netplug(netplug, "CHECK", conflist, result, **ids)  # the stand-in is no tap
        assert check.returncode == 1 and "tap0 is a veth" in check.json["msg"]
        lease = dhcp_lease(guest.ns, "eth0", str(tmp_path))
        assert (lease["ip"], lease["mask"]) == (pod_ip, "24")
        assert lease["router"] == pod_network.gateway
        assert lease["staticroutes"] == f"0.0.0.0/0 {pod_network.gateway}"
        assert lease["mtu"] == str(links["eth0-nic"]["mtu"])
        assert lease["ntpsrv"] == "10.250.0.123"
        assert (lease["tftp"], lease["bootfile"]) == ("tftp.example.org", "pxelinux.0")
        assert lease["opt240"] == "68656c6c6f"  # "hello"

        # the guest talks to another pod on the node bridge as the pod IP
        server = TcpServer(neighbour, 7000)
        try:
            assert tcp_request(guest.ns, neighbour_ip, 7000) == f"hello {pod_ip}\n"
        finally:
            server.close()

        run = _netplug(netplug, "DEL", conflist, result, **ids)
        assert run.returncode == 0, run.stdout
        guest.remove()
        # the pod interface is back as the reference bridge plugin made it
        links = pod.links()
        assert set(links) == {"lo", "eth0"}
        assert links["eth0"]["linkinfo"]["info_kind"] == "veth"
        assert pod.addresses("eth0") == [pod_cidr]
        assert json.loads(pod.ip("-j", "route", "show", "default").stdout)[0]["gateway"] == pod_network.gateway
        assert pod.sysctl("net/ipv4/conf/all/arp_ignore") == "0"
        assert not pod.nft_ruleset() and not netplug.services() and not netplug.records()
        netplug.runtime.delete(pod_network.conflist("1.0.0"), result, **ids)
        assert pod_network.allocations() == [neighbour_ip]
    finally:
        pod.delete()
        neighbour.delete()


def _pod_state(pod: Netns, ifname: str = "eth0") -> dict:
    """The pod interface as a user would compare it: kind, MAC, MTU, every address (link-local
    included) and every route through it, both families."""
    link = pod.links()[ifname]
    (shown,) = json.loads(pod.ip("-j", "addr", "show", "dev", ifname).stdout)
    routes = [(r["dst"], r.get("gateway"), r.get("metric"))
              for family in ("-4", "-6") for r in json.loads(pod.ip("-j", family, "route", "show", "dev", ifname).stdout)]
    return {"kind": link["linkinfo"]["info_kind"], "mac": link["address"], "mtu": link["mtu"],
            "addresses": sorted((a["local"], a["prefixlen"], a.get("scope")) for a in shown["addr_info"]),
            "routes": sorted(routes, key=str)}


def _global6(ns: Netns, ifname: str = "eth0") -> list[str]:
    (shown,) = json.loads(ns.ip("-j", "-6", "addr", "show", "dev", ifname).stdout)
    return [a["local"] for a in shown["addr_info"] if a.get("scope") == "global"]


@pytest.mark.parametrize("stack", ["dual", "ipv6-only"])
def test_guest_holds_the_pods_ipv6(netplug, pod_network, outside, guests, tmp_path, stack):
    """The guest gets the pod's IPv6 address over DHCPv6 (and its IPv4 on a dual-stack pod), a
    default route from the in-pod RA, reaches another pod and a host outside over IPv6 as the
    pod's own address; no other pod takes this pod for its router; DEL gives eth0 back as the
    primary CNI made it and leaves nothing."""
    dual = stack == "dual"
    pod, neighbour = Netns.create("nppod"), Netns.create("nppod")
    try:
        plain = pod_network.conflist("1.0.0", ipv4=dual, ipv6=True)
        neighbour_ips = _sandbox_ips(netplug.runtime.add(plain, container_id="ctr-neigh6", netns=neighbour.path,
                                                         ifname="eth0"), "eth0")
        neighbour_ip6 = next(ip.split("/")[0] for ip in neighbour_ips if ":" in ip)
        ids = {"container_id": f"ctr-bridge6-{stack}", "netns": pod.path, "ifname": "eth0"}
        prev = netplug.runtime.add(plain, **ids)  # the primary CNI, then netplug chained after it
        primary = _pod_state(pod)
        forwarding = pod.sysctl("net/ipv6/conf/all/forwarding")
        conflist = pod_network.conflist("1.0.0", BRIDGE, ipv4=dual, ipv6=True)
        run = _netplug(netplug, "ADD", conflist, prev, **ids)
        assert run.returncode == 0, run.stdout
        result = run.json
        validate_result(result, "1.0.0")
        pod_cidrs = _sandbox_ips(result, "eth0")
        pod_ip6 = next(c.split("/")[0] for c in pod_cidrs if ":" in c)
        prefix = str(ipaddress.ip_interface(next(c for c in pod_cidrs if ":" in c)).network)
        assert sorted(pod.addresses("eth0")) == sorted(pod_cidrs)  # the pod's identity stays on eth0 (ifb)
        assert _netplug(netplug, "CHECK", conflist, result, **ids).returncode == 0

        guest = attach_guest(pod, "k6t-eth0", VM_MAC, as_tap="tap0")
        guests.append(guest)
        if dual:
            assert dhcp_lease(guest.ns, "eth0", str(tmp_path))["ip"] == next(c for c in pod_cidrs if ":" not in c).split("/")[0]
        assert dhcp6_lease(guest.ns, "eth0", str(tmp_path)) == pod_ip6
        router = wait_for(lambda: default_route6(guest.ns), timeout=15)
        assert router and ipaddress.IPv6Address(router).is_link_local, f"no default route from RA: {router}"
        assert json.loads(guest.ns.ip("-j", "-6", "route", "show", prefix).stdout), "the RA announces the prefix on-link"
        assert _global6(guest.ns) == [pod_ip6], "no SLAAC address besides the pod's"

        server, world = TcpServer(neighbour, 7600, host="::"), TcpServer(outside.ns, 9600, host="::")
        try:
            assert tcp_request(guest.ns, neighbour_ip6, 7600) == f"hello {pod_ip6}\n"  # on the node bridge
            assert tcp_request(guest.ns, outside.address6, 9600) == f"hello {pod_ip6}\n"  # via the default route
        finally:
            server.close()
            world.close()
        ra_routes = [r for r in json.loads(neighbour.ip("-j", "-6", "route", "show").stdout) if r.get("protocol") == "ra"]
        assert ra_routes == [], "another pod took this pod's bridge for its router"

        run = _netplug(netplug, "DEL", conflist, result, **ids)
        assert run.returncode == 0, run.stdout
        guest.remove()
        guests.clear()
        assert _pod_state(pod) == primary, "eth0 is not as the primary CNI made it"
        assert_nothing_left(netplug, pod)
        assert pod.sysctl("net/ipv6/conf/all/forwarding") == forwarding
        assert pod.sysctl("net/ipv4/conf/all/arp_ignore") == "0"
        netplug.runtime.delete(plain, prev, **ids)
    finally:
        pod.delete()
        neighbour.delete()


@pytest.mark.parametrize("check", [True, False], ids=["spoof-check", "no-spoof-check"])
def test_ipv6_spoof_guard(netplug_agent, pod_network, guests, check):
    """On an IPv6 pod the guest sends only from its own address, and cannot claim another's in
    a neighbour advertisement (poisoning another pod's entry for the gateway); with spoofCheck
    false it can do both."""
    pod, neighbour = Netns.create("nppod"), Netns.create("nppod")
    try:
        plain = pod_network.conflist("1.0.0", ipv4=False, ipv6=True)
        neighbour_ip6 = _sandbox_ips(netplug_agent.runtime.add(plain, container_id="ctr-nb6", netns=neighbour.path,
                                                               ifname="eth0"), "eth0")[0].split("/")[0]
        conflist = pod_network.conflist("1.0.0", {**BRIDGE, "spoofCheck": check}, ipv4=False, ipv6=True)
        ids = {"container_id": f"ctr-spoof6-{check}", "netns": pod.path, "ifname": "eth0"}
        result = netplug_agent.runtime.add(conflist, **ids)
        (pod_cidr6,) = _sandbox_ips(result, "eth0")
        pod_ip6 = pod_cidr6.split("/")[0]
        guest = attach_guest(pod, "k6t-eth0", VM_MAC, as_tap="tap0")
        guests.append(guest)
        guest.ns.ip("addr", "add", pod_cidr6, "dev", "eth0", "nodad")  # as its DHCPv6 lease gives it
        server = TcpServer(neighbour, 7700, host="::")
        try:
            assert tcp_request(guest.ns, neighbour_ip6, 7700) == f"hello {pod_ip6}\n"

            def gateway_resolved() -> str | None:  # talking to it, the neighbour learns its gateway's MAC
                tcp_request(neighbour, pod_network.gateway6, 9, timeout=0.5)
                return neighbour_mac(neighbour, pod_network.gateway6, "eth0")
            gateway_mac = wait_for(gateway_resolved, timeout=10)  # the node's address may still be in DAD
            assert gateway_mac not in (None, VM_MAC)
            send_neighbour_advert(guest.ns, "eth0", pod_network.gateway6, VM_MAC)
            poisoned = wait_for(lambda: neighbour_mac(neighbour, pod_network.gateway6, "eth0") == VM_MAC, timeout=1)
            assert poisoned is not check, (check, poisoned)

            guest.ns.ip("-6", "addr", "flush", "dev", "eth0", "scope", "global")
            other = str(ipaddress.ip_address(pod_ip6) + 0x100)
            guest.ns.ip("addr", "add", f"{other}/64", "dev", "eth0", "nodad")
            answer = tcp_request(guest.ns, neighbour_ip6, 7700, timeout=1)
            assert (answer is None) == check, (check, answer)
        finally:
            server.close()
        netplug_agent.runtime.delete(conflist, result, **ids)
        guest.remove()
        guests.clear()
        assert_nothing_left(netplug_agent, pod, keep=("lo",))
    finally:
        pod.delete()
        neighbour.delete()


def _secondary(name: str, node_bridge: str, data_dir: str | None, subnet: str | None,
               range_start: str | None = None) -> dict:
    ipam = {"type": "host-local", "ranges": [[{"subnet": subnet, **({"rangeStart": range_start} if range_start else {})}]],
            "dataDir": data_dir} if subnet else {}
    return {"cniVersion": "1.0.0", "name": name, "plugins": [
        {"type": "bridge", "bridge": node_bridge, "ipam": ipam},
        {"type": "netplug", "binding": "bridge", "vmNamespace": "default", "vmInterface": name},
    ]}


def _for_vm(conflist: dict, vm_name: str) -> dict:
    """The conflist as the controller would give it for one VM (its identity in the binding)."""
    plugins = [*conflist["plugins"][:-1], {**conflist["plugins"][-1], "vmName": vm_name}]
    return {**conflist, "plugins": plugins}


def test_secondary_networks_isolate_guests(netplug, node_bridges, guests, tmp_path):
    """red: two guests on it reach each other. blue: the same subnet on another node bridge;
    its guest reaches neither. green: pure L2 (no IPAM), no DHCP, static addresses work."""
    red_br, blue_br, green_br = unique("npred"), unique("npblu"), unique("npgrn")
    node_bridges += [red_br, blue_br, green_br]
    red = _secondary("red", red_br, str(tmp_path / "ipam-red"), "10.60.0.0/24")
    blue = _secondary("blue", blue_br, str(tmp_path / "ipam-blue"), "10.60.0.0/24", "10.60.0.100")
    green = _secondary("green", green_br, None, None)
    pods = [Netns.create("nppod") for _ in range(5)]
    attached: list[tuple[dict, dict, dict]] = []
    try:
        placements = [(red, pods[0]), (red, pods[1]), (blue, pods[2]), (green, pods[3]), (green, pods[4])]
        leases = []
        for n, (network, pod) in enumerate(placements):
            net = _for_vm(network, f"vm{n}")
            ifname = naming.pod_interface_for_network(net["name"])
            ids = {"container_id": f"ctr-sec-{n}", "netns": pod.path, "ifname": ifname}
            result = netplug.runtime.add(net, **ids)
            validate_result(result, "1.0.0")
            attached.append((net, result, ids))
            h = naming.network_hash(net["name"])
            assert {f"k6t-{h}", f"{h}-nic", f"tap{h}", f"pod{h}"} <= set(pod.links())
            mac = next(i["mac"] for i in result["interfaces"] if i["name"] == ifname)
            guest = attach_guest(pod, f"k6t-{h}", mac, as_tap=f"tap{h}")
            guests.append(guest)
            if network is green:
                assert dhcp_lease(guest.ns, "eth0", str(tmp_path), tries=2) == {}  # pure L2: no DHCP
                guest.ns.ip("addr", "add", f"192.168.60.{n}/24", "dev", "eth0")
                leases.append(f"192.168.60.{n}")
            else:
                leases.append(dhcp_lease(guest.ns, "eth0", str(tmp_path))["ip"])
        assert len(netplug.services()) == 3  # red, red, blue: none for green

        servers = [TcpServer(g.ns, 7100) for g in guests]
        try:
            assert tcp_request(guests[1].ns, leases[0], 7100) == f"hello {leases[1]}\n"
            assert tcp_request(guests[0].ns, leases[1], 7100) == f"hello {leases[0]}\n"
            assert tcp_request(guests[2].ns, leases[0], 7100, timeout=1) is None
            assert tcp_request(guests[2].ns, leases[1], 7100, timeout=1) is None
            assert tcp_request(guests[4].ns, leases[3], 7100) == f"hello {leases[4]}\n"
            assert servers[0].peers == [leases[1]]  # blue's guest never got through
        finally:
            for server in servers:
                server.close()

        # the same VM identity gives the same MAC: a second ADD of vm-on-red in a new pod
        for net, result, ids in reversed(attached):
            netplug.runtime.delete(net, result, **ids)
        for guest in guests:
            guest.remove()
        guests.clear()
        for pod in pods:
            assert_nothing_left(netplug, pod, keep=("lo",))
        again = netplug.runtime.add(_for_vm(red, "vm0"), container_id="ctr-sec-again", netns=pods[0].path,
                                          ifname=naming.pod_interface_for_network("red"))
        first_mac = next(i["mac"] for i in attached[0][1]["interfaces"] if i["name"].startswith("pod"))
        assert next(i["mac"] for i in again["interfaces"] if i["name"].startswith("pod")) == first_mac
        netplug.runtime.delete(red, again, container_id="ctr-sec-again", netns=pods[0].path,
                                     ifname=naming.pod_interface_for_network("red"))
    finally:
        for pod in pods:
            pod.delete()


def test_spoof_guard(netplug, pod_network, guests, tmp_path):
    pods = {check: Netns.create("nppod") for check in (True, False)}
    neighbour = Netns.create("nppod")
    try:
        neighbour_ip = _sandbox_ips(netplug.runtime.add(pod_network.conflist("1.0.0"), container_id="ctr-nb",
                                                        netns=neighbour.path, ifname="eth0"), "eth0")[0].split("/")[0]
        server = TcpServer(neighbour, 7200)
        dhcp_clients = UdpSink(neighbour, 68)
        try:
            for check, pod in pods.items():
                conflist = pod_network.conflist("1.0.0", {**BRIDGE, "spoofCheck": check})
                result = netplug.runtime.add(conflist, container_id=f"ctr-spoof-{check}", netns=pod.path, ifname="eth0")
                guest = attach_guest(pod, "k6t-eth0", VM_MAC, as_tap="tap0")
                guests.append(guest)
                lease = dhcp_lease(guest.ns, "eth0", str(tmp_path))
                assert tcp_request(guest.ns, neighbour_ip, 7200) == f"hello {lease['ip']}\n"

                # a DHCP server in the guest: its answers never reach the network's other pods
                rogue = guest.ns.run(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
                with rogue:
                    rogue.bind((lease["ip"], 67))
                    before = len(dhcp_clients.sources)
                    for _ in range(3):
                        rogue.sendto(b"a rogue DHCPOFFER", (neighbour_ip, 68))
                    arrived = wait_for(lambda b=before: len(dhcp_clients.sources) > b, timeout=1)
                assert (not arrived) == check, (check, dhcp_clients.sources)

                # another source address on the same MAC
                other_ip = str(ipaddress.ip_address(lease["ip"]) + 100)
                guest.ns.ip("addr", "flush", "dev", "eth0")
                guest.ns.ip("addr", "add", f"{other_ip}/24", "dev", "eth0")
                answer = tcp_request(guest.ns, neighbour_ip, 7200, timeout=1)
                assert (answer is None) == check, (check, answer)

                # another MAC with its own address
                guest.ns.ip("addr", "flush", "dev", "eth0")
                guest.ns.ip("link", "set", "eth0", "address", "52:54:00:66:66:66")
                guest.ns.ip("addr", "add", f"{lease['ip']}/24", "dev", "eth0")
                answer = tcp_request(guest.ns, neighbour_ip, 7200, timeout=1)
                assert (answer is None) == check, (check, answer)

                tables = [t["table"]["name"] for t in pod.nft_ruleset() if "table" in t]
                assert tables == (["netplug_eth0_guard"] if check else [])
                netplug.runtime.delete(conflist, result, container_id=f"ctr-spoof-{check}", netns=pod.path, ifname="eth0")
                assert not pod.nft_ruleset()
        finally:
            server.close()
            dhcp_clients.close()
    finally:
        for pod in [*pods.values(), neighbour]:
            pod.delete()


def test_as_a_kubevirt_binding_plugin_delegate(netplug, node_bridges, pod, tmp_path):
    """KubeVirt runs the plugin's NAD as its own delegate (CNI_IFNAME net2, no prevResult) with
    cni-args {logicNetworkName}: netplug binds the logical network's pod<h> and makes tap<h>."""
    node_bridge = unique("npkv")
    node_bridges.append(node_bridge)
    h, pod_if = naming.network_hash("blue"), naming.pod_interface_for_network("blue")
    blue = {"cniVersion": "1.0.0", "name": "br-blue", "plugins": [
        {"type": "bridge", "bridge": node_bridge,
         "ipam": {"type": "host-local", "subnet": "10.66.0.0/24", "dataDir": str(tmp_path / "ipam")}}]}
    netplug.runtime.add(blue, container_id="ctr-kv", netns=pod.path, ifname=pod_if)
    plugin = {"cniVersion": "1.0.0", "name": "netplug-bridge", "type": "netplug", "binding": "bridge",
              "resolvConf": "/dev/null", "args": {"cni": {"logicNetworkName": "blue"}}}
    run = exec_plugin(netplug.shim, "ADD", plugin, container_id="ctr-kv", netns=pod.path, ifname="net2",
                      cni_path=netplug.runtime.cni_path, extra_env=netplug.runtime.extra_env)
    assert run.returncode == 0, run.stdout
    assert {f"k6t-{h}", f"tap{h}", f"{h}-nic", pod_if} <= set(pod.links())
    assert "net2" not in pod.links()
    assert len(netplug.services()) == 1  # pod<h> had an address: DHCP serves it to the guest
    run = exec_plugin(netplug.shim, "DEL", plugin, container_id="ctr-kv", netns=pod.path, ifname="net2",
                      cni_path=netplug.runtime.cni_path, extra_env=netplug.runtime.extra_env)
    assert run.returncode == 0
    assert set(pod.links()) == {"lo", pod_if} and pod.links()[pod_if]["linkinfo"]["info_kind"] == "veth"
    assert not netplug.records() and not netplug.services()


def test_as_a_kubevirt_binding_plugin_on_the_pod_network(netplug, pod_network, pod):
    """Registered as a KubeVirt binding plugin for the pod network (cni-args logicNetworkName
    naming it), netplug binds eth0, as KubeVirt names the pod network's interface: the logical
    network has no pod<h> of its own. With neither, ADD is refused naming both."""
    primary = pod_network.conflist("1.0.0")
    ids = {"container_id": "ctr-kv-pod", "netns": pod.path}
    prev = netplug.runtime.add(primary, ifname="eth0", **ids)
    plugin = {"cniVersion": "1.0.0", "name": "netplug-bridge", "type": "netplug", "binding": "bridge",
              "resolvConf": "/dev/null", "args": {"cni": {"logicNetworkName": "default"}}}
    run = exec_plugin(netplug.shim, "ADD", plugin, ifname="net1", cni_path=netplug.runtime.cni_path,
                      extra_env=netplug.runtime.extra_env, **ids)
    assert run.returncode == 0, run.stdout
    links = pod.links()
    assert {"k6t-eth0", "eth0-nic", "tap0"} <= set(links) and links["eth0"]["linkinfo"]["info_kind"] == "ifb"
    assert "net1" not in links and len(netplug.services()) == 1
    run = exec_plugin(netplug.shim, "DEL", plugin, ifname="net1", cni_path=netplug.runtime.cni_path,
                      extra_env=netplug.runtime.extra_env, **ids)
    assert run.returncode == 0, run.stdout
    assert pod.links()["eth0"]["linkinfo"]["info_kind"] == "veth"
    assert_nothing_left(netplug, pod)
    netplug.runtime.delete(primary, prev, ifname="eth0", **ids)

    run = exec_plugin(netplug.shim, "ADD", plugin, ifname="net1", cni_path=netplug.runtime.cni_path,
                      extra_env=netplug.runtime.extra_env, **ids)
    assert run.returncode == 1 and run.json["code"] == 7
    h = naming.network_hash("default")
    assert run.json["msg"] == (f'args.cni.logicNetworkName "default": neither pod{h} (that Multus network\'s pod '
                               f"interface) nor eth0 (the pod network's) exists in {pod.path}")
    assert set(pod.links()) == {"lo"} and not netplug.records()
