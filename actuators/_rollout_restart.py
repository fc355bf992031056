"""Restart every pod of a Deployment, as ``kubectl rollout restart`` does it.

The pod template gets a new ``kubectl.kubernetes.io/restartedAt`` stamp; the Deployment
controller rolls the pods over to it at the pace of the Deployment's own strategy (surge,
``maxUnavailable``), so no replica count changes and the PodDisruptionBudget's owners' rules
for a rollout hold. It is for a fault that lives in the pods' memory (a wedged connection pool,
a stale cache) and that no rollback explains: the same build, fresh processes.

A revision that differs from the one before it only by the stamp is no change of what runs:
:func:`template_content` is what the snapshot and ``RollbackDeployment`` compare, so a restart
neither reads as a rollout nor becomes the revision a rollback returns to.

Nothing to undo: the restarted pods run the same build. It healed once every pod that ran
before it is gone, the replicas are Ready and the SLO holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from actuators._base import Action, ActionResult, register_action
from actuators._context import ActionContext
from actuators._errors import PermanentActuatorError
from actuators._kube import MERGE_PATCH, deployment_selector
from actuators._patch_hpa import serialise
from contracts import ActionKind, VerifyWindow

#: The pod-template annotation ``kubectl rollout restart`` stamps (RFC 3339).
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
_HASH_LABEL = "pod-template-hash"


def template_content(template: Any) -> Any:
    """A pod template (client model or dict) as JSON, without what a rollout restart or the
    ReplicaSet controller adds (the ``restartedAt`` stamp, the ``pod-template-hash`` label):
    two revisions with equal content run the same thing."""
    data = serialise(template) if not isinstance(template, dict) else dict(template)
    metadata = dict(data.get("metadata") or {})
    notes = {k: v for k, v in (metadata.get("annotations") or {}).items() if k != RESTARTED_AT}
    labels = {k: v for k, v in (metadata.get("labels") or {}).items() if k != _HASH_LABEL}
    metadata.update(annotations=notes, labels=labels)
    return {**data, "metadata": metadata}


def _stamp(at: datetime) -> str:
    """RFC 3339 in UTC to the second, as kubectl writes it."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@register_action
@dataclass(frozen=True)
class RolloutRestart(Action):
    """Roll every pod of a Deployment over to fresh ones of the same template."""

    deployment: str = ""

    kind = ActionKind.ROLLOUT_RESTART
    disruptive = True
    repeatable = False  # a restart that did not heal would not heal the second time

    @property
    def target(self) -> str:
        return f"deployment/{self.namespace}/{self.deployment}"

    def apply(self, ctx: ActionContext) -> ActionResult:
        what = f"deployment {self.namespace}/{self.deployment}"
        dep = self.call(
            ctx,
            lambda: ctx.api.apps_v1.read_namespaced_deployment(self.deployment, self.namespace),
            f"read {what}",
        )
        if dep.spec.paused:
            raise PermanentActuatorError(f"{what} is paused; resume it before restarting it")
        selector = deployment_selector(dep)
        pods = self.call(
            ctx,
            lambda: ctx.api.core_v1.list_namespaced_pod(self.namespace, label_selector=selector),
            f"list pods of {what}",
        )
        names = sorted(p.metadata.name for p in pods.items)
        previous = (dep.spec.template.metadata.annotations or {}).get(RESTARTED_AT)
        stamp = _stamp(ctx.now())
        if not ctx.dry_run:
            body = {
                "metadata": {"annotations": ctx.annotations(self.kind)},
                "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}},
            }
            self.call(
                ctx,
                lambda: ctx.api.apps_v1.patch_namespaced_deployment(
                    self.deployment, self.namespace, body, _content_type=MERGE_PATCH
                ),
                f"restart {what}",
            )
        return ActionResult(
            self.kind,
            self.target,
            ctx.dry_run,
            {"pods": names, "restarted_at": previous},
            {"restarted_at": stamp, "would_replace" if ctx.dry_run else "replacing": len(names)},
            undoable=False,
        )

    def healthy(self, result: ActionResult, window: VerifyWindow) -> str | None:
        workload = window.workload
        if workload is None:
            return "workload state unknown"
        left = sorted(set(result.before["pods"]) & {p.name for p in workload.pods})
        if left:
            return f"{len(left)} pod(s) from before the restart still run ({', '.join(left)})"
        if workload.ready_replicas < workload.replicas:
            return f"{workload.ready_replicas} of {workload.replicas} replicas Ready"
        return None
