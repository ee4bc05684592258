"""The guest's DNS servers and search domains: from the binding config's `dns` (what the
controller gives in cni-args: the launcher pod's own DNS) or else from the `resolvConf` file,
which the agent reads as root from a path a NAD may name — so only as a small regular file,
never blocking (audit S2-5)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from netplug.bindings.bridge import plan_bridge
from netplug.bindings.masquerade import plan_masquerade
from netplug.cni.skel import Request, load_binding
from netplug.errors import InvalidConfig
from netplug.model.netconf import BridgeConf
from netplug.ops.files import read_regular_file
from tests.unit.test_masquerade_plan import RESOLV, conf, ctx

DNS = {"nameservers": ["10.96.0.10", "127.0.0.1", "fd00:10:96::a"],
       "search": ["ns1.svc.cluster.local", "svc.cluster.local", "cluster.local"]}


def test_dns_given_replaces_the_resolv_conf() -> None:
    dhcp = plan_masquerade(conf(dns=DNS), ctx(resolv_conf=RESOLV)).netspec.dhcp
    assert dhcp.dns_servers == ["10.96.0.10"]  # the loopback resolver is unreachable from a VM
    assert dhcp.dns_servers6 == ["fd00:10:96::a"]
    assert dhcp.search_domains == DNS["search"]
    assert dhcp.domain_name == "ns1.svc.cluster.local"  # the longest search domain, as KubeVirt
    bridge = BridgeConf(cniVersion="1.0.0", binding="bridge", dns={**DNS, "domain": "corp.example"})
    dhcp = plan_bridge(bridge, ctx(resolv_conf=RESOLV)).netspec.dhcp
    assert (dhcp.dns_servers, dhcp.domain_name) == (["10.96.0.10"], "corp.example")


def test_a_pod_gives_its_dns_in_cni_args_and_bad_dns_names_the_field() -> None:
    config = {"cniVersion": "1.0.0", "name": "netplug-masquerade", "type": "netplug", "binding": "masquerade",
              "podInterface": "eth0", "args": {"cni": {"vmInterface": "default", "dns": DNS}}}
    assert load_binding(Request(command="ADD", ifname="net1", config=config)).dns.search == DNS["search"]
    config["args"]["cni"]["dns"] = {"nameservers": ["10.96.0.300"]}
    with pytest.raises(InvalidConfig, match=r'config: dns.nameservers: nameserver "10.96.0.300" is not an IP'):
        load_binding(Request(command="ADD", ifname="net1", config=config))
    config["args"]["cni"]["dns"] = {"nameservers": ["1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4"]}
    with pytest.raises(InvalidConfig, match=r"config: dns.nameservers: List should have at most 3 items"):
        load_binding(Request(command="ADD", ifname="net1", config=config))


# --- reading resolvConf ------------------------------------------------------------------------


def test_a_regular_file_and_a_link_to_it_are_read(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(RESOLV)
    (tmp_path / "link").symlink_to(resolv)  # systemd-resolved's /etc/resolv.conf is a link
    assert read_regular_file(str(resolv), 65536) == read_regular_file(str(tmp_path / "link"), 65536) == RESOLV


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    done = threading.Event()

    def read() -> None:
        with pytest.raises(OSError, match="not a regular file"):
            read_regular_file(str(fifo), 65536)
        done.set()
    threading.Thread(target=read, daemon=True).start()
    if not done.wait(10):  # a blocking open would wait for a writer for ever
        with open(fifo, "w"):  # unblock the reader, then fail
            pass
        pytest.fail("reading the FIFO blocked")


@pytest.mark.parametrize("path", ["/dev/null", "/proc/self/environ", "/proc/kmsg", "/sys/kernel/uevent_seqnum", "/etc"])
def test_devices_kernel_files_and_directories_are_refused(path: str) -> None:
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist here")
    with pytest.raises(OSError, match="not a regular file"):
        read_regular_file(path, 65536)


def test_a_file_over_the_limit_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_text("nameserver 10.0.0.1\n" * 4000)
    with pytest.raises(OSError, match="more than 65536"):
        read_regular_file(str(big), 65536)
