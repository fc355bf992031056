"""The status quo a user would pick instead of ooda: alert-triggered playbooks.

The community's standard alert rules fire the same actions ooda has, the way Robusta-style
automation wires them: kube-prometheus' ``KubePodCrashLooping`` (CrashLoopBackOff seen for
15 minutes) restarts the pod; a latency alert (p95 over the SLO for 5 minutes, the usual
``for:``) raises the HPA floor by half. An alert that keeps firing is repeated after
Alertmanager's ``repeat_interval`` (4 h); a *new* alert (a replacement pod has a new name)
fires on its own. No forecast, no verification, no breaker: that is the baseline's point.
Rules are evaluated every minute on the same ports the loop uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import pandas as pd

from actuators import (
    ActionContext,
    ActuatorError,
    RestartPod,
    SetHpaMinReplicas,
)
from contracts import Clock, KubeClients, MetricSource
from ooda._cluster_state import read_workloads
from ooda._journal import LoopEvent
from ooda._observe import clean_metrics, service_views, within_slo
from ooda._settings import OodaSettings


@dataclass(frozen=True)
class AlertRule:
    """One alert: its name, how long its condition must hold, how often it may repeat."""

    name: str
    for_: timedelta
    repeat_interval: timedelta = timedelta(hours=4)


CRASH_LOOPING = AlertRule("KubePodCrashLooping", timedelta(minutes=15))
HIGH_LATENCY = AlertRule("HighLatencyP95", timedelta(minutes=5))


@dataclass
class ReactivePlaybooks:
    """Alert rules evaluated every minute; a firing alert runs its playbook once."""

    settings: OodaSettings
    clock: Clock
    source: MetricSource
    kube: KubeClients
    context: ActionContext
    events: list[LoopEvent] = field(default_factory=list)
    _pending: dict[tuple[str, str], datetime] = field(default_factory=dict)
    _fired: dict[tuple[str, str], datetime] = field(default_factory=dict)
    _last_eval: datetime | None = None

    def tick(self) -> None:
        """Evaluate the rules if a minute has passed (Prometheus' evaluation interval)."""
        now = self.clock.now()
        if self._last_eval is not None and now - self._last_eval < timedelta(minutes=1):
            return
        self._last_eval = now
        try:
            active = self._conditions(now)
        except Exception:  # no data, no alerts: Prometheus would say the same
            return
        for key in list(self._pending):
            if key not in active:
                del self._pending[key]
        for key, playbook in active.items():
            since = self._pending.setdefault(key, now)
            rule = CRASH_LOOPING if key[0] == CRASH_LOOPING.name else HIGH_LATENCY
            fired = self._fired.get(key)
            if now - since < rule.for_ or (fired and now - fired < rule.repeat_interval):
                continue
            self._fired[key] = now
            service = key[1].split("/")[0]
            self.events.append(LoopEvent(now, "alert", service, f"{rule.name} {key[1]}"))
            self._run(now, service, playbook)

    def _conditions(self, now: datetime) -> dict[tuple[str, str], RestartPod | SetHpaMinReplicas]:
        services = list(self.settings.services)
        ns = self.settings.namespace
        raw = self.source.query_range(now - timedelta(minutes=10), now, timedelta(minutes=1))
        metrics, _ = clean_metrics(raw, now)
        views = service_views(metrics, services, now, self.settings.loop.max_staleness)
        workloads = read_workloads(self.kube, ns, services)
        active: dict[tuple[str, str], RestartPod | SetHpaMinReplicas] = {}
        for service, workload in workloads.items():
            slo = self.settings.slo_for(service)
            for pod in workload.crashlooping:
                key = (CRASH_LOOPING.name, f"{service}/{pod.name}")
                active[key] = RestartPod(ns, service, reason=CRASH_LOOPING.name, pod=pod.name)
            view = views.get(service)
            hpa = workload.hpa
            if view is None or not view.usable or hpa is None:
                continue
            latest = view.latest
            slow = not pd.isna(latest["p95_latency_ms"]) and not within_slo(
                latest, slo.p95_ms, math.inf
            )
            if slow:
                wanted = min(hpa.max_replicas, math.ceil(max(hpa.current_replicas, 1) * 1.5))
                if wanted > hpa.min_replicas:
                    active[(HIGH_LATENCY.name, service)] = SetHpaMinReplicas(
                        ns, service, reason=HIGH_LATENCY.name, hpa=hpa.name, min_replicas=wanted
                    )
        return active

    def _run(self, now: datetime, service: str, action: RestartPod | SetHpaMinReplicas) -> None:
        try:
            action.apply(replace(self.context, audit_ref="reactive"))
        except ActuatorError as exc:
            self.events.append(LoopEvent(now, "action-error", service, str(exc)))
            return
        self.events.append(LoopEvent(now, "action", service, f"{action.kind} {action.target}"))
