"""Verify: did the action heal what it was meant to heal, before its deadline?

Each action is judged on the minutes *after* it was applied. Scaling out and restarting must
bring the service back inside its SLO (and the capacity must actually be there); lowering a
raised minimum must not push the service out of it, and is undone at once if it does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

import pandas as pd

from actuators import Action, ActionResult
from ooda._observe import ServiceView, within_slo
from ooda._settings import OodaSettings


class Verdict(Enum):
    """State of a pending verification."""

    PENDING = "pending"
    HEALED = "healed"
    FAILED = "failed"


@dataclass(frozen=True)
class PendingAction:
    """An applied action waiting for its verdict."""

    action: Action
    result: ActionResult
    applied_at: datetime
    deadline: datetime

    @property
    def is_scale_in(self) -> bool:
        """Whether this action lowered an HPA minimum."""
        after = self.result.after.get("min_replicas")
        before = self.result.before.get("min_replicas")
        return after is not None and before is not None and after < before


def judge(
    pending: PendingAction, view: ServiceView, now: datetime, settings: OodaSettings
) -> tuple[Verdict, str]:
    """The verdict on ``pending`` given the service's metrics up to ``now``, with a reason."""
    slo = settings.slo
    after = view.history[view.history["timestamp"] > pd.Timestamp(pending.applied_at)]
    after = after.dropna(subset=["p95_latency_ms", "error_rate"])
    ok = [within_slo(row, slo.p95_ms, slo.max_error_rate) for _, row in after.iterrows()]
    if pending.is_scale_in:
        if ok and not all(ok):
            return Verdict.FAILED, "SLO breached after scaling in"
        if len(ok) >= settings.verify.healthy_minutes * 2 and all(ok):
            return Verdict.HEALED, f"SLO held for {len(ok)} minutes after scaling in"
    else:
        n = settings.verify.healthy_minutes
        tail = after.tail(n)
        capacity_ok = True
        wanted = pending.result.after.get("min_replicas")
        if wanted is not None and not tail.empty:
            capacity_ok = bool(tail["ready_pods"].iloc[-1] >= wanted)
        if pending.action.kind == "restart_pod" and not tail.empty:
            capacity_ok = bool(tail["ready_pods"].iloc[-1] >= tail["desired_pods"].iloc[-1])
        if len(ok) >= n and all(ok[-n:]) and capacity_ok:
            return Verdict.HEALED, f"SLO met for the last {n} minutes and capacity ready"
    if now >= pending.deadline:
        return Verdict.FAILED, f"not healed by the deadline {pending.deadline.isoformat()}"
    return Verdict.PENDING, "waiting"
