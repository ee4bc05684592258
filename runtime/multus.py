"""Multus's delegation for one pod, on one machine: the default network, then each selected
NetworkAttachmentDefinition in order, and the network-status that results.

Interface names: the selection's `interface` (KubeVirt asks for `pod<h>`), else `net1`,
`net2`, ... by position, as Multus names them. A selection's `mac` and `ips` are offered as
the `mac` and `ips` capabilities, its cni-args go to every plugin's `args.cni`, as Multus
does. A delegate with a device (a `deviceID` in its config, as Multus injects it from the
device plugin) is offered the `CNIDeviceInfoFile` capability, Multus's per-attachment path
`<devinfo dir>/<network>-<container ID>_<interface>`; the device-info the plugin writes there
goes into that attachment's network-status entry, and the file is removed on DEL. When a
delegate fails, the ones attached before it are deleted in reverse order and the plugin's
error is raised as it gave it. DEL runs in reverse from the cached results.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

import pydantic

from netplug.errors import InvalidConfig
from netplug.model.cni import parse_result
from netplug.model.multus import (
    DeviceInfo,
    NetworkAttachmentDefinition,
    NetworkSelectionElement,
    NetworkStatus,
    status_from_result,
)
from netplug.model.netconf import devinfo_dir
from runtime.cnirt import Attachment, CNIRuntime

log = logging.getLogger("netplug.multus")


@dataclass
class PodSandbox:
    namespace: str
    name: str
    container_id: str
    netns: str
    uid: str = ""

    def args(self) -> dict[str, str]:
        args = {"K8S_POD_NAMESPACE": self.namespace, "K8S_POD_NAME": self.name,
                "K8S_POD_INFRA_CONTAINER_ID": self.container_id}
        if self.uid:
            args["K8S_POD_UID"] = self.uid
        return args


@dataclass
class Delegate:
    """One attachment Multus makes: which network, under which pod interface, with what."""

    network: str  # "<namespace>/<name>" as network-status names it
    conflist: dict
    attachment: Attachment
    default: bool = False
    #: where the delegate's plugin may write its device-info (CNIDeviceInfoFile); by default
    #: Multus's path when a plugin of the delegate has a device
    device_info_file: str | None = None

    def __post_init__(self) -> None:
        if self.device_info_file is None and not self.default and \
                any(plugin.get("deviceID") for plugin in self.conflist.get("plugins", [])):
            self.device_info_file = device_info_path(self.conflist["name"], self.attachment.container_id,
                                                     self.attachment.ifname)
        if self.device_info_file is not None:
            self.attachment.capability_args.setdefault("CNIDeviceInfoFile", self.device_info_file)


def device_info_path(network_name: str, container_id: str, ifname: str) -> str:
    """Multus's per-attachment device-info file (its GetCNIDeviceInfoPath naming)."""
    return os.path.join(devinfo_dir(), f"{network_name}-{container_id}_{ifname}".replace("/", "-"))


def _read_device_info(path: str | None) -> DeviceInfo | None:
    """What the plugin wrote, or None: Multus publishes no device-info it cannot read."""
    if path is None:
        return None
    try:
        with open(path) as f:
            return DeviceInfo.model_validate(json.load(f))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, pydantic.ValidationError) as exc:
        log.warning("device-info file %s is unreadable, left out of network-status: %s", path, exc)
        return None


def _forget_device_info(path: str | None) -> None:
    if path is not None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


class Multus:
    def __init__(self, runtime: CNIRuntime, nads: list[NetworkAttachmentDefinition]) -> None:
        self.runtime = runtime
        self.nads = {nad.key: nad for nad in nads}

    def delegates(self, pod: PodSandbox, default: dict, selections: list[NetworkSelectionElement]) -> list[Delegate]:
        """The attachments for a pod, in order; unknown NADs and duplicate names are refused."""
        found = [Delegate(network=f"{pod.namespace}/{default['name']}", conflist=default, default=True,
                          attachment=Attachment(pod.container_id, pod.netns, "eth0", pod.args()))]
        for n, selection in enumerate(selections, start=1):
            key = selection.nad_key(pod.namespace)
            nad = self.nads.get(key)
            if nad is None:
                raise InvalidConfig(f'networks[{n - 1}]: NetworkAttachmentDefinition "{key}" not found')
            capabilities: dict = {}
            if selection.mac:
                capabilities["mac"] = selection.mac
            if selection.ips:
                capabilities["ips"] = selection.ips
            if selection.portMappings:
                capabilities["portMappings"] = selection.portMappings
            if selection.bandwidth:
                capabilities["bandwidth"] = selection.bandwidth
            attachment = Attachment(pod.container_id, pod.netns, selection.interface or f"net{n}", pod.args(),
                                    capability_args=capabilities, cni_args=selection.cni_args or {})
            found.append(Delegate(network=key, conflist=nad.conflist(), attachment=attachment))
        names = [d.attachment.ifname for d in found]
        if len(set(names)) != len(names):
            raise InvalidConfig(f"networks: two attachments want the same interface name: {names}")
        return found

    def attach(self, delegates: list[Delegate]) -> list[NetworkStatus]:
        done: list[Delegate] = []
        statuses = []
        try:
            for delegate in delegates:
                log.info("ADD %s as %s", delegate.network, delegate.attachment.ifname)
                try:
                    result = self.runtime.add(delegate.conflist, delegate.attachment)
                except Exception:
                    _forget_device_info(delegate.device_info_file)
                    raise
                done.append(delegate)
                statuses.append(status_from_result(delegate.network, parse_result(result, delegate.conflist["cniVersion"]),
                                                   default=delegate.default,
                                                   device_info=_read_device_info(delegate.device_info_file)))
        except Exception:
            for delegate in reversed(done):
                self.runtime.delete(delegate.conflist, delegate.attachment, best_effort=True)
                _forget_device_info(delegate.device_info_file)
            raise
        return statuses

    def detach(self, delegates: list[Delegate]) -> None:
        for delegate in reversed(delegates):
            log.info("DEL %s on %s", delegate.network, delegate.attachment.ifname)
            self.runtime.delete(delegate.conflist, delegate.attachment)
            _forget_device_info(delegate.device_info_file)
