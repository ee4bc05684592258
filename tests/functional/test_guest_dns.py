"""The guest's DNS through the real shim and agent, chained after the reference bridge +
host-local, as a launcher pod's binding entry carries it: cni-args `dns` (the pod's own DNS,
the controller's) reaches the guest's DHCP lease, and the `resolvConf` file is then not read;
a resolvConf that is no regular file (a FIFO) neither blocks the ADD nor reaches the guest.
"""

from __future__ import annotations

import os

from tests.support.fixtures import attach_guest
from tests.support.topology import dhcp_lease

MASQ = {"type": "netplug", "binding": "masquerade", "vmInterface": "default"}
IDS = {"netns": None, "ifname": "eth0", "args": "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=virt-launcher-vm1"}


def _add(netplug, pod_network, pod, masq: dict, container_id: str) -> dict:
    return netplug.runtime.add(pod_network.conflist("1.0.0", masq), **{**IDS, "netns": pod.path,
                                                                       "container_id": container_id})


def test_the_dns_in_cni_args_is_the_guests(netplug, pod_network, pod, guests, tmp_path):
    fifo = tmp_path / "resolv.fifo"
    os.mkfifo(fifo)  # never opened: with `dns` given the file is not read
    dns = {"nameservers": ["10.96.0.10", "fd00:10:96::a"],
           "search": ["web.ns1.svc.cluster.local", "ns1.svc.cluster.local", "svc.cluster.local", "cluster.local"]}
    masq = {**MASQ, "resolvConf": str(fifo), "args": {"cni": {"vmInterface": "default", "dns": dns}}}
    _add(netplug, pod_network, pod, masq, "ctr-dns-1")
    guest = attach_guest(pod, "k6t-eth0")
    guests.append(guest)
    lease = dhcp_lease(guest.ns, "eth0", str(tmp_path))
    assert lease["dns"].split() == ["10.96.0.10"]  # the IPv4 servers over DHCPv4
    assert lease["search"].split() == dns["search"]
    assert lease["domain"] == "web.ns1.svc.cluster.local"


def test_a_resolv_conf_that_is_no_regular_file_is_not_read(netplug, pod_network, pod, guests, tmp_path):
    fifo = tmp_path / "resolv.fifo"
    os.mkfifo(fifo)  # opening it for reading the plain way would wait for a writer for ever
    _add(netplug, pod_network, pod, {**MASQ, "resolvConf": str(fifo)}, "ctr-dns-2")
    guest = attach_guest(pod, "k6t-eth0")
    guests.append(guest)
    lease = dhcp_lease(guest.ns, "eth0", str(tmp_path))
    assert lease["ip"] == "10.0.2.2" and not lease.get("dns")
    if netplug.mode == "agent":
        assert "not a regular file" in netplug.agent_log()
