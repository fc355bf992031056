from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from actuators import ActionResult, RestartPod, SetHpaMinReplicas
from ooda import OodaSettings, PendingAction, ServiceView, Verdict, judge

T0 = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)


def view(p95: list[float], ready: float = 3.0, err: float = 0.0) -> ServiceView:
    ts = pd.date_range(T0 - timedelta(minutes=4), periods=len(p95), freq="1min")
    return ServiceView(
        "checkout",
        pd.DataFrame(
            {
                "timestamp": ts,
                "service": "checkout",
                "p95_latency_ms": p95,
                "error_rate": err,
                "ready_pods": ready,
                "desired_pods": 3.0,
                "request_rate": 10.0,
            }
        ),
    )


def restart_pending() -> PendingAction:
    action = RestartPod("shop", "checkout", pod="checkout-x")
    result = ActionResult("restart_pod", action.target, False, {}, {"deleted": True}, False)
    return PendingAction(action, result, T0, T0 + timedelta(minutes=10))


def scale(before: int, after: int) -> PendingAction:
    action = SetHpaMinReplicas("shop", "checkout", hpa="checkout", min_replicas=after)
    result = ActionResult(
        "set_hpa_min", action.target, False, {"min_replicas": before}, {"min_replicas": after}, True
    )
    return PendingAction(action, result, T0, T0 + timedelta(minutes=10))


S = OodaSettings()


def test_restart_is_healed_after_two_good_minutes_with_all_pods_ready() -> None:
    v = view([400, 400, 400, 400, 400, 90, 80])  # minutes T0-4 .. T0+2
    assert judge(restart_pending(), v, T0 + timedelta(minutes=2), S)[0] is Verdict.HEALED


def test_restart_waits_while_a_pod_is_missing_then_fails_at_deadline() -> None:
    v = view([400, 400, 400, 400, 400, 90, 80], ready=2.0)
    assert judge(restart_pending(), v, T0 + timedelta(minutes=2), S)[0] is Verdict.PENDING
    verdict, reason = judge(restart_pending(), v, T0 + timedelta(minutes=10), S)
    assert verdict is Verdict.FAILED and "deadline" in reason


def test_minutes_before_the_action_do_not_count() -> None:
    v = view([80, 80, 80, 80, 80])  # all healthy but none after T0
    assert judge(restart_pending(), v, T0 + timedelta(seconds=30), S)[0] is Verdict.PENDING


def test_scale_out_needs_the_capacity_to_arrive() -> None:
    v = view([400, 400, 400, 400, 400, 90, 80], ready=3.0)
    assert judge(scale(3, 8), v, T0 + timedelta(minutes=2), S)[0] is Verdict.PENDING
    v8 = view([400, 400, 400, 400, 400, 90, 80], ready=8.0)
    assert judge(scale(3, 8), v8, T0 + timedelta(minutes=2), S)[0] is Verdict.HEALED


def test_scale_in_fails_at_the_first_breach() -> None:
    pending = scale(8, 3)
    assert pending.is_scale_in
    v = view([80, 80, 80, 80, 80, 90, 300])
    verdict, reason = judge(pending, v, T0 + timedelta(minutes=2), S)
    assert verdict is Verdict.FAILED and "scaling in" in reason
