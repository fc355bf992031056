"""Kubernetes calls shared by several actions: patch types, eviction through PDBs, node health.

Two facts a real API server teaches that an in-memory one can hide:

* a dict body goes out as a strategic merge patch unless the call names its content type
  (client v37 turns its json-patch default into strategic merge for anything but a list);
  every patch here names ``application/merge-patch+json``, the one type custom resources
  accept too, so a body means the same thing everywhere;
* an eviction refused by a PodDisruptionBudget answers 429; it is retried with backoff until
  the budget allows it or the retries run out, and the pod is never deleted instead;
* an eviction in a namespace being deleted answers 403 (no new content there): the pod goes
  with its namespace, so a drain counts it as evicted, as ``kubectl drain`` does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from actuators._context import ActionContext
from actuators._errors import (
    BudgetRefusedError,
    GuardRejectedError,
    NotLeaderError,
    PermanentActuatorError,
    TemporaryActuatorError,
    classify_api_error,
)
from actuators._retry import call_with_retry

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
#: The status cause of a write refused because its namespace is being deleted.
NAMESPACE_TERMINATING = "NamespaceTerminating"


@dataclass
class EvictionOutcome:
    """What happened to one pod's eviction."""

    pod: str
    evicted: bool
    refusals: int
    """429 answers (PodDisruptionBudget said no) before the eviction went through or gave up."""


def deployment_selector(dep: Any) -> str:
    """A Deployment's ``matchLabels`` as a label selector, refused when it has none (an empty
    selector would select every pod of the namespace)."""
    labels = dep.spec.selector.match_labels or {}
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    if not selector:
        raise PermanentActuatorError(
            f"deployment {dep.metadata.namespace}/{dep.metadata.name} has no matchLabels selector"
        )
    return selector


def evict_pod(ctx: ActionContext, name: str, namespace: str) -> EvictionOutcome:
    """Evict one pod through the Eviction API, waiting out PDB refusals with backoff.

    Other temporary errors (5xx, network) are retried on the same schedule; permanent ones
    raise at once. Raises :class:`BudgetRefusedError` when the budget still refuses after
    ``pdb_retry.attempts`` tries; a pod that is already gone counts as evicted.
    """
    return evict_pods(ctx, [(name, namespace)])[0]


def _namespace_terminating(exc: ApiException) -> bool:
    """Whether the API server refused an eviction because the pod's namespace is being
    deleted (403 with the ``NamespaceTerminating`` cause): the pod is going anyway, and
    ``kubectl drain`` counts it as evicted rather than fail the drain."""
    if exc.status != 403 or not exc.body:
        return False
    try:
        status = json.loads(exc.body)
    except (TypeError, ValueError):
        return False
    details = status.get("details") if isinstance(status, dict) else None
    causes = details.get("causes") if isinstance(details, dict) else None
    return any(
        isinstance(cause, dict) and cause.get("reason") == NAMESPACE_TERMINATING
        for cause in causes or []
    )


def evict_pods(
    ctx: ActionContext, pods: list[tuple[str, str]], keep_budget_refused: bool = False
) -> list[EvictionOutcome]:
    """Evict ``(name, namespace)`` pods as ``kubectl drain`` does: each is asked in every
    round, one a PodDisruptionBudget refuses waits for the next round (after a backoff) while
    the others go on, so one budget's wait does not hold back pods it does not cover.

    A round that evicts a pod starts the backoff over. When ``pdb_retry.attempts`` rounds in
    a row evicted none, raises naming the pods left:
    :class:`BudgetRefusedError` when budgets refused them all on the last round, else
    :class:`TemporaryActuatorError`; a permanent error raises at once.
    With ``keep_budget_refused``, pods whose budgets still refused them on the last round are
    left where they are and returned as not evicted (the caller goes on later, as a drain
    does); an API error on the last round still raises. Outcomes come in the order the pods
    were given. Each round asks ``ctx.may_act`` first and raises :class:`NotLeaderError` once
    this replica may no longer act.
    """
    pdb_retry = ctx.pdb_retry
    backoff = pdb_retry.initial_backoff_s
    refusals = dict.fromkeys(pods, 0)
    left = list(pods)
    last: Exception | None = None
    stuck = 0
    while True:
        if not ctx.may_act():
            gone = len(pods) - len(left)
            raise NotLeaderError(
                "evict",
                ", ".join(f"pod/{ns}/{name}" for name, ns in left),
                f"this replica may act no more (its Lease lapsed, or it is stopping); {gone} of"
                f" {len(pods)} evicted, these left running",
            )
        waiting = []
        by_budget = True
        for name, namespace in left:
            body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=namespace))
            try:
                ctx.api.core_v1.create_namespaced_pod_eviction(name, namespace, body)
            except Exception as exc:  # classified right below
                if isinstance(exc, ApiException) and (
                    exc.status == 404 or _namespace_terminating(exc)
                ):
                    continue  # already gone, or going with its namespace
                if isinstance(exc, ApiException) and exc.status == 429:
                    refusals[name, namespace] += 1
                else:
                    by_budget = False
                    error = classify_api_error(exc, f"evict pod {namespace}/{name}")
                    if not isinstance(error, TemporaryActuatorError):
                        raise error from exc
                waiting.append((name, namespace))
                last = exc
        if not waiting:
            return [EvictionOutcome(name, True, refusals[name, ns]) for name, ns in pods]
        if len(waiting) < len(left):
            stuck, backoff = 0, pdb_retry.initial_backoff_s
        left = waiting
        stuck += 1
        if stuck == pdb_retry.attempts:
            break
        ctx.sleep(backoff)
        backoff = min(backoff * pdb_retry.multiplier, pdb_retry.max_backoff_s)
    if keep_budget_refused and by_budget:
        kept = set(left)
        return [
            EvictionOutcome(name, (name, ns) not in kept, refusals[name, ns]) for name, ns in pods
        ]
    what = ", ".join(f"{ns}/{name}" for name, ns in left)
    by_pdb = sum(refusals[pod] for pod in left)
    why = f"still refused after {pdb_retry.attempts} tries ({by_pdb} by a PodDisruptionBudget)"
    if by_budget:
        raise BudgetRefusedError("evict", f"pod {what}", f"{why}; the pod was left running")
    raise TemporaryActuatorError(f"evict pod {what}: {why}; the pod was left running") from last


def read_service_pod(
    ctx: ActionContext, action: str, name: str, namespace: str, service: str
) -> Any:
    """Read a pod and refuse it unless it belongs (``app`` label) to the service being healed
    and a controller owns it (only then does something bring a replacement)."""
    pod = call_with_retry(
        lambda: ctx.api.core_v1.read_namespaced_pod(name, namespace),
        f"read pod {namespace}/{name}",
        ctx.retry,
        ctx.sleep,
    )
    app = (pod.metadata.labels or {}).get("app")
    if app != service:
        raise PermanentActuatorError(
            f"pod {namespace}/{name} has app={app!r}, not the service {service!r} being healed"
        )
    if not any(ref.controller for ref in pod.metadata.owner_references or []):
        raise GuardRejectedError(
            action, f"pod/{namespace}/{name}", "the pod has no controller to replace it"
        )
    return pod


def read_hpa(ctx: ActionContext, name: str, namespace: str) -> Any:
    """Read one HorizontalPodAutoscaler (autoscaling/v2) with the context's retries."""
    return call_with_retry(
        lambda: ctx.api.autoscaling_v2.read_namespaced_horizontal_pod_autoscaler(name, namespace),
        f"read hpa {namespace}/{name}",
        ctx.retry,
        ctx.sleep,
    )


def is_daemonset_pod(pod: Any) -> bool:
    """DaemonSet pods are left alone by a drain (their controller ignores cordons)."""
    return any(ref.kind == "DaemonSet" for ref in (pod.metadata.owner_references or []))


def is_mirror_pod(pod: Any) -> bool:
    """Static (mirror) pods cannot be evicted through the API."""
    return "kubernetes.io/config.mirror" in (pod.metadata.annotations or {})


def node_unhealthy(node: Any) -> bool:
    """Not Ready, under a pressure condition, or cordoned."""
    if node.spec is not None and node.spec.unschedulable:
        return True
    conditions = (node.status.conditions if node.status else None) or []
    for condition in conditions:
        if condition.type == "Ready" and condition.status != "True":
            return True
        if condition.type.endswith("Pressure") and condition.status == "True":
            return True
    return False


def pods_on_node(ctx: ActionContext, node: str) -> list[Any]:
    """Every pod bound to ``node``, across namespaces (field selector on spec.nodeName)."""
    pods = call_with_retry(
        lambda: ctx.api.core_v1.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}"),
        f"list pods on node {node}",
        ctx.retry,
        ctx.sleep,
    )
    return [p for p in pods.items if p.spec.node_name == node]
