"""The control loop: observe -> orient -> decide -> act -> verify, once per tick.

Every tick reads the recent metrics, pushes the newest features to Feast's online store, asks
the Ray Serve endpoints for anomaly scores and (less often) a load forecast, judges the
actions still awaiting verification, and lets the policy propose at most one action per
service. Each proposal goes through the guard rails; every step lands in the audit log.
Nothing that goes wrong in one step (bad metrics, an endpoint down, an API error) stops the
loop: it logs why, leaves the affected services alone, and carries on.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import pandas as pd

from actuators import Action, ActuatorError, Guard, GuardRejectedError, KubeClients
from ooda._audit import AuditEntry, AuditLog
from ooda._errors import BadMetricsError, ScoringUnavailableError
from ooda._observe import ServiceView, service_views
from ooda._policy import Decision, Policy
from ooda._scoring import AnomalyScores, LoadForecast, ScoringClient
from ooda._settings import OodaSettings
from ooda._verify import PendingAction, Verdict, judge

log = logging.getLogger("ooda.loop")


class Clock(Protocol):
    """Where the loop takes time from (the lab's simulated clock or the wall clock)."""

    def now(self) -> datetime: ...


class MetricSource(Protocol):
    """The metric-source port."""

    def query_range(self, start: datetime, end: datetime, step: Any) -> pd.DataFrame: ...


class FeaturePusher(Protocol):
    """Pushes the newest features of the observed metrics to the online store."""

    def __call__(self, metrics: pd.DataFrame) -> None: ...


@dataclass(frozen=True)
class LoopEvent:
    """Something worth putting on a timeline: a detection, an action, a verdict."""

    at: datetime
    kind: str
    service: str
    detail: str


@dataclass
class LoopStats:
    """Counters of what the loop did, for scorecards and the weekly failed-heal budget."""

    ticks: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    healed: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    problems: Counter[str] = field(default_factory=Counter)


class ControlLoop:
    """One ooda control loop over a set of services in one namespace."""

    def __init__(
        self,
        settings: OodaSettings,
        *,
        clock: Clock,
        source: MetricSource,
        push_features: FeaturePusher,
        scoring: ScoringClient,
        kube: KubeClients,
        guard: Guard,
        audit: AuditLog,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.source = source
        self.push_features = push_features
        self.scoring = scoring
        self.kube = kube
        self.guard = guard
        self.audit = audit
        self.policy = Policy(settings)
        self.pending: list[PendingAction] = []
        self.events: list[LoopEvent] = []
        self.stats = LoopStats()
        self._forecast: LoadForecast | None = None
        self._forecast_at: datetime | None = None
        self._last_problem: dict[str, str] = {}

    # -- the tick ---------------------------------------------------------------------------
    def tick(self) -> None:
        """Run one pass of observe, orient, decide, act and verify."""
        now = self.clock.now()
        self.stats.ticks += 1
        views = self._observe(now)
        if views is None:
            return
        scores = self._scores(now, [s for s, v in views.items() if v.usable])
        forecast = self._refresh_forecast(now, [s for s, v in views.items() if v.usable])
        self._verify(views, now)
        for view in views.values():
            if not view.usable:
                continue
            decision = self._decide(view, scores, forecast, now)
            if decision is not None:
                self._act(decision, now)

    def _observe(self, now: datetime) -> dict[str, ServiceView] | None:
        cfg = self.settings.loop
        try:
            metrics = self.source.query_range(now - cfg.observe_window, now, pd.Timedelta("1min"))
            views = service_views(metrics, self.settings.services, now, cfg.max_staleness)
        except (BadMetricsError, OSError, ValueError, KeyError) as exc:
            self._problem("*", now, f"metric source failed: {exc}")
            return None
        for service, view in views.items():
            if view.usable:
                self._last_problem.pop(service, None)
            else:
                self._problem(service, now, "; ".join(view.problems))
        usable = metrics[metrics["service"].isin([s for s, v in views.items() if v.usable])]
        try:
            self.push_features(usable)
        except Exception as exc:  # the online store is not worth stopping the loop for
            self._problem("*", now, f"pushing features failed: {type(exc).__name__}: {exc}")
        return views

    def _scores(self, now: datetime, services: list[str]) -> AnomalyScores | None:
        if not services:
            return None
        try:
            scores = self.scoring.anomaly(services)
        except ScoringUnavailableError as exc:
            self._problem("*", now, f"anomaly scores unavailable: {exc}")
            return None
        for service, anomalous in scores.anomalous.items():
            if anomalous and not self._recently(service, "anomaly", now):
                self._event(now, "anomaly", service, f"score {scores.scores[service]:.2f}")
        return scores

    def _refresh_forecast(self, now: datetime, services: list[str]) -> LoadForecast | None:
        due = (
            self._forecast_at is None
            or now - self._forecast_at >= self.settings.loop.forecast_every
        )
        if due and services:
            try:
                self._forecast = self.scoring.forecast(services)
                self._forecast_at = now
            except ScoringUnavailableError as exc:
                self._problem("*", now, f"forecast unavailable: {exc}")
        if (
            self._forecast_at is not None
            and now - self._forecast_at > 5 * self.settings.loop.forecast_every
        ):
            return None  # too old to plan capacity on
        return self._forecast

    def _decide(
        self,
        view: ServiceView,
        scores: AnomalyScores | None,
        forecast: LoadForecast | None,
        now: datetime,
    ) -> Decision | None:
        ns = self.settings.namespace
        try:
            if scores is not None and view.service in scores.scores:
                score = scores.scores[view.service]
                if score >= self.settings.policy.anomaly_threshold:
                    pods = self.kube.core_v1.list_namespaced_pod(
                        ns, label_selector=f"app={view.service}"
                    ).items
                    decision = self.policy.restart_crashlooping(view, score, pods)
                    if decision is not None:
                        return decision
            hpa = self.kube.autoscaling_v2.read_namespaced_horizontal_pod_autoscaler(
                view.service, ns
            )
            frame = forecast.frame if forecast is not None else None
            return self.policy.plan_capacity(view, frame, hpa, now)
        except Exception as exc:  # an API error while deciding: skip this service this tick
            self._problem(view.service, now, f"reading cluster state failed: {exc}")
            return None

    def _audit(
        self,
        now: datetime,
        kind: str,
        action: Action,
        outcome: str,
        evidence: dict[str, Any],
        dry_run: bool = False,
    ) -> None:
        self.audit.write(
            AuditEntry(
                now, kind, action.service, action.kind, action.target, dry_run, outcome, evidence
            )
        )

    def _act(self, decision: Decision, now: datetime) -> None:
        action = decision.action
        dry_run = self.settings.dry_run or self.guard.settings.dry_run
        evidence = decision.evidence | {"reason": action.reason}
        try:
            self.guard.check(action, now)
        except GuardRejectedError as exc:
            self.stats.rejected[action.kind] += 1
            self._audit(now, "decision", action, f"rejected: {exc.reason}", evidence, dry_run)
            return
        self._audit(now, "decision", action, "approved", evidence, dry_run)
        try:
            result = action.apply(self.kube, dry_run=dry_run)
        except ActuatorError as exc:
            self.stats.failed[action.kind] += 1
            self.guard.record_outcome(action, False, now)
            self._audit(now, "action", action, f"error: {exc}", {}, dry_run)
            self._event(now, "action-error", decision.service, str(exc))
            return
        self.guard.record_applied(action, now)
        self.stats.actions[action.kind] += 1
        outcome = "dry-run" if dry_run else "applied"
        self._audit(
            now,
            "action",
            action,
            outcome,
            {"before": result.before, "after": result.after},
            dry_run,
        )
        self._event(
            now, "action", decision.service, f"{action.kind} {action.target}: {action.reason}"
        )
        if not dry_run:
            self.pending.append(
                PendingAction(action, result, now, now + self.settings.verify.deadline)
            )

    def _verify(self, views: dict[str, ServiceView], now: datetime) -> None:
        still: list[PendingAction] = []
        for pending in self.pending:
            view = views.get(pending.action.service)
            if view is None or view.history.empty:
                still.append(pending)
                continue
            verdict, reason = judge(pending, view, now, self.settings)
            if verdict is Verdict.PENDING:
                still.append(pending)
                continue
            self._conclude(pending, verdict, reason, now)
        self.pending = still

    def _conclude(
        self, pending: PendingAction, verdict: Verdict, reason: str, now: datetime
    ) -> None:
        action = pending.action
        healed = verdict is Verdict.HEALED
        (self.stats.healed if healed else self.stats.failed)[action.kind] += 1
        evidence = {"reason": reason, "applied_at": pending.applied_at.isoformat()}
        self._audit(now, "verification", action, "healed" if healed else "failed", evidence)
        self._event(
            now, "healed" if healed else "failed", action.service, f"{action.kind}: {reason}"
        )
        opened = self.guard.record_outcome(action, healed, now)
        if healed:
            return
        if pending.is_scale_in:
            try:
                undone = action.undo(self.kube, pending.result)
                outcome = "undone" if undone is not None else "nothing to undo"
            except ActuatorError as exc:
                outcome = f"undo failed: {exc}"
            self._audit(now, "undo", action, outcome, {})
            self._event(now, "undo", action.service, outcome)
        if opened or not pending.is_scale_in:
            outcome = "circuit breaker open" if opened else "heal failed"
            self._audit(now, "escalation", action, outcome, {"reason": reason})
            self._event(now, "escalation", action.service, reason)

    # -- bookkeeping ------------------------------------------------------------------------
    def _event(self, at: datetime, kind: str, service: str, detail: str) -> None:
        self.events.append(LoopEvent(at, kind, service, detail))

    def _recently(self, service: str, kind: str, now: datetime) -> bool:
        for event in reversed(self.events):
            if now - event.at > pd.Timedelta(minutes=5):
                return False
            if event.service == service and event.kind == kind:
                return True
        return False

    def _problem(self, service: str, now: datetime, reason: str) -> None:
        self.stats.problems[service] += 1
        if self._last_problem.get(service) == reason:
            return
        self._last_problem[service] = reason
        log.warning("%s: %s (no action on it this tick)", service, reason)
        self.audit.write(
            AuditEntry(
                now, "observation", service, "none", service, False, f"skipped: {reason}", {}
            )
        )
