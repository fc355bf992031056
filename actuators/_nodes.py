"""What the node actions share: the node-pool health limit, cordon with annotations, undo.

No node action starts when too large a share of the node's pool is already out (NotReady,
under pressure or cordoned): draining a sick pool makes it sicker. Pools are read from the
usual node-group labels; nodes with none form one pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actuators._base import Action, ActionResult
from actuators._context import AUDIT_ID, CHANGED_BY, ActionContext
from actuators._errors import ConflictError, GuardRejectedError, PermanentActuatorError
from actuators._kube import MERGE_PATCH, node_unhealthy

#: Labels that name a node's pool, by the tools that set them; the first present wins.
POOL_LABELS = (
    "ooda.dev/node-pool",
    "eks.amazonaws.com/nodegroup",
    "karpenter.sh/nodepool",
    "cloud.google.com/gke-nodepool",
    "kubernetes.azure.com/agentpool",
)


def node_pool(node: Any) -> str:
    """The pool a node belongs to ("" when it carries none of :data:`POOL_LABELS`)."""
    labels = node.metadata.labels or {}
    return next((labels[k] for k in POOL_LABELS if k in labels), "")


def read_node(action: Action, ctx: ActionContext, name: str) -> Any:
    return action.call(ctx, lambda: ctx.api.core_v1.read_node(name), f"read node {name}")


def check_pool_health(action: Action, ctx: ActionContext, node: Any, limit: float) -> None:
    """Refuse when the share of ``node``'s pool already out reaches ``limit``."""
    nodes = action.call(ctx, lambda: ctx.api.core_v1.list_node(), "list nodes").items
    name, pool = node.metadata.name, node_pool(node)
    members = [n for n in nodes if node_pool(n) == pool]
    out = sum(node_unhealthy(n) for n in members if n.metadata.name != name)
    share = out / max(1, len(members))
    if share >= limit:
        label = f"pool {pool!r}" if pool else "the cluster (no pool label)"
        raise GuardRejectedError(
            action.kind,
            action.target,
            f"{out} of {len(members)} nodes of {label} are already out ({share:.0%});"
            f" no node action at or past {limit:.0%}",
        )


def set_unschedulable(action: Action, ctx: ActionContext, name: str, value: bool) -> None:
    notes: dict[str, str | None] = dict(ctx.annotations(action.kind))
    if not value:
        notes = dict.fromkeys(notes)
    body = {"metadata": {"annotations": notes}, "spec": {"unschedulable": value or None}}
    action.call(
        ctx,
        lambda: ctx.api.core_v1.patch_node(name, body, _content_type=MERGE_PATCH),
        f"{'cordon' if value else 'uncordon'} node {name}",
    )


def cordon_first(action: Action, ctx: ActionContext, name: str, limit: float) -> bool:
    """Whether node ``name`` was already cordoned; checks the pool's health when it was not."""
    if not name:
        raise PermanentActuatorError(f"{action.kind} needs a node name, got ''")
    node = read_node(action, ctx, name)
    was = bool(node.spec.unschedulable)
    if not was:
        check_pool_health(action, ctx, node, limit)
    return was


def uncordon(
    action: Action, ctx: ActionContext, name: str, result: ActionResult
) -> ActionResult | None:
    """Uncordon ``name`` if ooda's cordon still stands; refuse if someone else's replaced it."""
    if result.dry_run or not result.undoable:
        return None
    node = read_node(action, ctx, name)
    if not node.spec.unschedulable:
        return None  # someone uncordoned it already
    notes = node.metadata.annotations or {}
    ours = result.after.get("audit_id")
    if notes.get(CHANGED_BY) != "ooda" or notes.get(AUDIT_ID) != ours:
        raise ConflictError(
            f"node {name} was cordoned again since ooda's cordon (audit id"
            f" {notes.get(AUDIT_ID)!r}, ooda's {ours!r}); it is left alone"
        )
    set_unschedulable(action, ctx, name, False)
    return action.undone(result, {"cordoned": False}, f"node/{name}")


@dataclass(frozen=True)
class NodeAction(Action):
    """Fields shared by the actions that cordon a node."""

    node: str = ""
    max_unhealthy_fraction: float = 0.4
    """No node action when this share of the node's pool is already out."""

    node_scoped = True

    @property
    def target(self) -> str:
        return f"node/{self.node}"

    @property
    def breaker_key(self) -> str:
        return self.target

    def undo(self, ctx: ActionContext, result: ActionResult) -> ActionResult | None:
        """Uncordon the node if this action cordoned it (evicted pods stay where they went)."""
        return uncordon(self, ctx, self.node, result)
