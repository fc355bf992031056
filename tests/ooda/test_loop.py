"""The control loop on the lab, with the scoring endpoints replaced by an httpx transport.

These check the loop's own logic: it heals what it should, verifies, respects dry-run, and
keeps running (acting on nothing it cannot trust) when metrics or endpoints go bad.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from actuators import Guard, KubeClients
from lab import CrashLoopFault, Lab, LabSettings, SimClock
from ooda import AuditLog, ControlLoop, OodaSettings, ScoringClient, ServingClientSettings

START = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
Handler = Callable[[httpx.Request], httpx.Response]


def scores_from_metrics(lab: Lab) -> Handler:
    """A stand-in scorer: anomalous when the service's newest error rate is above 1 %."""

    def handler(request: httpx.Request) -> httpx.Response:
        services = json.loads(request.read())["services"]
        now = lab.clock.now()
        metrics = lab.source.query_range(now - timedelta(minutes=5), now, timedelta(minutes=1))
        if request.url.path == "/v1/forecast":
            return httpx.Response(200, json={"model": {"version": "1"}, "forecast": []})
        rows = []
        for service in services:
            err = float(metrics[metrics["service"] == service]["error_rate"].iloc[-1])
            score = 0.95 if err > 0.01 else 0.05
            rows.append({"service": service, "anomaly_score": score, "is_anomaly": score >= 0.5})
        return httpx.Response(200, json={"model": {"version": "1"}, "scores": rows})

    return handler


def make_loop(
    lab: Lab, handler: Handler, settings: OodaSettings | None = None, source: Any = None
) -> ControlLoop:
    settings = settings or OodaSettings()
    kube = KubeClients(lab.kube.core_v1, lab.kube.apps_v1, lab.kube.autoscaling_v2)
    return ControlLoop(
        settings,
        clock=lab.clock,
        source=source or lab.source,
        push_features=lambda _metrics: None,
        scoring=ScoringClient(ServingClientSettings(), transport=httpx.MockTransport(handler)),
        kube=kube,
        guard=Guard(settings.guard),
        audit=AuditLog(":memory:"),
    )


@pytest.fixture
def lab() -> Lab:
    lab = Lab(LabSettings(seed=3), SimClock(START - timedelta(hours=2)))
    lab.generate_history(days=2 / 24, incidents=False)
    return lab


def run(lab: Lab, loop: ControlLoop, minutes: float) -> None:
    for _ in range(int(minutes * 4)):
        lab.step(timedelta(seconds=15))
        loop.tick()


def crashlooping(lab: Lab, service: str) -> list[str]:
    pods = lab.kube.core_v1.list_namespaced_pod("shop", label_selector=f"app={service}").items
    return [
        p.metadata.name
        for p in pods
        for s in p.status.container_statuses or []
        if s.state.waiting is not None and s.state.waiting.reason == "CrashLoopBackOff"
    ]


def test_crashloop_is_restarted_and_verified(lab: Lab) -> None:
    loop = make_loop(lab, scores_from_metrics(lab))
    record = lab.inject(CrashLoopFault(service="checkout"))
    run(lab, loop, 8)
    actions = loop.audit.entries("action")
    assert [a.action for a in actions] == ["restart_pod"]
    assert actions[0].target == f"pod/shop/{record.target}"
    assert crashlooping(lab, "checkout") == []
    verdicts = loop.audit.entries("verification")
    assert [v.outcome for v in verdicts] == ["healed"]
    assert loop.stats.healed["restart_pod"] == 1


def test_dry_run_decides_and_logs_but_changes_nothing(lab: Lab) -> None:
    loop = make_loop(lab, scores_from_metrics(lab), OodaSettings(dry_run=True))
    record = lab.inject(CrashLoopFault(service="checkout"))
    run(lab, loop, 3)
    actions = loop.audit.entries("action")
    assert actions and all(a.outcome == "dry-run" and a.dry_run for a in actions)
    assert record.target in crashlooping(lab, "checkout") or lab.kube.core_v1.read_namespaced_pod(
        record.target, "shop"
    )
    assert loop.pending == []


@pytest.mark.parametrize(
    ("handler", "reason"),
    [
        (lambda r: (_ for _ in ()).throw(httpx.ConnectError("refused", request=r)), "unreachable"),
        (
            lambda _r: httpx.Response(
                503, json={"error": "model unavailable", "alias": "champion"}
            ),
            "503",
        ),
    ],
    ids=["unreachable", "missing-alias"],
)
def test_scoring_outage_is_logged_and_no_restart_happens(
    lab: Lab, handler: Handler, reason: str
) -> None:
    loop = make_loop(lab, handler)
    record = lab.inject(CrashLoopFault(service="checkout"))
    run(lab, loop, 3)
    assert loop.stats.ticks == 12
    assert not [a for a in loop.audit.entries("action") if a.action == "restart_pod"]
    assert record.target in crashlooping(lab, "checkout") or lab.kube.core_v1.read_namespaced_pod(
        record.target, "shop"
    )
    problems = [e.outcome for e in loop.audit.entries("observation")]
    assert any("anomaly scores unavailable" in p and reason in p for p in problems)


class NaNSource:
    """Wraps a source and blanks the newest p95 and error rate of one service."""

    def __init__(self, inner: Any, service: str) -> None:
        self.inner = inner
        self.service = service

    def query_range(self, start: datetime, end: datetime, step: Any) -> pd.DataFrame:
        frame = self.inner.query_range(start, end, step)
        newest = frame[frame["service"] == self.service]["timestamp"].max()
        rows = (frame["service"] == self.service) & (frame["timestamp"] == newest)
        frame.loc[rows, ["p95_latency_ms", "error_rate"]] = np.nan
        return frame


def test_nan_metrics_block_action_on_that_service_only(lab: Lab) -> None:
    loop = make_loop(lab, scores_from_metrics(lab), source=NaNSource(lab.source, "checkout"))
    lab.inject(CrashLoopFault(service="checkout"))
    run(lab, loop, 4)
    assert not loop.audit.entries("action")
    problems = [e for e in loop.audit.entries("observation") if e.service == "checkout"]
    assert problems and "NaN in ['p95_latency_ms', 'error_rate']" in problems[0].outcome
    assert loop.stats.problems["checkout"] == 16
    assert loop.stats.problems.get("frontend", 0) == 0


def test_a_stale_source_is_reported_not_acted_on(lab: Lab) -> None:
    frozen_at = lab.clock.now()

    class Frozen:
        def query_range(self, start: datetime, end: datetime, step: Any) -> pd.DataFrame:
            return lab.source.query_range(start, min(end, frozen_at), step)

    loop = make_loop(lab, scores_from_metrics(lab), source=Frozen())
    run(lab, loop, 4)
    lab.inject(CrashLoopFault(service="checkout"))
    run(lab, loop, 4)
    assert not loop.audit.entries("action")
    stale = [e for e in loop.audit.entries("observation") if e.service == "checkout"]
    assert len(stale) == 1, "a problem that persists is logged once, not every tick"
    assert "no sample in the last 0:03:00" in stale[0].outcome
