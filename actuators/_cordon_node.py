"""Cordon a node: nothing new lands there, running pods stay (the first step of a drain)."""

from __future__ import annotations

from dataclasses import dataclass

from actuators._base import ActionResult, register_action
from actuators._context import ActionContext
from actuators._nodes import NodeAction, cordon_first, set_unschedulable
from contracts import ActionKind


@register_action
@dataclass(frozen=True)
class CordonNode(NodeAction):
    """Mark a node unschedulable."""

    kind = ActionKind.CORDON_NODE

    def apply(self, ctx: ActionContext) -> ActionResult:
        was = cordon_first(self, ctx, self.node, self.max_unhealthy_fraction)
        if not ctx.dry_run and not was:
            set_unschedulable(self, ctx, self.node, True)
        return ActionResult(
            self.kind,
            self.target,
            ctx.dry_run,
            {"cordoned": was},
            {"cordoned": True, "audit_id": ctx.audit_ref or "none"},
            undoable=not was and not ctx.dry_run,
        )
