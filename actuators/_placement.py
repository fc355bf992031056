"""Where a node's pods would go: the scheduler's filters, simulated before anything moves.

``kubectl drain`` evicts and hopes; the cluster autoscaler, before it removes a node, first
checks that every pod on it fits on another node. A healer must do the same: a drain that
turns serving pods into Pending ones makes a sick node's service worse, not better. So the
actions that move pods off a node (drain, recreate elsewhere) first place each *serving* pod
on the other nodes with the filters the default scheduler applies and refuse
(:class:`NoRoomError`) when one has nowhere to go. A pod that serves nothing (not Ready, or on
a node whose kubelet is gone) costs nothing to move and is not checked. Where the cluster adds
nodes for Pending pods (cluster-autoscaler, Karpenter), the caller may move them anyway: the
placement then names the pods that will wait for a new node.

Filters simulated, as kube-scheduler names them: ``NodeUnschedulable`` (cordoned, or not
Ready), ``TaintToleration`` (NoSchedule and NoExecute taints), ``NodeAffinity`` (nodeSelector
and required node affinity, labels and ``metadata.name``), ``NodeResourcesFit`` (CPU, memory
and the pod count against allocatable, less the requests of the pods bound there). Not
simulated: inter-pod (anti-)affinity, topology spread, host ports and volume topology, so the
simulation can pass a move the scheduler would still refuse; it never refuses one the
scheduler would allow. Pods are placed largest first, each on the fitting node with the least
CPU left after it (best fit), so pods that fit together are found to.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity

from actuators._base import Action
from actuators._context import ActionContext
from actuators._errors import NoRoomError

_UNFINISHED = "status.phase!=Succeeded,status.phase!=Failed"
"""The pods that hold room on their node (the API server filters the rest out)."""

RESOURCES = ("cpu", "memory", "pods")
"""The allocatable resources a pod is fitted against."""


def pod_requests(pod: Any) -> dict[str, Decimal]:
    """A pod's requests as the scheduler counts them: the larger of its containers' sum and
    its largest init container, plus the pod overhead, and one pod."""

    def of(containers: list[Any] | None) -> list[dict[str, Decimal]]:
        return [
            {
                k: parse_quantity(v)
                for k, v in ((c.resources.requests if c.resources else None) or {}).items()
            }
            for c in containers or []
        ]

    spec = pod.spec
    total: dict[str, Decimal] = {}
    for req in of(spec.containers):
        for k, v in req.items():
            total[k] = total.get(k, Decimal(0)) + v
    for req in of(spec.init_containers):
        for k, v in req.items():
            total[k] = max(total.get(k, Decimal(0)), v)
    for k, v in (spec.overhead or {}).items():
        total[k] = total.get(k, Decimal(0)) + parse_quantity(v)
    total["pods"] = Decimal(1)
    return total


def ready(obj: Any) -> bool:
    """A node's or a pod's Ready condition is True (a pod's: it is in its endpoints)."""
    conditions = (obj.status.conditions if obj.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _tolerates(pod: Any, taint: Any) -> bool:
    for tol in pod.spec.tolerations or []:
        if tol.effect and tol.effect != taint.effect:
            continue
        if tol.operator == "Exists":
            if not tol.key or tol.key == taint.key:
                return True
        elif tol.key == taint.key and (tol.value or "") == (taint.value or ""):
            return True
    return False


def _expression_holds(expr: Any, values: dict[str, str]) -> bool:
    present = expr.key in values
    value = values.get(expr.key)
    wanted = expr.values or []
    match expr.operator:
        case "In":
            return present and value in wanted
        case "NotIn":
            return not present or value not in wanted
        case "Exists":
            return present
        case "DoesNotExist":
            return not present
        case "Gt" | "Lt" if present and wanted:
            try:
                have, bound = int(str(value)), int(wanted[0])
            except ValueError:
                return False
            return have > bound if expr.operator == "Gt" else have < bound
    return False


def _affinity_allows(pod: Any, node: Any) -> bool:
    labels = node.metadata.labels or {}
    if any(labels.get(k) != v for k, v in (pod.spec.node_selector or {}).items()):
        return False
    affinity = pod.spec.affinity.node_affinity if pod.spec.affinity else None
    required = affinity.required_during_scheduling_ignored_during_execution if affinity else None
    if required is None or not required.node_selector_terms:
        return True
    fields = {"metadata.name": node.metadata.name}
    return any(
        all(_expression_holds(e, labels) for e in term.match_expressions or [])
        and all(_expression_holds(e, fields) for e in term.match_fields or [])
        and (term.match_expressions or term.match_fields)
        for term in required.node_selector_terms
    )


@dataclass
class _Room:
    """What is left on one node."""

    node: Any
    free: dict[str, Decimal]


@dataclass
class Placement:
    """Where each moved pod would go, and why the others fit nowhere."""

    moves: dict[str, str] = field(default_factory=dict)
    """Pod (``namespace/name``) to the node it was placed on."""
    unplaced: dict[str, str] = field(default_factory=dict)
    """Pod to the scheduler-style reason it fits nowhere."""


def _fits(pod: Any, need: dict[str, Decimal], room: _Room, why: Counter[str]) -> bool:
    node = room.node
    if node.spec is not None and node.spec.unschedulable:
        why["node(s) were unschedulable"] += 1
        return False
    if not ready(node):
        why["node(s) were not ready"] += 1
        return False
    for taint in (node.spec.taints if node.spec else None) or []:
        if taint.effect in ("NoSchedule", "NoExecute") and not _tolerates(pod, taint):
            why[f"node(s) had untolerated taint {{{taint.key}: {taint.value or ''}}}"] += 1
            return False
    if not _affinity_allows(pod, node):
        why["node(s) didn't match Pod's node affinity/selector"] += 1
        return False
    short = [k for k, v in need.items() if k in room.free and room.free[k] < v]
    for k in short:
        why[f"Insufficient {k}"] += 1
    return not short


def place_pods(pods: list[Any], nodes: list[Any], bound: list[Any], leaving: str) -> Placement:
    """Place ``pods`` (all leaving node ``leaving``) on the other ``nodes``, whose room is
    their allocatable less the requests of the ``bound`` pods not yet terminated."""
    rooms = {}
    for node in nodes:
        name = node.metadata.name
        if name == leaving:
            continue
        allocatable = (node.status.allocatable if node.status else None) or {}
        free = {k: parse_quantity(allocatable[k]) for k in RESOURCES if k in allocatable}
        rooms[name] = _Room(node, free)
    for pod in bound:
        room = rooms.get(pod.spec.node_name or "")
        if room is None or (pod.status and pod.status.phase in ("Succeeded", "Failed")):
            continue
        for k, v in pod_requests(pod).items():
            if k in room.free:
                room.free[k] -= v
    result = Placement()
    needs = [(pod, pod_requests(pod)) for pod in pods]
    needs.sort(key=lambda pn: (pn[1].get("cpu", Decimal(0)), pn[1].get("memory", Decimal(0))))
    for pod, need in reversed(needs):
        name = f"{pod.metadata.namespace}/{pod.metadata.name}"
        why: Counter[str] = Counter()
        fitting = [room for room in rooms.values() if _fits(pod, need, room, why)]
        if not fitting:
            reasons = ", ".join(f"{n} {r}" for r, n in sorted(why.items()))
            result.unplaced[name] = f"0/{len(rooms)} other nodes are available" + (
                f": {reasons}" if reasons else ""
            )
            continue
        best = min(fitting, key=lambda room: room.free.get("cpu", Decimal(0)) - need.get("cpu", 0))
        for k, v in need.items():
            if k in best.free:
                best.free[k] -= v
        result.moves[name] = best.node.metadata.name
    return result


def check_room(
    action: Action,
    ctx: ActionContext,
    node: str,
    pods: list[Any],
    node_lost: bool = False,
    on_demand: bool = False,
) -> Placement:
    """Refuse (:class:`NoRoomError`) to move ``pods`` off ``node`` when a serving one would
    fit on no other node; the placement found otherwise. Pods that serve nothing, and every
    pod of a node that is not Ready or whose kubelet the caller knows is gone
    (``node_lost``), are not checked: moving them takes nothing from the users. Where the
    cluster adds nodes for Pending pods (``on_demand``) the move goes ahead and the
    placement names the pods that will wait Pending for one."""
    serving = [p for p in pods if ready(p)]
    if not serving or node_lost:
        return Placement()
    nodes = action.call(ctx, lambda: ctx.api.core_v1.list_node(), "list nodes").items
    here = next((n for n in nodes if n.metadata.name == node), None)
    if here is None or not ready(here):
        return Placement()
    bound = action.call(
        ctx,
        lambda: ctx.api.core_v1.list_pod_for_all_namespaces(field_selector=_UNFINISHED),
        "list pods",
    ).items
    placement = place_pods(serving, nodes, bound, node)
    if placement.unplaced and not on_demand:
        lines = "; ".join(f"{pod}: {why}" for pod, why in sorted(placement.unplaced.items()))
        raise NoRoomError(
            action.kind,
            action.target,
            f"{len(placement.unplaced)} serving pod(s) would have no node to go to ({lines});"
            " add room or free a node first",
        )
    return placement
