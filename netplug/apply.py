"""The apply engine: make a `NetSpec` real, check it, remove it.

`apply` creates links (or takes over the pod interface as a bridge port), addresses, routes,
sysctls, the nftables rulesets (NAT, spoof guard, service fence) and the DHCP service in that
order (dnsmasq is started once the link it serves is up and the pod interface is taken over,
and waited for last, so that it comes up while the rest is made) and pushes one undo step per
change onto a `Journal`; if anything fails the caller rolls the journal back and the pod is as
it was (only what this ADD changed is undone: a pre-existing link that collides is left alone).
`remove` is DEL's tolerant teardown by name, from the spec alone, which a later DEL finishes
wherever a crash cut it short; `check` lists every way the pod differs from the spec.

Test hook: `apply` and `remove` call `checkpoint(step)` at each step boundary (a no-op unless
the handler's NETPLUG_TEST_HOOKS listens: tests/reliability/test_crash.py kills the process
at each).

May import: netplug.ops, netplug.render, netplug.model, netplug.naming, netplug.errors.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from netplug import naming
from netplug.errors import LinkConflict, LinkNotFound, NetplugError
from netplug.model.netspec import LinkSpec, NetSpec, VfConfig, VfPlan
from netplug.ops import dhcp, link, netns, nft, sriov, sysctl
from netplug.ops.files import replace_file
from netplug.render.dnsmasq import render_dhcp
from netplug.render.nftables import render_nat, render_service_fence, render_spoof_guard

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceFiles:
    """Where the attachment's DHCP service keeps its files (chosen by the state store)."""

    conf: str
    pid: str
    leases: str
    log: str


class Journal:
    """Undo steps, run in reverse on rollback; a failing undo step does not stop the rest."""

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], object]]] = []

    def push(self, what: str, undo: Callable[[], object]) -> None:
        self._steps.append((what, undo))

    def rollback(self) -> None:
        while self._steps:
            what, undo = self._steps.pop()
            try:
                undo()
                log.info("rolled back: %s", what)
            except Exception as exc:  # keep undoing the rest
                log.error("rollback of %s failed: %s", what, exc)


def no_checkpoint(step: str) -> None:
    """What `apply` and `remove` call at each step boundary when no test hook listens."""
    return None


def _in_netns(path: str, fn: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        if netns.exists(path):
            with netns.entered(path):
                fn()
    return run


def _delete_link(path: str, name: str) -> Callable[[], None]:
    def delete() -> None:
        with link.session() as links:
            links.delete(name)
    return _in_netns(path, delete)


def _rulesets(spec: NetSpec) -> list[tuple[str, str, dict]]:
    """(family, table, document) of every nftables table the spec owns."""
    tables = [(nat.family, nat.table, render_nat(nat)) for nat in spec.nat]
    if spec.spoof_guard is not None:
        guard = spec.spoof_guard
        tables.append((guard.family, guard.table, render_spoof_guard(guard)))
    if spec.service_fence is not None:
        fence = spec.service_fence
        tables.append((fence.family, fence.table, render_service_fence(fence)))
    return tables


def _take_over(links: link.Links, wanted: LinkSpec, checkpoint: Callable[[str], None]) -> None:
    """Make the pod interface a bridge port: down, no addresses, renamed, new MAC."""
    assert wanted.takeover is not None
    original = wanted.takeover.name
    links.set(original, state="down")
    links.flush_addresses(original)
    checkpoint("takeover:flushed")
    attrs: dict[str, object] = {"ifname": wanted.name}
    if wanted.mac:
        attrs["address"] = wanted.mac
    links.set(original, **attrs)


def _give_back(links: link.Links, wanted: LinkSpec, checkpoint: Callable[[str], None] = no_checkpoint) -> bool:
    """Undo `_take_over`: the pod interface as the primary CNI made it. False if it is gone.
    Each step may be done already, by a take-over or a give-back that a crash cut short (the
    interface down, or without its addresses or routes, under its own name and MAC): what is
    missing is put back, and what is there stays."""
    assert wanted.takeover is not None
    original = wanted.takeover
    if links.exists(wanted.name):
        links.set(wanted.name, master=0)
        links.set(wanted.name, state="down")
        links.set(wanted.name, ifname=original.name, address=original.mac, mtu=original.mtu)
        checkpoint("del:pod-interface-renamed")
    else:
        found = links.get(original.name)
        # under its own name, the pod interface has its own MAC (the rename changes both at
        # once); a bridge binding's ifb holds that name only while the interface is a port
        if found is None or found.kind == "ifb" or (found.mac or "").lower() != original.mac.lower():
            return False
    links.set_up(original.name)
    for address in original.addresses:
        links.add_address(original.name, address)
    for route in original.routes:
        # the binding may have moved the route onto its bridge (IPv6): it is the pod's again
        links.add_route(original.name, route.dst, route.gateway, route.metric, replace=True)
    return True


def _give_back_in(path: str, wanted: LinkSpec) -> Callable[[], None]:
    def give_back() -> None:
        with link.session() as links:
            _give_back(links, wanted)
    return _in_netns(path, give_back)


def _vf_settings(config: VfConfig) -> dict:
    return config.model_dump(exclude_none=True)


def _unlink(path: str | None) -> None:
    if path:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _apply_vf(spec: NetSpec, journal: Journal, checkpoint: Callable[[str], None]) -> None:
    """Configure the VF through its PF (from the node netns) and move its netdev into the pod
    under a temporary name, then rename it there: a clash leaves it in the node."""
    vf = spec.vf
    assert vf is not None
    journal.push(f"VF {vf.pci} settings", lambda: sriov.set_vf_config(vf.pf, vf.index, _vf_settings(vf.restore)))
    sriov.set_vf_config(vf.pf, vf.index, _vf_settings(vf.config))
    checkpoint("vf:config")
    if vf.netdev is not None:
        node = netns.NODE
        staged = naming.vf_staging_name(vf.pci)
        with link.session() as links:
            links.move_to_netns(vf.netdev, spec.netns, staged)
        journal.push(f"VF netdev {vf.netdev}", _in_netns(spec.netns, lambda: _move_back(vf, node)))
        checkpoint("vf:moved")
        with netns.entered(spec.netns), link.session() as links:
            links.set(staged, ifname=vf.ifname, **({"mtu": vf.mtu} if vf.mtu else {}))
            for address in vf.addresses:
                links.add_address(vf.ifname, address)
            links.set_up(vf.ifname)
    if vf.device_info_file:
        journal.push("device-info file", lambda: _unlink(vf.device_info_file))
        os.makedirs(os.path.dirname(vf.device_info_file), exist_ok=True)
        replace_file(vf.device_info_file, json.dumps(vf.device_info))


def _move_back(vf: VfPlan, node_netns: str) -> bool:
    """From inside the pod netns: the VF netdev (final or staged name) back to the node."""
    with link.session() as links:
        for name in (vf.ifname, naming.vf_staging_name(vf.pci)):
            if links.get(name) is not None:
                links.set(name, state="down")
                links.flush_addresses(name)
                links.move_to_netns(name, node_netns, vf.netdev or name)
                return True
    return False


def apply(spec: NetSpec, files: ServiceFiles, journal: Journal,
          checkpoint: Callable[[str], None] = no_checkpoint) -> None:
    if spec.vf is not None:
        _apply_vf(spec, journal, checkpoint)
    starting = None
    # dnsmasq comes up (~5 ms, mostly its own exec) while the rest is made: once the link it
    # serves is up and no link is renamed any more (its start lists the netns's interfaces,
    # and fails with ENODEV when one is renamed meanwhile: a bridge binding's take-over)
    start_after = max((n for n, w in enumerate(spec.links) if spec.dhcp is not None
                       and (w.name == spec.dhcp.interface or w.kind == "existing")), default=None)
    with netns.entered(spec.netns), link.session() as links:
        freed = {w.takeover.name for w in spec.links if w.takeover is not None}
        for wanted in spec.links:
            if wanted.takeover is not None and not links.exists(wanted.takeover.name):
                raise LinkNotFound(f'pod interface "{wanted.takeover.name}" is gone from {spec.netns}')
            if wanted.name not in freed and links.exists(wanted.name):
                raise LinkConflict(f'link "{wanted.name}" already exists in the pod netns {spec.netns}')
        for n, wanted in enumerate(spec.links):
            if wanted.kind == "existing":
                journal.push(f"pod interface {wanted.name}", _give_back_in(spec.netns, wanted))
                _take_over(links, wanted, checkpoint)
            else:
                if wanted.kind == "bridge":
                    links.create_bridge(wanted.name, wanted.mac, wanted.mtu, group=spec.link_group)
                elif wanted.kind == "ifb":
                    links.create_ifb(wanted.name, wanted.mac, wanted.mtu, group=spec.link_group)
                else:
                    links.create_tap(wanted.name, wanted.mac, wanted.mtu, uid=wanted.owner_uid,
                                     gid=wanted.owner_gid, multi_queue=wanted.multi_queue, group=spec.link_group)
                journal.push(f"link {wanted.name}", _delete_link(spec.netns, wanted.name))
            checkpoint(f"link:{wanted.name}")
            for key, value in wanted.sysctls.items():
                sysctl.write(key, value)
            master = wanted.master
            if master and wanted.learning is not None:  # a port's learning is set once it is a port
                links.set_master(wanted.name, master)
                links.set_learning(wanted.name, wanted.learning)
                master = None
            for address in wanted.addresses:
                links.add_address(wanted.name, address)
            links.set_up(wanted.name, master=master)
            if n == start_after:
                starting = _start_service(spec, files, journal)
        # only now: a route the pod interface still held would have kept its place
        for wanted in spec.links:
            for route in wanted.routes:
                links.add_route(wanted.name, route.dst, route.gateway, route.metric)

        for key in spec.sysctls:
            sysctl.write(key.key, key.value)
            if key.restore is not None and key.restore != key.value:
                journal.push(f"sysctl {key.key}", _in_netns(spec.netns, lambda k=key: sysctl.write(k.key, k.restore)))
        checkpoint("sysctls")

        for family, table, document in _rulesets(spec):
            journal.push(f"nft table {family} {table}",
                         _in_netns(spec.netns, lambda f=family, t=table: nft.delete_table(f, t)))
            nft.load(document)
            checkpoint(f"nft:{family}:{table}")

        if spec.dhcp is not None:
            dhcp.finish_start(starting or _start_service(spec, files, journal))
            checkpoint("dhcp")


def _start_service(spec: NetSpec, files: ServiceFiles, journal: Journal) -> dhcp.Starting:
    """Start the spec's DHCP service in the current netns; `dhcp.finish_start` waits for it."""
    assert spec.dhcp is not None
    config = render_dhcp(spec.dhcp, pid_file=files.pid, lease_file=files.leases, log_file=files.log)
    starting = dhcp.begin_start(config, files.conf, files.pid)
    journal.push("dhcp service", lambda: dhcp.abandon_start(starting))
    return starting


def ensure_service(spec: NetSpec, files: ServiceFiles) -> bool:
    """Start the DHCP service of an applied spec unless it runs; True if it had to start it."""
    if spec.dhcp is None or dhcp.running(files.conf, files.pid) is not None:
        return False
    config = render_dhcp(spec.dhcp, pid_file=files.pid, lease_file=files.leases, log_file=files.log)
    with netns.entered(spec.netns):
        dhcp.start(config, files.conf, files.pid)
    return True


def same_netns(spec: NetSpec) -> bool:
    """Whether the spec's netns path still names the namespace ADD wired: it exists and, where
    ADD recorded its identity, is that one and not another made at the same path since."""
    current = netns.identity(spec.netns)
    return current is not None and spec.netns_id in (None, current)


def remove(spec: NetSpec, files: ServiceFiles, keep_sysctls: frozenset[str] = frozenset(),
           checkpoint: Callable[[str], None] = no_checkpoint) -> list[str]:
    """Tear down everything `spec` names; tolerant of what is already gone, so that a DEL cut
    short at any step is finished by the next. What was removed. Pod-wide sysctls in
    `keep_sysctls` are still needed by another attachment: not restored."""
    removed: list[str] = []
    stopping = dhcp.begin_stop(files.conf, files.pid)  # the daemon exits while the rest goes
    checkpoint("del:dhcp-signalled")
    try:
        wired = same_netns(spec)  # else links, rules and sysctls went with the namespace
        if not wired and netns.exists(spec.netns):
            log.warning("%s names another netns than at ADD; not touching it", spec.netns)
        if spec.vf is not None:
            vf = spec.vf
            node = netns.NODE
            if vf.netdev is not None and wired:
                with netns.entered(spec.netns):
                    if _move_back(vf, node):
                        removed.append(f"VF netdev {vf.netdev} back in the node")
                checkpoint("del:vf-netdev")
            _unlink(vf.device_info_file)
            try:
                sriov.set_vf_config(vf.pf, vf.index, _vf_settings(vf.restore))
                removed.append(f"VF {vf.pci} settings restored")
            except NetplugError as exc:  # PF gone or VFs re-created after a reboot: nothing to restore
                log.warning("VF %s settings not restored: %s", vf.pci, exc.msg)
            checkpoint("del:vf-config")
        if wired:
            try:
                with netns.entered(spec.netns):
                    removed += _remove_in_netns(spec, keep_sysctls, checkpoint)
            except NetplugError as exc:
                if netns.exists(spec.netns):
                    raise
                log.info("netns %s vanished during teardown (%s)", spec.netns, exc.msg)
    finally:
        if dhcp.finish_stop(stopping):
            removed.insert(0, "dhcp service")
    checkpoint("del:dhcp")
    return removed


def _is_the_pod_interface(links: link.Links, spec: NetSpec, name: str) -> bool:
    """Whether the link `name`, which the spec creates, is the pod interface itself: a bridge
    binding's ifb takes the pod interface's name, and before the take-over (an ADD cut short
    there) or after the give-back (a DEL cut short) that name is the pod interface's again."""
    if not any(w.takeover is not None and w.takeover.name == name for w in spec.links):
        return False
    found = links.get(name)
    return found is not None and found.kind != "ifb"


def _remove_in_netns(spec: NetSpec, keep_sysctls: frozenset[str], checkpoint: Callable[[str], None]) -> list[str]:
    removed = []
    # Sysctls first: writing ip_forward takes the rtnl lock, which deleting a bridge holds
    # through an RCU barrier.
    for key in spec.sysctls:
        if key.key in keep_sysctls:
            continue
        if key.restore is not None and sysctl.read(key.key) == key.value:
            sysctl.write(key.key, key.restore)
            removed.append(f"sysctl {key.key}={key.restore}")
    checkpoint("del:sysctls")
    for family, table, _ in _rulesets(spec):
        if nft.delete_table(family, table):
            removed.append(f"nft table {family} {table}")
        checkpoint(f"del:nft:{family}:{table}")
    with link.session() as links:
        # Created links go in one batch (one set of kernel RCU waits), before a taken-over pod
        # interface gets its name back (a bridge binding's ifb holds that name meanwhile).
        created = [wanted.name for wanted in reversed(spec.links)
                   if wanted.kind != "existing" and not _is_the_pod_interface(links, spec, wanted.name)]
        removed += [f"link {name}" for name in links.delete_all(created, spec.link_group)]
        checkpoint("del:links")
        for wanted in reversed(spec.links):
            if wanted.kind == "existing" and _give_back(links, wanted, checkpoint):
                removed.append(f"pod interface {wanted.takeover.name} restored")
                checkpoint("del:pod-interface")
    return removed


def check(spec: NetSpec, files: ServiceFiles) -> list[str]:
    """Every difference between the pod and `spec`; empty when all is as ADD made it."""
    problems: list[str] = []
    if spec.vf is not None:
        vf = spec.vf
        current = sriov.get_vf_config(vf.pf, vf.index)
        for key, value in _vf_settings(vf.config).items():
            if key in current and current[key] != value:
                problems.append(f"VF {vf.pci} {key} is {current[key]}, want {value}")
    with netns.entered(spec.netns):
        with link.session() as links:
            for wanted in spec.links:
                have = links.get(wanted.name)
                if have is None:
                    problems.append(f"link {wanted.name} is missing")
                    continue
                kind = {"tap": "tun", "existing": have.kind}.get(wanted.kind, wanted.kind)
                if have.kind != kind:
                    problems.append(f"link {wanted.name} is a {have.kind}, not a {kind}")
                if wanted.mtu and have.mtu != wanted.mtu:
                    problems.append(f"link {wanted.name} has MTU {have.mtu}, want {wanted.mtu}")
                if wanted.master and have.master != wanted.master:
                    problems.append(f"link {wanted.name} is attached to {have.master}, want {wanted.master}")
                if not have.up:
                    problems.append(f"link {wanted.name} is down")
                for address in wanted.addresses:
                    if address not in have.addresses:
                        problems.append(f"link {wanted.name} lacks address {address}")
                if wanted.routes:
                    routes = {(r["dst"], r["gateway"]) for r in links.routes(wanted.name)}
                    problems += [f"link {wanted.name} lacks route {r.dst} via {r.gateway}"
                                 for r in wanted.routes if (r.dst, r.gateway) not in routes]
        for key in spec.sysctls:
            value = sysctl.read(key.key)
            if value != key.value:
                problems.append(f"sysctl {key.key} is {value}, want {key.value}")
        for family, table, _ in _rulesets(spec):
            if not nft.table_exists(family, table):
                problems.append(f"nft table {family} {table} is missing")
    if spec.dhcp is not None and dhcp.running(files.conf, files.pid) is None:
        problems.append(f"DHCP service on {spec.dhcp.interface} is not running")
    return problems
