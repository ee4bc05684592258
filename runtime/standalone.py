"""Standalone mode: `netplug up`, `down`, `get`, `console` on one machine, no cluster.

`up` plays kubelet, the container runtime and Multus: it makes the pod sandbox netns, runs the
pod network's CNI chain (the reference bridge + host-local on the node bridge `netplug0`,
masquerading out of the machine's uplink, with netplug's binding chained), delegates each
Multus network from the given NADs (`pod<h>` interfaces), starts `netplug launch` in the
sandbox, and waits until the VM runs and its DHCP-served interfaces have leases. Everything
about a VM lives under `<state dir>/vms/<namespace>_<name>/` (both Kubernetes names, so the
directory is the VM's alone and inside the state dir), written before the first change,
so `get` and `down` work from any shell, after a killed `up`, and after a reboot of the tool.

May import: netplug, runtime.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import yaml

from netplug import naming
from netplug.admission import name_problem
from netplug.errors import InvalidConfig, InvalidField, NetplugError
from netplug.guest import pod_interface_of
from netplug.model.multus import NetworkAttachmentDefinition, render_network_status
from netplug.model.vm import VirtualMachineInstance, vmi_from_document
from netplug.ops import dhcp, link, netns, nft
from netplug.ops.files import replace_file
from netplug.ops.libvirt import qemu_pids
from netplug.ops.proc import live_argv
from netplug.pod import NodeNetwork, plan_pod
from runtime.agent.store import Store
from runtime.cnirt import Attachment, CNIRuntime
from runtime.install import install_shim
from runtime.multus import Delegate, Multus, PodSandbox
from runtime.seed import write_seed

REFERENCE_PLUGINS = "/usr/lib/cni"
GUEST_DIR = os.environ.get("NETPLUG_GUEST_DIR", "/var/cache/netplug/guest")
WAIT_SECONDS = 180
#: what the project's test guest (Debian cloud kernel + initramfs) needs to boot
TEST_GUEST_MIB = 128


def load_yaml_documents(path: str) -> list[dict]:
    """Every YAML document in a file, or in every *.yaml / *.yml / *.json file of a directory."""
    files = [path]
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith((".yaml", ".yml", ".json")))
    documents = []
    for name in files:
        try:
            with open(name) as f:
                documents += [d for d in yaml.safe_load_all(f) if d is not None]
        except OSError as exc:
            raise InvalidConfig(f"{name}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise InvalidConfig(f"{name}: not YAML ({str(exc).splitlines()[0]})") from None
    return documents


def load_vm(path: str) -> tuple[VirtualMachineInstance, dict]:
    documents = load_yaml_documents(path)
    if len(documents) != 1:
        raise InvalidConfig(f"{path}: want one VirtualMachine or VirtualMachineInstance, found {len(documents)} documents")
    return vmi_from_document(documents[0]), documents[0]


@dataclass
class VmPaths:
    root: str

    @property
    def record(self) -> str:
        return os.path.join(self.root, "record.json")

    @property
    def launcher(self) -> str:
        return os.path.join(self.root, "launcher")

    @property
    def status(self) -> str:
        return os.path.join(self.launcher, "status.json")

    @property
    def serial(self) -> str:
        return os.path.join(self.launcher, "serial.log")


class Standalone:
    def __init__(self, state_dir: str, out: Callable[[str], None] = print) -> None:
        self.state_dir = state_dir
        self.store = Store(state_dir)
        self.out = out
        self.bin_dir = os.path.join(state_dir, "bin")
        self.env = {"NETPLUG_STATE_DIR": state_dir,
                    "NETPLUG_AGENT_SOCKET": os.environ.get("NETPLUG_AGENT_SOCKET", naming.DEFAULT_SOCKET)}
        self.cni = CNIRuntime([self.bin_dir, REFERENCE_PLUGINS], os.path.join(state_dir, "cni-cache"), self.env)
        self.node = NodeNetwork(ipam_dir=os.path.join(state_dir, "ipam"))

    def paths(self, namespace: str, name: str) -> VmPaths:
        """The VM's directory, `vms/<namespace>_<name>`. Both are Kubernetes names (checked
        here too, not only by admission): neither holds "/" or "..", and a namespace (a DNS
        label) and a name (a DNS subdomain) hold no "_", so two VMs never share a directory
        and none lies outside `vms/`."""
        for key, value, label in (("metadata.namespace", namespace, True), ("metadata.name", name, False)):
            if (problem := name_problem(value, label=label)) is not None:
                raise InvalidField(key, value, problem)
        return VmPaths(os.path.join(self.state_dir, "vms", f"{namespace}_{name}"))

    def _claim(self, paths: VmPaths, record: dict) -> None:
        """Write the VM's first record, or fail if the VM already has one: the record is
        written whole under a name of this process's own, then hard-linked into place, which
        the kernel does only if no record.json exists (no check-then-write window)."""
        os.makedirs(paths.root, mode=0o700, exist_ok=True)
        # beside the VM directories, not in one: a loser writes nothing into the winner's
        mine = os.path.join(os.path.dirname(paths.root), f".claim.{os.getpid()}.{time.monotonic_ns()}.tmp")
        with open(mine, "x") as f:
            json.dump(record, f, indent=2)
        try:
            os.link(mine, paths.record)
        except FileExistsError:
            raise InvalidConfig(f'VM "{record["namespace"]}/{record["name"]}" is already up '
                                f'(netplug down {record["name"]} first)') from None
        finally:
            os.unlink(mine)

    def _record(self, paths: VmPaths, record: dict) -> None:
        os.makedirs(paths.root, mode=0o700, exist_ok=True)
        replace_file(paths.record, json.dumps(record, indent=2))

    def records(self) -> list[dict]:
        base = os.path.join(self.state_dir, "vms")
        found = []
        for entry in sorted(os.listdir(base)) if os.path.isdir(base) else []:
            try:
                with open(os.path.join(base, entry, "record.json")) as f:
                    found.append(json.load(f))
            except (OSError, ValueError):
                continue
        return found

    def find(self, name: str) -> dict:
        namespace, _, short = name.rpartition("/")
        matches = [r for r in self.records() if r["name"] == short and (not namespace or r["namespace"] == namespace)]
        if not matches:
            raise InvalidConfig(f'no VM "{name}" is up (netplug get vms lists them)')
        if len(matches) > 1:
            raise InvalidConfig(f'"{name}" names VMs in several namespaces: use NAMESPACE/NAME')
        return matches[0]

    # --- up ------------------------------------------------------------------------------

    def up(self, vm_file: str, nad_paths: list[str], disks: dict[str, str], image_dir: str | None = None) -> dict:
        """`disks`: volume -> image file (--disk, parsed); `image_dir`: where the other
        containerDisks' images are (see image_in_dir)."""
        vmi, document = load_vm(vm_file)
        nads = [NetworkAttachmentDefinition.from_document(d) for p in nad_paths for d in load_yaml_documents(p)]
        plan = plan_pod(vmi, nads, self.node)
        for attachment in plan.attachments:  # host-local state of standalone networks stays ours
            for plugin_conf in attachment.conflist["plugins"]:
                ipam = plugin_conf.get("ipam")
                if isinstance(ipam, dict) and ipam.get("type") == "host-local":
                    ipam.setdefault("dataDir", self.node.ipam_dir)
        boot = self._boot_source(vmi, disks, image_dir)
        paths = self.paths(vmi.metadata.namespace, vmi.metadata.name)
        tag = hashlib.sha256(f"{vmi.metadata.namespace}/{vmi.metadata.name}".encode()).hexdigest()[:10]
        record = {"name": vmi.metadata.name, "namespace": vmi.metadata.namespace, "created": time.time(),
                  "netns": f"np-{tag}", "containerID": f"netplug-{tag}", "launcherPid": None,
                  "attachments": [{"network": a.network, "ifname": a.ifname, "conflist": a.conflist["name"]}
                                  for a in plan.attachments], "boot": boot}
        # before the first change, so `down` can always clean up; atomic, so of two ups of the
        # same VM one wins and the other stops here, having touched nothing of the winner's
        self._claim(paths, record)
        if boot.get("testGuest") and vmi.memory_mib < TEST_GUEST_MIB:
            self.out(f"the test guest needs {TEST_GUEST_MIB}Mi; the VM asks for {vmi.memory_mib}Mi: giving it {TEST_GUEST_MIB}Mi")
            spec = document["spec"]["template"]["spec"] if document.get("kind") == "VirtualMachine" else document["spec"]
            spec.setdefault("domain", {}).setdefault("resources", {}).setdefault("requests", {})["memory"] = f"{TEST_GUEST_MIB}Mi"
            spec["domain"].pop("memory", None)
        with open(os.path.join(paths.root, "vm.yaml"), "w") as f:
            yaml.safe_dump(document, f)
        try:
            return self._bring_up(vmi, plan, record, paths)
        except BaseException:
            self.out("up failed: undoing what was done")
            self.down(vmi.metadata.name if vmi.metadata.namespace == "default"
                      else f"{vmi.metadata.namespace}/{vmi.metadata.name}", quiet=True)
            raise

    def _boot_source(self, vmi: VirtualMachineInstance, disks: dict[str, str], image_dir: str | None) -> dict:
        """What the guest boots: an image for every containerDisk (from --disk, else from the
        image dir), or, with no image given at all, the project's test guest. Some of the
        containerDisks with an image and some without is refused: booting the test guest
        would silently drop the images given."""
        volumes = {v.get("name"): v for v in vmi.spec.volumes}
        for name in disks:
            if name not in volumes:
                raise InvalidConfig(f'--disk {name}=...: the VM has no volume "{name}"')
        if image_dir is not None and not os.path.isdir(image_dir):
            raise InvalidConfig(f"--image-dir {image_dir}: not a directory")
        seeds = {n: v for n, v in volumes.items() if "cloudInitNoCloud" in v}
        references = {n: str((v["containerDisk"] or {}).get("image", "")) for n, v in volumes.items()
                      if "containerDisk" in v}
        images = dict(disks)
        for name, reference in references.items():
            found = image_in_dir(image_dir, reference) if image_dir and name not in images else None
            if found:
                images[name] = found
        missing = [n for n in references if n not in images]
        if missing and (images or image_dir):
            looked = (f" (none of {', '.join(image_dir + '/' + image_name(references[n]) + '{' + ','.join(IMAGE_SUFFIXES) + '}' for n in missing)})"
                      if image_dir else "")
            raise InvalidConfig(f"containerDisk {', '.join(missing)}: no image{looked}; give --disk NAME=PATH "
                                "or --image-dir DIR for every containerDisk, or none for the test guest")
        if images:
            return {"disks": images, "seeds": sorted(seeds)}
        kernel, initrd = os.path.join(GUEST_DIR, "vmlinuz"), os.path.join(GUEST_DIR, "initramfs.cpio.gz")
        if not (os.path.isfile(kernel) and os.path.isfile(initrd)):
            raise InvalidConfig(f"containerDisk {sorted(references)} cannot be pulled here: give --disk NAME=PATH "
                                f"or --image-dir DIR, or build the test guest (scripts/build-guest) into {GUEST_DIR}")
        return {"kernel": kernel, "initrd": initrd, "testGuest": True, "seeds": sorted(seeds)}

    def _bring_up(self, vmi: VirtualMachineInstance, plan, record: dict, paths: VmPaths) -> dict:
        started = time.monotonic()

        events = open(os.path.join(paths.root, "events.log"), "a")

        def step(text: str) -> None:
            self.out(f"[{time.monotonic() - started:7.3f}s] {text}")
            events.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {text}\n")
            events.flush()

        install_shim(self.bin_dir, sys.executable)
        netns_path = netns.create(record["netns"])
        step(f"pod sandbox: netns {record['netns']}")
        sandbox = PodSandbox(namespace=vmi.metadata.namespace, name=f"virt-launcher-{vmi.metadata.name}",
                             container_id=record["containerID"], netns=netns_path)
        multus = Multus(self.cni, [])
        delegates = [Delegate(network=a.network, conflist=a.conflist, default=a.default,
                              attachment=Attachment(sandbox.container_id, netns_path, a.ifname, sandbox.args(),
                                                    capability_args={"mac": a.selection.mac}
                                                    if a.selection and a.selection.mac else {}))
                     for a in plan.attachments]
        statuses = multus.attach(delegates)
        for status in statuses:
            step(f"CNI ADD {status.name} as {status.interface}: {', '.join(status.ips) or 'no address (L2)'}")
        status_file = os.path.join(paths.root, "network-status.json")
        with open(status_file, "w") as f:
            f.write(render_network_status(statuses))

        if record["boot"].get("testGuest"):
            step("containerDisk images cannot be pulled here: booting the project's test guest instead "
                 f"({GUEST_DIR})")
        argv = [sys.executable, "-m", "runtime.cli", "launch", os.path.join(paths.root, "vm.yaml"),
                "--netns", netns_path, "--state-dir", paths.launcher, "--network-status", status_file]
        boot = record["boot"]
        if boot.get("kernel"):
            # the test guest: DHCP on every NIC, ping the pod network's gateway, serve TCP 8080
            gateway = next(ipaddress.ip_network(self.node.subnet).hosts())
            extra = os.environ.get("NETPLUG_TEST_GUEST_ARGS", f"e2e.ping={gateway}")  # the demo pings further
            argv += ["--kernel", boot["kernel"], "--initrd", boot["initrd"], "--cmdline",
                     f"console=ttyS0 panic=-1 quiet {extra} e2e.serve=8080 e2e.hold=forever"]
        for volume, path in (boot.get("disks") or {}).items():
            argv += ["--disk", f"{volume}={path}"]
        for volume in boot.get("seeds", []):  # cloudInitNoCloud: a NoCloud seed disk
            seed = write_seed(vmi, volume, paths.root)
            argv += ["--disk", f"{volume}={seed}"]
            step(f"cloud-init NoCloud seed for volume {volume}: {seed}")
        os.makedirs(paths.launcher, mode=0o700, exist_ok=True)
        log = open(os.path.join(paths.root, "launcher.log"), "a")
        launcher = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
                                    cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        record["launcherPid"] = launcher.pid
        self._record(paths, record)
        step(f"launcher started (pid {launcher.pid})")

        deadline = time.monotonic() + WAIT_SECONDS
        phase = None
        while time.monotonic() < deadline:
            status = self._status(paths)
            if status.get("phase") != phase:
                phase = status.get("phase")
                step(f"VM phase {phase}")
            if phase in ("Failed", "Succeeded") or launcher.poll() is not None:
                reason = status.get("reason") or _last_line(os.path.join(paths.root, "launcher.log"))
                raise NetplugError(f"the VM stopped: {reason}")
            if phase == "Running":
                break
            time.sleep(0.2)
        waiting = {a.ifname: self.store.service_files(record["containerID"], a.ifname).leases
                   for a in plan.attachments if a.conflist["plugins"][-1].get("type") == "netplug"}
        waiting = {k: v for k, v in waiting.items() if os.path.exists(v.replace(".leases", ".conf"))}
        while waiting and time.monotonic() < deadline:
            for ifname, lease_file in list(waiting.items()):
                leases = dhcp.leases(lease_file)
                if leases:
                    step(f"guest lease on {ifname}: {leases[0].address}")
                    del waiting[ifname]
            time.sleep(0.2)
        if waiting:
            raise NetplugError(f"no DHCP lease for {sorted(waiting)} within {WAIT_SECONDS} s (see netplug console)")
        step(f"VM {vmi.metadata.namespace}/{vmi.metadata.name} is Running")
        return record

    # --- down ----------------------------------------------------------------------------

    def down(self, name: str, quiet: bool = False) -> bool:
        """Stop the VM, DEL every attachment in reverse, remove the sandbox and the state."""
        try:
            record = self.find(name)
        except InvalidConfig:
            if not quiet:
                self.out(f"{name}: nothing to take down")
            return False
        paths = self.paths(record["namespace"], record["name"])
        pid = record.get("launcherPid")
        if pid and _is_launcher(pid, paths):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while _is_launcher(pid, paths) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _is_launcher(pid, paths):
                os.kill(pid, signal.SIGKILL)
        netns_path = f"/run/netns/{record['netns']}"
        for qemu in vm_qemus(record):
            os.kill(qemu, signal.SIGKILL)  # a launcher killed by force leaves its QEMU behind
        for attachment in reversed(record["attachments"]):
            self.cni.delete(None, Attachment(record["containerID"], netns_path, attachment["ifname"]),
                            network=attachment["conflist"])
        netns.remove(record["netns"])
        shutil.rmtree(paths.root, ignore_errors=True)
        if not quiet:
            self.out(f"{record['namespace']}/{record['name']}: down")
        return True

    # --- get -----------------------------------------------------------------------------

    def _status(self, paths: VmPaths) -> dict:
        try:
            with open(paths.status) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def describe_state(self, record: dict) -> dict:
        paths = self.paths(record["namespace"], record["name"])
        status = self._status(paths)
        alive = bool(record.get("launcherPid")) and _is_launcher(record["launcherPid"], paths)
        phase = status.get("phase", "Scheduled" if alive else "Failed")
        if phase == "Running" and not alive:
            phase = "Failed"
        printable = {"Scheduled": "Starting", "Running": "Running", "Succeeded": "Stopped", "Failed": "Failed"}[phase]
        return {"record": record, "status": status, "phase": phase, "printableStatus": printable,
                "ready": phase == "Running"}

    def describe(self, name: str) -> str:
        """What `netplug describe vm` prints: the VM, each interface's path, leases, NAT, events."""
        record = self.find(name)
        state = self.describe_state(record)
        paths = self.paths(record["namespace"], record["name"])
        netns_path = f"/run/netns/{record['netns']}"
        lines = [f"Name:        {record['name']}", f"Namespace:   {record['namespace']}",
                 f"Status:      {state['printableStatus']} (phase {state['phase']})",
                 f"Pod netns:   {netns_path}", f"Launcher:    pid {record.get('launcherPid')}, {paths.launcher}",
                 f"Domain:      {record['namespace']}_{record['name']}", "Interfaces:"]
        macs = {i["name"]: i for i in state["status"].get("interfaces", [])}
        with open(os.path.join(paths.root, "vm.yaml")) as f:
            vmi = vmi_from_document(yaml.safe_load(f))
        names = {i.name: naming.interface_links(pod_interface_of(vmi.network(i.name)))
                 for i in vmi.spec.domain.devices.interfaces}
        links, tables = {}, []
        if os.path.exists(netns_path):
            with netns.entered(netns_path), link.session() as session:
                for name_ in {n for of_iface in names.values() for n in of_iface.from_the_guest()}:
                    found = session.get(name_)
                    if found is not None:
                        links[name_] = found
                tables = [(family, t, nft.list_table(family, t)) for t in sorted({of.nft_table for of in names.values()})
                          for family in ("ip", "ip6")]  # NAT and NAT66
        for iface in vmi.spec.domain.devices.interfaces:
            pod_iface = names[iface.name].pod
            status = macs.get(iface.name, {})
            lines.append(f"  {iface.name}: binding {iface.binding}, network {vmi.network(iface.name).name}, "
                         f"pod interface {pod_iface}")
            lines.append(f"    guest MAC {status.get('mac', '?')}, VMI IPs {', '.join(status.get('ipAddresses', [])) or '-'}")
            for name_ in names[iface.name].from_the_guest():
                if name_ in links:
                    lk = links[name_]
                    lines.append(f"    {name_:16} {lk.kind or 'veth':7} mtu {lk.mtu:<5} {'up' if lk.up else 'DOWN':4} "
                                 f"{('master ' + lk.master) if lk.master else ''} {' '.join(lk.addresses)}".rstrip())
            for lease in dhcp.leases(self.store.service_files(record["containerID"], pod_iface).leases):
                lines.append(f"    DHCP lease: {lease.address} to {lease.mac or lease.duid}")
        for family, table, objects in tables:
            if objects is None:
                continue
            lines.append(f"NAT (nftables table {family} {table}):")
            for obj in objects:
                rule = obj.get("rule")
                if rule:
                    lines.append(f"  {rule['chain']:12} {_rule_text(rule['expr'])}")
        events = os.path.join(paths.root, "events.log")
        if os.path.exists(events):
            lines.append("Events:")
            lines += ["  " + e.rstrip() for e in open(events).readlines()[-12:]]
        return "\n".join(lines) + "\n"

    def doctor(self, name: str) -> dict:
        """Each tap-bound interface's path, hop by hop (runtime.doctor)."""
        from runtime import doctor

        record = self.find(name)
        state = self.describe_state(record)
        paths = self.paths(record["namespace"], record["name"])
        with open(os.path.join(paths.root, "vm.yaml")) as f:
            vmi = vmi_from_document(yaml.safe_load(f))
        macs = {i["name"]: i.get("mac") for i in state["status"].get("interfaces", [])}
        running = state["phase"] == "Running"
        found = {}
        for iface in vmi.spec.domain.devices.interfaces:
            if iface.binding in ("masquerade", "bridge"):
                pod_iface = pod_interface_of(vmi.network(iface.name))
                files = self.store.service_files(record["containerID"], pod_iface)
                attachment = self.store.load(record["containerID"], pod_iface)
                found[iface.name] = doctor.check_interface(vmi, iface.name, f"/run/netns/{record['netns']}", files,
                                                           macs.get(iface.name), running,
                                                           attachment.netspec if attachment else None)
        return found

    def console(self, name: str) -> str:
        record = self.find(name)
        path = self.paths(record["namespace"], record["name"]).serial
        return open(path, errors="replace").read() if os.path.exists(path) else ""


#: the files a containerDisk image NAME may be in an --image-dir, in this order
IMAGE_SUFFIXES = (".qcow2", ".raw", ".img")


def image_name(reference: str) -> str:
    """The NAME of an image reference REGISTRY/PATH/NAME[:TAG][@DIGEST]."""
    return reference.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]


def image_in_dir(image_dir: str, reference: str) -> str | None:
    """A containerDisk's local image: DIR/NAME.qcow2, DIR/NAME.raw or DIR/NAME.img, the first
    that is a file (NAME: the reference's last path component, without tag or digest)."""
    name = image_name(reference)
    if not name or name.startswith("."):
        return None
    for suffix in IMAGE_SUFFIXES:
        path = os.path.join(os.path.abspath(image_dir), name + suffix)
        if os.path.isfile(path):
            return path
    return None


def _rule_text(expr: list[dict]) -> str:
    """A compact reading of an nft JSON rule, e.g. "iifname eth0 tcp dport 8080 dnat to 10.0.2.2"."""
    words = []
    for e in expr:
        if "match" in e:
            left, right = e["match"]["left"], e["match"]["right"]
            key = left.get("meta", {}).get("key") or " ".join(str(v) for v in left.get("payload", {}).values())
            value = right if not isinstance(right, dict) else ",".join(str(x) for x in right.get("set", []))
            words.append(f"{key} {'!= ' if e['match']['op'] == '!=' else ''}{value}")
        elif "jump" in e:
            words.append(f"jump {e['jump']['target']}")
        elif "dnat" in e or "snat" in e:
            kind = "dnat" if "dnat" in e else "snat"
            words.append(f"{kind} to {e[kind]['addr']}")
        elif "masquerade" in e:
            words.append("masquerade")
    return " ".join(words)


def _last_line(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
        return lines[-1][-300:] if lines else "no output"
    except OSError:
        return "no launcher log"


def vm_qemus(record: dict) -> list[int]:
    """The live QEMU of this VM: named after its domain *and* in its pod's netns (another
    state dir, another helper's test, may run a VM of the same name on this machine)."""
    pod = netns.identity(f"/run/netns/{record['netns']}")
    if pod is None:
        return []
    return [pid for pid in qemu_pids(f"{record['namespace']}_{record['name']}")
            if netns.identity(f"/proc/{pid}/ns/net") == pod]


def _is_launcher(pid: int, paths: VmPaths) -> bool:
    """Whether `pid` is a live `netplug launch` of this VM's state dir (a recorded pid may be
    another process's by now, another state dir's launcher among them)."""
    argv = live_argv(pid) or []
    return b"launch" in argv and b"runtime.cli" in argv and paths.launcher.encode() in argv


def age(created: float) -> str:
    seconds = int(time.time() - created)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"

