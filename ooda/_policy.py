"""Decide: turn what was observed into at most one action per service and tick.

Two rules for now, each with its evidence:

* an anomalous service with a pod in CrashLoopBackOff -> restart that pod;
* the forecast's upper quantile over the next 30 minutes needs more pods than the HPA may go
  down to -> raise the HPA's ``minReplicas`` ahead of the load (the reactive HPA adds a few
  pods a minute; the plan jumps to what the forecast needs). A raised minimum is lowered only
  after the *observed* load has stayed low for a while: never scale in on a forecast alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from actuators import Action, RestartPod, SetHpaMinReplicas
from ooda._observe import ServiceView
from ooda._settings import OodaSettings


@dataclass(frozen=True)
class Decision:
    """An action the policy wants, with the evidence it rests on."""

    service: str
    action: Action
    evidence: dict[str, Any]


def crashlooping_pods(pods: list[Any]) -> list[tuple[str, int]]:
    """Names and restart counts of the pods whose container waits in CrashLoopBackOff."""
    found = []
    for pod in pods:
        for status in pod.status.container_statuses or []:
            waiting = status.state.waiting if status.state else None
            if waiting is not None and waiting.reason == "CrashLoopBackOff":
                found.append((pod.metadata.name, int(status.restart_count or 0)))
                break
    return sorted(found, key=lambda item: -item[1])


def per_pod_capacity(history: pd.DataFrame) -> float | None:
    """Requests per second one pod serves at 100 % CPU, from recent unsaturated minutes."""
    rows = history.dropna(subset=["request_rate", "ready_pods", "cpu_utilisation"])
    rows = rows[(rows["cpu_utilisation"] > 0.05) & (rows["cpu_utilisation"] < 0.9)]
    rows = rows[rows["ready_pods"] > 0]
    if len(rows) < 5:
        return None
    capacity = rows["request_rate"] / rows["ready_pods"] / rows["cpu_utilisation"]
    value = float(capacity.median())
    return value if math.isfinite(value) and value > 0 else None


def hpa_target_utilisation(hpa: Any, default: float) -> float:
    """The CPU utilisation target of an autoscaling/v2 HPA, as a fraction."""
    for metric in hpa.spec.metrics or []:
        resource = getattr(metric, "resource", None)
        if resource is not None and resource.name == "cpu" and resource.target is not None:
            value = resource.target.average_utilization
            if value:
                return float(value) / 100.0
    return default


@dataclass
class Policy:
    """Decision rules; remembers which HPA minimums it raised so it can lower them again."""

    settings: OodaSettings
    raised_from: dict[str, int] = field(default_factory=dict)
    low_since: dict[str, datetime] = field(default_factory=dict)

    def restart_crashlooping(
        self, view: ServiceView, score: float, pods: list[Any]
    ) -> Decision | None:
        """Restart the worst crash-looping pod of an anomalous service."""
        if score < self.settings.policy.anomaly_threshold:
            return None
        looping = crashlooping_pods(pods)
        if not looping:
            return None
        pod, restarts = looping[0]
        latest = view.latest
        evidence = {
            "anomaly_score": round(score, 4),
            "pod": pod,
            "restarts": restarts,
            "crashlooping_pods": [name for name, _ in looping],
            "error_rate": float(latest["error_rate"]),
            "ready_pods": float(latest["ready_pods"]),
        }
        action = RestartPod(
            self.settings.namespace,
            view.service,
            reason=f"anomaly score {score:.2f}; {pod} in CrashLoopBackOff, {restarts} restarts",
            pod=pod,
        )
        return Decision(view.service, action, evidence)

    def plan_capacity(
        self, view: ServiceView, forecast: pd.DataFrame | None, hpa: Any, now: datetime
    ) -> Decision | None:
        """Raise the HPA minimum ahead of forecast load, or lower it after load has fallen."""
        cfg = self.settings.policy
        capacity = per_pod_capacity(view.history)
        if capacity is None:
            return None
        target = hpa_target_utilisation(hpa, cfg.default_target_utilisation)
        per_pod = capacity * target
        current_min = int(hpa.spec.min_replicas or 1)
        replicas = int(hpa.status.current_replicas or 0) if hpa.status else 0
        upper = None
        if forecast is not None and not forecast.empty:
            ahead = forecast[
                (forecast["service"] == view.service)
                & (forecast["timestamp"] > pd.Timestamp(now + cfg.lead_min))
                & (forecast["timestamp"] <= pd.Timestamp(now + cfg.lead_max))
            ]
            if not ahead.empty:
                upper = float(ahead[cfg.forecast_quantile].max())
        evidence: dict[str, Any] = {
            "per_pod_capacity_rps": round(capacity, 2),
            "target_utilisation": target,
            "min_replicas": current_min,
            "current_replicas": replicas,
        }
        if upper is not None:
            needed = max(1, math.ceil(upper / per_pod))
            evidence |= {"forecast_upper_rps": round(upper, 2), "needed_replicas": needed}
            if needed > current_min and needed > replicas:
                self.raised_from.setdefault(view.service, current_min)
                self.low_since.pop(view.service, None)
                action = SetHpaMinReplicas(
                    self.settings.namespace,
                    view.service,
                    reason=f"forecast {cfg.forecast_quantile} {upper:.0f} rps needs {needed} pods",
                    hpa=view.service,
                    min_replicas=min(needed, int(hpa.spec.max_replicas)),
                )
                return Decision(view.service, action, evidence)
        return self._maybe_lower(view, upper, per_pod, current_min, now, evidence)

    def _maybe_lower(
        self,
        view: ServiceView,
        upper: float | None,
        per_pod: float,
        current_min: int,
        now: datetime,
        evidence: dict[str, Any],
    ) -> Decision | None:
        original = self.raised_from.get(view.service)
        if original is None or current_min <= original:
            return None
        recent = view.history[
            view.history["timestamp"] > pd.Timestamp(now - self.settings.policy.scale_in_after)
        ]
        observed = float(recent["request_rate"].max()) if not recent.empty else math.nan
        if not math.isfinite(observed):
            return None
        needed_obs = max(1, math.ceil(observed / per_pod))
        needed_fc = math.ceil(upper / per_pod) if upper is not None else needed_obs
        wanted = max(original, needed_obs, needed_fc)
        if wanted >= current_min:
            self.low_since.pop(view.service, None)
            return None
        since = self.low_since.setdefault(view.service, now)
        if now - since < self.settings.policy.scale_in_after:
            return None
        self.low_since.pop(view.service, None)
        if wanted <= original:
            self.raised_from.pop(view.service, None)
        evidence |= {"observed_max_rps": round(observed, 2), "needed_replicas": wanted}
        action = SetHpaMinReplicas(
            self.settings.namespace,
            view.service,
            reason=f"observed load {observed:.0f} rps has needed only {needed_obs} pods for "
            f"{self.settings.policy.scale_in_after}",
            hpa=view.service,
            min_replicas=wanted,
        )
        return Decision(view.service, action, evidence)
