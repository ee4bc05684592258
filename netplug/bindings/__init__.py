"""Bindings: pure planning, one module per binding, one plan function each.

`plan(conf, ctx)` is the single dispatch point from a binding config to its planner; adding
a binding adds a module and a line here and touches no other binding.

May import: netplug.model, netplug.naming, netplug.render, netplug.errors.
"""

from __future__ import annotations

from collections.abc import Callable

from netplug.bindings.base import AttachmentPlan, BindingContext
from netplug.bindings.bridge import plan_bridge
from netplug.bindings.masquerade import plan_masquerade
from netplug.model.netconf import BindingBase

PLANNERS: dict[str, Callable[..., AttachmentPlan]] = {
    "masquerade": plan_masquerade,
    "bridge": plan_bridge,
}


def plan(conf: BindingBase, ctx: BindingContext) -> AttachmentPlan:
    return PLANNERS[conf.binding](conf, ctx)
