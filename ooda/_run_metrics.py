"""ooda's own ``/metrics``: what the loop did, for the Prometheus that watches it.

Counted from what each tick leaves behind -- the loop's stats and the audit entries it wrote
-- so the numbers are the audit log's, never a second bookkeeping that could drift from it.
Action outcomes are the first word of the audit outcome (``applied``, ``refused``,
``error``, ``dry-run``), keeping label values few.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)

from actuators import registered_actions
from ooda._audit import AuditEntry
from ooda._escalate import ALERT_NAMES

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from ooda._loop import ControlLoop

_PARTS = ("metrics", "cluster", "anomaly", "forecast", "decide", "act", "verify")


class RunMetrics:
    """The metrics of one ``ooda run`` process, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.ticks = Counter("ooda_ticks", "Ticks of the control loop.", registry=r)
        self.tick_seconds = Histogram(
            "ooda_tick_duration_seconds",
            "Wall time of one tick.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.part_seconds = Counter(
            "ooda_tick_part_seconds", "Wall time spent per part of the tick.", ["part"], registry=r
        )
        self.scoring_seconds = Histogram(
            "ooda_scoring_latency_seconds",
            "Wall time of the anomaly scoring call of a tick that scored.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=r,
        )
        self.entries = Counter(
            "ooda_audit_entries", "Audit entries written, by kind.", ["kind"], registry=r
        )
        self.decisions = Counter(
            "ooda_decisions", "Decisions, by action kind and verdict.", ["action", "verdict"],
            registry=r,
        )  # fmt: skip
        self.actions = Counter(
            "ooda_actions", "Actions, by action kind and outcome.", ["action", "outcome"],
            registry=r,
        )  # fmt: skip
        self.verifications = Counter(
            "ooda_verifications", "Verdicts on actions, by action kind and verdict.",
            ["action", "verdict"], registry=r,
        )  # fmt: skip
        self.refusals = Counter(
            "ooda_guard_refusals", "Actions the guard refused, by action kind.", ["action"],
            registry=r,
        )  # fmt: skip
        self.breakers_open = Gauge("ooda_breakers_open", "Circuit breakers open now.", registry=r)
        self.budget_left = Gauge(
            "ooda_error_budget_remaining",
            "Failed heals an action kind may still have this week before it drops to propose-only.",
            ["action"],
            registry=r,
        )
        self.pending = Gauge(
            "ooda_pending_verifications", "Actions awaiting their verdict.", registry=r
        )
        self.running = Gauge(
            "ooda_actions_running",
            "Actions started beside the ticks (a drain waiting on its budgets) not returned yet.",
            registry=r,
        )
        self.untrusted = Gauge(
            "ooda_untrusted_targets",
            "Targets not acted on this tick because what was read of them is not trusted"
            " (service, or * for everything).",
            ["service"],
            registry=r,
        )
        self.escalations = Counter(
            "ooda_escalations", "Alerts raised for a human, by alert name.", ["alertname"],
            registry=r,
        )  # fmt: skip
        self.last_tick = Gauge(
            "ooda_last_tick_timestamp_seconds", "When the last tick ended.", registry=r
        )
        self.live_quality = Gauge(
            "ooda_model_live_quality",
            "The live watches' figures over their window: the detector's precision, recall and"
            " F1 (a version, or robust_z for the baseline), the forecaster's MASE against"
            " seasonal naive and 80 % coverage.",
            ["model", "version", "measure"],
            registry=r,
        )
        self.condemned = Gauge(
            "ooda_model_condemned",
            "1 for a model version a live watch condemned (the loop no longer uses it).",
            ["model", "version"],
            registry=r,
        )
        self._seconds: dict[str, float] = {}
        self._untrusted: set[str] = set()
        # Every series a dashboard panel reads exists from the start, at 0.
        for kind in registered_actions():
            for outcome in ("applied", "refused", "error", "dry-run"):
                self.actions.labels(str(kind), outcome)
            for verdict in ("approved", "proposed"):
                self.decisions.labels(str(kind), verdict)
            self.refusals.labels(str(kind))
        for name in ALERT_NAMES:
            self.escalations.labels(name)
        self.untrusted.labels("*").set(0)

    def observe_tick(
        self,
        loop: ControlLoop,
        elapsed: float,
        new: Sequence[AuditEntry],
        now: datetime,
        alerts: Sequence[str] = (),
    ) -> None:
        """Count one tick: its duration, its parts, the audit entries it wrote, the alerts it
        raised."""
        self.ticks.inc()
        for name in alerts:
            self.escalations.labels(name).inc()
        self.tick_seconds.observe(elapsed)
        for part in _PARTS:
            total = loop.stats.seconds.get(part, 0.0)
            delta = total - self._seconds.get(part, 0.0)
            self._seconds[part] = total
            if delta > 0:
                self.part_seconds.labels(part).inc(delta)
                if part == "anomaly":
                    self.scoring_seconds.observe(delta)
        for entry in new:
            self.entries.labels(entry.kind).inc()
            word = entry.outcome.split(":")[0].strip() or "unknown"
            if entry.kind == "decision":
                self.decisions.labels(entry.action, word).inc()
            elif entry.kind == "action":
                self.actions.labels(entry.action, word).inc()
            elif entry.kind == "verification":
                self.verifications.labels(entry.action, word).inc()
            if entry.kind in ("action", "refusal") and word == "refused":
                self.refusals.labels(entry.action).inc()
        self.breakers_open.set(len(loop.guard.open_breakers(now)))
        for kind in registered_actions():
            standing = loop.budget.standing(str(kind), now)
            self.budget_left.labels(str(kind)).set(max(0, standing.budget - standing.failed))
        self.pending.set(len(loop.pending))
        self.running.set(len(loop.running))
        untrusted = {service for service, _ in loop.journal.current_problems()}
        for service in self._untrusted - untrusted:
            self.untrusted.labels(service).set(0)
        for service in untrusted:
            self.untrusted.labels(service).set(1)
        self._untrusted = untrusted
        self._watches(loop)
        self.last_tick.set(now.timestamp())

    def _watches(self, loop: ControlLoop) -> None:
        figures: list[tuple[str, str, str, float]] = []
        for version, q in loop.detector_watch.last.items():
            figures += [("detector", version, "precision", q.precision)]
            figures += [
                ("detector", version, "recall", q.recall),
                ("detector", version, "f1", q.f1),
            ]
        for version, a in loop.watch.last.items():
            figures += [("forecaster", version, "mase", a.ratio)]
            figures += [("forecaster", version, "coverage_80", a.coverage)]
        for model, version, measure, value in figures:
            if math.isfinite(value):
                self.live_quality.labels(model, version, measure).set(value)
        for model, condemned in (
            ("detector", loop.detector_watch.condemned),
            ("forecaster", loop.watch.condemned),
        ):
            for version in condemned:
                self.condemned.labels(model, version).set(1)

    def mark_untrusted(self, service: str) -> None:
        """``service`` (``*``: everything) is not acted on now; the next tick that trusts it
        clears the mark."""
        self.untrusted.labels(service).set(1)
        self._untrusted = self._untrusted | {service}

    def serve(self, port: int, addr: str = "127.0.0.1") -> tuple[WSGIServer, threading.Thread]:
        """Serve ``/metrics`` on ``addr:port`` (0: a free port, in ``server.server_port``)."""
        return start_http_server(port, addr=addr, registry=self.registry)
