"""Roll a Deployment back a revision, as ``kubectl rollout undo`` does it.

The template is copied from the ReplicaSet of the earlier revision; the Deployment controller
then scales that ReplicaSet back up and gives it the next revision number. By default that is
the newest earlier revision that runs something else: one that differs only by a rollout
restart's stamp would roll back nothing. Undo rolls forward again, unless someone deployed
something else since.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actuators._base import Action, ActionResult, register_action
from actuators._context import ActionContext
from actuators._errors import ConflictError, PermanentActuatorError
from actuators._kube import JSON_PATCH, MERGE_PATCH, deployment_selector
from actuators._patch_hpa import serialise
from actuators._rollout_restart import template_content
from contracts import ActionKind

REVISION = "deployment.kubernetes.io/revision"
_HASH_LABEL = "pod-template-hash"


def _images(template: dict[str, Any]) -> list[str]:
    return [c["image"] for c in template["spec"]["containers"]]


@register_action
@dataclass(frozen=True)
class RollbackDeployment(Action):
    """Put a Deployment's pod template back to an earlier revision, as ``kubectl rollout undo``.

    The template is copied from the ReplicaSet of that revision; the Deployment controller then
    scales that ReplicaSet back up and gives it the next revision number.
    """

    deployment: str = ""
    to_revision: int | None = None
    """The revision to return to; when None, the newest earlier one whose template differs
    from the current one by more than a rollout restart's stamp."""

    kind = ActionKind.ROLLBACK_DEPLOYMENT
    disruptive = True

    @property
    def target(self) -> str:
        return f"deployment/{self.namespace}/{self.deployment}"

    def _read(self, ctx: ActionContext) -> Any:
        return self.call(
            ctx,
            lambda: ctx.api.apps_v1.read_namespaced_deployment(self.deployment, self.namespace),
            f"read deployment {self.namespace}/{self.deployment}",
        )

    def _replace_template(self, ctx: ActionContext, template: Any) -> None:
        what = f"deployment {self.namespace}/{self.deployment}"
        self.call(
            ctx,
            lambda: ctx.api.apps_v1.patch_namespaced_deployment(
                self.deployment,
                self.namespace,
                [{"op": "replace", "path": "/spec/template", "value": template}],
                _content_type=JSON_PATCH,
            ),
            f"roll back {what}",
        )
        notes = {"metadata": {"annotations": ctx.annotations(self.kind)}}
        self.call(
            ctx,
            lambda: ctx.api.apps_v1.patch_namespaced_deployment(
                self.deployment, self.namespace, notes, _content_type=MERGE_PATCH
            ),
            f"annotate {what}",
        )

    def apply(self, ctx: ActionContext) -> ActionResult:
        dep = self._read(ctx)
        if dep.spec.paused:
            raise PermanentActuatorError(
                f"deployment {self.namespace}/{self.deployment} is paused; resume it first"
            )
        current = int((dep.metadata.annotations or {}).get(REVISION, "0"))
        selector = deployment_selector(dep)
        sets = self.call(
            ctx,
            lambda: ctx.api.apps_v1.list_namespaced_replica_set(
                self.namespace, label_selector=selector
            ),
            f"list replicasets of {self.namespace}/{self.deployment}",
        )
        owned = {
            int((rs.metadata.annotations or {}).get(REVISION, "0")): rs
            for rs in sets.items
            if any(
                ref.controller and ref.uid == dep.metadata.uid
                for ref in rs.metadata.owner_references or []
            )
        }
        wanted = self.to_revision
        if wanted is None:
            running = template_content(dep.spec.template)
            earlier = [
                r
                for r in owned
                if 0 < r < current and template_content(owned[r].spec.template) != running
            ]
            if not earlier:
                raise PermanentActuatorError(
                    f"deployment {self.namespace}/{self.deployment} has no revision before"
                    f" {current} to roll back to (a rollout restart's is the same template)"
                )
            wanted = max(earlier)
        if wanted not in owned or wanted == current:
            raise PermanentActuatorError(
                f"deployment {self.namespace}/{self.deployment}: revision {wanted} is not an"
                f" earlier revision (have {sorted(owned)}, current {current})"
            )
        template = serialise(owned[wanted].spec.template)
        template.get("metadata", {}).get("labels", {}).pop(_HASH_LABEL, None)
        previous = serialise(dep.spec.template)
        if not ctx.dry_run:
            self._replace_template(ctx, template)
        images = _images(template)
        return ActionResult(
            self.kind,
            self.target,
            ctx.dry_run,
            {"revision": current, "template": previous},
            {"revision": wanted, "images": images},
            undoable=True,
        )

    def undo(self, ctx: ActionContext, result: ActionResult) -> ActionResult | None:
        if result.dry_run:
            return None
        now = _images(serialise(self._read(ctx).spec.template))
        if now != result.after["images"]:
            raise ConflictError(
                f"deployment {self.namespace}/{self.deployment} runs {now} since ooda rolled it"
                f" back to {result.after['images']}; someone deployed since, so it is left alone"
            )
        self._replace_template(ctx, result.before["template"])
        return self.undone(result, {"revision_template": result.before["revision"]})
