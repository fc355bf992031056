"""A heal on a service that serves nobody (a warm standby) is verified on its workload alone,
and only by an action whose own goal says so (``Action.verifies_idle``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from actuators import Action, ActionResult, DrainNode, RestartPod, ScaleDeployment, slo_minutes
from contracts import PodState, Verdict, VerifyWindow, WorkloadState
from tests.actuators._stubs import verify_window

NS = "shop"
T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _window(
    rate: list[float],
    p95: list[float],
    err: list[float],
    *,
    looping: bool = False,
    minutes_after: int = 3,
) -> VerifyWindow:
    pod = PodState(
        "checkout-1", "n1", not looping, 4, "CrashLoopBackOff" if looping else None, True
    )
    workload = WorkloadState(
        NS, "checkout", "checkout", 1, 0 if looping else 1, 1, None, (pod,), None
    )
    minutes = {"request_rate": rate, "p95_latency_ms": p95, "error_rate": err}
    return verify_window(workload, minutes, T0, judged_after=minutes_after, deadline_after=6)


IDLE = ([0.0, 0.0, 0.0], [np.nan] * 3, [np.nan] * 3)


def _result(action: Action) -> ActionResult:
    return ActionResult(action.kind, action.target, False, {}, {"replicas": 1}, False)


def test_idle_minutes_count_as_inside_the_slo_only_when_asked() -> None:
    window = _window(*IDLE)
    assert slo_minutes(window) == [False, False, False]
    assert slo_minutes(window, idle=True) == [True, True, True]


def test_a_minute_with_requests_is_judged_on_them_even_when_idle_ones_count() -> None:
    window = _window([0.0, 5.0, 5.0], [np.nan, 400.0, 90.0], [np.nan, 0.0, np.nan])
    assert slo_minutes(window, idle=True) == [True, False, False]


def test_a_restart_on_an_idle_service_heals_once_its_pods_are_back() -> None:
    action = RestartPod(NS, "checkout", pod="checkout-1")
    assert action.verifies_idle
    assert action.check(_result(action), _window(*IDLE)).verdict is Verdict.HEALED
    still = action.check(_result(action), _window(*IDLE, looping=True))
    assert still.verdict is Verdict.PENDING
    assert "CrashLoopBackOff" in still.reason
    late = _window(*IDLE, looping=True, minutes_after=7)
    assert action.check(_result(action), late).verdict is Verdict.FAILED


@pytest.mark.parametrize("minutes_after", [3, 7])
def test_an_action_judged_on_its_users_never_heals_an_idle_service(minutes_after: int) -> None:
    """Scaling out an idle service would "heal" it whatever it did: it is never verified so."""
    action = ScaleDeployment(NS, "checkout", replicas=3)
    assert not action.verifies_idle
    outcome = action.check(_result(action), _window(*IDLE, minutes_after=minutes_after))
    assert outcome.verdict is (Verdict.PENDING if minutes_after < 6 else Verdict.FAILED)


def test_a_drain_under_an_idle_service_heals_once_its_replicas_are_ready_elsewhere() -> None:
    """No SLO speaks for an idle service, so the drain's own goal includes the replicas."""
    action = DrainNode(NS, "checkout", node="n9")
    assert action.verifies_idle
    assert action.check(_result(action), _window(*IDLE)).verdict is Verdict.HEALED
    unready = action.check(_result(action), _window(*IDLE, looping=True))
    assert unready.verdict is Verdict.PENDING
    assert "0 of 1 replicas Ready" in unready.reason
    unknown = replace(_window(*IDLE), workload=None)
    assert action.check(_result(action), unknown).reason == "workload state unknown"
    served = replace(_window([5.0] * 3, [90.0] * 3, [0.0] * 3), workload=None)
    assert action.check(_result(action), served).verdict is Verdict.HEALED
