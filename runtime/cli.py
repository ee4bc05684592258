"""The `netplug` command. Each subcommand is a few lines that call into the runtime.

    netplug agent         run the node agent (CNI requests on a unix socket)
    netplug install-cni   install the CNI shim into a CNI bin dir
    netplug launch        run a VM inside its (already wired) pod netns
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from netplug.errors import NetplugError

SHIM_SOURCE = Path(__file__).resolve().parents[1] / "cni" / "netplug"


def cmd_agent(args: argparse.Namespace) -> int:
    from runtime import logs
    from runtime.agent.server import serve
    from runtime.agent.store import Store

    logs.setup(args.log_level)
    serve(args.socket, Store(args.state_dir), test_hooks=os.environ.get("NETPLUG_TEST_HOOKS") == "1")
    return 0


def install_shim(bin_dir: str, python: str) -> str:
    """Copy the shim into `bin_dir` as `netplug`, run by `python` in isolated mode."""
    if not os.path.isabs(python) or not os.access(python, os.X_OK):
        raise NetplugError(f"--python: {python} is not an executable absolute path")
    lines = SHIM_SOURCE.read_text().splitlines(keepends=True)
    # -I -S: ignore the environment and site-packages; the shim needs the standard library only
    lines[0] = f"#!{python} -IS\n"
    os.makedirs(bin_dir, exist_ok=True)
    target = os.path.join(bin_dir, "netplug")
    tmp = f"{target}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.writelines(lines)
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)  # a runtime never execs a half-written file
    return target


def cmd_install_cni(args: argparse.Namespace) -> int:
    print(install_shim(args.bin_dir, args.python))
    return 0


def cmd_launch(args: argparse.Namespace) -> int:
    from runtime.launcher import run

    return run(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="netplug", description="Networks for virtual machines on Kubernetes.")
    sub = parser.add_subparsers(dest="command", required=True)

    agent = sub.add_parser("agent", help="run the node agent")
    agent.add_argument("--socket", default=os.environ.get("NETPLUG_AGENT_SOCKET", "/run/netplug/agent.sock"))
    agent.add_argument("--state-dir", default=os.environ.get("NETPLUG_STATE_DIR", "/var/lib/netplug"))
    agent.add_argument("--log-level", default=os.environ.get("NETPLUG_LOG_LEVEL", "INFO"),
                       choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    agent.set_defaults(func=cmd_agent)

    install = sub.add_parser("install-cni", help="install the CNI shim into a CNI bin dir")
    install.add_argument("--bin-dir", default="/opt/cni/bin")
    install.add_argument("--python", default=sys.executable,
                         help="interpreter for the shim and its in-process fallback (default: this one)")
    install.set_defaults(func=cmd_install_cni)

    launch = sub.add_parser("launch", help="run a VM inside its wired pod netns (virt-launcher)")
    launch.add_argument("vmi", help="VirtualMachine or VirtualMachineInstance YAML")
    launch.add_argument("--netns", required=True, help="the pod's netns path")
    launch.add_argument("--state-dir", required=True, help="status.json, serial.log, domain.xml, control.sock")
    launch.add_argument("--kernel", help="boot this kernel directly (with --initrd, --cmdline)")
    launch.add_argument("--initrd")
    launch.add_argument("--cmdline")
    launch.add_argument("--disk", action="append", metavar="VOLUME=PATH", help="image for a volume")
    launch.add_argument("--network-status", metavar="FILE",
                        help="the pod's network-status annotation (SR-IOV VFs' PCI addresses)")
    launch.add_argument("--log-level", default=os.environ.get("NETPLUG_LOG_LEVEL", "INFO"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    launch.set_defaults(func=cmd_launch)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except NetplugError as exc:
        print(f"netplug {args.command}: {exc.msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
