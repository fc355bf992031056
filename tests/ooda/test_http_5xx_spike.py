"""The 5xx runbook rolls back a fresh rollout whose pods fail; a caller whose errors come from
a failing callee is not rolled back, however near in time its own benign rollout was."""

from __future__ import annotations

from contracts import ScenarioId
from ooda._chaos import ChaosSettings, draw_instance
from tests.ooda._harness import play_on


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
