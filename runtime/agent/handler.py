"""The CNI handler: one request (environment + stdin) in, (exit code, stdout) out.

The same code serves the agent's socket and the shim's in-process fallback. It reads like a
reference CNI plugin: `parse_request` (the skel's checks) → `cmd_add` / `cmd_del` /
`cmd_check` / `cmd_status` / `cmd_gc`. ADD is compose → log → apply: observe the pod,
let the binding plan a NetSpec, log it, persist it, apply it with an undo journal. Every
failure becomes the CNI error object on stdout; tracebacks only ever reach the log.

Test hook: when the process has NETPLUG_TEST_HOOKS=1, every step boundary of ADD and DEL is
logged ("test hook: step <name>"), and a request whose environment names a step in
NETPLUG_TEST_CRASH_AT makes the process SIGKILL itself there.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable

from netplug import bindings, naming
from netplug.apply import Journal, apply, check, no_checkpoint, remove
from netplug.bindings.base import BindingContext
from netplug.cni import skel
from netplug.errors import (
    CheckFailed,
    InvalidConfig,
    LinkConflict,
    NetplugError,
    PluginNotAvailable,
)
from netplug.model.cni import LATEST, SUPPORTED_VERSIONS, at_least, parse_result, result_to_wire
from netplug.model.netspec import PodInterface, RouteSpec, VfConfig, VfFacts
from netplug.model.record import AttachmentRecord, IpamDelegate
from netplug.ops import dhcp, files, link, netns, nft, plugin, sriov, sysctl
from runtime import logs
from runtime.agent.store import Store

log = logging.getLogger("netplug.handler")

#: sysctls a binding may change, read before planning so DEL can restore them
OBSERVED_SYSCTLS = ("net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding", "net/ipv4/conf/all/arp_ignore")


class Handler:
    def __init__(self, store: Store, *, test_hooks: bool = False) -> None:
        self.store = store
        self.test_hooks = test_hooks

    # --- entry ---------------------------------------------------------------------------

    def handle(self, env: dict[str, str], stdin: bytes) -> tuple[int, str]:
        if threading.current_thread() is threading.main_thread():
            # Work enters pod namespaces thread by thread; the main thread stays in the node's
            # netns, which is how the node is found again (netplug.ops.netns.NODE).
            answer: list[tuple[int, str]] = []
            worker = threading.Thread(target=lambda: answer.append(self._handle(env, stdin)), name="cni")
            worker.start()
            worker.join()
            return answer[0]
        return self._handle(env, stdin)

    def _handle(self, env: dict[str, str], stdin: bytes) -> tuple[int, str]:
        version = None  # the request's, once parsed; on an earlier error, what stdin names
        started = time.monotonic()
        command = env.get("CNI_COMMAND", "")
        with logs.context(command=command, containerID=env.get("CNI_CONTAINERID", ""),
                          ifname=env.get("CNI_IFNAME", "")):
            try:
                request = skel.parse_request(env, stdin)
                if request.command == "VERSION":
                    return 0, json.dumps(skel.version_reply(stdin)) + "\n"
                version = request.version
                out = self._dispatch(request, env)
                log.info("%s done in %.1f ms", command, (time.monotonic() - started) * 1000)
                return 0, (json.dumps(out) + "\n") if out is not None else ""
            except NetplugError as exc:
                log.warning("%s failed: %s%s", command, exc.msg, f" ({exc.details})" if exc.details else "")
                return 1, json.dumps(exc.to_cni(version or skel.asked_version(stdin) or LATEST)) + "\n"
            except Exception as exc:
                log.exception("%s failed unexpectedly", command)
                error = {"cniVersion": version or skel.asked_version(stdin) or LATEST, "code": 999,
                         "msg": f"netplug internal error: {type(exc).__name__}: {exc}"[:500]}
                return 1, json.dumps(error) + "\n"

    def _dispatch(self, request: skel.Request, env: dict[str, str]) -> dict | None:
        checkpoint = self._checkpoint(env)
        return {
            "ADD": lambda: self.cmd_add(request, checkpoint),
            "DEL": lambda: self.cmd_del(request, checkpoint),
            "CHECK": lambda: self.cmd_check(request),
            "STATUS": lambda: self.cmd_status(request),
            "GC": lambda: self.cmd_gc(request),
        }[request.command]()

    def _checkpoint(self, env: dict[str, str]) -> Callable[[str], None]:
        if not self.test_hooks:
            return no_checkpoint  # a request without hooks pays one empty call per step
        crash_at = env.get("NETPLUG_TEST_CRASH_AT", "")

        def checkpoint(step: str) -> None:
            log.info("test hook: step %s", step)  # how a test finds every step boundary
            if crash_at and step == crash_at:
                log.warning("test hook: SIGKILL at step %s", step)
                os.kill(os.getpid(), signal.SIGKILL)
        return checkpoint

    # --- ADD -----------------------------------------------------------------------------

    def cmd_add(self, request: skel.Request, checkpoint: Callable[[str], None]) -> dict:
        conf = skel.load_binding(request)
        pod_ifname = conf.podInterface or request.ifname
        prev = None
        if request.config.get("prevResult") is not None:
            prev = parse_result(request.config["prevResult"], request.version)
        elif conf.CHAINED and pod_ifname == request.ifname:
            raise InvalidConfig(
                f"prevResult is required: the {conf.binding} binding is chained after the plugin "
                f"that creates {request.ifname} (or set podInterface to use it as its own delegate)"
            )
        netns.check(request.netns)

        with self.store.lock(request.container_id, request.ifname):
            existing = self.store.load(request.container_id, request.ifname)
            if existing is not None and existing.status == "added":
                raise LinkConflict(
                    f"container {request.container_id} interface {request.ifname} is already attached "
                    f"({existing.binding}); DEL it before adding it again"
                )
            if existing is not None:
                log.info("cleaning up an ADD that did not finish")
                self._teardown(existing)

            pod_interface, sysctls, vf = None, {}, None
            if conf.CHAINED:
                logical = skel.logic_network_name(request.config)
                derived = logical is not None and pod_ifname == naming.pod_interface_for_network(logical)
                pod_interface, sysctls = _observe(request.netns, pod_ifname, logical if derived else None)
                sysctls = self._sysctls_before_the_pod(request, sysctls)
            else:
                vf = self._observe_vf(conf.deviceID, request)
            record = AttachmentRecord(
                container_id=request.container_id, ifname=request.ifname,
                network=str(request.config.get("name", "")), netns=request.netns,
                binding=conf.binding, cni_version=request.version, created=time.time(),
                ipam=_ipam_delegate(request, conf.ipam),
            )
            journal = Journal()
            journal.push("state record", lambda: self.store.delete(request.container_id, request.ifname))
            try:
                if record.ipam is not None:
                    # the allocation is the first change: the record names the delegate before it
                    self.store.save(record)
                checkpoint("state")
                ipam_result = None
                if record.ipam is not None:
                    journal.push("IPAM allocation", lambda: _ipam_call(record, "DEL"))
                    raw = _ipam_call(record, "ADD")
                    ipam_result = parse_result(raw, request.version, field="ipam result")
                    checkpoint("ipam")

                ctx = BindingContext(
                    container_id=request.container_id, ifname=request.ifname, netns=request.netns,
                    pod_interface=pod_interface, prev_result=prev, ipam_result=ipam_result,
                    # given `dns` (the controller's, from the pod's DNS policy), the file is not read
                    resolv_conf=_read_resolv_conf(None if conf.dns else getattr(conf, "resolvConf", None)),
                    args=request.args, sysctls=sysctls, vf=vf,
                )
                plan = bindings.plan(conf, ctx)
                plan.netspec.netns_id = netns.identity(request.netns)
                plan.netspec.link_group = naming.link_group(request.container_id, request.ifname)
                log.info("desired pod network", extra={"data": plan.netspec.model_dump(mode="json")})
                record.netspec = plan.netspec
                self.store.save(record)  # before the first change to the pod
                checkpoint("plan")

                apply(plan.netspec, self.store.service_files(request.container_id, request.ifname),
                      journal, checkpoint)

                record.status = "added"
                record.result = plan.result.model_dump(mode="json", exclude_none=True)
                self.store.save(record)
                checkpoint("done")
            except BaseException:
                journal.rollback()
                raise
        return result_to_wire(plan.result, request.version)

    # --- DEL -----------------------------------------------------------------------------

    def cmd_del(self, request: skel.Request, checkpoint: Callable[[str], None]) -> None:
        with self.store.lock(request.container_id, request.ifname):
            record = self.store.load(request.container_id, request.ifname)
            if record is None:
                # Nothing of ours is recorded; the spec still wants the IPAM allocation released.
                ipam = request.config.get("ipam")
                if isinstance(ipam, dict) and ipam.get("type"):
                    _ipam_call(_ipam_delegate(request, ipam), "DEL", request.container_id,
                               request.ifname, request.netns)
                log.info("no attachment recorded; nothing to remove")
                return None
            self._teardown(record, checkpoint)
        return None

    def _sysctls_before_the_pod(self, request: skel.Request, observed: dict[str, str]) -> dict[str, str]:
        """The observed pod-wide sysctls, with the value from before the pod's first binding
        where another attachment of the pod changed it already: whichever attachment is
        deleted last restores that value, not the one its predecessor set."""
        here = netns.identity(request.netns)
        found = dict(observed)
        for record in self.store.records(request.container_id):
            if record.ifname == request.ifname or record.netspec is None or record.netspec.netns_id != here:
                continue
            for spec in record.netspec.sysctls:
                if spec.key in found and spec.restore is not None:
                    found[spec.key] = spec.restore
        return found

    def _sysctls_still_needed(self, leaving: AttachmentRecord) -> frozenset[str]:
        """Pod-wide sysctls another attachment in the same pod netns still relies on. A pod's
        attachments share its container ID: only its records are read, so DEL does not scan
        the whole node (at 200 live attachments that scan cost ~10 ms; bench/scale.py)."""
        assert leaving.netspec is not None
        keys: set[str] = set()
        for record in self.store.records(leaving.container_id):
            if (record.container_id, record.ifname) == (leaving.container_id, leaving.ifname):
                continue
            if record.netspec is not None and record.netspec.netns_id == leaving.netspec.netns_id:
                keys |= {s.key for s in record.netspec.sysctls}
        return frozenset(keys)

    def _observe_vf(self, pci: str, request: skel.Request) -> VfFacts:
        """The VF as sysfs and its PF show it; refused if another attachment holds it."""
        for record in self.store.records():
            if record.netspec is not None and record.netspec.vf is not None and record.netspec.vf.pci == pci \
                    and (record.container_id, record.ifname) != (request.container_id, request.ifname):
                raise LinkConflict(f'deviceID: VF {pci} is in use by container {record.container_id} '
                                   f'interface {record.ifname}')
        found = sriov.find_vf(pci)
        current = VfConfig(**{k: v for k, v in sriov.get_vf_config(found.pf, found.index).items()
                              if k in VfConfig.model_fields})
        return VfFacts(pci=found.pci, pf_pci=found.pf_pci, pf=found.pf, index=found.index, driver=found.driver,
                       userspace=found.userspace, netdev=found.netdev, current=current)

    def _teardown(self, record: AttachmentRecord, checkpoint: Callable[[str], None] = no_checkpoint) -> None:
        """Remove everything the record names, then forget it. Tolerant of what is gone."""
        files = self.store.service_files(record.container_id, record.ifname)
        if record.netspec is not None:
            removed = remove(record.netspec, files, self._sysctls_still_needed(record), checkpoint)
            log.info("removed %s", ", ".join(removed) or "nothing (already gone)")
            checkpoint("del:removed")
        if record.ipam is not None:
            _ipam_call(record, "DEL")
            checkpoint("del:ipam")
        self.store.delete(record.container_id, record.ifname)

    # --- CHECK ---------------------------------------------------------------------------

    def cmd_check(self, request: skel.Request) -> None:
        skel.load_binding(request)
        if request.config.get("prevResult") is None:
            raise InvalidConfig("prevResult is required for CHECK")
        prev = parse_result(request.config["prevResult"], request.version)
        record = self.store.load(request.container_id, request.ifname)
        if record is None or record.status != "added" or record.netspec is None:
            raise CheckFailed(f"no attachment recorded for container {request.container_id} "
                              f"interface {request.ifname}")
        netns.check(request.netns)
        problems = check(record.netspec, self.store.service_files(request.container_id, request.ifname))
        listed = {iface.name for iface in prev.interfaces if iface.sandbox}
        problems += [f"prevResult does not list interface {link_spec.name}"
                     for link_spec in record.netspec.links if link_spec.name not in listed]
        if record.ipam is not None and at_least(request.version, "0.4.0"):
            # in the delegate's own version, which may be older than the request's
            _ipam_call(record, "CHECK", prev_result=result_to_wire(prev, record.ipam.config["cniVersion"]))
        if problems:
            raise CheckFailed(f"container {request.container_id} interface {request.ifname}: "
                              + "; ".join(problems))
        return None

    # --- STATUS and GC (spec 1.1.0) ------------------------------------------------------

    def cmd_status(self, request: skel.Request) -> None:
        # what ADD would need: libnftables (loaded in-process) and dnsmasq
        for problem in (nft.unavailable(), dhcp.unavailable()):
            if problem is not None:
                raise PluginNotAvailable(problem)
        if not os.access(self.store.root, os.W_OK):
            raise PluginNotAvailable(f"the state dir {self.store.root} is not writable")
        ipam = request.config.get("ipam")
        if isinstance(ipam, dict) and ipam.get("type"):
            delegate = _ipam_delegate(request, ipam)
            if _supports(delegate, "1.1.0"):
                _ipam_call(delegate, "STATUS")
        return None

    def cmd_gc(self, request: skel.Request) -> None:
        valid = request.config.get("cni.dev/valid-attachments", request.config.get("cni.dev/attachments"))
        if not isinstance(valid, list):
            raise InvalidConfig("cni.dev/valid-attachments must be a list of {containerID, ifname}")
        for entry in valid:
            if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("containerID", "ifname")):
                raise InvalidConfig("cni.dev/valid-attachments: every entry must be {containerID, ifname} strings, "
                                    f"got {json.dumps(entry)[:100]}")
        keep = {(a.get("containerID"), a.get("ifname")) for a in valid}
        network = str(request.config.get("name", ""))
        errors = []
        for record in list(self.store.records()):
            if record.network != network or (record.container_id, record.ifname) in keep:
                continue
            with self.store.lock(record.container_id, record.ifname), \
                    logs.context(containerID=record.container_id, ifname=record.ifname):
                log.info("GC: removing a stale attachment")
                try:
                    self._teardown(record)
                except NetplugError as exc:
                    errors.append(f"{record.container_id}/{record.ifname}: {exc.msg}")
        ipam = request.config.get("ipam")
        if isinstance(ipam, dict) and ipam.get("type"):
            delegate = _ipam_delegate(request, ipam)
            if _supports(delegate, "1.1.0"):
                _ipam_call(delegate, "GC", extra={
                    "cni.dev/valid-attachments": valid, "cni.dev/attachments": valid})
        if errors:
            raise CheckFailed("GC could not remove every stale attachment: " + "; ".join(errors))
        return None


# --- helpers --------------------------------------------------------------------------------


def _observe(netns_path: str, pod_ifname: str, logical_network: str | None = None) -> tuple[PodInterface, dict[str, str]]:
    """The pod interface as the primary CNI left it, and the sysctls a binding may change.
    `logical_network`: the interface is that KubeVirt network's pod<h>, or eth0 when there is
    none — KubeVirt names a Multus network's interface pod<h> and the pod network's eth0, and
    Multus runs a network's own delegate before its binding plugin's, so a logical network
    without pod<h> is the pod network."""
    with netns.entered(netns_path):
        with link.session() as links:
            found = links.get(pod_ifname)
            if found is None and logical_network is not None:
                found = links.get(naming.POD_NETWORK_INTERFACE)
                if found is None:
                    raise InvalidConfig(
                        f'args.cni.logicNetworkName "{logical_network}": neither {pod_ifname} (that Multus network\'s '
                        f"pod interface) nor {naming.POD_NETWORK_INTERFACE} (the pod network's) exists in {netns_path}")
            if found is None:
                raise InvalidConfig(f'podInterface: pod interface "{pod_ifname}" does not exist in {netns_path}')
            routes = [RouteSpec(dst=r["dst"], gateway=r["gateway"], metric=r["metric"]) for r in links.routes(found.name)]
        values = {key: value for key in OBSERVED_SYSCTLS if (value := sysctl.read(key)) is not None}
    pod = PodInterface(name=found.name, mac=found.mac or "", mtu=found.mtu, routes=routes,
                       addresses=[a for a in found.addresses if not a.startswith("fe80:")])
    return pod, values


def _read_resolv_conf(path: str | None) -> str:
    if not path:
        return ""
    try:  # a path from a NAD, read as root: only a small regular file, never blocking (audit S2-5)
        return files.read_regular_file(path, 64 * 1024)
    except OSError as exc:
        log.warning("cannot read resolv.conf %s (%s); the guest gets no DNS servers", path, exc.strerror)
        return ""


def _ipam_delegate(request: skel.Request, ipam: dict | None) -> IpamDelegate | None:
    if ipam is None:
        return None
    if not isinstance(ipam, dict) or not isinstance(ipam.get("type"), str):
        raise InvalidConfig("ipam: must be an object with a type")
    plugin.find(ipam["type"], request.path)  # fail before anything is changed
    config = {"cniVersion": _ipam_version(ipam["type"], request), "name": request.config.get("name", ""),
              "ipam": ipam}
    for key in ("runtimeConfig", "args"):
        if key in request.config:
            config[key] = request.config[key]
    return IpamDelegate(type=ipam["type"], config=config, cni_path=request.path,
                        cni_args=";".join(f"{k}={v}" for k, v in request.args.items()))


def _ipam_version(plugin_type: str, request: skel.Request) -> str:
    """The request's version, or the newest the IPAM plugin speaks when it lacks that one
    (Debian's reference plugins stop at 1.0.0): results are converted back anyway."""
    if request.version != LATEST:
        return request.version
    try:
        reply = plugin.invoke(plugin_type, "VERSION", {"cniVersion": LATEST}, {}, request.path)
    except NetplugError:
        return request.version
    spoken = set((reply or {}).get("supportedVersions", []))
    usable = [v for v in SUPPORTED_VERSIONS if v in spoken]
    return usable[-1] if usable else request.version


def _ipam_call(target: AttachmentRecord | IpamDelegate, command: str, container_id: str = "",
               ifname: str = "", netns_path: str = "", *, prev_result: dict | None = None,
               extra: dict | None = None) -> dict | None:
    """Call the IPAM delegate, for a record's attachment or with the given identity."""
    if isinstance(target, AttachmentRecord):
        assert target.ipam is not None
        delegate, container_id, ifname, netns_path = target.ipam, target.container_id, target.ifname, target.netns
    else:
        delegate = target
    config = {**delegate.config, **(extra or {})}
    if prev_result is not None:
        config["prevResult"] = prev_result
    env = {"CNI_CONTAINERID": container_id, "CNI_IFNAME": ifname, "CNI_NETNS": netns_path,
           "CNI_ARGS": delegate.cni_args, "CNI_PATH": ":".join(delegate.cni_path)}
    return plugin.invoke(delegate.type, command, config, env, delegate.cni_path)


def _supports(delegate: IpamDelegate, version: str) -> bool:
    try:
        reply = plugin.invoke(delegate.type, "VERSION", {"cniVersion": version}, {}, delegate.cni_path)
    except NetplugError:
        return False
    return isinstance(reply, dict) and version in reply.get("supportedVersions", [])


