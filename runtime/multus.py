"""Multus's delegation for one pod, on one machine: the default network, then each selected
NetworkAttachmentDefinition in order, and the network-status that results.

Interface names: the selection's `interface` (KubeVirt asks for `pod<h>`), else `net1`,
`net2`, ... by position, as Multus names them. A selection's `mac` and `ips` are offered as
the `mac` and `ips` capabilities, its cni-args go to every plugin's `args.cni`, as Multus
does. When a delegate fails, the ones attached before it are deleted in reverse order and the
plugin's error is raised as it gave it. DEL runs in reverse from the cached results.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from netplug.errors import InvalidConfig
from netplug.model.cni import parse_result
from netplug.model.multus import (
    NetworkAttachmentDefinition,
    NetworkSelectionElement,
    NetworkStatus,
    status_from_result,
)
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
                result = self.runtime.add(delegate.conflist, delegate.attachment)
                done.append(delegate)
                statuses.append(status_from_result(delegate.network, parse_result(result, delegate.conflist["cniVersion"]),
                                                   default=delegate.default))
        except Exception:
            for delegate in reversed(done):
                self.runtime.delete(delegate.conflist, delegate.attachment, best_effort=True)
            raise
        return statuses

    def detach(self, delegates: list[Delegate]) -> None:
        for delegate in reversed(delegates):
            log.info("DEL %s on %s", delegate.network, delegate.attachment.ifname)
            self.runtime.delete(delegate.conflist, delegate.attachment)
