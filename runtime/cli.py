"""The `netplug` command. Each subcommand is a few lines that call into the runtime.

    netplug agent         run the node agent (CNI requests on a unix socket)
    netplug install-cni   install the CNI shim into a CNI bin dir
    netplug launch        run a VM inside its (already wired) pod netns
    netplug up FILE       network and boot a VM on this machine (standalone mode)
    netplug down NAME     stop it and remove everything up made
    netplug get vms|vmis  list standalone VMs as kubectl lists KubeVirt's
    netplug console NAME  the VM's serial console log
    netplug describe vm NAME   interfaces, links, leases, NAT, events
    netplug doctor NAME   check the VM's network path hop by hop
    netplug webhook       the validating admission webhook (AdmissionReview over HTTPS)
    netplug controller    VMs to VMIs to launcher pods on a cluster (leader-elected)
    netplug render cni|domain|pod FILE   what a VM would get, offline
"""

from __future__ import annotations

import argparse
import os
import sys

from pydantic import ValidationError

from netplug.errors import InvalidConfig, NetplugError
from netplug.model import one_line
from netplug.naming import DEFAULT_SOCKET, DEFAULT_STATE_DIR
from runtime.install import install_shim


def cmd_agent(args: argparse.Namespace) -> int:
    from runtime import logs
    from runtime.agent.server import serve
    from runtime.agent.store import Store

    logs.setup(args.log_level)
    serve(args.socket, Store(args.state_dir), test_hooks=os.environ.get("NETPLUG_TEST_HOOKS") == "1")
    return 0


def cmd_install_cni(args: argparse.Namespace) -> int:
    print(install_shim(args.bin_dir, args.python, args.socket, args.state_dir, fallback=args.fallback_python,
                       node_root=args.node_root))
    return 0


def cmd_launch(args: argparse.Namespace) -> int:
    from runtime.launcher import run

    return run(args)


def _standalone(args: argparse.Namespace):
    from runtime.standalone import Standalone

    return Standalone(args.state_dir)


def cmd_up(args: argparse.Namespace) -> int:
    from runtime.launcher import parse_disks

    _standalone(args).up(args.file, args.nad or [], parse_disks(args.disk or []), args.image_dir)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    _standalone(args).down(args.name)
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    import json

    import yaml

    from runtime.standalone import age

    standalone = _standalone(args)
    rows = [standalone.describe_state(r) for r in standalone.records()]
    if args.output in ("json", "yaml"):
        items = [{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine" if args.kind == "vms" else "VirtualMachineInstance",
                  "metadata": {"name": r["record"]["name"], "namespace": r["record"]["namespace"]},
                  "status": {"printableStatus": r["printableStatus"], "ready": r["ready"]} if args.kind == "vms" else
                  {"phase": r["phase"], "interfaces": r["status"].get("interfaces", []), "nodeName": os.uname().nodename}}
                 for r in rows]
        document = {"apiVersion": "v1", "kind": "List", "items": items}
        print(json.dumps(document, indent=2) if args.output == "json" else yaml.safe_dump(document, sort_keys=False), end="")
        return 0
    if args.kind == "vms":
        table = [("NAME", "AGE", "STATUS", "READY")] + [
            (r["record"]["name"], age(r["record"]["created"]), r["printableStatus"], str(r["ready"]).lower()) for r in rows]
    else:
        node = os.uname().nodename
        table = [("NAME", "AGE", "PHASE", "IP", "NODENAME", "READY")] + [
            (r["record"]["name"], age(r["record"]["created"]), r["phase"],
             next((i.get("ipAddress", "") for i in r["status"].get("interfaces", [])), ""), node,
             str(r["ready"]).lower()) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    print(_standalone(args).describe(args.name), end="")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from runtime import doctor

    paths = _standalone(args).doctor(args.name)
    print(doctor.render_text(paths), end="")
    if args.svg:
        with open(args.svg, "w") as f:
            f.write(doctor.render_svg(paths))
    healthy = all(hop.ok for hops in paths.values() for hop in hops)
    print("verdict: " + ("every hop is healthy" if healthy else "some hops are broken (see the fixes above)"))
    return 0 if healthy else 1


def cmd_webhook(args: argparse.Namespace) -> int:
    from kubernetes.config import ConfigException

    from runtime import logs
    from runtime.controller.kube import Kube, load_api_client
    from runtime.webhook import WebhookServer, nad_lookup

    logs.setup("INFO")
    server = WebhookServer((args.address, args.port), args.cert, args.key)
    try:
        kube = Kube(load_api_client(args.kubeconfig, args.server, user_agent="netplug-webhook"))
    except ConfigException as exc:
        server.server_close()
        raise InvalidConfig(f"no Kubernetes API for the NAD lookup ({str(exc).splitlines()[0]}): "
                            "run in the cluster, or give --kubeconfig or --server") from None
    server.nad_exists = nad_lookup(kube)  # the "NAD exists" rule, enforced when deployed
    server.serve_forever()
    return 0


def cmd_controller(args: argparse.Namespace) -> int:
    from runtime.controller import serve

    return serve(args)


def cmd_console(args: argparse.Namespace) -> int:
    print(_standalone(args).console(args.name), end="")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    import json

    from netplug.bindings.base import WiredInterface
    from netplug.guest import BootSource, interface_queues, plan_domain, pod_interface_of
    from netplug.model.multus import NetworkAttachmentDefinition
    from netplug.naming import tap_name
    from netplug.pod import NodeNetwork, plan_pod
    from netplug.render.libvirt_xml import domain_to_xml, to_string
    from runtime.standalone import load_vm, load_yaml_documents

    vmi, document = load_vm(args.file)
    nads = [NetworkAttachmentDefinition.from_document(d) for p in args.nad or [] for d in load_yaml_documents(p)]
    plan = plan_pod(vmi, nads, NodeNetwork())
    if args.what == "cni":
        print(json.dumps([{"network": a.network, "ifname": a.ifname, "conflist": a.conflist} for a in plan.attachments],
                         indent=2))
    elif args.what == "pod":  # the launcher pod the controller would create for it
        import yaml

        from netplug.cluster.launcher_pod import LauncherSettings, launcher_pod
        from netplug.cluster.lifecycle import desired_vmi

        is_vm = document.get("kind") == "VirtualMachine"
        document.setdefault("metadata", {}).setdefault("namespace", vmi.metadata.namespace)
        pod = launcher_pod(desired_vmi(document) if is_vm else document, nads, LauncherSettings(),
                           base="spec.template.spec" if is_vm else "spec")
        print(yaml.safe_dump(pod, sort_keys=False), end="")
    else:  # domain, as the launcher would render it for a freshly wired pod (MTU assumed 1500)
        wired = {}
        for iface in vmi.spec.domain.devices.interfaces:
            network = vmi.network(iface.name)
            pod_iface = pod_interface_of(network)
            wired[iface.name] = WiredInterface(name=iface.name, binding=iface.binding or "",
                                               tap=tap_name(pod_iface) if iface.binding != "sriov" else None,
                                               # as the CNI makes it from the binding config
                                               tap_queues=interface_queues(vmi, iface) or 1,
                                               mtu=1500, pci_address="0000:00:00.0" if iface.binding == "sriov" else None)
        domain = plan_domain(vmi, wired, BootSource(kernel="/var/cache/netplug/guest/vmlinuz"), accelerated=False,
                             serial_log=os.path.join(DEFAULT_STATE_DIR, "vms", "serial.log"))
        print(to_string(domain_to_xml(domain)), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The `netplug` command line (also how the tests check the manifests' commands)."""
    parser = argparse.ArgumentParser(prog="netplug", description="Networks for virtual machines on Kubernetes.")
    sub = parser.add_subparsers(dest="command", required=True)

    agent = sub.add_parser("agent", help="run the node agent")
    agent.add_argument("--socket", default=os.environ.get("NETPLUG_AGENT_SOCKET", DEFAULT_SOCKET))
    agent.add_argument("--state-dir", default=os.environ.get("NETPLUG_STATE_DIR", DEFAULT_STATE_DIR))
    agent.add_argument("--log-level", default=os.environ.get("NETPLUG_LOG_LEVEL", "INFO"),
                       choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    agent.set_defaults(func=cmd_agent)

    install = sub.add_parser("install-cni", help="install the CNI shim into a CNI bin dir")
    install.add_argument("--bin-dir", default="/opt/cni/bin")
    install.add_argument("--socket", default=os.environ.get("NETPLUG_AGENT_SOCKET", DEFAULT_SOCKET),
                         help="the agent's socket (baked into the shim)")
    install.add_argument("--state-dir", default=os.environ.get("NETPLUG_STATE_DIR", DEFAULT_STATE_DIR),
                         help="the agent's state dir (baked in, for the in-process fallback)")
    install.add_argument("--python", default=sys.executable,
                         help="the interpreter kubelet runs the shim with, as the node sees it (default: this one)")
    install.add_argument("--node-root", default="/", metavar="DIR",
                         help="where the node's files are seen here (an init container's mount): --python is "
                              "checked at DIR/PYTHON")
    install.add_argument("--fallback-python", default="same", metavar="PATH|same|none",
                         help="the interpreter of the in-process fallback, with netplug installed (same: --python); "
                              "none: no fallback on this node, a call while no agent answers is code 11")
    install.set_defaults(func=cmd_install_cni)

    launch = sub.add_parser("launch", help="run a VM inside its wired pod netns (virt-launcher)")
    launch.add_argument("vmi", help="VirtualMachine or VirtualMachineInstance YAML")
    launch.add_argument("--netns", help="the pod's netns path (omit inside the launcher pod itself)")
    launch.add_argument("--state-dir", required=True, help="status.json, serial.log, domain.xml, control.sock")
    launch.add_argument("--kernel", help="boot this kernel directly (with --initrd, --cmdline)")
    launch.add_argument("--initrd")
    launch.add_argument("--cmdline")
    launch.add_argument("--disk", action="append", metavar="VOLUME=PATH", help="image for a volume")
    launch.add_argument("--network-status", metavar="FILE",
                        help="the pod's network-status annotation (SR-IOV VFs' PCI addresses)")
    launch.add_argument("--termination-log", metavar="FILE",
                        help="write the final phase and reason here (a container's terminationMessagePath)")
    launch.add_argument("--log-level", default=os.environ.get("NETPLUG_LOG_LEVEL", "INFO"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    launch.set_defaults(func=cmd_launch)

    state_dir = os.environ.get("NETPLUG_STATE_DIR", DEFAULT_STATE_DIR)
    up = sub.add_parser("up", help="network and boot a VM on this machine (standalone mode)")
    up.add_argument("file", help="VirtualMachine or VirtualMachineInstance YAML (kubevirt.io/v1)")
    up.add_argument("--nad", action="append", metavar="FILE_OR_DIR", help="NetworkAttachmentDefinition YAML")
    up.add_argument("--disk", action="append", metavar="VOLUME=PATH", help="an image for a containerDisk volume")
    up.add_argument("--image-dir", metavar="DIR", help="local containerDisk images: image REGISTRY/PATH/NAME[:TAG] "
                                                       "is DIR/NAME.qcow2, DIR/NAME.raw or DIR/NAME.img")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop a VM and remove everything up made (idempotent)")
    down.add_argument("name", help="NAME or NAMESPACE/NAME")
    down.set_defaults(func=cmd_down)
    get = sub.add_parser("get", help="list standalone VMs or VMIs")
    get.add_argument("kind", choices=["vms", "vmis", "vm", "vmi"])
    get.add_argument("-o", "--output", choices=["table", "json", "yaml"], default="table")
    get.set_defaults(func=cmd_get)
    describe = sub.add_parser("describe", help="a VM's interfaces, links, leases, NAT and events")
    describe.add_argument("kind", choices=["vm"])
    describe.add_argument("name")
    describe.set_defaults(func=cmd_describe)
    doctor = sub.add_parser("doctor", help="check a VM's network path hop by hop, with fixes")
    doctor.add_argument("name")
    doctor.add_argument("--svg", metavar="FILE", help="also draw the path as SVG")
    doctor.set_defaults(func=cmd_doctor)
    webhook = sub.add_parser("webhook", help="serve the validating admission webhook (HTTPS)")
    webhook.add_argument("--cert", required=True)
    webhook.add_argument("--key", required=True)
    webhook.add_argument("--address", default="0.0.0.0")  # nosec B104  # in its pod: the Service reaches the pod IP
    webhook.add_argument("--port", type=int, default=8443)
    webhook.add_argument("--kubeconfig", help="for the NAD lookup; default: the in-cluster service account, "
                                              "else ~/.kube/config")
    webhook.add_argument("--server", help="an API server URL without credentials (kubectl proxy, tests)")
    webhook.set_defaults(func=cmd_webhook)
    controller = sub.add_parser("controller", help="run the controller: VMs to VMIs to launcher pods")
    controller.add_argument("--kubeconfig", help="default: the in-cluster service account, else ~/.kube/config")
    controller.add_argument("--server", help="an API server URL without credentials (kubectl proxy, tests)")
    controller.add_argument("--namespace", default=os.environ.get("POD_NAMESPACE", "netplug-system"),
                            help="where the leader Lease and netplug's binding NADs are")
    controller.add_argument("--identity", default=os.environ.get("POD_NAME") or f"{os.uname().nodename}_{os.getpid()}",
                            help="this candidate's name in the Lease")
    controller.add_argument("--launcher-image", default=os.environ.get("NETPLUG_LAUNCHER_IMAGE"),
                            help="the launcher pods' image (default: netplug:latest, scripts/build-image's)")
    controller.add_argument("--cluster-dns", metavar="IP[,IP...]", default=os.environ.get("NETPLUG_CLUSTER_DNS"),
                            help="the cluster's DNS servers (kubelet's clusterDNS), the guests' under dnsPolicy "
                                 "ClusterFirst (default: the cluster IPs of --cluster-dns-service)")
    controller.add_argument("--cluster-dns-service", metavar="NAMESPACE/NAME", default="kube-system/kube-dns",
                            help="the Service the cluster's DNS answers on; 'none': do not look")
    controller.add_argument("--cluster-domain", default=os.environ.get("NETPLUG_CLUSTER_DOMAIN", "cluster.local"),
                            help="the cluster's DNS domain (kubelet's clusterDomain)")
    controller.add_argument("--kvm-resource", metavar="RESOURCE", default=os.environ.get("NETPLUG_KVM_RESOURCE"),
                            help="a device plugin's resource giving /dev/kvm (e.g. devices.kubevirt.io/kvm); "
                                 "default: none, guests run under TCG emulation")
    controller.add_argument("--default-binding", choices=["bridge", "masquerade"], default="bridge",
                            help="binding of the interface a VM without networks gets (KubeVirt's default: bridge)")
    controller.add_argument("--workers", type=int, default=2)
    controller.add_argument("--lease-duration", type=float, default=15.0)
    controller.add_argument("--renew-deadline", type=float, default=10.0)
    controller.add_argument("--retry-period", type=float, default=2.0)
    controller.add_argument("--metrics-address", default="0.0.0.0")  # nosec B104  # in its pod, for the metrics scraper
    controller.add_argument("--metrics-port", type=int, default=8080)
    controller.add_argument("--log-level", default=os.environ.get("NETPLUG_LOG_LEVEL", "INFO"),
                            choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    controller.set_defaults(func=cmd_controller)
    console = sub.add_parser("console", help="print the VM's serial console log")
    console.add_argument("name")
    console.set_defaults(func=cmd_console)
    render = sub.add_parser("render", help="what a VM would get, offline, no root")
    render.add_argument("what", choices=["cni", "domain", "pod"])
    render.add_argument("file")
    render.add_argument("--nad", action="append", metavar="FILE_OR_DIR")
    render.set_defaults(func=cmd_render)
    for command in (up, down, get, console, describe, doctor):
        command.add_argument("--state-dir", default=state_dir)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "kind", None) in ("vm", "vmi"):
        args.kind += "s"
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader (head, less) went away
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (NetplugError, OSError, ValidationError) as exc:
        # bad input or a missing file, whichever subcommand met it: one line, exit code 2
        print(f"netplug {args.command}: {one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
