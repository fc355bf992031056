"""What predictive scaling plans on: per service the best of the champion and two baselines
over the last day, a band recalibrated from what came true, and never a condemned version."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pandas as pd

from ooda import LoadForecast, ServiceView
from ooda._forecast_plan import NAIVE, SEASONAL_NAIVE, ForecastPlanner
from ooda._model_watch import MAX_HORIZON, ForecastWatch
from ooda._settings import ModelWatchSettings
from tests.ooda.test_model_watch import SERVICES, T0

SETTINGS = ModelWatchSettings(judge_after=timedelta(minutes=30), min_points=30)
HORIZON = 30


def smooth(service: str, at: pd.Timestamp) -> float:
    """The wave without the noise: what a good forecaster can know."""
    minute = (at - pd.Timestamp(T0)).total_seconds() / 60
    base = 120.0 if service == "frontend" else 60.0
    return base * (1 + 0.3 * math.sin(2 * math.pi * minute / 1440))


def rate(service: str, at: pd.Timestamp) -> float:
    """The wave and noise that no forecaster knows, nor yesterday's same minute."""
    minute = (at - pd.Timestamp(T0)).total_seconds() / 60
    noise = 2.0 * math.sin(minute * 1.7 + len(service)) + 1.5 * math.sin(minute * 0.37)
    return smooth(service, at) + noise


def views(now: pd.Timestamp) -> dict[str, ServiceView]:
    stamps = pd.date_range(end=now, periods=10, freq="1min")
    return {
        s: ServiceView(
            s,
            pd.DataFrame({"timestamp": stamps, "request_rate": [rate(s, t) for t in stamps]}),
        )
        for s in SERVICES
    }


def answer(now: pd.Timestamp, factors: dict[str, float], spread: float = 0.001) -> pd.DataFrame:
    """A forecaster that knows the wave (times a factor per service) and is over-sure of it."""
    rows = []
    for service in SERVICES:
        for step in range(1, HORIZON + 1):
            at = now + pd.Timedelta(minutes=step)
            q50 = smooth(service, at) * factors[service]
            rows.append((service, at, q50 * (1 - spread), q50, q50 * (1 + spread)))
    return pd.DataFrame(rows, columns=["service", "timestamp", "q10", "q50", "q90"])


def seeded(settings: ModelWatchSettings) -> ForecastWatch:
    watch = ForecastWatch(settings)
    day = pd.date_range(end=pd.Timestamp(T0) - pd.Timedelta(minutes=1), periods=1500, freq="1min")
    watch.seed(
        pd.DataFrame(
            [(s, t, rate(s, t)) for s in SERVICES for t in day],
            columns=["service", "timestamp", "request_rate"],
        )
    )
    return watch


def play(
    watch: ForecastWatch,
    planner: ForecastPlanner,
    minutes: range,
    factors: dict[str, float],
    version: str = "1",
) -> list[tuple[pd.Timestamp, LoadForecast | None]]:
    """The loop's part: observe and judge each minute, ask and plan every five."""
    plans = []
    for minute in minutes:
        now = pd.Timestamp(T0 + timedelta(minutes=minute))
        watch.observe(views(now))
        watch.tick(now.to_pydatetime())
        if minute % 5 == 0:
            forecast = LoadForecast(version, answer(now, factors))
            watch.record(now.to_pydatetime(), forecast)
            plans.append((now, planner.plan(forecast, now.to_pydatetime())))
    return plans


def test_each_service_is_planned_on_what_forecast_it_best() -> None:
    """The champion knows frontend's wave and gets checkout's 40 % too high: frontend is
    planned on the champion, checkout on a baseline, each with its own numbers."""
    settings = replace(SETTINGS, max_ratio=50.0)  # the watch condemns nothing here
    watch = seeded(settings)
    planner = ForecastPlanner(settings, watch)
    factors = {"frontend": 1.0, "checkout": 1.4}
    plans = play(watch, planner, range(0, 240), factors)
    early = plans[1][1]
    assert early is not None and early.sources["checkout"] == "1", "nothing to judge by yet"
    now, plan = plans[-1]
    assert plan is not None and plan.model_version == "1"
    assert plan.sources == {"frontend": "1", "checkout": plan.sources["checkout"]}
    assert plan.sources["checkout"] in (SEASONAL_NAIVE, NAIVE)
    checkout = plan.frame[plan.frame["service"] == "checkout"]
    truth = np.array([smooth("checkout", t) for t in checkout["timestamp"]])
    assert np.abs(checkout["q50"].to_numpy() - truth).mean() < 0.05 * truth.mean()
    frontend = plan.frame[plan.frame["service"] == "frontend"]
    expected = [smooth("frontend", t) for t in frontend["timestamp"]]
    np.testing.assert_allclose(frontend["q50"], expected)
    assert set(plan.frame["timestamp"]) == {
        now + pd.Timedelta(minutes=m) for m in range(1, HORIZON + 1)
    }


def test_the_band_is_recalibrated_to_cover_what_comes_true() -> None:
    """A champion sure of itself to 0.1 % covers almost nothing; the plan's band, widened
    from the errors that came true, covers about 80 % of what comes next."""
    settings = replace(SETTINGS, max_ratio=50.0, window=timedelta(hours=4))
    watch = seeded(settings)
    planner = ForecastPlanner(settings, watch)
    factors = {"frontend": 1.0, "checkout": 1.0}
    plans = play(watch, planner, range(0, 10 * 60), factors)
    later = [p for at, p in plans if at >= pd.Timestamp(T0) + pd.Timedelta(hours=4)]
    inside = raw = total = 0
    for plan in later:
        assert plan is not None
        for row in plan.frame.itertuples():
            actual = rate(row.service, row.timestamp)
            inside += row.q10 <= actual <= row.q90
            sure = smooth(row.service, row.timestamp)
            raw += sure * 0.999 <= actual <= sure * 1.001
            total += 1
    assert raw / total < 0.1
    assert 0.7 <= inside / total <= 0.9, inside / total


def test_a_condemned_champion_is_no_candidate() -> None:
    """Once the watch condemns v2 (three times the load), the plan comes from the baselines
    alone: not one row of it is v2's forecast."""
    watch = seeded(SETTINGS)
    planner = ForecastPlanner(SETTINGS, watch)
    factors = {"frontend": 3.0, "checkout": 3.0}
    plans = play(watch, planner, range(0, 180), factors, version="2")
    assert not watch.usable(LoadForecast("2", pd.DataFrame()))
    _, plan = plans[-1]
    assert plan is not None and plan.model_version == "baselines"
    assert set(plan.sources.values()) <= {SEASONAL_NAIVE, NAIVE}
    for row in plan.frame.itertuples():
        assert row.q50 < 1.5 * smooth(row.service, row.timestamp)


def test_without_planning_on_the_best_a_condemned_champion_leaves_nothing() -> None:
    settings = replace(SETTINGS, plan_on_best=False)
    watch = seeded(settings)
    planner = ForecastPlanner(settings, watch)
    plans = play(watch, planner, range(0, 120), {"frontend": 3.0, "checkout": 3.0}, "2")
    assert plans[0][1] is not None and plans[0][1].sources == {}
    assert plans[-1][1] is None


def test_a_service_the_champion_answers_only_lately_waits_for_its_own_forecasts() -> None:
    """checkout is missing from the champion's answers for two hours: when it joins, it is
    planned on the answer as it came until ten of its own forecasts have come true, while
    frontend, answered all along, is already planned on its best over the same forecasts."""
    settings = replace(SETTINGS, max_ratio=50.0)
    watch = seeded(settings)
    planner = ForecastPlanner(settings, watch)
    factors = {"frontend": 1.3, "checkout": 1.3}  # both too high: a baseline is better
    plans = []
    for minute in range(0, 150):
        now = pd.Timestamp(T0 + timedelta(minutes=minute))
        watch.observe(views(now))
        watch.tick(now.to_pydatetime())
        if minute % 5 == 0:
            frame = answer(now, factors)
            if minute < 120:
                frame = frame[frame["service"] != "checkout"]
            forecast = LoadForecast("1", frame)
            watch.record(now.to_pydatetime(), forecast)
            plans.append((now, forecast, planner.plan(forecast, now.to_pydatetime())))
    now, asked, plan = plans[-1]
    assert plan is not None
    assert plan.sources["frontend"] in (SEASONAL_NAIVE, NAIVE)
    assert plan.sources["checkout"] == "1"
    mine = plan.frame[plan.frame["service"] == "checkout"].reset_index(drop=True)
    theirs = asked.frame[asked.frame["service"] == "checkout"].reset_index(drop=True)
    np.testing.assert_allclose(mine[["q10", "q50", "q90"]], theirs[["q10", "q50", "q90"]])
    assert list(mine["timestamp"]) == list(pd.to_datetime(theirs["timestamp"], utc=True))


def test_a_point_a_year_ahead_is_neither_planned_on_nor_sized_by() -> None:
    """A forecaster whose clock is broken adds a row a year out: the plan and the watch
    ignore that row (no array is sized by it) and plan the rest as usual."""
    settings = replace(SETTINGS, max_ratio=50.0)
    watch = seeded(settings)
    planner = ForecastPlanner(settings, watch)
    plans = play(watch, planner, range(0, 120), {"frontend": 1.0, "checkout": 1.4})
    now = plans[-1][0] + pd.Timedelta(minutes=5)
    frame = answer(now, {"frontend": 1.0, "checkout": 1.4})
    far = frame.iloc[[0]].assign(timestamp=now + pd.DateOffset(years=1))
    broken = LoadForecast("1", pd.concat([frame, far], ignore_index=True))
    watch.record(now.to_pydatetime(), broken)
    assert watch.kept()[-1][1] is broken
    assert watch._kept[-1].horizon == MAX_HORIZON  # what a replay would ask the model for
    plan = planner.plan(broken, now.to_pydatetime())
    assert plan is not None and set(plan.sources) == {"frontend", "checkout"}
    assert pd.to_datetime(plan.frame["timestamp"]).max() == now + pd.Timedelta(minutes=HORIZON)
