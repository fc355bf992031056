"""Traffic surge: raise the HPA's floor ahead of forecast load, lower it after load fell.

The reactive HPA adds a few pods a minute; the forecast's upper quantile over the next half
hour says how many pods the load will need, and the floor jumps there. A raised floor is
lowered only after the *observed* load has stayed low for ``scale_in_after`` (never on a
forecast alone), and only while it is still the floor ooda set (its annotations say so): a
floor a human raised is theirs.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from actuators import CHANGED_AT, Action, SetHpaMinReplicas, ooda_floor
from contracts import ScenarioId
from ooda._records import Diagnosis, Snapshot
from ooda.runbooks._base import Runbook, register_runbook


def per_pod_capacity(history: pd.DataFrame) -> float | None:
    """Requests per second one pod serves at 100 % CPU, from recent unsaturated minutes."""
    rate = history["request_rate"].to_numpy(dtype=float)
    ready = history["ready_pods"].to_numpy(dtype=float)
    cpu = history["cpu_utilisation"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        usable = (cpu > 0.05) & (cpu < 0.9) & (ready > 0) & np.isfinite(rate)
    if usable.sum() < 5:
        return None
    value = float(np.median(rate[usable] / ready[usable] / cpu[usable]))
    return value if math.isfinite(value) and value > 0 else None


@register_runbook
class TrafficSurge(Runbook):
    """Predictive scale-out through the HPA's ``minReplicas``, and the way back."""

    name = "traffic_surge"
    scenarios = (ScenarioId.TRAFFIC_SURGE,)
    priority = 50
    deadline = timedelta(minutes=10)

    def _forecast_upper(self, snapshot: Snapshot, service: str) -> float | None:
        if snapshot.forecast is None:
            return None
        cfg = self.settings.policy
        frame = snapshot.forecast.frame
        ahead = frame[
            (frame["service"] == service)
            & (frame["timestamp"] > pd.Timestamp(snapshot.at + cfg.lead_min))
            & (frame["timestamp"] <= pd.Timestamp(snapshot.at + cfg.lead_max))
        ]
        if ahead.empty:
            return None
        return float(ahead[cfg.forecast_quantile].max())

    def matches(self, snapshot: Snapshot, service: str) -> Diagnosis | None:
        workload = snapshot.workloads[service]
        hpa = workload.hpa
        capacity = per_pod_capacity(snapshot.views[service].history)
        if hpa is None or capacity is None:
            return None
        cfg = self.settings.policy
        per_pod = capacity * (hpa.target_cpu_utilisation or cfg.default_target_utilisation)
        upper = self._forecast_upper(snapshot, service)
        evidence: dict[str, object] = {
            "per_pod_capacity_rps": round(capacity, 2),
            "min_replicas": hpa.min_replicas,
            "current_replicas": hpa.current_replicas,
            "hpa": hpa.name,
        }
        if upper is not None:
            needed = max(1, math.ceil(upper / per_pod))
            evidence |= {"forecast_upper_rps": round(upper, 2), "needed_replicas": needed}
            running = max(hpa.min_replicas, hpa.current_replicas)
            if upper >= (1 + cfg.surge_margin) * running * per_pod and needed > running:
                evidence |= {"direction": "out", "set_min": min(needed, hpa.max_replicas)}
                return self._diagnosis(snapshot, service, 0.8, evidence)
        wanted = self._scale_in_floor(snapshot, service, per_pod, upper)
        if wanted is None:
            return None
        evidence |= {"direction": "in", "set_min": wanted}
        return self._diagnosis(snapshot, service, 0.9, evidence)

    def _scale_in_floor(
        self, snapshot: Snapshot, service: str, per_pod: float, upper: float | None
    ) -> int | None:
        """The floor to go back to, once load has been low long enough, or None."""
        hpa = snapshot.workloads[service].hpa
        assert hpa is not None
        floor = ooda_floor(hpa.annotations, hpa.min_replicas)
        if floor is None or floor >= hpa.min_replicas:
            return None
        wait = self.settings.policy.scale_in_after
        try:
            raised_at = datetime.fromisoformat(hpa.annotations[CHANGED_AT])
        except (KeyError, ValueError):
            return None
        if snapshot.at - raised_at < wait:
            return None
        history = snapshot.views[service].history
        recent = history[history["timestamp"] > pd.Timestamp(snapshot.at - wait)]
        observed = float(recent["request_rate"].max()) if not recent.empty else math.nan
        if not math.isfinite(observed):
            return None
        needed = max(1, math.ceil(observed / per_pod))
        if upper is not None:
            needed = max(needed, math.ceil(upper / per_pod))
        wanted = max(floor, needed)
        return wanted if wanted < hpa.min_replicas else None

    def _diagnosis(
        self, snapshot: Snapshot, service: str, confidence: float, evidence: dict[str, object]
    ) -> Diagnosis:
        return Diagnosis(
            scenario=ScenarioId.TRAFFIC_SURGE,
            region=snapshot.region,
            service=service,
            target=snapshot.workloads[service].workload,
            confidence=confidence,
            evidence=evidence,
            runbook=self.name,
        )

    def propose(self, diagnosis: Diagnosis, snapshot: Snapshot) -> Action | None:
        ev = diagnosis.evidence
        out = ev["direction"] == "out"
        if out:
            why = f"forecast q90 {ev['forecast_upper_rps']:.0f} rps needs {ev['needed_replicas']}"
        else:
            why = f"observed load needs only {ev['set_min']} pods"
        return SetHpaMinReplicas(
            snapshot.namespace,
            diagnosis.service,
            reason=f"{why} pods",
            hpa=str(ev["hpa"]),
            min_replicas=int(str(ev["set_min"])),
        )
