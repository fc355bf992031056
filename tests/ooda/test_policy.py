from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from kubernetes import client as k

from ooda import OodaSettings, Policy, ServiceView, crashlooping_pods, per_pod_capacity

NOW = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)


def history(
    rate: float = 100.0, pods: int = 3, cpu: float = 0.5, minutes: int = 60
) -> pd.DataFrame:
    ts = pd.date_range(end=NOW, periods=minutes, freq="1min")
    return pd.DataFrame(
        {
            "timestamp": ts,
            "service": "frontend",
            "request_rate": rate,
            "p95_latency_ms": 60.0,
            "error_rate": 0.0,
            "cpu_utilisation": cpu,
            "ready_pods": float(pods),
            "desired_pods": float(pods),
        }
    )


def hpa(
    min_replicas: int = 2, max_replicas: int = 20, current: int = 3, target: int = 60
) -> k.V2HorizontalPodAutoscaler:
    metric = k.V2MetricSpec(
        type="Resource",
        resource=k.V2ResourceMetricSource(
            name="cpu", target=k.V2MetricTarget(type="Utilization", average_utilization=target)
        ),
    )
    return k.V2HorizontalPodAutoscaler(
        metadata=k.V1ObjectMeta(name="frontend", namespace="shop"),
        spec=k.V2HorizontalPodAutoscalerSpec(
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            metrics=[metric],
            scale_target_ref=k.V2CrossVersionObjectReference(kind="Deployment", name="frontend"),
        ),
        status=k.V2HorizontalPodAutoscalerStatus(
            current_replicas=current, desired_replicas=current
        ),
    )


def forecast(level: float, start: datetime = NOW) -> pd.DataFrame:
    ts = pd.date_range(start + timedelta(minutes=1), periods=30, freq="1min")
    return pd.DataFrame(
        {
            "service": "frontend",
            "timestamp": ts,
            "q10": level * 0.9,
            "q50": level,
            "q90": level * 1.1,
        }
    )


def pod(name: str, reason: str | None, restarts: int) -> k.V1Pod:
    state = (
        k.V1ContainerState(waiting=k.V1ContainerStateWaiting(reason=reason))
        if reason
        else k.V1ContainerState(running=k.V1ContainerStateRunning())
    )
    return k.V1Pod(
        metadata=k.V1ObjectMeta(name=name, labels={"app": "checkout"}),
        status=k.V1PodStatus(
            container_statuses=[
                k.V1ContainerStatus(
                    name="app",
                    image="x",
                    image_id="",
                    ready=reason is None,
                    restart_count=restarts,
                    state=state,
                )
            ]
        ),
    )


def test_per_pod_capacity_inverts_utilisation() -> None:
    # 100 rps over 3 pods at 50 % CPU: one pod does 66.7 rps at 100 %.
    assert per_pod_capacity(history()) == np.float64(100 / 3 / 0.5)


def test_per_pod_capacity_needs_unsaturated_samples() -> None:
    assert per_pod_capacity(history(cpu=0.95)) is None


def test_forecast_above_capacity_raises_min_replicas_ahead_of_load() -> None:
    policy = Policy(OodaSettings())
    view = ServiceView("frontend", history())
    # 300 rps forecast, q90 = 330; per pod at 60 % target = 40 rps -> 9 pods.
    decision = policy.plan_capacity(view, forecast(300.0), hpa(), NOW)
    assert decision is not None
    assert decision.action.kind == "set_hpa_min"
    assert decision.action.min_replicas == 9  # type: ignore[attr-defined]
    assert decision.evidence["needed_replicas"] == 9


def test_forecast_within_capacity_does_nothing() -> None:
    policy = Policy(OodaSettings())
    assert (
        policy.plan_capacity(ServiceView("frontend", history()), forecast(100.0), hpa(), NOW)
        is None
    )


def test_raise_is_capped_at_max_replicas() -> None:
    policy = Policy(OodaSettings())
    decision = policy.plan_capacity(
        ServiceView("frontend", history()), forecast(5000.0), hpa(max_replicas=12), NOW
    )
    assert decision is not None and decision.action.min_replicas == 12  # type: ignore[attr-defined]


def test_never_scales_in_on_a_forecast_alone() -> None:
    policy = Policy(OodaSettings())
    view_hot = ServiceView("frontend", history(rate=300.0, pods=9, cpu=0.55))
    raised = policy.plan_capacity(ServiceView("frontend", history()), forecast(300.0), hpa(), NOW)
    assert raised is not None
    # the forecast drops but observed load is still high: keep the minimum
    later = NOW + timedelta(minutes=30)
    assert (
        policy.plan_capacity(view_hot, forecast(50.0, later), hpa(min_replicas=9, current=9), later)
        is None
    )


def test_scales_in_after_observed_load_stayed_low() -> None:
    policy = Policy(OodaSettings())
    assert (
        policy.plan_capacity(ServiceView("frontend", history()), forecast(300.0), hpa(), NOW)
        is not None
    )
    quiet = hpa(min_replicas=9, current=9)
    t1 = NOW + timedelta(minutes=40)
    low = ServiceView(
        "frontend",
        history(rate=100.0, pods=9, cpu=0.17).assign(
            timestamp=lambda f: f["timestamp"] + timedelta(minutes=40)
        ),
    )
    assert policy.plan_capacity(low, forecast(100.0, t1), quiet, t1) is None  # low only just now
    t2 = t1 + timedelta(minutes=11)
    low2 = ServiceView(
        "frontend", low.history.assign(timestamp=lambda f: f["timestamp"] + timedelta(minutes=11))
    )
    decision = policy.plan_capacity(low2, forecast(100.0, t2), quiet, t2)
    assert decision is not None and decision.action.min_replicas == 3  # type: ignore[attr-defined]


def test_restart_only_a_crashlooping_pod_of_an_anomalous_service() -> None:
    policy = Policy(OodaSettings())
    view = ServiceView("checkout", history().assign(service="checkout"))
    pods = [
        pod("checkout-a", None, 0),
        pod("checkout-b", "CrashLoopBackOff", 6),
        pod("checkout-c", "CrashLoopBackOff", 9),
    ]
    assert crashlooping_pods(pods) == [("checkout-c", 9), ("checkout-b", 6)]
    assert policy.restart_crashlooping(view, 0.3, pods) is None  # not anomalous
    decision = policy.restart_crashlooping(view, 0.9, pods)
    assert decision is not None and decision.action.pod == "checkout-c"  # type: ignore[attr-defined]
    assert policy.restart_crashlooping(view, 0.9, [pod("checkout-a", None, 0)]) is None
