"""Bindings: pure planning, one module per binding, one plan function each.

`plan(conf, ctx)` is the single dispatch point from a binding config to its pod-side planner,
`DOMAIN_DEVICES` from a VM interface's binding to its guest-side device; adding a binding adds
a module and a line in each table here and touches no other binding.

May import: netplug.model, netplug.naming, netplug.render, netplug.errors.
"""

from __future__ import annotations

from collections.abc import Callable

from netplug.bindings.base import AttachmentPlan, BindingContext
from netplug.bindings.bridge import domain_bridge, plan_bridge
from netplug.bindings.masquerade import domain_masquerade, plan_masquerade
from netplug.bindings.sriov import domain_sriov, plan_sriov
from netplug.model.netconf import BindingBase

PLANNERS: dict[str, Callable[..., AttachmentPlan]] = {
    "masquerade": plan_masquerade,
    "bridge": plan_bridge,
    "sriov": plan_sriov,
}


#: binding name -> its policy for the guest's device (libvirt <interface> or <hostdev>)
DOMAIN_DEVICES: dict[str, Callable[..., object]] = {
    "masquerade": domain_masquerade,
    "bridge": domain_bridge,
    "sriov": domain_sriov,
}


def plan(conf: BindingBase, ctx: BindingContext) -> AttachmentPlan:
    return PLANNERS[conf.binding](conf, ctx)
