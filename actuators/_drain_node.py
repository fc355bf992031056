"""Drain a node: cordon it and evict its pods, with ``kubectl drain``'s refusals.

Pods leave only through the Eviction API, so every PodDisruptionBudget holds; a refusal is
waited out with backoff, never forced, while the pods no refusing budget covers go on
(``kubectl drain`` evicts them in parallel). Where ``kubectl drain`` would go on waiting, a
drain whose budgets still refuse after the retry window (about 90 s without a pod let go)
stops with those pods on the cordoned node: applied in part, not failed (the budgets did
their job), and the next drain of the node, after its cooldown, continues the same heal
(``continues``).

Like ``kubectl drain`` without ``--force``, it refuses a node with a pod no controller would
recreate, and one with emptyDir data unless told that the data may go -- by the action, or by
the pod itself through the cluster-autoscaler's annotations (``safe-to-evict: "true"``, or
``safe-to-evict-local-volumes`` naming each emptyDir volume), which owners already set for the
same question. DaemonSet and mirror pods stay. Unlike ``kubectl drain``, and like the cluster
autoscaler before it removes a node, it first places every serving pod on the other nodes
(``_placement``) and refuses when one fits nowhere (unless the cluster adds nodes for Pending
pods, ``room_on_demand``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actuators._base import ActionResult, register_action, serves_users
from actuators._context import ActionContext
from actuators._errors import GuardRejectedError, TemporaryActuatorError
from actuators._kube import evict_pods, is_daemonset_pod, is_mirror_pod, pods_on_node
from actuators._nodes import NodeAction, cordon_first, set_unschedulable
from actuators._placement import check_room
from contracts import ActionKind, VerifyWindow


def _name(pod: Any) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


#: The cluster-autoscaler's annotations by which a pod says its local data may be lost.
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
SAFE_TO_EVICT_LOCAL_VOLUMES = "cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes"


def _emptydir_data(pod: Any) -> list[str]:
    """The pod's emptyDir volumes whose data its owner has not declared disposable."""
    notes = pod.metadata.annotations or {}
    if notes.get(SAFE_TO_EVICT) == "true":
        return []
    disposable = {v.strip() for v in notes.get(SAFE_TO_EVICT_LOCAL_VOLUMES, "").split(",")}
    return [
        v.name
        for v in pod.spec.volumes or []
        if v.empty_dir is not None and v.name not in disposable
    ]


@register_action
@dataclass(frozen=True)
class DrainNode(NodeAction):
    """Cordon a node and evict every pod on it but DaemonSet and mirror pods."""

    delete_emptydir_data: bool = False
    """Allow evicting pods with emptyDir volumes (their data is lost)."""
    node_lost: bool = False
    """The node's kubelet is known to be gone (its Lease stopped) though its Ready condition
    has not turned yet: its pods serve nothing, so one with no node to go to does not hold
    the drain back (its replacement waits Pending, as it would anyway)."""
    room_on_demand: bool = False
    """The cluster adds nodes for Pending pods (cluster-autoscaler, Karpenter): a serving pod
    with no node to go to waits Pending for one instead of holding the drain back (its
    PodDisruptionBudget still bounds how many go at once)."""

    kind = ActionKind.DRAIN_NODE
    disruptive = True
    waits = True
    verifies_idle = True
    continues = True

    def _refusals(self, pods: list[Any]) -> list[str]:
        bare = [_name(p) for p in pods if not p.metadata.owner_references]
        reasons = [f"pods without a controller: {bare}"] if bare else []
        if not self.delete_emptydir_data:
            local = [_name(p) for p in pods if _emptydir_data(p)]
            if local:
                reasons.append(f"pods with emptyDir data: {local}")
        return reasons

    def apply(self, ctx: ActionContext) -> ActionResult:
        was = cordon_first(self, ctx, self.node, self.max_unhealthy_fraction)
        pods = pods_on_node(ctx, self.node)
        movable = [p for p in pods if not (is_daemonset_pod(p) or is_mirror_pod(p))]
        refusals = self._refusals(movable)
        if refusals:
            raise GuardRejectedError(self.kind, self.target, "; ".join(refusals))
        placement = check_room(self, ctx, self.node, movable, self.node_lost, self.room_on_demand)
        names = [_name(p) for p in movable]
        before = {
            "cordoned": was,
            "pods": names,
            "skipped": len(pods) - len(movable),
            "placement": placement.moves,
            "pending": placement.unplaced,
        }
        if ctx.dry_run:
            return ActionResult(self.kind, self.target, True, before, {"would_evict": names}, False)
        if not was:
            set_unschedulable(self, ctx, self.node, True)
        pairs = [(p.metadata.name, p.metadata.namespace) for p in movable]
        try:
            outcomes = evict_pods(ctx, pairs, keep_budget_refused=True)
        except TemporaryActuatorError as exc:
            raise TemporaryActuatorError(
                f"drain of {self.node} stopped with pods still on it (node left cordoned): {exc}"
            ) from exc
        after = {
            "cordoned": True,
            "evicted": [n for n, o in zip(names, outcomes, strict=True) if o.evicted],
            "waiting_on_budget": [n for n, o in zip(names, outcomes, strict=True) if not o.evicted],
            "pdb_refusals": sum(outcome.refusals for outcome in outcomes),
            "audit_id": ctx.audit_ref or "none",
        }
        return ActionResult(self.kind, self.target, False, before, after, undoable=not was)

    def healthy(self, result: ActionResult, window: VerifyWindow) -> str | None:
        """The service's pods must have left the node, besides the SLO holding; on a service
        serving nobody (an idle standby) its replicas must also be Ready again, since no SLO
        speaks for them."""
        users = serves_users(window)
        workload = window.workload
        if workload is None:
            return None if users else "workload state unknown"
        left = [p.name for p in workload.pods if p.node == self.node]
        if left:
            return f"pods still on {self.node}: {left}"
        if not users and workload.ready_replicas < workload.replicas:
            return f"{workload.ready_replicas} of {workload.replicas} replicas Ready"
        return None
