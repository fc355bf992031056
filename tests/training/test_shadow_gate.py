"""Promotion on the shadow record: the challenger becomes champion only when it wins on the
live window by the training gate's rule; either way the rule and numbers are in its tags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from tests._narrow import some
from tests._registry import registry_with_versions
from training import (
    Incident,
    ShadowGateError,
    judge_detector_shadow,
    judge_forecaster_shadow,
    promote,
    promote_challenger,
)

T0 = datetime(2026, 11, 16, tzinfo=UTC)
NAME = "ooda-forecaster"


@pytest.fixture
def client(tmp_path: Path) -> MlflowClient:
    client = registry_with_versions(tmp_path, NAME, 2)[1]
    promote(client, NAME, "1", actor="ci", reason="first")
    promote(client, NAME, "2", alias="challenger", actor="ci", reason="try it")
    return client


def actuals(days: float = 2.0) -> pd.DataFrame:
    stamps = pd.date_range(T0, periods=int(days * 1440), freq="1min")
    minute = np.arange(len(stamps))
    rng = np.random.default_rng(1)
    value = 100 + 30 * np.sin(2 * np.pi * minute / 1440) + rng.normal(0, 8, len(stamps))
    return pd.DataFrame({"service": "checkout", "timestamp": stamps, "request_rate": value})


def record(seen: pd.DataFrame, champion_off: float, challenger_off: float) -> pd.DataFrame:
    live = seen[seen.timestamp >= pd.Timestamp(T0 + timedelta(days=1, hours=12))].head(240)
    return pd.DataFrame(
        {
            "at": live.timestamp - pd.Timedelta(minutes=5),
            "model": NAME,
            "champion": "1",
            "challenger": "2",
            "service": live.service,
            "timestamp": live.timestamp,
            "champion_q10": 0.0,
            "champion_q50": live.request_rate + champion_off,
            "champion_q90": 1e9,
            "challenger_q10": 0.0,
            "challenger_q50": live.request_rate + challenger_off,
            "challenger_q90": 1e9,
        }
    )


def test_a_challenger_that_wins_live_is_promoted_with_the_rule_in_its_tags(
    client: MlflowClient,
) -> None:
    seen = actuals()
    verdict = judge_forecaster_shadow(record(seen, 12.0, 2.0), seen)
    assert verdict.passed and verdict.numbers["mae_challenger"] < verdict.numbers["mae_baseline"]
    assert verdict.rule.startswith("live mae 2.000 < baseline")
    info = promote_challenger(client, NAME, verdict, actor="ci")
    assert info.version == "2" and "champion" in info.aliases
    assert "challenger" not in client.get_registered_model(NAME).aliases
    tags = client.get_model_version(NAME, "2").tags
    assert tags["shadow_passed"] == "true" and tags["shadow_rule"] == verdict.rule
    assert tags["promoted_reason"].startswith("shadow gate passed")
    run = client.get_run(some(client.get_model_version(NAME, "2").run_id))
    assert run.data.metrics["shadow_mae_challenger"] == verdict.numbers["mae_challenger"]


def test_a_challenger_that_loses_live_stays_challenger(client: MlflowClient) -> None:
    seen = actuals()
    verdict = judge_forecaster_shadow(record(seen, 2.0, 12.0), seen)
    assert not verdict.passed
    with pytest.raises(ShadowGateError, match="lost on the shadow record"):
        promote_challenger(client, NAME, verdict, actor="ci")
    aliases = client.get_registered_model(NAME).aliases
    assert (str(aliases["champion"]), str(aliases["challenger"])) == ("1", "2")
    assert client.get_model_version(NAME, "2").tags["shadow_passed"] == "false"


def test_beating_the_champion_is_not_enough_when_seasonal_naive_does_better(
    client: MlflowClient,
) -> None:
    seen = actuals()
    verdict = judge_forecaster_shadow(record(seen, 400.0, 300.0), seen)
    assert not verdict.passed and "baseline" in verdict.rule


def test_too_little_record_or_a_stale_one_is_refused(client: MlflowClient) -> None:
    seen = actuals()
    with pytest.raises(ShadowGateError, match="come true"):
        judge_forecaster_shadow(record(seen, 12.0, 2.0).head(10), seen)
    stale = record(seen, 12.0, 2.0).assign(challenger="7")
    verdict = judge_forecaster_shadow(stale, seen)
    with pytest.raises(ShadowGateError, match="judges v7, but @challenger is v2"):
        promote_challenger(client, NAME, verdict, actor="ci")


def test_the_detector_is_judged_on_incidents_by_f1() -> None:
    at = pd.date_range(T0, periods=120, freq="1min")
    truth = (at >= T0 + timedelta(minutes=60)) & (at < T0 + timedelta(minutes=80))
    frame = pd.DataFrame(
        {
            "at": at,
            "model": "ooda-detector",
            "champion": "3",
            "challenger": "4",
            "service": "checkout",
            "champion_score": np.where(truth, 0.4, 0.1),  # misses the incident
            "challenger_score": np.where(truth, 0.9, 0.1),
        }
    )
    incident = Incident("checkout", T0 + timedelta(minutes=60), T0 + timedelta(minutes=80), "x")
    verdict = judge_detector_shadow(frame, [incident])
    assert verdict.passed and verdict.numbers["f1_challenger"] == 1.0
    assert verdict.numbers["f1_champion"] == 0.0
    with pytest.raises(ShadowGateError, match="no incident"):
        judge_detector_shadow(frame, [])
