"""Move an HPA's ``minReplicas``: predictive scale-out ahead of load, and back after it.

The HPA keeps scaling reactively above the new floor. The value ooda set and the floor it
found are written into the HPA's annotations, so ooda (even after a restart) can tell its own
raised floor from one a human set, and never lowers a human's.

Floors raised for different purposes stack: a surge's floor raised over the floor a regional
failover set keeps the failover's layer in ``ooda.dev/floor-below``, and its release goes back
to the failover's floor (with the failover's annotations), not to the floor before either. A
lower layer released while another stands on it leaves ``minReplicas`` alone and drops out of
the stack, so the layer above then releases to what was there before both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from actuators._base import (
    Action,
    ActionResult,
    no_room,
    register_action,
    scaled_outcome,
    slo_minutes,
)
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
#: The floors raised for other purposes under the current one, nearest first (JSON: a list of
#: ``{"for": purpose, "min": floor set, "original": floor found}``).
FLOOR_BELOW = "ooda.dev/floor-below"


@dataclass(frozen=True)
class FloorLayer:
    """ooda's raised floor as the annotations keep it: what it found, what for, and the
    floors raised for other purposes beneath it."""

    original: int
    purpose: str = ""
    below: tuple[dict[str, Any], ...] = field(default_factory=tuple)


def floors_below(
    annotations: dict[str, str] | None, hpa: str = "hpa"
) -> tuple[dict[str, Any], ...]:
    """The layers under ooda's current floor (nearest first); MalformedAnnotationError when
    the annotation is there but is not such a list."""
    value = (annotations or {}).get(FLOOR_BELOW)
    if not value:
        return ()
    try:
        layers = json.loads(value)
        out = tuple(
            {"for": str(x["for"]), "min": int(x["min"]), "original": int(x["original"])}
            for x in layers
        )
    except (ValueError, TypeError, KeyError):
        raise MalformedAnnotationError(hpa, FLOOR_BELOW, value, "a list of floors") from None
    return out


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

    def _patch(self, ctx: ActionContext, value: int, layer: FloorLayer | None) -> None:
        notes: dict[str, str | None] = dict(ctx.annotations(self.kind))
        notes[MIN_SET] = None if layer is None else str(value)
        notes[MIN_ORIGINAL] = None if layer is None else str(layer.original)
        notes[FLOOR_FOR] = None if layer is None or not layer.purpose else layer.purpose
        notes[FLOOR_BELOW] = json.dumps(list(layer.below)) if layer and layer.below else None
        body = {"metadata": {"annotations": notes}, "spec": {"minReplicas": value}}
        self.call(
            ctx,
            lambda: ctx.api.autoscaling_v2.patch_namespaced_horizontal_pod_autoscaler(
                self.hpa, self.namespace, body, _content_type=MERGE_PATCH
            ),
            f"patch hpa {self.namespace}/{self.hpa} minReplicas={value}",
        )

    def _layer_after(
        self,
        wanted: int,
        previous: int,
        floor: int | None,
        holder: str,
        below: tuple[dict[str, Any], ...],
    ) -> FloorLayer | None:
        """The floor's layer once ``wanted`` is set (None: no floor of ooda's is left)."""
        if floor is None:
            return None if wanted == previous else FloorLayer(previous, self.purpose)
        if wanted == floor:  # this layer released: the one beneath, if any, is back in force
            if below and below[0]["min"] == wanted:
                return FloorLayer(below[0]["original"], below[0]["for"], below[1:])
            return None
        if wanted > previous and holder and self.purpose and holder != self.purpose:
            mine = {"for": holder, "min": previous, "original": floor}
            return FloorLayer(previous, self.purpose, (mine, *below))
        return FloorLayer(floor, self.purpose or holder, below)

    def apply(self, ctx: ActionContext) -> ActionResult:
        if self.min_replicas < 1:
            raise PermanentActuatorError(f"minReplicas must be >= 1, got {self.min_replicas}")
        hpa = read_hpa(ctx, self.hpa, self.namespace)
        previous = int(hpa.spec.min_replicas or 1)
        maximum = int(hpa.spec.max_replicas)
        wanted = min(self.min_replicas, maximum)
        notes = hpa.metadata.annotations
        try:
            floor = ooda_floor(notes, previous, self.target)
            below = floors_below(notes, self.target) if floor is not None else ()
            broken = None
        except MalformedAnnotationError as exc:  # rewritten below, from the floor found now
            floor, below, broken = None, (), str(exc)
        holder = floor_purpose(notes) if floor is not None else ""
        before: dict[str, Any] = {
            "min_replicas": previous,
            "max_replicas": maximum,
            "original": floor,
            "floor_for": holder,
            "below": list(below),
        }
        if broken:
            before["malformed_annotations"] = broken
        if not ctx.dry_run and wanted != previous:
            self._patch(ctx, wanted, self._layer_after(wanted, previous, floor, holder, below))
        after = {"min_replicas": wanted, "capped_at_max": wanted < self.min_replicas}
        return ActionResult(
            self.kind, self.target, ctx.dry_run, before, after, undoable=wanted != previous
        )

    def undo(self, ctx: ActionContext, result: ActionResult) -> ActionResult | None:
        if result.dry_run or not result.undoable:
            return None
        hpa = read_hpa(ctx, self.hpa, self.namespace)
        current = int(hpa.spec.min_replicas or 1)
        ours = int(result.after["min_replicas"])
        previous = int(result.before["min_replicas"])
        if current != ours:
            return self._leave_stack(ctx, result, hpa.metadata.annotations, current)
        original = result.before.get("original")
        layer = None
        if original is not None:
            layer = FloorLayer(
                int(original),
                str(result.before.get("floor_for", self.purpose)),
                tuple(result.before.get("below", ())),
            )
        self._patch(ctx, previous, layer)
        return self.undone(result, {"min_replicas": previous})

    def _leave_stack(
        self, ctx: ActionContext, result: ActionResult, notes: dict[str, str] | None, current: int
    ) -> ActionResult:
        """Undo a floor that another purpose's floor now stands on: drop this layer from the
        stack, so the one above releases to what was there before this one; ``minReplicas``
        stays. ConflictError when this floor is not in the stack (a human changed it)."""
        ours = int(result.after["min_replicas"])
        conflict = ConflictError(
            f"hpa {self.namespace}/{self.hpa}: minReplicas is {current} since ooda set"
            f" {ours}; someone else changed it, so it is left alone"
        )
        try:
            top = ooda_floor(notes, current, self.target)
            below = list(floors_below(notes, self.target))
        except MalformedAnnotationError:
            raise conflict from None
        mine = next(
            (i for i, x in enumerate(below) if x["for"] == self.purpose and x["min"] == ours),
            None,
        )
        if top is None or mine is None:
            raise conflict
        restored = below[mine]["original"]
        if mine == 0:
            top = restored
        else:
            below[mine - 1] = {**below[mine - 1], "original": restored}
        del below[mine]
        holder = floor_purpose(notes)
        self._patch(ctx, current, FloorLayer(top, holder, tuple(below)))
        return self.undone(result, {"min_replicas": current, "left_stack": True})

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
        wanted = int(result.after["min_replicas"])
        if result.after.get("capped_at_max") and not self.is_scale_in(result):
            not_yet = self.healthy(result, window)
            if not_yet is None:
                return Outcome(Verdict.HEALED, "floor at the HPA's maximum, its pods Ready")
            if no_room(window, wanted) is not None:
                return scaled_outcome(window, not_yet, wanted)
            if window.now >= window.deadline:
                return Outcome(Verdict.FAILED, f"not healed by the deadline: {not_yet}")
            return Outcome(Verdict.PENDING, not_yet)
        if not self.is_scale_in(result):
            return scaled_outcome(window, self.healthy(result, window), wanted)
        ok = slo_minutes(window)
        if ok and not all(ok):
            return Outcome(Verdict.FAILED, "SLO breached after scaling in")
        if len(ok) >= 2 * window.healthy_minutes:
            return Outcome(Verdict.HEALED, f"SLO held for {len(ok)} minutes after scaling in")
        if window.now >= window.deadline:
            return Outcome(Verdict.HEALED, "SLO held until the deadline after scaling in")
        return Outcome(Verdict.PENDING, "watching the SLO after scaling in")
