"""Add Kafka consumers: scale a consumer Deployment, never past the topic's partition count.

A consumer group gives each partition to one consumer, so a consumer beyond the partition count
sits idle while it still costs a pod and a rebalance: the count is capped at the partitions,
and the action refuses when the group already has a consumer per partition. Where an HPA scales
the consumers, setting the replicas would be undone at its next sync, so the HPA's
``minReplicas`` is raised instead, exactly as :class:`~actuators.SetHpaMinReplicas` raises it
(with its annotations, so the raised floor stays recognisably ooda's).
"""

from __future__ import annotations

from dataclasses import dataclass

from actuators._base import ActionResult, register_action
from actuators._context import ActionContext
from actuators._errors import GuardRejectedError, PermanentActuatorError
from actuators._scale_deployment import ScaleDeployment
from actuators._set_hpa_min import SetHpaMinReplicas
from contracts import ActionKind


@dataclass(frozen=True)
class _ConsumerFloor(SetHpaMinReplicas):
    """:class:`SetHpaMinReplicas` whose annotations name ``scale_consumers`` (not registered:
    it is a part of :class:`ScaleConsumers`, not an action of its own)."""

    kind = ActionKind.SCALE_CONSUMERS
    purpose: str = "scale_consumers"


@register_action
@dataclass(frozen=True)
class ScaleConsumers(ScaleDeployment):
    """Raise a consumer Deployment to ``replicas`` consumers, at most ``partitions``."""

    partitions: int = 0
    """Partition count of the topic the group consumes: consumers past it would sit idle."""

    kind = ActionKind.SCALE_CONSUMERS

    def _floor(self, hpa: str, replicas: int) -> _ConsumerFloor:
        return _ConsumerFloor(
            self.namespace, self.service, self.reason, hpa=hpa, min_replicas=replicas
        )

    def apply(self, ctx: ActionContext) -> ActionResult:
        if self.partitions < 1:
            raise PermanentActuatorError(f"partitions must be >= 1, got {self.partitions}")
        if not 1 <= self.replicas <= self.max_replicas:
            raise PermanentActuatorError(
                f"replicas must be within 1..{self.max_replicas}, got {self.replicas}"
            )
        current = self._replicas(ctx)
        if current >= self.partitions:
            raise GuardRejectedError(
                self.kind,
                self.target,
                f"{current} consumers already for {self.partitions} partitions;"
                " another one would sit idle",
            )
        wanted = min(self.replicas, self.partitions)
        if wanted <= current:
            raise PermanentActuatorError(
                f"scale_consumers adds consumers: asked for {self.replicas}, {current} run already"
            )
        capped = wanted < self.replicas
        hpa = self._hpa(ctx)
        if hpa is None:
            result = self._scale_to(ctx, wanted, current)
            return ActionResult(
                self.kind,
                self.target,
                ctx.dry_run,
                {**result.before, "hpa": None},
                {**result.after, "capped_at_partitions": capped},
                result.undoable,
            )
        name, maximum = hpa.metadata.name, int(hpa.spec.max_replicas)
        if maximum <= current:
            raise GuardRejectedError(
                self.kind,
                self.target,
                f"HPA {name!r} already runs its maxReplicas ({maximum}) consumers; raise its"
                " maximum first",
            )
        inner = self._floor(name, wanted).apply(ctx)
        before = {
            "replicas": current,
            "hpa": name,
            "min_replicas": inner.before["min_replicas"],
            "original": inner.before["original"],
        }
        after = {
            "replicas": inner.after["min_replicas"],
            "min_replicas": inner.after["min_replicas"],
            "capped_at_partitions": capped,
            "capped_at_max": inner.after["capped_at_max"],
        }
        return ActionResult(self.kind, self.target, ctx.dry_run, before, after, inner.undoable)

    def undo(self, ctx: ActionContext, result: ActionResult) -> ActionResult | None:
        if result.dry_run or not result.undoable:
            return None
        hpa = result.before.get("hpa")
        if hpa is None:
            return super().undo(ctx, result)
        floor = self._floor(str(hpa), int(result.after["min_replicas"]))
        inner = ActionResult(
            self.kind,
            floor.target,
            False,
            {"min_replicas": result.before["min_replicas"], "original": result.before["original"]},
            {"min_replicas": result.after["min_replicas"]},
            True,
        )
        floor.undo(ctx, inner)  # ConflictError when the floor moved since
        return self.undone(result, {"min_replicas": result.before["min_replicas"], "hpa": hpa})
