"""Links and addresses in the calling thread's netns, through pyroute2.

`session()` opens one netlink socket for a batch of operations (opening one costs about a
millisecond, an ADD does a dozen operations). Errnos map to named exceptions: EEXIST →
LinkConflict, ENODEV → LinkNotFound, anything else → KernelError. Deleting something that
is already gone is not an error.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from netplug.errors import KernelError, LinkConflict, LinkNotFound

IFF_UP = 0x1
RTPROT_KERNEL = 2
RT_TABLE_MAIN = 254


@dataclass
class LinkInfo:
    name: str
    index: int
    kind: str | None
    mac: str | None
    mtu: int
    master: str | None
    up: bool
    addresses: list[str] = field(default_factory=list)
    #: a veth's peer: its ifindex in the peer's netns (IFLA_LINK)
    peer_index: int | None = None


def _raise(exc: BaseException, what: str) -> None:
    code = getattr(exc, "code", None) or getattr(exc, "errno", None)
    if code == errno.EEXIST:
        raise LinkConflict(f"{what}: already exists") from None
    if code in (errno.ENODEV, errno.ENOENT):
        raise LinkNotFound(f"{what}: no such link") from None
    reason = errno.errorcode.get(code, str(code)) if isinstance(code, int) else str(exc)
    raise KernelError(f"{what}: {reason}", details=str(exc)) from None


class Links:
    """Operations on links by name, over one netlink socket."""

    def __init__(self, ipr: IPRoute) -> None:
        self._ipr = ipr

    def _index(self, name: str) -> int | None:
        try:
            # a direct RTM_GETLINK by name; link_lookup would dump every link
            return self._ipr.link("get", ifname=name)[0]["index"]
        except NetlinkError as exc:
            if exc.code in (errno.ENODEV, errno.ENOENT):
                return None
            _raise(exc, f'looking up "{name}"')

    def _require(self, name: str) -> int:
        index = self._index(name)
        if index is None:
            raise LinkNotFound(f'link "{name}" does not exist')
        return index

    def get(self, name: str) -> LinkInfo | None:
        index = self._index(name)
        if index is None:
            return None
        try:
            msg = self._ipr.get_links(index)[0]
            master = msg.get("master")
            master_name = None
            if master:
                master_name = self._ipr.get_links(master)[0].get("ifname")
            addresses = [
                f"{a.get('address')}/{a['prefixlen']}"
                for a in self._ipr.get_addr(index=index)
            ]
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return None
            _raise(exc, f'reading link "{name}"')
        linkinfo = msg.get("linkinfo")
        kind = linkinfo.get("kind") if linkinfo is not None else None
        return LinkInfo(
            name=name, index=index, kind=kind, mac=msg.get("address"), mtu=msg.get("mtu"),
            master=master_name, up=bool(msg["flags"] & IFF_UP), addresses=addresses,
            peer_index=msg.get("link") if kind == "veth" else None,
        )

    def get_by_index(self, index: int) -> LinkInfo | None:
        """The link with ifindex `index` in this netns, if any."""
        try:
            name = self._ipr.get_links(index)[0].get("ifname")
        except NetlinkError as exc:
            if exc.code in (errno.ENODEV, errno.ENOENT):
                return None
            _raise(exc, f"looking up ifindex {index}")
        return self.get(name)

    def create_bridge(self, name: str, mac: str | None, mtu: int | None) -> None:
        attrs = {k: v for k, v in (("address", mac), ("mtu", mtu)) if v is not None}
        try:
            self._ipr.link("add", ifname=name, kind="bridge", **attrs)
        except NetlinkError as exc:
            _raise(exc, f'creating bridge "{name}"')

    def create_ifb(self, name: str, mac: str | None, mtu: int | None) -> None:
        """An ifb link: holds a name, a MAC and addresses and never answers ARP (what other
        kernels use a dummy link for; this one has no dummy driver)."""
        attrs = {k: v for k, v in (("address", mac), ("mtu", mtu)) if v is not None}
        try:
            self._ipr.link("add", ifname=name, kind="ifb", **attrs)
        except NetlinkError as exc:
            _raise(exc, f'creating ifb "{name}"')

    def create_tap(self, name: str, mac: str | None, mtu: int | None, *, uid: int, gid: int,
                   multi_queue: bool) -> None:
        try:
            self._ipr.link("add", ifname=name, kind="tuntap", mode="tap", uid=uid, gid=gid,
                           ifr={"multi_queue": multi_queue, "vnet_hdr": True, "no_pi": True})
        except (NetlinkError, OSError) as exc:
            _raise(exc, f'creating tap "{name}"')
        attrs = {k: v for k, v in (("address", mac), ("mtu", mtu)) if v is not None}
        if attrs:
            self.set(name, **attrs)

    def set(self, name: str, **attrs: object) -> None:
        index = self._require(name)
        try:
            self._ipr.link("set", index=index, **attrs)
        except NetlinkError as exc:
            _raise(exc, f'setting {sorted(attrs)} on "{name}"')

    def set_master(self, name: str, master: str) -> None:
        self.set(name, master=self._require(master))

    def set_up(self, name: str) -> None:
        self.set(name, state="up")

    def set_learning(self, name: str, learning: bool) -> None:
        index = self._require(name)
        try:
            self._ipr.brport("set", index=index, learning=int(learning))
        except NetlinkError as exc:
            _raise(exc, f'setting learning on bridge port "{name}"')

    def routes(self, name: str) -> list[dict]:
        """Routes through `name` in the main table that someone added (not the kernel's
        connected routes), as {dst, gateway, metric}; the default route is 0.0.0.0/0 or ::/0."""
        index = self._require(name)
        found = []
        for family in (socket.AF_INET, socket.AF_INET6):
            for msg in self._ipr.get_routes(oif=index, table=RT_TABLE_MAIN, family=family):
                if msg["proto"] == RTPROT_KERNEL or msg["type"] != 1:  # 1: unicast
                    continue
                dst = msg.get("dst") or ("0.0.0.0" if family == socket.AF_INET else "::")
                found.append({"dst": f"{dst}/{msg['dst_len']}", "gateway": msg.get("gateway"),
                              "metric": msg.get("priority")})
        return found

    def add_route(self, name: str, dst: str, gateway: str | None, metric: int | None, *,
                  replace: bool = False) -> None:
        """Add a route through `name` (already there: fine); `replace` takes over the route
        of the same destination and metric wherever it points now."""
        index = self._require(name)
        attrs = {k: v for k, v in (("gateway", gateway), ("priority", metric)) if v is not None}
        try:
            self._ipr.route("replace" if replace else "add", dst=dst, oif=index, **attrs)
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                _raise(exc, f"adding route {dst} via {gateway} on {name}")

    def flush_addresses(self, name: str) -> None:
        index = self._require(name)
        try:
            self._ipr.flush_addr(index=index)
        except NetlinkError as exc:
            _raise(exc, f'flushing addresses of "{name}"')

    def add_address(self, name: str, cidr: str) -> None:
        index = self._require(name)
        iface = ipaddress.ip_interface(cidr)
        try:
            self._ipr.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                _raise(exc, f'adding {cidr} to "{name}"')

    def move_to_netns(self, name: str, netns_path: str, new_name: str) -> None:
        """Move `name` into the netns at `netns_path`, arriving as `new_name` (one kernel
        operation: if the name is taken there, the link stays where it is)."""
        index = self._require(name)
        fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._ipr.link("set", index=index, net_ns_fd=fd, ifname=new_name)
        except NetlinkError as exc:
            _raise(exc, f'moving "{name}" into {netns_path} as "{new_name}"')
        finally:
            os.close(fd)

    def delete(self, name: str) -> bool:
        """Delete link `name`; False when it was already gone."""
        index = self._index(name)
        if index is None:
            return False
        try:
            self._ipr.link("del", index=index)
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return False
            _raise(exc, f'deleting "{name}"')
        return True


@contextmanager
def session() -> Iterator[Links]:
    """A `Links` bound to the calling thread's current netns."""
    ipr = IPRoute()
    try:
        yield Links(ipr)
    finally:
        ipr.close()
