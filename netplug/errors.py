"""The one error model of netplug.

Every failure that a caller may see is a `NetplugError` subclass carrying a CNI error code
(`cni_code`), a short message and details. Code raises the specific subclass where the fault
is known; only the edges convert: the CNI handler turns it into the spec's error object
`{cniVersion, code, msg, details}`, a CLI prints the message. Codes 1-11 and 50/51 are the CNI
spec's; 100 and above are netplug's own and are listed in the README.

May import: the standard library only.
"""

from __future__ import annotations

import json


class NetplugError(Exception):
    """Base class. `msg` is one line naming the thing (field, interface, netns)."""

    cni_code: int = 999
    #: a caller may retry the same request later and expect it to work
    retriable: bool = False

    def __init__(self, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details

    def to_cni(self, cni_version: str) -> dict:
        error = {"cniVersion": cni_version, "code": self.cni_code, "msg": self.msg}
        if self.details:
            error["details"] = self.details
        return error


# --- CNI spec codes -------------------------------------------------------------------------


class IncompatibleVersion(NetplugError):
    cni_code = 1


class UnsupportedField(NetplugError):
    cni_code = 2


class UnknownContainer(NetplugError):
    cni_code = 3


class InvalidEnvironment(NetplugError):
    cni_code = 4


class IOFailure(NetplugError):
    cni_code = 5


class DecodeFailure(NetplugError):
    cni_code = 6


class InvalidConfig(NetplugError):
    cni_code = 7


def field_message(field: str, value: object, message: str) -> str:
    """How netplug names a bad value everywhere: `field: message (value V)`, V as JSON."""
    shown = json.dumps(value, default=str)
    return f"{field}: {message} (value {shown if len(shown) <= 80 else shown[:77] + '...'})"


class InvalidField(InvalidConfig):
    """A document's field holds a value netplug cannot take: the field path (as Kubernetes
    writes it, e.g. `spec.template.spec.domain.devices.interfaces[0].ports[0].port`), the
    value and the rule, so a webhook can answer with a StatusCause and a CLI with one line."""

    def __init__(self, field: str, value: object, message: str) -> None:
        super().__init__(field_message(field, value, message))
        self.field, self.value, self.message = field, value, message


class TryAgainLater(NetplugError):
    cni_code = 11
    retriable = True


class PluginNotAvailable(NetplugError):
    cni_code = 50


# --- netplug's own codes (documented in README "Error codes") ------------------------------


class LinkConflict(NetplugError):
    """A link that netplug must create already exists (or has another type)."""

    cni_code = 100


class KernelError(NetplugError):
    """The kernel refused a netlink operation or a sysctl write."""

    cni_code = 101


class NetnsNotFound(NetplugError):
    """The netns path names no network namespace (any more)."""

    cni_code = 102


class LinkNotFound(NetplugError):
    """A link that the attachment needs (e.g. the pod interface) does not exist."""

    cni_code = 103


class FirewallError(NetplugError):
    """nft rejected the ruleset netplug rendered, or could not run."""

    cni_code = 104


class ServiceError(NetplugError):
    """The guest's DHCP service could not be started or stopped."""

    cni_code = 105


class DelegateError(NetplugError):
    """A delegated plugin (IPAM, a Multus delegate) failed; code and message are the plugin's
    own, `plugin` and `command` say which plugin ran which verb (a CLI line names them)."""

    def __init__(self, msg: str, details: str = "", code: int = 999, *, plugin: str = "", command: str = "") -> None:
        super().__init__(msg, details)
        self.cni_code = code
        self.plugin, self.command = plugin, command


class StateError(NetplugError):
    """The state directory cannot be read or written (full disk, permissions)."""

    cni_code = 106


class CheckFailed(NetplugError):
    """CHECK found the attachment different from what ADD made."""

    cni_code = 107


class HypervisorError(NetplugError):
    """libvirt or QEMU refused to run or change the guest."""

    cni_code = 108
