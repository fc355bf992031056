"""Predictive scaling: the floor follows the forecast's upper quantile at the floor's share
of a pod's CPU, within the HPA's bounds; it never moves a floor a human set or a runbook
raised for a failure, is off unless asked for, and is not verified as a heal. The chaos
run's predictive week reports both ways of scaling."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from actuators import FLOOR_FOR, MIN_ORIGINAL, MIN_SET, Guard, SetHpaMinReplicas
from contracts import METRIC_VALUE_COLUMNS, HpaState, ScenarioId, WorkloadState
from ooda import AutonomySettings, OodaSettings, PredictiveSettings, RuleScorer
from ooda._autonomy import ErrorBudget
from ooda._chaos import ChaosSettings, run_chaos
from ooda._chaos_report import to_json
from ooda._predictive import PREDICTIVE, predictive_floor
from ooda._records import LoadForecast, Snapshot
from ooda._recover import recover
from tests._narrow import some
from tests.ooda._harness import make_lab, make_loop, run
from tests.ooda._snapshots import region_snapshot

NOW = datetime(2026, 11, 18, 8, 0, tzinfo=UTC)
ON = OodaSettings(predictive=PredictiveSettings(enabled=True))


def snapshot(peak: float, min_replicas: int = 3, notes: dict[str, str] | None = None) -> Snapshot:
    """checkout: 4 pods serve 100 rps at 50 % CPU (50 rps a pod at 100 %); the forecast's
    q90 reaches ``peak`` within the next quarter hour."""
    stamps = pd.date_range(end=NOW, periods=30, freq="1min")
    history = pd.DataFrame(
        {"timestamp": stamps, "region": "eu-west-1", "service": "checkout"}
        | dict.fromkeys(METRIC_VALUE_COLUMNS, 0.0)
        | {"request_rate": 100.0, "cpu_utilisation": 0.5, "ready_pods": 4.0}
    )
    ahead = pd.date_range(start=NOW + timedelta(minutes=1), periods=30, freq="1min")
    q90 = [100.0] * 30
    q90[9] = peak
    forecast = pd.DataFrame(
        {"service": "checkout", "timestamp": ahead, "q10": 90.0, "q50": 100.0, "q90": q90}
    )
    hpa = HpaState("checkout", min_replicas, 20, 4, 4, 0.75, notes or {})
    workload = WorkloadState("shop", "checkout", "checkout", 4, 4, 1, None, (), hpa)
    return region_snapshot(
        NOW,
        {"checkout": workload},
        {"checkout": history},
        forecast=LoadForecast("lstm/3", forecast),
    )


def test_the_floor_serves_the_forecast_peak_at_the_floor_share_of_a_pod() -> None:
    action = predictive_floor(snapshot(400.0), "checkout", ON)
    assert isinstance(action, SetHpaMinReplicas) and action.purpose == PREDICTIVE
    assert action.min_replicas == 11  # 400 rps / (50 rps x 0.75) = 10.7
    capped = predictive_floor(snapshot(4000.0), "checkout", ON)
    assert capped is not None and capped.min_replicas == 20, "never past the HPA's maximum"


def test_it_goes_back_down_but_never_under_the_floor_it_found() -> None:
    ours = {MIN_SET: "12", MIN_ORIGINAL: "3", FLOOR_FOR: PREDICTIVE}
    down = predictive_floor(snapshot(120.0, min_replicas=12, notes=ours), "checkout", ON)
    assert down is not None and down.min_replicas == 4  # 120 / 37.5 = 3.2
    quiet = predictive_floor(snapshot(20.0, min_replicas=12, notes=ours), "checkout", ON)
    assert quiet is not None and quiet.min_replicas == 3
    assert predictive_floor(snapshot(20.0), "checkout", ON) is None, "already at the floor"


@pytest.mark.parametrize(
    ("notes", "why"),
    [
        ({MIN_SET: "8", MIN_ORIGINAL: "3", FLOOR_FOR: "traffic_surge"}, "a surge's floor"),
        ({MIN_SET: "8", MIN_ORIGINAL: "3", FLOOR_FOR: PREDICTIVE}, "a human moved it to 6"),
    ],
)
def test_a_floor_that_is_not_its_own_is_left_alone(notes: dict[str, str], why: str) -> None:
    minimum = 8 if notes[FLOOR_FOR] != PREDICTIVE else 6
    assert predictive_floor(snapshot(400.0, minimum, notes), "checkout", ON) is None, why


def test_off_unless_asked_for() -> None:
    assert predictive_floor(snapshot(400.0), "checkout", OodaSettings()) is None
    no_forecast = replace(snapshot(400.0), forecast=None)
    assert predictive_floor(no_forecast, "checkout", ON) is None


def test_the_chaos_run_measures_a_predictive_day_against_the_reactive_hpa() -> None:
    result = run_chaos(
        OodaSettings(),
        ChaosSettings((ScenarioId.POD_CRASHLOOP,), runs=0, seed=1, predictive_days=0.1),
        RuleScorer(),
    )
    week = to_json(result)["predictive_week"]
    assert week["days"] == 0.1 and week["hpa_target"] == 0.8
    for mode in ("reactive", "predictive"):
        assert week[mode]["pod_minutes"] > 0 and week[mode]["breach_minutes"] >= 0
    assert week["predictive"]["pod_minutes"] != week["reactive"]["pod_minutes"]
    assert week["pod_minutes_saved"] == pytest.approx(
        1 - week["predictive"]["pod_minutes"] / week["reactive"]["pod_minutes"], abs=1e-4
    )


def test_a_floor_that_follows_the_forecast_is_applied_but_never_judged_as_a_heal() -> None:
    lab = make_lab()
    cool = PredictiveSettings(enabled=True, floor_utilisation=0.4)  # above the HPA's own pods
    loop = make_loop(lab, OodaSettings(predictive=cool))
    run(lab, loop, 20)
    floors = [e for e in loop.audit.entries("action") if e.evidence.get("runbook") == PREDICTIVE]
    assert floors and all(e.outcome == "applied" for e in floors)
    assert loop.pending == [] and loop.audit.entries("verification") == []
    assert recover(loop.audit, Guard(), ErrorBudget(AutonomySettings())).pending == []
    hpa = lab.kube.autoscaling_v2.read_namespaced_horizontal_pod_autoscaler(
        floors[-1].service, "shop"
    )
    assert some(some(hpa.metadata).annotations)[FLOOR_FOR] == PREDICTIVE
