"""Set a Deployment's replicas, for a workload no HPA manages (an HPA would undo it at once).

The replica count is capped (blast radius) and undo refuses when the count moved since.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actuators._base import Action, ActionResult, register_action, scaled_outcome
from actuators._context import ActionContext
from actuators._errors import ConflictError, PermanentActuatorError
from actuators._kube import MERGE_PATCH
from contracts import ActionKind, Outcome, VerifyWindow


@register_action
@dataclass(frozen=True)
class ScaleDeployment(Action):
    """Set a Deployment's ``spec.replicas`` through its scale subresource."""

    deployment: str = ""
    replicas: int = 1
    max_replicas: int = 50
    """Blast-radius cap: never ask for more pods than this."""

    kind = ActionKind.SCALE_DEPLOYMENT

    @property
    def target(self) -> str:
        return f"deployment/{self.namespace}/{self.deployment}"

    def _replicas(self, ctx: ActionContext) -> int:
        scale = self.call(
            ctx,
            lambda: ctx.api.apps_v1.read_namespaced_deployment_scale(
                self.deployment, self.namespace
            ),
            f"read scale of deployment {self.namespace}/{self.deployment}",
        )
        return int(scale.spec.replicas or 0)

    def _patch(self, ctx: ActionContext, n: int) -> None:
        body: dict[str, Any] = {"spec": {"replicas": n}}
        notes = {"metadata": {"annotations": ctx.annotations(self.kind)}}
        self.call(
            ctx,
            lambda: ctx.api.apps_v1.patch_namespaced_deployment_scale(
                self.deployment, self.namespace, body, _content_type=MERGE_PATCH
            ),
            f"scale deployment {self.namespace}/{self.deployment} to {n}",
        )
        self.call(
            ctx,
            lambda: ctx.api.apps_v1.patch_namespaced_deployment(
                self.deployment, self.namespace, notes, _content_type=MERGE_PATCH
            ),
            f"annotate deployment {self.namespace}/{self.deployment}",
        )

    def _hpa(self, ctx: ActionContext) -> Any:
        """The HPA whose ``scaleTargetRef`` is the Deployment, or None."""
        hpas = self.call(
            ctx,
            lambda: ctx.api.autoscaling_v2.list_namespaced_horizontal_pod_autoscaler(
                self.namespace
            ),
            f"list hpas in {self.namespace}",
        )
        for hpa in hpas.items:
            ref = hpa.spec.scale_target_ref
            if ref.kind == "Deployment" and ref.name == self.deployment:
                return hpa
        return None

    def _scale_to(self, ctx: ActionContext, replicas: int, previous: int) -> ActionResult:
        """Set the replicas from ``previous`` to ``replicas`` (in dry-run, only describe it)."""
        if not ctx.dry_run and previous != replicas:
            self._patch(ctx, replicas)
        return ActionResult(
            self.kind,
            self.target,
            ctx.dry_run,
            {"replicas": previous},
            {"replicas": replicas},
            undoable=previous != replicas,
        )

    def apply(self, ctx: ActionContext) -> ActionResult:
        if not 0 <= self.replicas <= self.max_replicas:
            raise PermanentActuatorError(
                f"replicas must be within 0..{self.max_replicas}, got {self.replicas}"
            )
        hpa = self._hpa(ctx)
        if hpa is not None:
            raise PermanentActuatorError(
                f"deployment {self.namespace}/{self.deployment} is scaled by HPA "
                f"{hpa.metadata.name!r}; change the HPA instead"
            )
        return self._scale_to(ctx, self.replicas, self._replicas(ctx))

    def undo(self, ctx: ActionContext, result: ActionResult) -> ActionResult | None:
        if result.dry_run or not result.undoable:
            return None
        now, ours = self._replicas(ctx), int(result.after["replicas"])
        if now != ours:
            raise ConflictError(
                f"deployment {self.namespace}/{self.deployment} has {now} replicas since ooda"
                f" set {ours}; someone else changed it, so it is left alone"
            )
        previous = int(result.before["replicas"])
        self._patch(ctx, previous)
        return self.undone(result, {"replicas": previous})

    def check(self, result: ActionResult, window: VerifyWindow) -> Outcome:
        """Healed once the SLO holds with the asked replicas Ready (those the cluster has
        room for: see :func:`scaled_outcome`)."""
        wanted = int(result.after["replicas"])
        return scaled_outcome(window, self.healthy(result, window), wanted)

    def healthy(self, result: ActionResult, window: VerifyWindow) -> str | None:
        workload = window.workload
        wanted = int(result.after["replicas"])
        if workload is not None and workload.ready_replicas < wanted:
            return f"{workload.ready_replicas} of {wanted} replicas Ready"
        return None
