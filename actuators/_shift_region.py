"""Move users between regions by the weights of a public name's Route 53 records.

A multi-region estate answers its public name with one weighted record per region (same name
and type, ``SetIdentifier`` the region). Failing over is moving the weight from the sick
region to the standby; failing back is moving it home, in steps. The change goes through
boto3's ``change_resource_record_sets`` (with boto3's own retries and timeouts) as one atomic
batch of ``UPSERT``s that rewrite each record as read, only its ``Weight`` changed, with
ooda's audit entry in the batch's comment (a record carries no annotation). Resolvers move
over the records' TTL.

The action refuses to give more weight to a region the decision found unhealthy and a split
whose weights sum to nothing (Route 53 would then answer every record alike, the sick region
too). Undo puts the weights back unless someone moved them since. It is not disruptive: no
capacity is taken away, and it is keyed on the public name (``service``), one failover of a
name at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actuators._base import Action, ActionResult, register_action
from actuators._context import ActionContext
from actuators._errors import (
    ConflictError,
    GuardRejectedError,
    PermanentActuatorError,
    call_cloud,
)
from contracts import ActionKind

#: Route 53's largest ``Weight``.
MAX_ROUTE53_WEIGHT = 255


def _absolute(name: str) -> str:
    return name if name.endswith(".") else name + "."


@register_action
@dataclass(frozen=True)
class ShiftRegionTraffic(Action):
    """Set the weights of a public name's weighted records, one per region.

    ``namespace`` is the hosted zone's name and ``service`` the public name (the workload the
    breaker and cooldown are keyed on).
    """

    hosted_zone_id: str = ""
    record_type: str = "A"
    weights: tuple[tuple[str, int], ...] = ()
    """(region, i.e. ``SetIdentifier``, new weight) pairs; regions not named keep theirs."""
    unhealthy: tuple[str, ...] = ()
    """Regions found unhealthy: none of them may be given more weight."""

    kind = ActionKind.SHIFT_REGION_TRAFFIC

    @property
    def target(self) -> str:
        return f"route53/{self.hosted_zone_id.rsplit('/', 1)[-1]}/{_absolute(self.service)}"

    def _client(self, ctx: ActionContext) -> Any:
        if ctx.cloud.route53 is None:
            raise PermanentActuatorError("shifting traffic needs a Route 53 client, got None")
        return ctx.cloud.route53

    def records(self, ctx: ActionContext) -> dict[str, dict[str, Any]]:
        """Region -> the weighted record of the public name, as Route 53 answers it."""
        client, name = self._client(ctx), _absolute(self.service)
        answer = call_cloud(
            lambda: client.list_resource_record_sets(
                HostedZoneId=self.hosted_zone_id,
                StartRecordName=name,
                StartRecordType=self.record_type,
            ),
            f"read the records of {name}",
        )
        found: dict[str, dict[str, Any]] = {}
        for record in answer.get("ResourceRecordSets") or []:
            if _absolute(str(record.get("Name", ""))) != name:
                continue
            if record.get("Type") != self.record_type or "Weight" not in record:
                continue
            found[str(record["SetIdentifier"])] = record
        if not found:
            raise PermanentActuatorError(
                f"{name} has no weighted {self.record_type} records in {self.hosted_zone_id}"
            )
        return found

    def _validate(self) -> None:
        if not self.hosted_zone_id or not self.service or not self.weights:
            raise PermanentActuatorError(
                "shifting region traffic needs a hosted zone, a name and weights, got"
                f" {self.hosted_zone_id!r}, {self.service!r} and {self.weights!r}"
            )
        for region, weight in self.weights:
            if isinstance(weight, bool) or not isinstance(weight, int):
                raise PermanentActuatorError(f"weight of {region!r} must be an int, got {weight!r}")
            if not 0 <= weight <= MAX_ROUTE53_WEIGHT:
                raise PermanentActuatorError(
                    f"weight of {region!r} must be within 0..{MAX_ROUTE53_WEIGHT}, got {weight}"
                )

    def _write(
        self, ctx: ActionContext, records: dict[str, dict[str, Any]], weights: dict[str, int]
    ) -> None:
        changes = [
            {"Action": "UPSERT", "ResourceRecordSet": {**records[r], "Weight": w}}
            for r, w in sorted(weights.items())
            if records[r]["Weight"] != w
        ]
        if not changes:
            return
        client = self._client(ctx)
        comment = f"ooda {self.kind}, audit entry {ctx.audit_ref or 'none'}: {self.reason}"
        call_cloud(
            lambda: client.change_resource_record_sets(
                HostedZoneId=self.hosted_zone_id,
                ChangeBatch={"Comment": comment[:256], "Changes": changes},
            ),
            f"set weights {weights} on {_absolute(self.service)}",
        )

    def apply(self, ctx: ActionContext) -> ActionResult:
        self._validate()
        records = self.records(ctx)
        before = {r: int(rec["Weight"]) for r, rec in records.items()}
        unknown = sorted({r for r, _ in self.weights} - before.keys())
        if unknown:
            raise PermanentActuatorError(
                f"{_absolute(self.service)} has no weighted records for regions {unknown};"
                f" it has {sorted(before)}"
            )
        after = {**before, **dict(self.weights)}
        raised = sorted(r for r in self.unhealthy if after.get(r, 0) > before.get(r, 0))
        if raised:
            raise GuardRejectedError(
                self.kind, self.target, f"would send more users to unhealthy regions {raised}"
            )
        if sum(after.values()) <= 0:
            raise GuardRejectedError(
                self.kind,
                self.target,
                f"weights {after} sum to 0: Route 53 would answer every region alike",
            )
        changed = after != before
        if changed and not ctx.dry_run:
            self._write(ctx, records, after)
        return ActionResult(
            self.kind,
            self.target,
            ctx.dry_run,
            {"weights": before},
            {"weights": after},
            undoable=changed,
        )

    def undo(self, ctx: ActionContext, result: ActionResult) -> ActionResult | None:
        """Put the weights back, unless they moved since ooda set them."""
        if result.dry_run or not result.undoable:
            return None
        records = self.records(ctx)
        now = {r: int(rec["Weight"]) for r, rec in records.items()}
        ours = result.after["weights"]
        if now != ours:
            raise ConflictError(
                f"{_absolute(self.service)} has weights {now} since ooda set {ours};"
                " someone else moved them, so they are left alone"
            )
        previous = dict(result.before["weights"])
        self._write(ctx, records, previous)
        return self.undone(result, {"weights": previous})
