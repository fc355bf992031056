"""Roll an Argo CD ``Application`` back to its previous deployed revision.

Where a service is deployed by Argo CD, patching its Deployment would be reverted at the next
sync; the rollback goes through the Application instead. As ``argocd app rollback`` does, it
turns automated sync off (otherwise Argo CD would sync straight back to the bad revision) and
asks the application controller for a sync to the revision of the previous history entry,
by writing the Application's ``operation`` field. Undo restores automated sync and syncs to the
revision it left.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actuators._base import Action, ActionResult, register_action
from actuators._context import ActionContext
from actuators._errors import ConflictError, PermanentActuatorError, TemporaryActuatorError
from actuators._kube import MERGE_PATCH
from contracts import ActionKind

ARGO_GROUP = "argoproj.io"
ARGO_VERSION = "v1alpha1"
ARGO_PLURAL = "applications"
INITIATED_BY = "ooda"


@register_action
@dataclass(frozen=True)
class ArgoRollback(Action):
    """Sync an Argo CD Application to the revision it ran before the current one."""

    application: str = ""
    argo_namespace: str = "argocd"
    """Namespace of the Application object (not of the workload)."""

    kind = ActionKind.ARGO_ROLLBACK
    disruptive = True

    @property
    def target(self) -> str:
        return f"application/{self.argo_namespace}/{self.application}"

    def _api(self, ctx: ActionContext) -> Any:
        if ctx.kube.custom_objects is None:
            raise PermanentActuatorError("argo_rollback needs a CustomObjectsApi, got None")
        return ctx.api.custom_objects

    def _read(self, ctx: ActionContext) -> Any:
        api = self._api(ctx)
        return self.call(
            ctx,
            lambda: api.get_namespaced_custom_object(
                ARGO_GROUP, ARGO_VERSION, self.argo_namespace, ARGO_PLURAL, self.application
            ),
            f"read application {self.argo_namespace}/{self.application}",
        )

    def _patch(self, ctx: ActionContext, body: dict[str, Any], what: str) -> None:
        api = self._api(ctx)
        body = {**body, "metadata": {"annotations": ctx.annotations(self.kind)}}
        self.call(
            ctx,
            lambda: api.patch_namespaced_custom_object(
                ARGO_GROUP,
                ARGO_VERSION,
                self.argo_namespace,
                ARGO_PLURAL,
                self.application,
                body,
                _content_type=MERGE_PATCH,
            ),
            what,
        )

    def _operation(self, revision: str, source: Any) -> dict[str, Any]:
        sync: dict[str, Any] = {"revision": revision}
        if source is not None:
            sync["source"] = source
        return {
            "sync": sync,
            "initiatedBy": {"username": INITIATED_BY, "automated": True},
            "info": [{"name": "Reason", "value": self.reason or "ooda rollback"}],
        }

    def apply(self, ctx: ActionContext) -> ActionResult:
        if not self.application:
            raise PermanentActuatorError("argo_rollback needs an application name, got ''")
        app = self._read(ctx)
        if app.get("operation"):
            raise TemporaryActuatorError(
                f"application {self.argo_namespace}/{self.application} already has an operation"
                " in progress"
            )
        spec = app.get("spec") or {}
        if "sources" in spec:
            raise PermanentActuatorError(
                f"application {self.argo_namespace}/{self.application} has several sources;"
                " only single-source applications are rolled back"
            )
        history = sorted((app.get("status") or {}).get("history") or [], key=lambda h: h["id"])
        if len(history) < 2:
            raise PermanentActuatorError(
                f"application {self.argo_namespace}/{self.application} has {len(history)}"
                " history entries; nothing to roll back to"
            )
        current, previous = history[-1], history[-2]
        automated = (spec.get("syncPolicy") or {}).get("automated")
        before = {
            "revision": current["revision"],
            "history_id": current["id"],
            "source": current.get("source"),
            "automated": automated,
        }
        after = {"revision": previous["revision"], "history_id": previous["id"]}
        if not ctx.dry_run:
            body: dict[str, Any] = {
                "operation": self._operation(previous["revision"], previous.get("source"))
            }
            if automated is not None:
                body["spec"] = {"syncPolicy": {"automated": None}}
            self._patch(
                ctx,
                body,
                f"roll back application {self.argo_namespace}/{self.application}"
                f" to {previous['revision']}",
            )
        return ActionResult(self.kind, self.target, ctx.dry_run, before, after, undoable=True)

    def undo(self, ctx: ActionContext, result: ActionResult) -> ActionResult | None:
        if result.dry_run:
            return None
        app = self._read(ctx)
        if app.get("operation"):
            op = app["operation"].get("sync", {}).get("revision")
            if op != result.after["revision"]:
                raise ConflictError(
                    f"application {self.argo_namespace}/{self.application} has an operation"
                    f" to {op!r} since ooda's rollback; it is left alone"
                )
        history = sorted((app.get("status") or {}).get("history") or [], key=lambda h: h["id"])
        newest = history[-1]["revision"] if history else None
        if newest not in (result.after["revision"], result.before["revision"]):
            raise ConflictError(
                f"application {self.argo_namespace}/{self.application} was synced to"
                f" {newest!r} since ooda's rollback; it is left alone"
            )
        before = result.before
        body: dict[str, Any] = {"operation": self._operation(before["revision"], before["source"])}
        if before["automated"] is not None:
            body["spec"] = {"syncPolicy": {"automated": before["automated"]}}
        self._patch(
            ctx,
            body,
            f"roll application {self.argo_namespace}/{self.application} forward to"
            f" {before['revision']}",
        )
        return self.undone(
            result, {"revision": before["revision"], "automated": before["automated"]}
        )
