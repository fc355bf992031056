"""When the loop asks for a forecast, and that a slow forecaster never holds up a tick."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from datetime import timedelta

import pandas as pd

from ooda import OodaSettings, RuleScorer, ScoringUnavailableError
from ooda._records import AnomalyScores, LoadForecast
from tests._narrow import some

from ._harness import make_lab, make_loop


@dataclass
class _Forecaster:
    """A RuleScorer whose forecasts can fail or wait for a gate, and are counted."""

    rules: RuleScorer = field(default_factory=RuleScorer)
    failing: bool = False
    gate: threading.Event | None = None
    asked: int = 0

    def anomaly_rows(self, rows: pd.DataFrame) -> AnomalyScores:
        return self.rules.anomaly_rows(rows)

    def forecast_history(self, history: pd.DataFrame, horizon: int) -> LoadForecast:
        self.asked += 1
        if self.gate is not None and not self.gate.wait(timeout=10):
            raise ScoringUnavailableError("test gate never opened")
        if self.failing:
            raise ScoringUnavailableError("forecaster down (test)")
        return self.rules.forecast_history(history, horizon)


def _settings(background: bool) -> OodaSettings:
    base = OodaSettings()
    return replace(base, loop=replace(base.loop, forecast_in_background=background))


def test_a_forecast_is_asked_for_every_five_minutes_not_every_tick() -> None:
    lab = make_lab()
    scorer = _Forecaster()
    loop = make_loop(lab, _settings(False), scorer=scorer)
    for _ in range(40):  # ten minutes of 15 s ticks, steady traffic
        lab.step(timedelta(seconds=15))
        loop.tick()
    assert scorer.asked == 2


def test_a_failed_forecast_is_retried_a_minute_later_and_reported_once() -> None:
    lab = make_lab()
    scorer = _Forecaster(failing=True)
    loop = make_loop(lab, _settings(False), scorer=scorer)
    for _ in range(16):  # four minutes
        lab.step(timedelta(seconds=15))
        loop.tick()
    assert scorer.asked == 4
    reports = [e for e in loop.audit.entries() if "forecast unavailable" in e.outcome]
    assert len(reports) == 1


def test_in_the_background_a_slow_forecast_does_not_hold_up_the_tick() -> None:
    lab = make_lab()
    gate = threading.Event()
    scorer = _Forecaster(gate=gate)
    loop = make_loop(lab, _settings(True), scorer=scorer)
    lab.step(timedelta(seconds=15))
    first = loop.observe(lab.clock.now())
    # The forecaster is still waiting for the gate, yet the tick has its snapshot and scores.
    assert first is not None and first.scores is not None
    assert first.forecast is None and not gate.is_set()
    lab.step(timedelta(seconds=15))
    loop.observe(lab.clock.now())
    assert scorer.asked == 1  # one forecast in flight at a time
    gate.set()
    loop.wait_for_forecast(timeout=30)
    lab.step(timedelta(seconds=15))
    later = loop.observe(lab.clock.now())
    assert later is not None and later.forecast is not None
    assert set(later.forecast.frame["service"]) == set(loop.settings.services)


def test_while_the_forecaster_is_down_capacity_is_planned_on_the_baselines() -> None:
    """Forecasts come for 100 minutes, then the forecaster fails: once its last answer is too
    old to plan on, the plan is the baselines' (judged on the forecasts kept before), for the
    same services and steps, made at the tick's minute, not the stale answer and not nothing."""
    lab = make_lab()
    scorer = _Forecaster()
    loop = make_loop(lab, _settings(False), scorer=scorer)
    for _ in range(400):  # 100 minutes of 15 s ticks
        lab.step(timedelta(seconds=15))
        loop.tick()
    working = some(loop.observe(lab.clock.now())).forecast
    assert working is not None and working.model_version != "baselines"
    scorer.failing = True
    for _ in range(4 * 26):  # past five forecast intervals without an answer
        lab.step(timedelta(seconds=15))
        loop.tick()
    now = pd.Timestamp(lab.clock.now()).floor("min")
    plan = some(loop.observe(lab.clock.now())).forecast
    assert plan is not None and plan.model_version == "baselines"
    assert set(plan.sources) == set(working.sources)
    assert set(plan.sources.values()) <= {"seasonal_naive", "naive"}
    first = pd.to_datetime(plan.frame["timestamp"], utc=True).min()
    assert first == now + pd.Timedelta(minutes=1)
