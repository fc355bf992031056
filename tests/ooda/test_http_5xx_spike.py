"""The 5xx runbook rolls back a fresh rollout whose pods fail; a caller whose errors come from
a failing callee is not rolled back, however near in time its own benign rollout was; nor is a
release whose errors come with a surge of its load."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from contracts import PodState, ScenarioId, WorkloadState
from ooda import OodaSettings
from ooda._chaos import ChaosSettings, draw_instance
from ooda._records import Snapshot
from ooda.runbooks.http_5xx_spike import Http5xxSpike
from tests.ooda._harness import play_on
from tests.ooda._snapshots import region_snapshot


def test_a_caller_s_benign_rollout_is_not_blamed_for_a_crash_looping_callee() -> None:
    """The twelve-scenario re-run found it: checkout crash-loops on a broken ConfigMap, and a
    benign rollout of frontend (its caller) lands minutes later; frontend's 5xx are
    checkout's failing calls. Rolling frontend back heals nothing."""
    lab, instance, inject_at, end = draw_instance(
        ChaosSettings(seed=7), ScenarioId.POD_CRASHLOOP_PERSISTENT, 10
    )
    assert instance.service == "checkout"
    played = play_on(lab, instance, inject_at, end)
    caller = played.metrics[played.metrics["service"] == "frontend"]
    assert caller[caller["timestamp"] >= inject_at]["error_rate"].max() > 0.01
    diagnoses = [e.detail for e in played.events if e.kind == "diagnosis"]
    assert diagnoses and all(d.startswith("pod_crashloop") for d in diagnoses), diagnoses
    assert not [e for e in played.events if e.kind == "action"], "acted on a broken config"


def _spiking(rates: list[float]) -> Snapshot:
    """Frontend with 5 % errors in its last three minutes, after a rollout four minutes ago
    (every pod on the new revision), at ``rates`` requests per second, a minute each."""
    start = datetime(2026, 11, 17, 16, 0, tzinfo=UTC)
    stamps = [start + timedelta(minutes=i) for i in range(len(rates))]
    errors = [0.0] * (len(rates) - 3) + [0.05] * 3
    history = pd.DataFrame(
        {
            "timestamp": stamps,
            "service": "frontend",
            "request_rate": rates,
            "request_rate_instant": rates,
            "error_rate": errors,
            "p95_latency_ms": 120.0,
        }
    )
    at = stamps[-1]
    pods = tuple(PodState(f"frontend-{i}", "n1", True, 0, None, True, "new") for i in range(3))
    workload = WorkloadState(
        "shop", "frontend", "frontend", 3, 3, 2, at - timedelta(minutes=4), pods, None, "new"
    )
    return region_snapshot(at, {"frontend": workload}, {"frontend": history})


def test_errors_under_a_surge_do_not_roll_back_a_fresh_rollout() -> None:
    """Seed 7's traffic x3 instance 1: a benign rollout a minute before the surge, errors from
    the load, and the runbook rolled the release back at the peak."""
    runbook = Http5xxSpike(OodaSettings())
    steady = runbook.matches(_spiking([100.0] * 63), "frontend")
    assert steady is not None, "the same errors at a steady load are the rollout's"
    assert runbook.matches(_spiking([100.0] * 60 + [180.0, 260.0, 300.0]), "frontend") is None
