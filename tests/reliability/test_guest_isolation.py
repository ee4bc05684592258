"""What a guest can reach through its interface, and what it cannot.

netplug's pod-side surface towards a guest is its DHCP service and nothing else: dnsmasq
answers DHCP (DHCPv6/RA with IPv6) on the binding's in-pod bridge only, with DNS off (the
guest's resolvers are the pod's, reached through the NAT), and no other netplug process
listens in the pod. The node side is out of reach: the agent has no IP socket at all
(test_agent_socket.py), other pods' DHCP services on a shared secondary network do not answer
a guest that is not theirs, and the masquerade NAT cannot be got around: traffic from the
guest leaves the pod only as the pod's own address, never under another source address (a
spoofed one would pass as another pod's, or leak the VM network). What the pod's own
applications listen on is the pod's business, as in KubeVirt (a sidecar that intercepts the
guest's traffic relies on it).
"""

from __future__ import annotations

import os
import socket

from netplug import naming
from tests.support.cnirt import sandbox_ips
from tests.support.fixtures import attach_guest
from tests.support.topology import Netns, UdpSink, dhcp_lease, sh, unique, veth

MASQ = {"type": "netplug", "binding": "masquerade", "vmInterface": "default"}


def _listeners(ns: Netns) -> list[tuple[str, str, str]]:
    """(protocol, local address:port, process) of every listening socket in `ns`."""
    out = ns.exec("ss", "-H", "-l", "-n", "-t", "-u", "-w", "-p").stdout
    found = []
    for line in out.splitlines():
        fields = line.split()
        process = fields[6] if len(fields) > 6 else ""
        found.append((fields[0], fields[4], process.split('"')[1] if '"' in process else process))
    return found


def test_netplug_listens_in_the_pod_only_for_dhcp_on_the_bridge(netplug_agent, pod_network, pod, guests, tmp_path):
    result = netplug_agent.runtime.add(pod_network.conflist("1.0.0", MASQ), container_id="ctr-iso", netns=pod.path,
                                       ifname="eth0")
    guest = attach_guest(pod, "k6t-eth0")
    guests.append(guest)
    assert dhcp_lease(guest.ns, "eth0", str(tmp_path))["ip"] == "10.0.2.2"

    assert _listeners(pod) == [("udp", "0.0.0.0%k6t-eth0:67", "dnsmasq")]

    def dns_query() -> bytes | None:
        query = bytes.fromhex("123401000001000000000000076578616d706c6503636f6d0000010001")  # example.com A
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(1)
            try:
                sock.sendto(query, ("10.0.2.1", 53))
                return sock.recv(512)
            except OSError:  # refused (ICMP port unreachable) or no answer
                return None

    def tcp_open(port: int) -> bool:
        try:
            socket.create_connection(("10.0.2.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    assert guest.ns.run(dns_query) is None, "the gateway answers DNS"
    assert not [port for port in (22, 53, 67, 80, 443, 8080) if guest.ns.run(lambda p=port: tcp_open(p))]

    # nothing on the pod network's side is answered by the pod's DHCP service
    stranger = Netns.create("npst")
    try:
        node_end = unique("npsn")
        veth(None, node_end, stranger, "eth0")
        sh("ip", "link", "set", node_end, "master", pod_network.bridge)
        assert dhcp_lease(stranger, "eth0", str(tmp_path), tries=3) == {}
    finally:
        sh("ip", "link", "del", node_end, check=False)
        stranger.delete()
    netplug_agent.runtime.delete(pod_network.conflist("1.0.0", MASQ), result, container_id="ctr-iso",
                                 netns=pod.path, ifname="eth0")


def test_guest_traffic_leaves_the_pod_only_as_the_pod(netplug, pod_network, pod, outside, guests, tmp_path):
    """A guest that puts another source address on its NIC (another pod's, or another one of
    the VM network) gets nothing through the pod: only its own address is masqueraded, the
    rest is dropped instead of being forwarded with the spoofed source."""
    neighbour = Netns.create("npnb")
    try:
        neighbour_ip = sandbox_ips(netplug.runtime.add(pod_network.conflist("1.0.0"), container_id="ctr-nb",
                                                       netns=neighbour.path, ifname="eth0"))[0]
        conflist = pod_network.conflist("1.0.0", MASQ)
        result = netplug.runtime.add(conflist, container_id="ctr-spoof", netns=pod.path, ifname="eth0")
        pod_ip = sandbox_ips(result)[0]
        guest = attach_guest(pod, "k6t-eth0")
        guests.append(guest)
        assert dhcp_lease(guest.ns, "eth0", str(tmp_path))["ip"] == "10.0.2.2"
        spoofed = [neighbour_ip, "10.0.2.77", "192.0.2.7"]
        for address in spoofed:
            guest.ns.ip("addr", "add", f"{address}/32", "dev", "eth0")

        sink = UdpSink(outside.ns, 9999)
        try:
            def send(source: str) -> None:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.bind((source, 0))
                    for _ in range(3):
                        sock.sendto(b"hello", (outside.address, 9999))
            for source in ["10.0.2.2", *spoofed]:
                guest.ns.run(lambda s=source: send(s))
            guest.ns.run(lambda: send("10.0.2.2"))  # a last legitimate one: the others had their chance
            received = set(sink.sources)
        finally:
            sink.close()
        assert pod_ip in received, "the guest's own traffic did not get through"
        assert received == {pod_ip}, f"spoofed sources left the pod: {received - {pod_ip}}"
        netplug.runtime.delete(conflist, result, container_id="ctr-spoof", netns=pod.path, ifname="eth0")
    finally:
        neighbour.delete()


def _secondary(node_bridge: str, data_dir: str, vm_name: str, mac: str) -> dict:
    return {"cniVersion": "1.0.0", "name": "shared", "plugins": [
        {"type": "bridge", "bridge": node_bridge,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.61.0.0/24"}]], "dataDir": data_dir}},
        {"type": "netplug", "binding": "bridge", "vmNamespace": "default", "vmName": vm_name, "vmInterface": "shared",
         "mac": mac},
    ]}


def test_other_pods_dhcp_on_a_shared_network_does_not_answer(netplug_agent, node_bridges, guests, tmp_path):
    """Two pods' guests on one secondary network (one node bridge, one L2): each pod's DHCP
    service hears every guest, and answers only its own; a stranger gets no lease at all."""
    node_bridge = unique("npshr")
    node_bridges.append(node_bridge)
    h = naming.network_hash("shared")
    ifname = naming.pod_interface_for_network("shared")
    macs = ["52:54:00:5a:00:01", "52:54:00:5a:00:02"]
    pods = [Netns.create("npsh") for _ in macs]
    attached = []
    try:
        for n, (pod, mac) in enumerate(zip(pods, macs, strict=True)):
            conflist = _secondary(node_bridge, str(tmp_path / "ipam"), f"vm{n}", mac)
            result = netplug_agent.runtime.add(conflist, container_id=f"ctr-sh-{n}", netns=pod.path, ifname=ifname)
            attached.append((conflist, result, pod))
        pod_ips = [sandbox_ips(r, ifname)[0] for _, r, _ in attached]
        logs = [os.path.join(netplug_agent.state_dir, "services", naming.attachment_tag(f"ctr-sh-{n}", ifname) + ".log")
                for n in range(len(pods))]

        # the first guest's lease comes from its own pod, and only its own pod offered one
        guest = attach_guest(pods[0], f"k6t-{h}", macs[0], as_tap=f"tap{h}")
        guests.append(guest)
        assert dhcp_lease(guest.ns, "eth0", str(tmp_path))["ip"] == pod_ips[0]
        with open(logs[1]) as f:
            second = f.read()
        assert f"DHCPDISCOVER(k6t-{h}) {macs[0]} ignored" in second, second[-2000:]
        assert "DHCPOFFER" not in second

        # a stranger on the shared network: nobody answers it
        stranger = attach_guest(pods[1], f"k6t-{h}", "52:54:00:5a:00:99")
        guests.append(stranger)
        assert dhcp_lease(stranger.ns, "eth0", str(tmp_path), tries=3) == {}
        for log in logs:
            with open(log) as f:
                assert not [line for line in f if "DHCPOFFER" in line and "52:54:00:5a:00:99" in line]
    finally:
        for guest in guests:
            guest.remove()
        guests.clear()
        for conflist, result, pod in reversed(attached):
            netplug_agent.runtime.delete(conflist, result, container_id=f"ctr-sh-{pods.index(pod)}",
                                         netns=pod.path, ifname=ifname)
        for pod in pods:
            pod.delete()
    assert netplug_agent.records() == [] and netplug_agent.services() == []
