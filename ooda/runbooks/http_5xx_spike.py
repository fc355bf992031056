"""Sudden 5xx spike: roll back the rollout that brought it.

The service's ``http_requests_total{code=~"5.."}`` share has been far over its objective for
``spike_minutes`` in a row, it was low before the current revision was rolled out, it rose
within ``rollout_error_lag`` of the rollout (as the new pods took the traffic), it is not
subsiding, and that rollout is recent: the new build is the cause and the previous revision the heal
(``RollbackDeployment``, or ``ArgoRollback`` where an Argo CD Application deploys it; the
action refuses a Deployment without history). Errors that began
before the rollout or long after it (a callee failing, a lossy node), or with no recent
rollout at all, are not this runbook's; nor are errors while a callee (``OodaSettings.calls``)
crash-loops or fails requests itself, even when a benign rollout of the caller happens to
coincide with them. While the service's load surges (``traffic_surge.surging``), errors are
the load's first: the surge runbook adds capacity, and a rollback (pods replaced at the peak)
would add to them; once the surge is no longer new, errors that persist are judged as above.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from actuators import Action
from contracts import ScenarioId
from ooda._records import Diagnosis, Finding, Snapshot
from ooda.runbooks._base import Runbook, register_runbook, rollback, rolled_back
from ooda.runbooks.traffic_surge import surging

if TYPE_CHECKING:
    from ooda._settings import OodaSettings


def spike_level(settings: OodaSettings, service: str) -> float:
    """The error share a 5xx spike of ``service`` stands above: ``spike_error_rate``, or
    ``spike_error_factor`` x its objective where that is higher."""
    policy = settings.policy
    return max(
        policy.spike_error_rate,
        policy.spike_error_factor * settings.slo_for(service).max_error_rate,
    )


def callee_failing(snapshot: Snapshot, settings: OodaSettings, service: str, spike: float) -> bool:
    """Whether a service ``service`` calls crash-loops or fails over half the spike level now:
    its errors start further down the call graph."""
    for callee in settings.calls.get(service, ()):
        if callee in snapshot.workloads and snapshot.crashlooping(callee):
            return True
        view = snapshot.views.get(callee)
        rows = view.history if view is not None else pd.DataFrame()
        if len(rows) and float(rows["error_rate"].iloc[-1]) > spike / 2:
            return True
    return False


@register_runbook
class Http5xxSpike(Runbook):
    """Roll back a fresh rollout whose pods fail requests."""

    name = "http_5xx_spike"
    scenarios = (ScenarioId.HTTP_5XX_SPIKE,)
    priority = 15
    follows_root_cause = True
    deadline = timedelta(minutes=8)

    def matches(self, snapshot: Snapshot, service: str) -> Diagnosis | None:
        workload = snapshot.workloads[service]
        policy = self.settings.policy
        if (
            workload.revision_at is None
            or workload.revision <= 1
            or snapshot.at - workload.revision_at > policy.rollout_window
        ):
            return None
        history = snapshot.views[service].history
        if surging(history, policy):
            return None  # errors under a surge are the load's until capacity has caught up
        spike = spike_level(self.settings, service)
        recent = history.tail(policy.spike_minutes)["error_rate"].to_numpy(dtype=float)
        if len(recent) < policy.spike_minutes or not (recent > spike).all():
            return None
        peak = float(np.nanmax(history.tail(policy.spike_minutes + 2)["error_rate"]))
        if recent[-1] < 0.8 * peak:
            return None  # subsiding: something else is already healing it
        before = history[history["timestamp"] <= pd.Timestamp(workload.revision_at)]
        baseline = before.tail(10)["error_rate"].dropna()
        if baseline.empty or float(baseline.median()) > spike / 2:
            return None  # the errors were there before the rollout: not its doing
        after = history[history["timestamp"] > pd.Timestamp(workload.revision_at)]
        began = after[after["error_rate"] > spike / 2]["timestamp"]
        if began.empty or began.iloc[0] - workload.revision_at > policy.rollout_error_lag:
            return None  # errors that began long after the rollout are not its doing
        current = [p for p in workload.pods if p.template_hash == workload.current_template]
        if not current:
            return None
        if callee_failing(snapshot, self.settings, service, spike):
            return None  # a callee's crash loop or errors, not the rollout
        return self.diagnose(
            snapshot,
            service,
            0.9,
            {
                "error_rate": round(float(recent[-1]), 4),
                "error_rate_before": round(float(baseline.median()), 4),
                "revision": workload.revision,
                "rolled_out_at": workload.revision_at.isoformat(),
                "pods_on_revision": len(current),
            },
        )

    def follow_up(self, diagnosis: Diagnosis, action: Action, snapshot: Snapshot) -> Finding:
        rate = float(diagnosis.evidence["error_rate"])
        return rolled_back(snapshot.workloads[diagnosis.service], f"failed {rate:.1%} of requests")

    def propose(self, diagnosis: Diagnosis, snapshot: Snapshot) -> Action | None:
        workload = snapshot.workloads[diagnosis.service]
        evidence = diagnosis.evidence
        return rollback(
            workload,
            f"5xx at {evidence['error_rate']:.1%} (was {evidence['error_rate_before']:.1%})"
            f" since revision {evidence['revision']} rolled out at {evidence['rolled_out_at']}",
        )
