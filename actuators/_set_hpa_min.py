"""Move an HPA's ``minReplicas``: predictive scale-out ahead of load, and back after it.

The HPA keeps scaling reactively above the new floor. The value ooda set and the floor it
found are written into the HPA's annotations, so ooda (even after a restart) can tell its own
raised floor from one a human set, and never lowers a human's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actuators._base import Action, ActionResult, register_action, slo_minutes, slo_outcome
from actuators._context import ActionContext
from actuators._errors import ConflictError, MalformedAnnotationError, PermanentActuatorError
from actuators._kube import MERGE_PATCH, read_hpa
from contracts import ActionKind, Outcome, Verdict, VerifyWindow

#: The floor ooda set, and the floor it found before it first raised it.
MIN_SET = "ooda.dev/min-replicas"
MIN_ORIGINAL = "ooda.dev/original-min-replicas"
#: What ooda raised the floor for (a traffic surge, a saturated service, a consumer group), so
#: that only the policy that raised it lowers it.
FLOOR_FOR = "ooda.dev/floor-for"


def floor_purpose(annotations: dict[str, str] | None) -> str:
    """What ooda's raised floor is for ("" when it does not say: a floor from before)."""
    return (annotations or {}).get(FLOOR_FOR, "")


def ooda_floor(
    annotations: dict[str, str] | None, current_min: int, hpa: str = "hpa"
) -> int | None:
    """The floor the HPA had before ooda raised it, if ``current_min`` is still ooda's value.

    None when ooda never raised it or a human changed ``minReplicas`` since. Raises
    :class:`MalformedAnnotationError` when ooda's annotations are there but do not parse.
    """
    notes = annotations or {}
    if MIN_SET not in notes and MIN_ORIGINAL not in notes:
        return None
    values = {}
    for key in (MIN_SET, MIN_ORIGINAL):
        value = notes.get(key, "")
        try:
            values[key] = int(value)
        except ValueError:
            raise MalformedAnnotationError(hpa, key, value, "a replica count") from None
    return values[MIN_ORIGINAL] if values[MIN_SET] == current_min else None


@register_action
@dataclass(frozen=True)
class SetHpaMinReplicas(Action):
    """Set ``minReplicas`` of the HPA that scales the workload."""

    hpa: str = ""
    min_replicas: int = 1
    purpose: str = ""
    """What the raised floor is for (the runbook raising it), kept in ``ooda.dev/floor-for``
    while the floor stays raised."""

    kind = ActionKind.SET_HPA_MIN

    @property
    def target(self) -> str:
        return f"hpa/{self.namespace}/{self.hpa}"

    def _patch(self, ctx: ActionContext, value: int, original: int | None) -> None:
        notes: dict[str, str | None] = dict(ctx.annotations(self.kind))
        notes[MIN_SET] = None if original is None else str(value)
        notes[MIN_ORIGINAL] = None if original is None else str(original)
        notes[FLOOR_FOR] = None if original is None or not self.purpose else self.purpose
        body = {"metadata": {"annotations": notes}, "spec": {"minReplicas": value}}
        self.call(
            ctx,
            lambda: ctx.api.autoscaling_v2.patch_namespaced_horizontal_pod_autoscaler(
                self.hpa, self.namespace, body, _content_type=MERGE_PATCH
            ),
            f"patch hpa {self.namespace}/{self.hpa} minReplicas={value}",
        )

    def apply(self, ctx: ActionContext) -> ActionResult:
        if self.min_replicas < 1:
            raise PermanentActuatorError(f"minReplicas must be >= 1, got {self.min_replicas}")
        hpa = read_hpa(ctx, self.hpa, self.namespace)
        previous = int(hpa.spec.min_replicas or 1)
        maximum = int(hpa.spec.max_replicas)
        wanted = min(self.min_replicas, maximum)
        try:
            floor = ooda_floor(hpa.metadata.annotations, previous, self.target)
            broken = None
        except MalformedAnnotationError as exc:  # rewritten below, from the floor found now
            floor, broken = None, str(exc)
        original = previous if floor is None else floor
        before: dict[str, Any] = {
            "min_replicas": previous,
            "max_replicas": maximum,
            "original": floor,
        }
        if broken:
            before["malformed_annotations"] = broken
        if not ctx.dry_run and wanted != previous:
            self._patch(ctx, wanted, None if wanted == original else original)
        after = {"min_replicas": wanted, "capped_at_max": wanted < self.min_replicas}
        return ActionResult(
            self.kind, self.target, ctx.dry_run, before, after, undoable=wanted != previous
        )

    def undo(self, ctx: ActionContext, result: ActionResult) -> ActionResult | None:
        if result.dry_run or not result.undoable:
            return None
        current = int(read_hpa(ctx, self.hpa, self.namespace).spec.min_replicas or 1)
        ours = int(result.after["min_replicas"])
        if current != ours:
            raise ConflictError(
                f"hpa {self.namespace}/{self.hpa}: minReplicas is {current} since ooda set"
                f" {ours}; someone else changed it, so it is left alone"
            )
        previous = int(result.before["min_replicas"])
        self._patch(ctx, previous, result.before.get("original"))
        return self.undone(result, {"min_replicas": previous})

    @staticmethod
    def is_scale_in(result: ActionResult) -> bool:
        """Whether ``result`` lowered the floor."""
        return int(result.after["min_replicas"]) < int(result.before["min_replicas"])

    def undo_when_failed(self, result: ActionResult) -> bool:
        """A floor lowered too far is put back at once."""
        return self.is_scale_in(result)

    def healthy(self, result: ActionResult, window: VerifyWindow) -> str | None:
        wanted = int(result.after["min_replicas"])
        workload = window.workload
        if workload is None:
            return "workload state unknown"
        if workload.ready_replicas < wanted:
            return f"{workload.ready_replicas} of {wanted} replicas Ready"
        return None

    def check(self, result: ActionResult, window: VerifyWindow) -> Outcome:
        """A raised floor heals when the SLO holds with its pods Ready; one capped at the
        HPA's maximum cannot carry the load by itself, so it is healed once its pods are Ready
        (what is left is for an ingress limit, or a human raising the maximum)."""
        if result.after.get("capped_at_max") and not self.is_scale_in(result):
            not_yet = self.healthy(result, window)
            if not_yet is None:
                return Outcome(Verdict.HEALED, "floor at the HPA's maximum, its pods Ready")
            if window.now >= window.deadline:
                return Outcome(Verdict.FAILED, f"not healed by the deadline: {not_yet}")
            return Outcome(Verdict.PENDING, not_yet)
        if not self.is_scale_in(result):
            return slo_outcome(window, self.healthy(result, window))
        ok = slo_minutes(window)
        if ok and not all(ok):
            return Outcome(Verdict.FAILED, "SLO breached after scaling in")
        if len(ok) >= 2 * window.healthy_minutes:
            return Outcome(Verdict.HEALED, f"SLO held for {len(ok)} minutes after scaling in")
        if window.now >= window.deadline:
            return Outcome(Verdict.HEALED, "SLO held until the deadline after scaling in")
        return Outcome(Verdict.PENDING, "watching the SLO after scaling in")
