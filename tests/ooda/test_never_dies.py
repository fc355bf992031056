"""The loop never dies: whatever its inputs do, ``tick`` returns, says why, and acts on
nothing it cannot trust, while the services the fault does not touch go on being healed.

Each case breaks one input of a loop on a lab where two services crash-loop (checkout and
frontend): the metric source, the cluster's HPA annotations, the audit log or the models.
``run`` calls ``tick`` directly, so an exception out of it fails the test.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from actuators import CHANGED_AT, CHANGED_BY, MIN_ORIGINAL, MIN_SET, CallSpy, spy_on
from lab import CrashLoopFault, Lab
from ooda import AnomalyScores, AuditEntry, AuditLog, ControlLoop, LoadForecast, RuleScorer
from tests._narrow import some
from tests.ooda._harness import crashlooping, lab_kube, make_lab, make_loop, run

CRASHING = ("checkout", "frontend")


def crashing_lab() -> Lab:
    """A lab where checkout and frontend each have a pod in CrashLoopBackOff."""
    lab = make_lab()
    for service in CRASHING:
        lab.inject(CrashLoopFault(service=service))
    return lab


def spied_loop(lab: Lab, **kwargs: Any) -> tuple[ControlLoop, list[CallSpy]]:
    spied, spies = spy_on(lab_kube(lab))
    return make_loop(lab, kube=spied, **kwargs), spies


def mutations(spies: list[CallSpy]) -> list[str]:
    return [m for spy in spies for m in spy.mutations]


def problems(loop: ControlLoop, service: str | None = None) -> list[str]:
    """The reasons the loop reported for not acting (on ``service``, or on anything)."""
    return [
        e.outcome
        for e in loop.audit.entries("observation")
        if service is None or e.service == service
    ]


def acted_on(loop: ControlLoop, service: str, kind: str | None = None) -> list[AuditEntry]:
    return [
        a
        for a in loop.audit.entries("action")
        if a.service == service and a.outcome == "applied" and kind in (None, a.action)
    ]


def healed(loop: ControlLoop, service: str) -> bool:
    return any(
        v.service == service and v.outcome == "healed" for v in loop.audit.entries("verification")
    )


# -- the metric source ----------------------------------------------------------------------
class BrokenSource:
    """A metric source that answers ``break_(frame)`` (or raises) while ``broken``."""

    def __init__(self, inner: Any, break_: Callable[[pd.DataFrame], Any]) -> None:
        self.inner = inner
        self.break_ = break_
        self.broken = True

    def query_range(self, start: datetime, end: datetime, step: Any) -> Any:
        frame = self.inner.query_range(start, end, step)
        return self.break_(frame) if self.broken else frame


def naive(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(timestamp=frame["timestamp"].dt.tz_localize(None))


def raise_oserror(frame: pd.DataFrame) -> Any:
    raise OSError("connection refused (prometheus down)")


WHOLE_FRAME = {
    "tz-naive timestamps": (naive, "timezone-aware"),
    "not a frame": (lambda f: f.to_dict("records"), "returned list, not a frame"),
    "none": (lambda f: None, "returned NoneType"),
    "missing columns": (lambda f: f.drop(columns=["p95_latency_ms"]), "p95_latency_ms"),
    "raises OSError": (raise_oserror, "connection refused"),
}


@pytest.mark.parametrize("case", list(WHOLE_FRAME))
def test_an_unusable_metric_frame_stops_all_action_until_it_is_usable(case: str) -> None:
    """A frame that cannot be trusted at all: every tick returns, the reason is logged once,
    nothing is touched; once the source recovers, the loop heals as usual."""
    break_, reason = WHOLE_FRAME[case]
    lab = crashing_lab()
    source = BrokenSource(lab.source, break_)
    loop, spies = spied_loop(lab, source=source)
    run(lab, loop, 3)
    assert loop.stats.ticks == 12
    said = problems(loop, "*")
    assert len(said) == 1 and "metric source failed" in said[0] and reason in said[0], said
    assert mutations(spies) == []
    assert loop.audit.entries("decision") == []
    assert all(crashlooping(lab, s) for s in CRASHING)
    source.broken = False
    run(lab, loop, 6)
    assert all(healed(loop, s) for s in CRASHING), "the loop did not resume after the source"


def strings_in(service: str, column: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def break_(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.astype({column: object})
        frame.loc[frame["service"] == service, column] = "n/a"
        return frame

    return break_


def newest(service: str, column: str, value: float) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def break_(frame: pd.DataFrame) -> pd.DataFrame:
        rows = frame["service"] == service
        frame.loc[rows & (frame["timestamp"] == frame.loc[rows, "timestamp"].max()), column] = value
        return frame

    return break_


def from_the_future(service: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def break_(frame: pd.DataFrame) -> pd.DataFrame:
        rows = frame["service"] == service
        frame.loc[rows, "timestamp"] += pd.Timedelta(hours=2)
        return frame

    return break_


ONE_SERVICE = {
    "strings": (strings_in("frontend", "p95_latency_ms"), "non-numeric values"),
    "inf error rate": (newest("frontend", "error_rate", np.inf), "impossible value(s)"),
    "negative rate": (newest("frontend", "request_rate", -5.0), "impossible value(s)"),
    "error rate above 1": (newest("frontend", "error_rate", 7.0), "impossible value(s)"),
    "future samples": (from_the_future("frontend"), "from the future"),
}


@pytest.mark.parametrize("case", list(ONE_SERVICE))
def test_bad_metrics_of_one_service_leave_it_alone_and_the_others_go_on(case: str) -> None:
    """Bad values in one service's rows: it is reported and not acted on; checkout is healed."""
    break_, reason = ONE_SERVICE[case]
    lab = crashing_lab()
    loop, _ = spied_loop(lab, source=BrokenSource(lab.source, break_))
    run(lab, loop, 6)
    assert any(reason in p for p in problems(loop, "*")), problems(loop)
    assert problems(loop, "frontend"), "the unusable service was not reported"
    assert acted_on(loop, "frontend") == []
    assert crashlooping(lab, "frontend")
    assert healed(loop, "checkout")


# -- the cluster: an HPA whose ooda annotations are malformed --------------------------------
def raise_floor(lab: Lab, notes: dict[str, str | None]) -> int:
    """Raise payments' HPA floor to 6 with ``notes`` as ooda's annotations; the old floor."""
    api = lab.kube.autoscaling_v2
    hpa = api.read_namespaced_horizontal_pod_autoscaler("payments", "shop")
    found = some(hpa.spec.min_replicas)
    api.patch_namespaced_horizontal_pod_autoscaler(
        "payments",
        "shop",
        {"metadata": {"annotations": notes}, "spec": {"minReplicas": 6}},
        _content_type="application/merge-patch+json",
    )
    return found


def ooda_notes(lab: Lab, found: int, **override: str) -> dict[str, str | None]:
    """The annotations ooda leaves when it raised the floor to 6 an hour ago."""
    notes: dict[str, str | None] = {
        CHANGED_BY: "ooda",
        CHANGED_AT: (lab.clock.now() - timedelta(hours=1)).isoformat(timespec="seconds"),
        MIN_SET: "6",
        MIN_ORIGINAL: str(found),
    }
    return notes | override


def payments_floor(lab: Lab) -> int:
    api = lab.kube.autoscaling_v2
    return some(api.read_namespaced_horizontal_pod_autoscaler("payments", "shop").spec.min_replicas)


def test_a_floor_ooda_raised_with_valid_annotations_is_lowered() -> None:
    """The control for the malformed cases: with sound annotations, the idle floor comes down."""
    lab = crashing_lab()
    found = payments_floor(lab)
    raise_floor(lab, ooda_notes(lab, found))
    loop, _ = spied_loop(lab)
    run(lab, loop, 1)
    assert acted_on(loop, "payments", "set_hpa_min")
    assert payments_floor(lab) < 6


MALFORMED = {
    "min-replicas not a number": ({MIN_SET: "abc"}, f"{MIN_SET}='abc' is not a replica count"),
    "original not a number": ({MIN_ORIGINAL: "abc"}, f"{MIN_ORIGINAL}='abc' is not a replica"),
    "changed-at not a time": ({CHANGED_AT: "yesterday"}, f"{CHANGED_AT}='yesterday' is not a"),
    "changed-at without a zone": (
        {CHANGED_AT: "2026-11-16T09:00:00"},
        f"{CHANGED_AT}='2026-11-16T09:00:00' is not a zoned time",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_ooda_annotations_are_reported_and_the_floor_left_alone(case: str) -> None:
    """An HPA whose ooda annotations do not parse (someone edited them): the floor is left as
    it is (it may be a human's), the reason names the annotation, and the loop goes on
    healing the crash loops elsewhere."""
    override, reason = MALFORMED[case]
    lab = crashing_lab()
    found = payments_floor(lab)
    raise_floor(lab, ooda_notes(lab, found, **override))
    loop, _ = spied_loop(lab)
    run(lab, loop, 6)
    assert acted_on(loop, "payments") == []
    assert payments_floor(lab) == 6
    reported = problems(loop, "payments")
    assert len(reported) == 1 and "decide failed" in reported[0], reported
    assert reason in reported[0], reported
    assert all(healed(loop, s) for s in CRASHING)


# -- the audit log -------------------------------------------------------------------------
class FailingAudit(AuditLog):
    """An audit log whose writes of ``failing`` kinds raise, as a full or locked disk would."""

    def __init__(self, failing: set[str]) -> None:
        super().__init__(":memory:")
        self.failing = failing

    def write(self, entry: AuditEntry) -> int:
        if entry.kind in self.failing:
            raise sqlite3.OperationalError("database or disk is full")
        return super().write(entry)


class NaNPayments(BrokenSource):
    """Payments' newest p95 is NaN: a problem to report every tick."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner, newest("payments", "p95_latency_ms", np.nan))


@pytest.mark.parametrize("kind", ["decision", "intent"])
def test_no_act_without_its_intent_in_the_audit_log(kind: str) -> None:
    """While the decision or intent cannot be written, nothing is changed; then the loop heals."""
    lab = crashing_lab()
    audit = FailingAudit({kind})
    loop, spies = spied_loop(lab, audit=audit)
    run(lab, loop, 3)
    assert mutations(spies) == []
    assert all(crashlooping(lab, s) for s in CRASHING)
    assert any("act failed: OperationalError" in p for p in problems(loop))
    audit.failing = set()
    run(lab, loop, 6)
    assert all(healed(loop, s) for s in CRASHING)


def test_a_result_that_cannot_be_written_is_not_acted_again() -> None:
    """The act ran but its result could not be logged: reported, and not repeated."""
    lab = crashing_lab()
    audit = FailingAudit({"action"})
    loop, spies = spied_loop(lab, audit=audit)
    run(lab, loop, 6)
    evictions = [m for m in mutations(spies) if "eviction" in m]
    assert len(evictions) == len(CRASHING), evictions
    assert any("act failed: OperationalError" in p for p in problems(loop))
    assert not any(crashlooping(lab, s) for s in CRASHING)


def test_a_verdict_that_cannot_be_written_is_written_once_the_log_recovers() -> None:
    """Verification keeps the action pending while its verdict cannot be logged."""
    lab = crashing_lab()
    audit = FailingAudit({"verification"})
    loop, spies = spied_loop(lab, audit=audit)
    run(lab, loop, 6)
    assert len(loop.pending) == len(CRASHING)
    assert any("verify failed: OperationalError" in p for p in problems(loop))
    audit.failing = set()
    run(lab, loop, 1)
    assert loop.pending == []
    assert all(healed(loop, s) for s in CRASHING)
    assert len([m for m in mutations(spies) if "eviction" in m]) == len(CRASHING)


def test_problems_that_cannot_be_written_are_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An observation the log refuses is logged as an error; the heals go on."""
    lab = crashing_lab()
    loop, _ = spied_loop(lab, audit=FailingAudit({"observation"}), source=NaNPayments(lab.source))
    with caplog.at_level(logging.WARNING, logger="ooda.loop"):
        run(lab, loop, 6)
    assert any("audit log write failed: OperationalError" in r.message for r in caplog.records)
    assert any("payments: newest sample has NaN" in r.message for r in caplog.records)
    assert all(healed(loop, s) for s in CRASHING)
    assert acted_on(loop, "payments") == []


# -- the models ------------------------------------------------------------------------------
@dataclass
class GarbageScorer:
    """A RuleScorer whose answers pass through ``scores``/``forecast`` on the way out."""

    scores: Callable[[AnomalyScores], Any] = lambda s: s
    forecast: Callable[[LoadForecast], Any] = lambda f: f
    inner: RuleScorer = field(default_factory=RuleScorer)

    def anomaly_rows(self, rows: pd.DataFrame) -> Any:
        return self.scores(self.inner.anomaly_rows(rows))

    def forecast_history(self, history: pd.DataFrame, horizon: int) -> Any:
        return self.forecast(self.inner.forecast_history(history, horizon))


def payments_score(value: Any) -> Callable[[AnomalyScores], AnomalyScores]:
    """Payments gets ``value`` as its score, flagged anomalous."""

    def garble(s: AnomalyScores) -> AnomalyScores:
        return replace(
            s, scores={**s.scores, "payments": value}, anomalous={**s.anomalous, "payments": True}
        )

    return garble


def frame_of(change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[LoadForecast], Any]:
    return lambda f: replace(f, frame=change(f.frame.copy()))


def quantiles(op: Callable[[pd.Series], Any]) -> Callable[[LoadForecast], Any]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        for q in ("q10", "q50", "q90"):
            frame[q] = op(frame[q])
        return frame

    return frame_of(change)


SCORES = {
    "NaN score": (payments_score(np.nan), "non-finite anomaly score for 'payments'"),
    "infinite score": (payments_score(np.inf), "non-finite anomaly score for 'payments'"),
    "string score": (payments_score("high"), "non-numeric anomaly score for 'payments'"),
    "none score": (payments_score(None), "non-numeric anomaly score for 'payments'"),
    "not scores at all": (lambda s: "OK", "anomaly scores unavailable"),
    "no services": (lambda s: replace(s, scores={}, anomalous={}), None),
}


@pytest.mark.parametrize("case", list(SCORES))
def test_garbage_scores_are_no_evidence(case: str) -> None:
    """A score that is not a finite number is dropped and reported; its anomaly flag with it.
    The crash loops (cluster evidence) are healed regardless."""
    garble, reason = SCORES[case]
    lab = crashing_lab()
    loop, _ = spied_loop(lab, scorer=GarbageScorer(scores=garble))
    run(lab, loop, 6)
    if reason is not None:
        assert any(reason in p for p in problems(loop, "*")), problems(loop)
    assert not [e for e in loop.events if e.kind == "anomaly" and e.service == "payments"]
    assert all(healed(loop, s) for s in CRASHING)


FORECASTS = {
    "wrong columns": (
        frame_of(lambda f: f.rename(columns={"q90": "upper"})),
        "forecast lacks columns",
    ),
    "negative": (quantiles(lambda q: -q), "NaN, infinite or negative"),
    "infinite": (quantiles(lambda q: q * np.inf), "NaN, infinite or negative"),
    "NaN": (quantiles(lambda q: q * np.nan), "NaN, infinite or negative"),
    "strings": (quantiles(lambda q: q.map(lambda v: f"{v:.0f} rps")), "NaN, infinite or negative"),
    "100x": (quantiles(lambda q: q * 100), "over 5x the highest observed"),
    "tz-naive timestamps": (
        frame_of(lambda f: f.assign(timestamp=f["timestamp"].dt.tz_localize(None))),
        "forecast timestamps must be timezone-aware",
    ),
    "not a forecast": (lambda f: f.frame, "not a forecast frame: refused"),
    "unhashable service": (
        frame_of(lambda f: f.assign(service=[[s] for s in f["service"]])),
        "service names that are not strings",
    ),
}


@pytest.mark.parametrize("case", list(FORECASTS))
def test_an_absurd_forecast_is_refused_not_scaled_to(case: str) -> None:
    """A forecast with broken values or far beyond what was observed: refused and reported,
    no HPA floor moves; the crash loops are healed regardless."""
    garble, reason = FORECASTS[case]
    lab = crashing_lab()
    loop, _ = spied_loop(lab, scorer=GarbageScorer(forecast=garble))
    run(lab, loop, 6)
    assert any(reason in p for p in problems(loop, "*")), problems(loop)
    assert [a for a in loop.audit.entries("action") if a.action == "set_hpa_min"] == []
    assert not any("decide failed" in p for p in problems(loop)), problems(loop)
    assert all(healed(loop, s) for s in CRASHING)
