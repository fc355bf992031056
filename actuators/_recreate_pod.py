"""Move one pod off its node: cordon the node, evict the pod, let its controller recreate it
elsewhere (packet loss or a sick disk on one node's path).

A failed eviction uncordons the node again: the pod stays, so the node goes back into service.
A serving pod that would fit on no other node is not moved (``_placement``), unless the cluster
adds nodes for Pending pods (``room_on_demand``).
"""

from __future__ import annotations

from dataclasses import dataclass

from actuators._base import ActionResult, register_action
from actuators._context import ActionContext
from actuators._errors import ActuatorError, PermanentActuatorError
from actuators._kube import evict_pod, read_service_pod
from actuators._nodes import NodeAction, cordon_first, set_unschedulable, uncordon
from actuators._placement import check_room
from contracts import ActionKind


@register_action
@dataclass(frozen=True)
class RecreatePodElsewhere(NodeAction):
    """Cordon a pod's node and evict the pod, so it is recreated on another node."""

    pod: str = ""
    room_on_demand: bool = False
    """The cluster adds nodes for Pending pods: a pod with no node to go to is moved anyway
    and waits Pending for one."""

    kind = ActionKind.RECREATE_POD_ELSEWHERE
    disruptive = True
    waits = True

    @property
    def target(self) -> str:
        return f"pod/{self.namespace}/{self.pod}"

    @property
    def breaker_key(self) -> str:
        return self.workload

    def apply(self, ctx: ActionContext) -> ActionResult:
        if not self.pod:
            raise PermanentActuatorError("recreate_pod_elsewhere needs a pod name, got ''")
        pod = read_service_pod(ctx, self.kind, self.pod, self.namespace, self.service)
        node = pod.spec.node_name or ""
        was = cordon_first(self, ctx, node, self.max_unhealthy_fraction)
        placement = check_room(self, ctx, node, [pod], on_demand=self.room_on_demand)
        before = {
            "pod": self.pod,
            "node": node,
            "cordoned": was,
            "placement": placement.moves,
            "pending": placement.unplaced,
        }
        if ctx.dry_run:
            return ActionResult(
                self.kind, self.target, True, before, {"would_evict": self.pod}, False
            )
        if not was:
            set_unschedulable(self, ctx, node, True)
        try:
            outcome = evict_pod(ctx, self.pod, self.namespace)
        except ActuatorError:
            if not was:
                set_unschedulable(self, ctx, node, False)
            raise
        after = {
            "cordoned_node": node,
            "evicted": True,
            "pdb_refusals": outcome.refusals,
            "audit_id": ctx.audit_ref or "none",
        }
        return ActionResult(self.kind, self.target, False, before, after, undoable=not was)

    def undo(self, ctx: ActionContext, result: ActionResult) -> ActionResult | None:
        """Uncordon the node this action cordoned."""
        return uncordon(self, ctx, str(result.before["node"]), result)
