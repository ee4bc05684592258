"""Links and addresses in the calling thread's netns, over rtnetlink (netplug.ops.rtnl).

`session()` opens one netlink socket for a batch of operations. Errnos map to named
exceptions: EEXIST → LinkConflict, ENODEV → LinkNotFound, anything else → KernelError.
Deleting something that is already gone is not an error.

Taps are made the way QEMU and `ip tuntap` make them, with ioctls on /dev/net/tun (the
kernel creates no tun device over rtnetlink).
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import logging
import os
import platform
import random
import select
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from netplug.errors import KernelError, LinkConflict, LinkNotFound
from netplug.ops import netns, rtnl
from netplug.ops.rtnl import NetlinkError

log = logging.getLogger(__name__)
IFF_UP = 0x1
RTPROT_KERNEL, RTPROT_STATIC = 2, 4
RT_TABLE_MAIN = 254
RTN_UNICAST = 1
RT_SCOPE_UNIVERSE = 0
AF_BRIDGE = 7

# linux/if_tun.h; the ioctl numbers are _IOW('T', n, int), whose direction bit differs by arch
IFF_TAP, IFF_MULTI_QUEUE, IFF_NO_PI, IFF_VNET_HDR, IFF_TUN_EXCL = 0x0002, 0x0100, 0x1000, 0x4000, 0x8000
_IOW = 0x80000000 if platform.machine().startswith(("ppc", "mips", "sparc")) else 0x40000000
TUNSETIFF, TUNSETPERSIST, TUNSETOWNER, TUNSETGROUP = (_IOW | 0x0454CA, _IOW | 0x0454CB, _IOW | 0x0454CC,
                                                      _IOW | 0x0454CE)
IFNAMSIZ = 16


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
    #: a tap/tun created with IFF_MULTI_QUEUE (None: not a tun link)
    multi_queue: bool | None = None
    #: a veth's peer: its ifindex in the peer's netns (IFLA_LINK)
    peer_index: int | None = None


def _raise(exc: OSError, what: str) -> None:
    code = exc.errno
    details = getattr(exc, "details", "") or str(exc)
    if code == errno.EEXIST:
        raise LinkConflict(f"{what}: already exists", details=details) from None
    if code in (errno.ENODEV, errno.ENOENT):
        raise LinkNotFound(f"{what}: no such link", details=details) from None
    reason = errno.errorcode.get(code, str(code)) if isinstance(code, int) else str(exc)
    raise KernelError(f"{what}: {reason}", details=details) from None


def _mac(value: bytes) -> str:
    return ":".join(f"{b:02x}" for b in value)


def _link_body(index: int = 0, flags: int = 0, change: int = 0, family: int = socket.AF_UNSPEC) -> bytes:
    return rtnl.IFINFO.pack(family, 0, index, flags, change)


def _by_name(name: str) -> bytes:
    """An RTM_GETLINK body asking for link `name`, without its statistics."""
    return _link_body() + rtnl.string(rtnl.IFLA_IFNAME, name) + rtnl.u32(rtnl.IFLA_EXT_MASK,
                                                                        rtnl.RTEXT_FILTER_SKIP_STATS)


def _link_attrs(attrs: dict[str, object]) -> bytes:
    """Attributes of a link change, from the keywords `set` takes."""
    out = []
    for key, value in attrs.items():
        if key == "ifname":
            out.append(rtnl.string(rtnl.IFLA_IFNAME, str(value)))
        elif key == "address":
            out.append(rtnl.attr(rtnl.IFLA_ADDRESS, bytes.fromhex(str(value).replace(":", ""))))
        elif key == "mtu":
            out.append(rtnl.u32(rtnl.IFLA_MTU, int(value)))
        elif key == "master":
            out.append(rtnl.u32(rtnl.IFLA_MASTER, int(value)))
        elif key == "group":
            out.append(rtnl.u32(rtnl.IFLA_GROUP, int(value)))
        elif key == "net_ns_fd":
            out.append(rtnl.u32(rtnl.IFLA_NET_NS_FD, int(value)))
        elif key != "state":
            raise ValueError(f"unknown link attribute {key}")
    return b"".join(out)


class Links:
    """Operations on links by name, over one netlink socket. A name is looked up once per
    session (every lookup takes the kernel's rtnl lock, which the whole node shares); what
    the session renames, moves or deletes is forgotten."""

    def __init__(self, sock: rtnl.Socket) -> None:
        self._sock = sock
        self._indexes: dict[str, int] = {}

    def _message(self, name: str) -> tuple[int, int, dict[int, bytes]] | None:
        """(index, flags, attributes) of link `name`, None when there is none."""
        body = _by_name(name)
        try:
            reply = self._sock.get(rtnl.RTM_GETLINK, body)
        except NetlinkError as exc:
            if exc.errno in (errno.ENODEV, errno.ENOENT):
                return None
            _raise(exc, f'looking up "{name}"')
        _, _, index, flags, _ = rtnl.IFINFO.unpack_from(reply)
        return index, flags, rtnl.attrs(reply, rtnl.IFINFO.size)

    def _index(self, name: str, *, fresh: bool = False) -> int | None:
        if not fresh and name in self._indexes:
            return self._indexes[name]
        self._indexes.pop(name, None)
        try:
            reply = self._sock.get(rtnl.RTM_GETLINK, _by_name(name))
        except NetlinkError as exc:
            if exc.errno in (errno.ENODEV, errno.ENOENT):
                return None
            _raise(exc, f'looking up "{name}"')
        self._indexes[name] = rtnl.IFINFO.unpack_from(reply)[2]  # the header is enough
        return self._indexes[name]

    def _require(self, name: str) -> int:
        index = self._index(name)
        if index is None:
            raise LinkNotFound(f'link "{name}" does not exist')
        return index

    def exists(self, name: str) -> bool:
        return self._index(name, fresh=True) is not None

    def _name_of(self, index: int) -> str | None:
        try:
            reply = self._sock.get(rtnl.RTM_GETLINK, _link_body(index) + rtnl.u32(
                rtnl.IFLA_EXT_MASK, rtnl.RTEXT_FILTER_SKIP_STATS))
        except NetlinkError:
            return None
        name = rtnl.attrs(reply, rtnl.IFINFO.size).get(rtnl.IFLA_IFNAME)
        return rtnl.text(name) if name else None

    def _addresses(self, index: int) -> list[str]:
        found = []
        for msg in self._sock.dump(rtnl.RTM_GETADDR, rtnl.IFADDR.pack(socket.AF_UNSPEC, 0, 0, 0, 0)):
            family, prefixlen, _, _, owner = rtnl.IFADDR.unpack_from(msg)
            if owner != index:
                continue
            address = rtnl.attrs(msg, rtnl.IFADDR.size).get(rtnl.IFA_ADDRESS)
            if address:
                found.append(f"{socket.inet_ntop(family, address)}/{prefixlen}")
        return found

    def get(self, name: str) -> LinkInfo | None:
        found = self._message(name)
        if found is None:
            return None
        index, flags, attrs = found
        kind = None
        multi_queue = None
        if rtnl.IFLA_LINKINFO in attrs:
            info = rtnl.attrs(attrs[rtnl.IFLA_LINKINFO])
            kind = rtnl.text(info[rtnl.IFLA_INFO_KIND]) if rtnl.IFLA_INFO_KIND in info else None
            if kind == "tun":
                data = rtnl.attrs(info[rtnl.IFLA_INFO_DATA]) if rtnl.IFLA_INFO_DATA in info else {}
                multi_queue = bool(data.get(rtnl.IFLA_TUN_MULTI_QUEUE, b"\0")[0])
        master = rtnl.unpack_u32(attrs[rtnl.IFLA_MASTER]) if rtnl.IFLA_MASTER in attrs else 0
        try:
            addresses = self._addresses(index)
        except NetlinkError as exc:
            _raise(exc, f'reading the addresses of "{name}"')
        return LinkInfo(
            name=name, index=index, kind=kind,
            mac=_mac(attrs[rtnl.IFLA_ADDRESS]) if rtnl.IFLA_ADDRESS in attrs else None,
            mtu=rtnl.unpack_u32(attrs[rtnl.IFLA_MTU]) if rtnl.IFLA_MTU in attrs else 0,
            master=self._name_of(master) if master else None, up=bool(flags & IFF_UP), addresses=addresses,
            multi_queue=multi_queue,
            peer_index=rtnl.unpack_u32(attrs[rtnl.IFLA_LINK]) if kind == "veth" and rtnl.IFLA_LINK in attrs else None,
        )

    def get_by_index(self, index: int) -> LinkInfo | None:
        """The link with ifindex `index` in this netns, if any."""
        name = self._name_of(index)
        return self.get(name) if name is not None else None

    def _create(self, name: str, kind: str, mac: str | None, mtu: int | None, group: int | None) -> None:
        attrs = {k: v for k, v in (("ifname", name), ("address", mac), ("mtu", mtu), ("group", group))
                 if v is not None}
        body = _link_body() + _link_attrs(attrs) + rtnl.nested(rtnl.IFLA_LINKINFO,
                                                               rtnl.string(rtnl.IFLA_INFO_KIND, kind))
        try:
            self._sock.request(rtnl.RTM_NEWLINK, body, rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL)
        except NetlinkError as exc:
            _raise(exc, f'creating {kind} "{name}"')

    def create_bridge(self, name: str, mac: str | None, mtu: int | None, group: int | None = None) -> None:
        self._create(name, "bridge", mac, mtu, group)

    def create_ifb(self, name: str, mac: str | None, mtu: int | None, group: int | None = None) -> None:
        """An ifb link: holds a name, a MAC and addresses and never answers ARP (what other
        kernels use a dummy link for; this one has no dummy driver)."""
        self._create(name, "ifb", mac, mtu, group)

    def create_tap(self, name: str, mac: str | None, mtu: int | None, *, uid: int, gid: int,
                   multi_queue: bool, group: int | None = None) -> None:
        """A persistent tap owned by uid:gid, as QEMU opens it (vnet header, no packet info)."""
        if not name or len(name.encode()) >= IFNAMSIZ:
            raise KernelError(f'creating tap "{name}": the name must be 1-15 bytes')
        flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_TUN_EXCL | (IFF_MULTI_QUEUE if multi_queue else 0)
        request = struct.pack("=16sH22x", name.encode(), flags)  # struct ifreq
        try:
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            _raise(exc, f'creating tap "{name}" (/dev/net/tun)')
        try:
            fcntl.ioctl(fd, TUNSETIFF, request)
            fcntl.ioctl(fd, TUNSETOWNER, uid)
            fcntl.ioctl(fd, TUNSETGROUP, gid)
            fcntl.ioctl(fd, TUNSETPERSIST, 1)
        except OSError as exc:
            if exc.errno == errno.EBUSY:  # IFF_TUN_EXCL: a tap of that name exists
                raise LinkConflict(f'creating tap "{name}": already exists') from None
            _raise(exc, f'creating tap "{name}"')
        finally:
            os.close(fd)
        attrs = {k: v for k, v in (("address", mac), ("mtu", mtu), ("group", group)) if v is not None}
        if attrs:
            self.set(name, **attrs)

    def set(self, name: str, **attrs: object) -> None:
        """Change link `name`: ifname, address, mtu, master (an index, 0 for none), group,
        net_ns_fd, state ("up"/"down"); all in one request."""
        index = self._require(name)
        state = attrs.get("state")
        flags = IFF_UP if state == "up" else 0
        change = IFF_UP if state in ("up", "down") else 0
        try:
            self._sock.request(rtnl.RTM_NEWLINK, _link_body(index, flags, change) + _link_attrs(attrs))
        except NetlinkError as exc:
            self._indexes.pop(name, None)
            _raise(exc, f'setting {sorted(attrs)} on "{name}"')
        if "ifname" in attrs or "net_ns_fd" in attrs:
            self._indexes.pop(name, None)

    def set_master(self, name: str, master: str) -> None:
        self.set(name, master=self._require(master))

    def set_up(self, name: str, master: str | None = None) -> None:
        """Bring `name` up, attached to bridge `master` first if one is given (one request)."""
        self.set(name, state="up", **({"master": self._require(master)} if master else {}))

    def set_learning(self, name: str, learning: bool) -> None:
        index = self._require(name)
        body = _link_body(index, family=AF_BRIDGE) + rtnl.nested(
            rtnl.IFLA_PROTINFO, rtnl.u8(rtnl.IFLA_BRPORT_LEARNING, int(learning)))
        try:
            self._sock.request(rtnl.RTM_SETLINK, body)  # AF_BRIDGE: the bridge's own setlink
        except NetlinkError as exc:
            _raise(exc, f'setting learning on bridge port "{name}"')

    def routes(self, name: str) -> list[dict]:
        """Routes through `name` in the main table that someone added (not the kernel's
        connected routes), as {dst, gateway, metric}; the default route is 0.0.0.0/0 or ::/0."""
        index = self._require(name)
        found = []
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                messages = self._sock.dump(rtnl.RTM_GETROUTE, rtnl.RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0))
            except NetlinkError as exc:
                _raise(exc, f'reading the routes through "{name}"')
            for msg in messages:
                _, dst_len, _, _, table, proto, _, kind, _ = rtnl.RTMSG.unpack_from(msg)
                attrs = rtnl.attrs(msg, rtnl.RTMSG.size)
                if rtnl.RTA_TABLE in attrs:
                    table = rtnl.unpack_u32(attrs[rtnl.RTA_TABLE])
                oif = rtnl.unpack_u32(attrs[rtnl.RTA_OIF]) if rtnl.RTA_OIF in attrs else None
                if table != RT_TABLE_MAIN or oif != index or proto == RTPROT_KERNEL or kind != RTN_UNICAST:
                    continue
                dst = socket.inet_ntop(family, attrs[rtnl.RTA_DST]) if rtnl.RTA_DST in attrs else (
                    "0.0.0.0" if family == socket.AF_INET else "::")  # nosec B104  # a route's destination, no bind
                gateway = socket.inet_ntop(family, attrs[rtnl.RTA_GATEWAY]) if rtnl.RTA_GATEWAY in attrs else None
                metric = rtnl.unpack_u32(attrs[rtnl.RTA_PRIORITY]) if rtnl.RTA_PRIORITY in attrs else None
                found.append({"dst": f"{dst}/{dst_len}", "gateway": gateway, "metric": metric})
        return found

    def add_route(self, name: str, dst: str, gateway: str | None, metric: int | None, *,
                  replace: bool = False) -> None:
        """Add a route through `name` (already there: fine); `replace` takes over the route
        of the same destination and metric wherever it points now."""
        index = self._require(name)
        network = ipaddress.ip_network(dst)
        family = socket.AF_INET if network.version == 4 else socket.AF_INET6
        body = rtnl.RTMSG.pack(family, network.prefixlen, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC,
                               RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
        body += rtnl.attr(rtnl.RTA_DST, network.network_address.packed) + rtnl.u32(rtnl.RTA_OIF, index)
        if gateway:
            body += rtnl.attr(rtnl.RTA_GATEWAY, ipaddress.ip_address(gateway).packed)
        if metric is not None:
            body += rtnl.u32(rtnl.RTA_PRIORITY, metric)
        try:
            flags = rtnl.NLM_F_CREATE | (rtnl.NLM_F_REPLACE if replace else rtnl.NLM_F_EXCL)
            self._sock.request(rtnl.RTM_NEWROUTE, body, flags)
        except NetlinkError as exc:
            if exc.errno != errno.EEXIST:
                _raise(exc, f"adding route {dst} via {gateway} on {name}")

    def flush_addresses(self, name: str) -> None:
        index = self._require(name)
        try:
            for msg in self._sock.dump(rtnl.RTM_GETADDR, rtnl.IFADDR.pack(socket.AF_UNSPEC, 0, 0, 0, 0)):
                if rtnl.IFADDR.unpack_from(msg)[4] == index:
                    try:
                        self._sock.request(rtnl.RTM_DELADDR, bytes(msg))
                    except NetlinkError as exc:
                        if exc.errno != errno.EADDRNOTAVAIL:  # gone with an earlier one (a v4 secondary)
                            raise
        except NetlinkError as exc:
            _raise(exc, f'flushing addresses of "{name}"')

    def add_address(self, name: str, cidr: str) -> None:
        index = self._require(name)
        iface = ipaddress.ip_interface(cidr)
        family = socket.AF_INET if iface.version == 4 else socket.AF_INET6
        body = rtnl.IFADDR.pack(family, iface.network.prefixlen, 0, RT_SCOPE_UNIVERSE, index)
        body += rtnl.attr(rtnl.IFA_LOCAL, iface.ip.packed) + rtnl.attr(rtnl.IFA_ADDRESS, iface.ip.packed)
        try:
            self._sock.request(rtnl.RTM_NEWADDR, body, rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL)
        except NetlinkError as exc:
            if exc.errno != errno.EEXIST:
                _raise(exc, f'adding {cidr} to "{name}"')

    def move_to_netns(self, name: str, netns_path: str, new_name: str) -> None:
        """Move `name` into the netns at `netns_path`, arriving as `new_name` (one kernel
        operation: if the name is taken there, the link stays where it is)."""
        index = self._require(name)
        self._indexes.pop(name, None)
        fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._sock.request(rtnl.RTM_NEWLINK, _link_body(index) + _link_attrs({"net_ns_fd": fd, "ifname": new_name}))
        except NetlinkError as exc:
            _raise(exc, f'moving "{name}" into {netns_path} as "{new_name}"')
        finally:
            os.close(fd)

    def _groups(self) -> dict[str, tuple[int, int]]:
        """{name: (index, link group)} of every link in this netns."""
        body = _link_body() + rtnl.u32(rtnl.IFLA_EXT_MASK, rtnl.RTEXT_FILTER_SKIP_STATS)
        found = {}
        for msg in self._sock.dump(rtnl.RTM_GETLINK, body):
            attrs = rtnl.attrs(msg, rtnl.IFINFO.size)
            if rtnl.IFLA_IFNAME in attrs:
                group = rtnl.unpack_u32(attrs[rtnl.IFLA_GROUP]) if rtnl.IFLA_GROUP in attrs else 0
                found[rtnl.text(attrs[rtnl.IFLA_IFNAME])] = (rtnl.IFINFO.unpack_from(msg)[2], group)
        return found

    def delete_all(self, names: list[str], group: int | None = None) -> list[str]:
        """Delete the links `names` in one kernel batch; the names that existed. Returns once
        the kernel has announced each deletion (see `_delete_announced`).

        The kernel pays its RCU waits (an rcu_barrier once the batch is unregistered, one more
        in a bridge's uninit) per batch, not per link: deleting a bridge and its tap one by
        one waits three times, as a batch twice. The batch is a link group: `group`, when
        exactly these links are in it (they were created in it), else one that no link in the
        netns uses, given to them first."""
        for name in names:
            self._indexes.pop(name, None)
        try:
            links = self._groups()
            found = {name: links[name][0] for name in names if name in links}
            if len(found) == 1:
                request = _link_body(next(iter(found.values())))
            elif found:
                members = {name for name, (_, in_group) in links.items() if in_group == group}
                if group is None or members != set(found):
                    used = {in_group for _, in_group in links.values()}
                    group = next(g for g in iter(lambda: random.randrange(1 << 16, 1 << 31), None) if g not in used)
                    for name, index in list(found.items()):
                        try:
                            self._sock.request(rtnl.RTM_NEWLINK, _link_body(index) + rtnl.u32(rtnl.IFLA_GROUP, group))
                        except NetlinkError as exc:
                            if exc.errno != errno.ENODEV:
                                raise
                            del found[name]  # gone meanwhile
                request = _link_body() + rtnl.u32(rtnl.IFLA_GROUP, group)
            if found:
                _delete_announced(request, set(found.values()))
        except NetlinkError as exc:
            _raise(exc, f"deleting {', '.join(names)}")
        return list(found)

    def delete(self, name: str) -> bool:
        """Delete link `name`; False when it was already gone."""
        index = self._index(name, fresh=True)
        self._indexes.pop(name, None)
        if index is None:
            return False
        try:
            self._sock.request(rtnl.RTM_DELLINK, _link_body(index))
        except NetlinkError as exc:
            if exc.errno == errno.ENODEV:
                return False
            _raise(exc, f'deleting "{name}"')
        return True


_deleters: ThreadPoolExecutor | None = None
_deleters_lock = threading.Lock()


def _in_background(job: Callable[[], None]) -> Future:
    """Run `job` on a thread of a pool kept for it (no thread is started per call)."""
    global _deleters
    with _deleters_lock:
        if _deleters is None:
            _deleters = ThreadPoolExecutor(max_workers=64, thread_name_prefix="link-delete")
    # the pool starts its threads from a submitting thread, in that thread's netns: submit from
    # the node's, so that no pool thread keeps a pod's netns alive
    with netns.entered(netns.NODE):
        return _deleters.submit(job)


def _delete_announced(request: bytes, indexes: set[int]) -> None:
    """Send an RTM_DELLINK `request` from a thread of its own; return when the kernel has
    announced the deletion of every link in `indexes` (RTM_DELLINK on the link multicast
    group) or the request is over.

    The kernel announces a link's deletion once it has unregistered it: it is out of the
    netns (no name, no index, no addresses, no routes, no sysfs entry) and the rtnl lock is
    about to be released. What the request still waits for after that is netdev_run_todo: an
    rcu_barrier (~15 ms here) and freeing the memory, outside the rtnl lock. The thread waits
    for it; the caller does not. A refusal comes before any announcement and is raised here."""
    monitor = rtnl.Socket(groups=rtnl.RTMGRP_LINK)  # subscribed before the request: no announcement is missed
    sock = rtnl.Socket()  # of this netns, whichever thread sends on it
    done_read, done_write = os.pipe2(os.O_CLOEXEC)
    waiting = threading.Event()
    waiting.set()

    def run() -> None:
        try:
            sock.request(rtnl.RTM_DELLINK, request)
        except BaseException as exc:
            if not waiting.is_set():  # else the caller raises it
                log.error("deleting links %s failed after the kernel announced it: %s", sorted(indexes), exc)
            raise
        finally:
            sock.close()
            os.close(done_write)  # wakes the caller's select

    pending = set(indexes)
    try:
        deleting = _in_background(run)
        while pending:
            ready = select.select([monitor.fileno(), done_read], [], [])[0]
            if done_read in ready:
                break
            try:
                announced = monitor.notifications()
            except OSError:  # ENOBUFS: announcements were dropped; wait for the request instead
                break
            for kind, payload in announced:
                if kind == rtnl.RTM_DELLINK:
                    pending.discard(rtnl.IFINFO.unpack_from(payload)[2])
        if pending:
            deleting.result()  # over without every announcement: its outcome is the answer
    finally:
        waiting.clear()
        monitor.close()
        os.close(done_read)


@contextmanager
def session() -> Iterator[Links]:
    """A `Links` bound to the calling thread's current netns."""
    try:
        sock = rtnl.Socket()
    except OSError as exc:
        raise KernelError(f"cannot open a netlink socket: {exc.strerror}") from None
    try:
        yield Links(sock)
    finally:
        sock.close()
