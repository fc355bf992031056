"""A floor or a scale-out the cluster has no room for: the pods that fit are judged on the SLO
they keep, and the verdict names the pods left Pending; waiting for them would fail a heal
that worked (as the surge of seed-7 instance 1 did twice before this rule)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from actuators import Action, ActionResult, ScaleDeployment, SetHpaMinReplicas
from contracts import PodState, Verdict, VerifyWindow, WorkloadState
from tests.actuators._stubs import verify_window

NS = "shop"
T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _window(ready: int, pending: int, p95: float, minutes_after: int = 3) -> VerifyWindow:
    pods = tuple(PodState(f"web-{i}", "n1", True, 0, None, True) for i in range(ready)) + tuple(
        PodState(f"web-p{i}", None, False, 0, None, True, unschedulable=True)
        for i in range(pending)
    )
    workload = WorkloadState(NS, "web", "web", ready + pending, ready, 1, None, pods, None)
    minutes = {"request_rate": [50.0] * 3, "p95_latency_ms": [p95] * 3, "error_rate": [0.0] * 3}
    return verify_window(workload, minutes, T0, judged_after=minutes_after)


def _floor(capped: bool) -> tuple[Action, ActionResult]:
    action = SetHpaMinReplicas(NS, "web", hpa="web", min_replicas=6)
    after = {"min_replicas": 6, "capped_at_max": capped}
    return action, ActionResult(action.kind, action.target, False, {"min_replicas": 3}, after, True)


def _scale() -> tuple[Action, ActionResult]:
    action = ScaleDeployment(NS, "web", deployment="web", replicas=6)
    return action, ActionResult(
        action.kind, action.target, False, {"replicas": 3}, {"replicas": 6}, True
    )


CASES = {"floor": lambda: _floor(False), "capped floor": lambda: _floor(True), "scale": _scale}


@pytest.mark.parametrize("case", CASES)
def test_the_pods_that_fit_keeping_the_slo_heal_and_the_rest_are_named(case: str) -> None:
    action, result = CASES[case]()
    outcome = action.check(result, _window(ready=4, pending=2, p95=90.0))
    assert outcome.verdict is Verdict.HEALED
    assert "2 pod(s) unschedulable" in outcome.reason


@pytest.mark.parametrize("case", CASES)
def test_the_pods_that_fit_failing_the_slo_fail_by_the_deadline(case: str) -> None:
    action, result = CASES[case]()
    assert action.check(result, _window(4, 2, 400.0)).verdict is Verdict.PENDING
    late = action.check(result, _window(4, 2, 400.0, minutes_after=11))
    assert late.verdict is Verdict.FAILED
    assert "unschedulable" in late.reason


@pytest.mark.parametrize("case", CASES)
def test_pods_still_starting_are_waited_for(case: str) -> None:
    """Not Ready but placed: the cluster had room, the pods are coming."""
    action, result = CASES[case]()
    outcome = action.check(result, _window(ready=4, pending=0, p95=90.0))
    assert outcome.verdict is Verdict.PENDING
