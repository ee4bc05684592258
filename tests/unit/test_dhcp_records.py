"""netplug.ops.dhcp.leases and log_events: what the guest's DHCP service handed out and
answered, read from dnsmasq's lease file and `log-dhcp` log, with the client's MAC for
DHCPv6 too. The samples follow dnsmasq 2.90's formats (Debian 12; the log lines as its
services wrote them in this project's experiments); the DUID-EN client stands for a
systemd-networkd guest, whose DUID holds no MAC: its MAC comes from the log's "client MAC
address" line of the same exchange."""

from __future__ import annotations

from pathlib import Path

from netplug.ops import dhcp

LEASES = """\
0 52:54:00:aa:dd:01 10.0.2.2 * 01:52:54:00:aa:dd:01
duid 00:01:00:01:2e:b4:9d:1a:02:00:00:00:00:00
0 11188993 fd10:0:2::2 * 00:01:00:01:32:a1:e1:bc:52:54:00:aa:dd:01
0 2233 fd10:0:2::3 * 00:03:00:01:52:54:00:aa:dd:02
0 4455 fd10:0:2::4 * 00:02:00:00:ab:11:9a:3f:0c:22:1b:45:7e:01
"""

LOG = """\
Dec  1 19:51:25 dnsmasq-dhcp[30147]: 13154448 available DHCP range: fd10:0:2::2 -- fd10:0:2::2
Dec  1 19:51:25 dnsmasq-dhcp[30147]: 13154448 client MAC address: 52:54:00:aa:dd:01
Dec  1 19:51:25 dnsmasq-dhcp[30147]: 13154448 DHCPSOLICIT(k6t-eth0) 00:01:00:01:32:a1:e1:bc:52:54:00:aa:dd:01
Dec  1 19:51:25 dnsmasq-dhcp[30147]: 13154448 DHCPADVERTISE(k6t-eth0) fd10:0:2::2 00:01:00:01:32:a1:e1:bc:52:54:00:aa:dd:01
Dec  1 19:51:26 dnsmasq-dhcp[30147]: 11506038 client MAC address: 52:54:00:aa:dd:03
Dec  1 19:51:26 dnsmasq-dhcp[30147]: 11506038 DHCPREPLY(k6t-eth0) fd10:0:2::4 00:02:00:00:ab:11:9a:3f:0c:22:1b:45:7e:01
Dec  1 19:51:26 dnsmasq-dhcp[30147]: 3487823 DHCPDISCOVER(k6t-eth0) 52:54:00:aa:dd:01
Dec  1 19:51:26 dnsmasq-dhcp[30147]: 3487823 tags: known, k6t-eth0
Dec  1 19:51:26 dnsmasq-dhcp[30147]: 3487823 DHCPACK(k6t-eth0) 10.0.2.2 52:54:00:aa:dd:01 vm
Dec  1 19:51:27 dnsmasq-dhcp[30147]: RTR-SOLICIT(k6t-eth0) 52:54:00:aa:dd:01
"""


def test_leases_carry_the_clients_mac_for_both_families(tmp_path: Path) -> None:
    path = tmp_path / "x.leases"
    path.write_text(LEASES)
    assert [(lease.address, lease.mac) for lease in dhcp.leases(str(path))] == [
        ("10.0.2.2", "52:54:00:aa:dd:01"),
        ("fd10:0:2::2", "52:54:00:aa:dd:01"),  # DUID-LLT
        ("fd10:0:2::3", "52:54:00:aa:dd:02"),  # DUID-LL
        ("fd10:0:2::4", None),  # DUID-EN: no MAC in it
    ]
    assert dhcp.leases(str(tmp_path / "none.leases")) == []


def test_log_events_name_kind_address_and_mac(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_text(LOG)
    assert dhcp.log_events(str(path)) == [
        dhcp.DhcpEvent("DHCPSOLICIT", None, "52:54:00:aa:dd:01"),
        dhcp.DhcpEvent("DHCPADVERTISE", "fd10:0:2::2", "52:54:00:aa:dd:01"),
        dhcp.DhcpEvent("DHCPREPLY", "fd10:0:2::4", "52:54:00:aa:dd:03"),  # the MAC of its exchange
        dhcp.DhcpEvent("DHCPDISCOVER", None, "52:54:00:aa:dd:01"),
        dhcp.DhcpEvent("DHCPACK", "10.0.2.2", "52:54:00:aa:dd:01"),
    ]
    assert dhcp.log_events(str(tmp_path / "none.log")) == []
