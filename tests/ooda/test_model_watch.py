"""The forecaster's live accuracy watch: a champion whose forecasts go bad is stopped, the
alias moves back when the previous champion forecasts the same window better, and a human
is told; a good champion is left alone."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.models import infer_signature
from mlflow.pyfunc import PythonModel

import training
from models import pyfunc_history
from ooda import AuditLog, LoadForecast, OodaSettings, PredictiveSettings, RuleScorer, ServiceView
from ooda._escalate import alert_of
from ooda._forecaster_registry import MlflowForecasterRegistry
from ooda._model_watch import ForecastWatch
from ooda._settings import ModelWatchSettings
from tests.ooda._harness import make_lab, make_loop, run

T0 = datetime(2026, 11, 16, 6, 0, tzinfo=UTC)
SERVICES = ("frontend", "checkout")


def rate(service: str, at: pd.Timestamp) -> float:
    """A daily wave with a little noise that forecasters cannot know."""
    minute = (at - pd.Timestamp(T0)).total_seconds() / 60
    base = 120.0 if service == "frontend" else 60.0
    noise = math.sin(minute * 7.3 + len(service)) * 2.0
    return base * (1 + 0.3 * math.sin(2 * math.pi * minute / 1440)) + noise


class Registry:
    """Versions that forecast the true wave times a factor; ``@champion`` and its history."""

    name = "ooda-forecaster"

    def __init__(self, factors: Mapping[str, float], champion: str, previous: str | None):
        self.factors = dict(factors)
        self.current = champion
        self.before = {champion: previous}
        self.rollbacks: list[tuple[str, str, dict[str, Any]]] = []

    def champion(self) -> str | None:
        return self.current

    def previous(self, version: str) -> str | None:
        return self.before.get(version)

    def forecast(self, version: str, history: pd.DataFrame, horizon: int) -> pd.DataFrame:
        end = pd.to_datetime(history["timestamp"], utc=True).max()
        rows = []
        for service in sorted(set(history["service"])):
            for step in range(1, horizon + 1):
                at = end + pd.Timedelta(minutes=step)
                q50 = rate(service, at) * self.factors[version]
                rows.append((service, at, q50 * 0.9, q50, q50 * 1.1))
        return pd.DataFrame(rows, columns=["service", "timestamp", "q10", "q50", "q90"])

    def rollback(self, version: str, reason: str, evidence: Mapping[str, Any]) -> str:
        assert self.current == version
        back = self.before[version]
        assert back is not None
        self.rollbacks.append((version, reason, dict(evidence)))
        self.current = back
        return back


def views(now: datetime, minutes: int = 60) -> dict[str, ServiceView]:
    stamps = pd.date_range(end=pd.Timestamp(now), periods=minutes, freq="1min")
    return {
        s: ServiceView(
            s,
            pd.DataFrame({"timestamp": stamps, "request_rate": [rate(s, t) for t in stamps]}),
        )
        for s in SERVICES
    }


def play(
    watch: ForecastWatch, registry: Registry, minutes: int, every: int = 5
) -> list[tuple[datetime, Any]]:
    """The loop's part, minute by minute: observe, judge, ask the champion every ``every``."""
    events = []
    for minute in range(minutes):
        now = T0 + timedelta(minutes=minute)
        seen = views(now)
        watch.observe(seen)
        events += [(now, e) for e in watch.tick(now)]
        if minute % every == 0:
            history = pd.concat(
                [v.history.assign(service=s) for s, v in seen.items()], ignore_index=True
            )
            version = registry.champion()
            assert version is not None
            frame = registry.forecast(version, history, 30)
            watch.record(now, LoadForecast(version, frame))
    return events


SETTINGS = ModelWatchSettings(judge_after=timedelta(minutes=30), min_points=30)


def test_a_good_champion_is_left_alone() -> None:
    registry = Registry({"1": 1.0}, "1", None)
    watch = ForecastWatch(SETTINGS, registry)
    assert play(watch, registry, 240) == []
    acc = watch.last["1"]
    assert acc.ratio < 0.5 and acc.coverage > 0.9 and acc.points > 400
    assert watch.usable(LoadForecast("1", pd.DataFrame()))


def test_a_broken_champion_is_condemned_rolled_back_and_reported() -> None:
    registry = Registry({"1": 1.0, "2": 10.0}, "2", "1")
    watch = ForecastWatch(SETTINGS, registry)
    events = play(watch, registry, 180)
    kinds = [e.kind for _, e in events]
    assert kinds == ["fallback", "rollback"], events
    at, fallback = events[0]
    # Points come true from the first forecast's first minute: condemned once min_points of
    # them are in the judged window.
    assert T0 + timedelta(minutes=10) <= at <= T0 + timedelta(minutes=35)
    assert fallback.version == "2" and fallback.evidence["mase"] > 5
    assert "planned on the better of seasonal naive and the last value" in fallback.summary
    assert not watch.usable(LoadForecast("2", pd.DataFrame()))
    assert watch.usable(LoadForecast("1", pd.DataFrame()))
    assert registry.current == "1"
    (version, reason, evidence) = registry.rollbacks[0]
    assert version == "2" and "live accuracy watch" in reason
    assert evidence["mae_v1"] < evidence["mae_v2"] and evidence["replayed_points"] > 0


def test_no_rollback_to_a_previous_champion_that_forecasts_no_better() -> None:
    registry = Registry({"1": 12.0, "2": 10.0}, "2", "1")
    watch = ForecastWatch(SETTINGS, registry)
    events = play(watch, registry, 180)
    assert [e.kind for _, e in events] == ["fallback", "no_rollback"]
    assert "no better" in events[1][1].summary
    assert registry.current == "2" and not registry.rollbacks
    assert not watch.usable(LoadForecast("2", pd.DataFrame())), "the fallback holds"


def test_a_condemned_champion_back_below_the_baseline_is_planned_on_again() -> None:
    """Worse than seasonal naive for a stretch is not worse for good: once its forecasts are
    back below the baseline over the judged window, they are used again (and said so)."""
    registry = Registry({"2": 3.0}, "2", None)
    watch = ForecastWatch(SETTINGS)  # no registry: fall back only
    events = play(watch, registry, 90)
    assert [e.kind for _, e in events] == ["fallback"]
    assert not watch.usable(LoadForecast("2", pd.DataFrame()))
    registry.factors["2"] = 1.0  # the traffic came back to what v2 learnt
    later = play(watch, registry, 0)
    for minute in range(90, 240):
        now = T0 + timedelta(minutes=minute)
        seen = views(now)
        watch.observe(seen)
        later += [(now, e) for e in watch.tick(now)]
        if minute % 5 == 0:
            history = pd.concat(
                [v.history.assign(service=s) for s, v in seen.items()], ignore_index=True
            )
            watch.record(now, LoadForecast("2", registry.forecast("2", history, 30)))
    assert [e.kind for _, e in later] == ["reinstated"], later
    at, event = later[0]
    assert at >= T0 + timedelta(minutes=120), "not before its bad stretch has left the window"
    assert event.evidence["mase"] <= 1.0 and watch.usable(LoadForecast("2", pd.DataFrame()))


def test_nothing_is_judged_before_enough_points_have_come_true() -> None:
    registry = Registry({"2": 10.0}, "2", None)
    watch = ForecastWatch(replace(SETTINGS, min_points=10_000), registry)
    assert play(watch, registry, 120) == []
    assert watch.usable(LoadForecast("2", pd.DataFrame()))


class Following:
    """A scoring endpoint that answers with whatever version is ``@champion`` (as Ray Serve
    follows the alias): each version forecasts the last rate times its growth."""

    def __init__(self, registry: LabRegistry) -> None:
        self.registry = registry
        self.rules = RuleScorer()

    def anomaly_rows(self, rows: pd.DataFrame) -> Any:
        return self.rules.anomaly_rows(rows)

    def forecast_history(self, history: pd.DataFrame, horizon: int) -> LoadForecast:
        version = self.registry.champion()
        assert version is not None
        return LoadForecast(version, self.registry.forecast(version, history, horizon))


class LabRegistry(Registry):
    """Versions that forecast persistence times a growth."""

    def forecast(self, version: str, history: pd.DataFrame, horizon: int) -> pd.DataFrame:
        rules = RuleScorer(growth=self.factors[version])
        return rules.forecast_history(history, horizon).frame


def test_the_loop_stops_planning_on_a_broken_champion_and_rolls_it_back() -> None:
    """A champion forecasting 3x the load (under the growth bound, so it is planned on):
    within the judged window the loop stops using it, ``@champion`` moves back to v1, a
    human is alerted, and no action after the fallback rests on v2's forecasts."""
    lab = make_lab(seed=5)
    registry = LabRegistry({"1": 1.0, "2": 3.0}, "2", "1")
    audit = AuditLog(":memory:")
    settings = OodaSettings(predictive=PredictiveSettings(enabled=True))
    loop = make_loop(lab, settings, scorer=Following(registry), audit=audit, models=registry)
    run(lab, loop, 90)
    entries = audit.entries()
    fallback = next(e for e in entries if e.action == "model_fallback")
    assert fallback.kind == "escalation" and fallback.evidence["version"] == "2"
    assert alert_of(fallback, "shop", "eu-west-1").name == "OodaForecasterFallback"  # type: ignore[union-attr]
    rolled = next(e for e in entries if e.action == "model_rollback")
    assert rolled.kind == "model" and registry.current == "1"
    assert fallback.at - entries[0].at <= timedelta(minutes=45)
    rested = [e.evidence.get("forecast_version") for e in entries if e.kind == "decision"]
    before = [e for e in entries if e.kind == "decision" and e.at < fallback.at]
    after = [e for e in entries if e.kind == "decision" and e.at >= fallback.at]
    assert any(e.evidence.get("forecast_version") == "2" for e in before), rested
    assert all(e.evidence.get("forecast_version") != "2" for e in after), rested


class _Scaled(PythonModel):
    """A forecaster pyfunc: the last rate of each service times ``factor``."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def predict(
        self, context: object, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        horizon = int((params or {}).get("horizon", 30))
        frame = RuleScorer(growth=self.factor).forecast_history(model_input, horizon).frame
        return frame.assign(timestamp=pd.to_datetime(frame["timestamp"], utc=True))


def test_the_mlflow_registry_forecasts_with_an_old_version_and_rolls_back_with_tags(
    tmp_path: Path,
) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("watch", artifact_location=(tmp_path / "a").as_uri())
    mlflow.set_tracking_uri(uri)
    client.create_registered_model("ooda-forecaster")
    history = views(T0)["frontend"].history.assign(service="frontend")
    example = pyfunc_history(history)
    signature = infer_signature(
        example, _Scaled(1.0).predict(None, example, {"horizon": 2}), params={"horizon": 30}
    )
    for factor in (1.0, 10.0):
        with mlflow.start_run(experiment_id=experiment) as run:
            logged = mlflow.pyfunc.log_model(
                name="model", python_model=_Scaled(factor), signature=signature
            )
        client.create_model_version("ooda-forecaster", logged.model_uri, run_id=run.info.run_id)
    for version in ("1", "2"):
        training.promote(client, "ooda-forecaster", version, actor="ci", reason="test")
    registry = MlflowForecasterRegistry(client, "ooda-forecaster")
    assert (registry.champion(), registry.previous("2"), registry.previous("1")) == ("2", "1", None)
    answer = registry.forecast("1", history, 5)
    assert len(answer) == 5 and answer["q50"].iloc[0] == history["request_rate"].iloc[-1]
    assert str(answer["timestamp"].dt.tz) == "UTC"
    assert registry.rollback("2", "live accuracy watch: v2 MASE 9.1", {"mase": 9.1}) == "1"
    assert registry.champion() == "1"
    tags = client.get_model_version("ooda-forecaster", "2").tags
    assert tags["rolled_back_by"] == "ooda" and "MASE 9.1" in tags["rolled_back_reason"]
    assert json.loads(tags["rollback_evidence"]) == {"mase": 9.1}
    with pytest.raises(training.RegistryError, match="no longer v2"):
        registry.rollback("2", "again", {})


def test_seeded_with_a_day_the_baseline_is_the_same_minute_yesterday() -> None:
    registry = Registry({"1": 1.0}, "1", None)
    watch = ForecastWatch(SETTINGS, registry)
    day = pd.date_range(
        end=pd.Timestamp(T0) - pd.Timedelta(minutes=1), periods=1440 + 60, freq="1min"
    )
    watch.seed(
        pd.DataFrame(
            [(s, t, rate(s, t)) for s in SERVICES for t in day],
            columns=["service", "timestamp", "request_rate"],
        )
    )
    assert watch.seeded
    play(watch, registry, 60)
    acc = watch.accuracy("1", T0 + timedelta(minutes=59))
    assert acc is not None
    points = [
        (s, pd.Timestamp(T0) + pd.Timedelta(minutes=m)) for s in SERVICES for m in range(1, 60)
    ]
    yesterday = np.mean([abs(rate(s, t) - rate(s, t - pd.Timedelta(days=1))) for s, t in points])
    assert acc.baseline_mae == pytest.approx(yesterday, rel=0.05)


def test_a_condemned_champion_that_stays_champion_drives_nothing_more() -> None:
    """No better predecessor: ``@champion`` stays on v2 and keeps answering, and from the
    fallback on no decision rests on its forecasts (they rest on the baselines)."""
    lab = make_lab(seed=5)
    registry = LabRegistry({"1": 5.0, "2": 3.0}, "2", "1")
    audit = AuditLog(":memory:")
    settings = OodaSettings(predictive=PredictiveSettings(enabled=True))
    loop = make_loop(lab, settings, scorer=Following(registry), audit=audit, models=registry)
    run(lab, loop, 90)
    entries = audit.entries()
    fallback = next(e for e in entries if e.action == "model_fallback")
    assert registry.current == "2" and not any(e.action == "model_rollback" for e in entries)
    decided = [e for e in entries if e.kind == "decision"]
    assert any(e.evidence.get("forecast_version") == "2" for e in decided if e.at < fallback.at)
    after = [e.evidence.get("forecast_version") for e in decided if e.at > fallback.at]
    assert "2" not in after, after


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_merging_settled_forecasts_once_judges_the_same_points_as_all_at_once(seed: int) -> None:
    """The watch merges a forecast's points once it has settled; the points it judges must be
    those of every kept forecast concatenated, each point by the freshest forecast for it,
    whatever the horizons, and after forecasts leave the window."""
    rng = np.random.default_rng(seed)
    watch = ForecastWatch(replace(SETTINGS, window=timedelta(minutes=90)))
    for minute in range(240):
        now = T0 + timedelta(minutes=minute)
        watch.observe(views(now))
        if rng.random() < 0.3:
            horizon = int(rng.integers(5, 40))
            history = views(now)["frontend"].history.assign(service="frontend")
            frame = Registry({"1": float(rng.uniform(0.5, 2))}, "1", None).forecast(
                "1", history, horizon
            )
            watch.record(now, LoadForecast("1", frame))
        got = watch._version_points("1", now)
        parts = [watch._points(k, now) for k in watch._kept]
        parts = [p for p in parts if not p.empty]
        if not parts:
            assert got.empty
            continue
        expected = pd.concat(parts, ignore_index=True).drop_duplicates(
            ["service", "timestamp"], keep="last"
        )
        columns = ["service", "timestamp", "actual", "q50", "baseline"]
        key = ["service", "timestamp"]
        pd.testing.assert_frame_equal(
            got[columns].sort_values(key, ignore_index=True),
            expected[columns].sort_values(key, ignore_index=True),
        )
