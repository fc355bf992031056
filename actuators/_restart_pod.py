"""Restart one pod: evict it so its controller replaces it with a fresh one.

Through the Eviction API, so a PodDisruptionBudget holds. Only a pod that a controller will
replace may go (a bare pod evicted is a pod lost), and only a pod of the workload being
healed. The restart healed when the workload has no pod left in CrashLoopBackOff, every
replica is Ready and the SLO holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actuators._base import Action, ActionResult, register_action
from actuators._context import ActionContext
from actuators._errors import PermanentActuatorError
from actuators._kube import evict_pod, read_service_pod
from contracts import ActionKind, VerifyWindow


@register_action
@dataclass(frozen=True)
class RestartPod(Action):
    """Evict one pod so its Deployment replaces it (on a healthy node)."""

    pod: str = ""

    kind = ActionKind.RESTART_POD
    disruptive = True
    repeatable = False
    waits = True
    verifies_idle = True

    @property
    def target(self) -> str:
        return f"pod/{self.namespace}/{self.pod}"

    def apply(self, ctx: ActionContext) -> ActionResult:
        if not self.pod:
            raise PermanentActuatorError("restart_pod needs a pod name, got ''")
        pod = read_service_pod(ctx, self.kind, self.pod, self.namespace, self.service)
        statuses = pod.status.container_statuses or []
        before = {
            "pod": self.pod,
            "node": pod.spec.node_name,
            "phase": pod.status.phase,
            "restarts": sum(s.restart_count or 0 for s in statuses),
        }
        after: dict[str, Any] = {"evicted": False}
        if not ctx.dry_run:
            outcome = evict_pod(ctx, self.pod, self.namespace)
            after = {"evicted": True, "pdb_refusals": outcome.refusals}
        return ActionResult(self.kind, self.target, ctx.dry_run, before, after, undoable=False)

    def healthy(self, result: ActionResult, window: VerifyWindow) -> str | None:
        return pods_recovered(window)


def pods_recovered(window: VerifyWindow) -> str | None:
    """Why the workload's pods are not back yet (a crash loop, replicas not Ready), or None."""
    workload = window.workload
    if workload is None:
        return "workload state unknown"
    looping = workload.crashlooping
    if looping:
        names = ", ".join(p.name for p in looping)
        return f"{len(looping)} pod(s) still in CrashLoopBackOff ({names})"
    if workload.ready_replicas < workload.replicas:
        return f"{workload.ready_replicas} of {workload.replicas} replicas Ready"
    return None
