"""Behaviour of the simulated estate: HPA, crash loops, surges, SLOs, history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

import contracts
from lab import (
    CrashLoopFault,
    InvalidTimeError,
    Lab,
    LabSettings,
    NoTargetError,
    ScrapeSettings,
    ServiceSettings,
    SettingsError,
    SimClock,
    TopologySettings,
    TrafficSurgeFault,
    UnknownServiceError,
)
from tests._narrow import some

NS = "shop"
PEAK = datetime(2025, 1, 8, 19, tzinfo=UTC)  # a Wednesday at the daily peak
NOON = datetime(2025, 1, 8, 12, tzinfo=UTC)


def window(lab: Lab, minutes: float, service: str) -> pd.DataFrame:
    end = lab.clock.now()
    frame = lab.source.query_range(end - timedelta(minutes=minutes), end, timedelta(minutes=1))
    return frame[frame.service == service]


def breached(frame: pd.DataFrame) -> pd.Series:
    return (frame.p95_latency_ms > 150) | (frame.error_rate > 0.001)


def test_raising_min_replicas_scales_out_and_lowers_utilisation_and_latency() -> None:
    lab = Lab(LabSettings(), SimClock(PEAK))
    lab.step(timedelta(minutes=15))
    before = window(lab, 5, "frontend")
    scale = lab.kube.apps_v1.read_namespaced_deployment_scale("frontend", NS)
    replicas = some(some(scale.spec).replicas)
    lab.kube.autoscaling_v2.patch_namespaced_horizontal_pod_autoscaler(
        "frontend",
        NS,
        {"spec": {"minReplicas": 2 * replicas}},
        _content_type="application/merge-patch+json",
    )
    lab.step(timedelta(seconds=30))
    assert lab.kube.apps_v1.read_namespaced_deployment("frontend", NS).spec.replicas == 2 * replicas
    lab.step(timedelta(minutes=5))
    after = window(lab, 3, "frontend")
    assert after.ready_pods.iloc[-1] == 2 * replicas
    assert after.cpu_utilisation.mean() < 0.7 * before.cpu_utilisation.mean()
    assert after.p95_latency_ms.mean() < before.p95_latency_ms.mean() - 2


def test_crash_loop_shows_in_metrics_and_deleting_the_pod_heals() -> None:
    lab = Lab(LabSettings(), SimClock(NOON))
    lab.step(timedelta(minutes=10))
    record = lab.inject(CrashLoopFault("checkout"))
    assert record.scenario == "pod_crashloop" and record.ends_at is None
    assert record.target.startswith("checkout-")
    assert record.root_cause == "checkout" and record.felt_by == ("frontend", "checkout")
    waiting_seen = False
    for _ in range(40):  # 10 minutes
        lab.step(timedelta(seconds=15))
        status = some(lab.kube.core_v1.read_namespaced_pod(record.target, NS).status)
        waiting = some(some(status.container_statuses)[0].state).waiting
        waiting_seen |= waiting is not None and waiting.reason == "CrashLoopBackOff"
    assert waiting_seen
    assert some(status.container_statuses)[0].restart_count >= 4
    broken = window(lab, 10, "checkout")
    assert broken.restarts.max() >= 3
    assert broken.error_rate.max() > 0.01
    assert (broken.ready_pods < broken.desired_pods).mean() > 0.5
    assert window(lab, 10, "frontend").error_rate.max() > 0.001  # propagates upstream

    lab.kube.core_v1.delete_namespaced_pod(record.target, NS)
    lab.step(timedelta(minutes=8))
    healed = window(lab, 2, "checkout")
    assert (healed.restarts == 0).all() and (healed.error_rate == 0).all()
    assert (healed.ready_pods == healed.desired_pods).all()
    (truth,) = lab.ground_truth
    assert truth.target == record.target and truth.ends_at == NOON + timedelta(minutes=20)


def test_surge_breaches_slo_for_minutes_then_reactive_hpa_recovers() -> None:
    lab = Lab(LabSettings(), SimClock(PEAK))
    lab.step(timedelta(minutes=20))
    assert not breached(window(lab, 10, "frontend")).any()
    replicas = window(lab, 1, "frontend").desired_pods.iloc[-1]
    record = lab.inject(TrafficSurgeFault(factor=3.0))
    assert record.ends_at == record.injected_at + timedelta(minutes=40)
    assert record.felt_by == ("frontend", "checkout", "payments")
    lab.step(timedelta(minutes=15))
    surge = window(lab, 15, "frontend")
    assert (
        breached(surge).sum() >= 2
    )  # stock HPA (4 pods or 100 % per 15 s): pods start in about 2 min
    assert surge.p95_latency_ms.max() > 250
    lab.step(timedelta(minutes=15))
    plateau = window(lab, 10, "frontend")
    assert plateau.request_rate.mean() > 2.5 * window(lab, 40, "frontend").request_rate.iloc[0]
    assert not breached(plateau).any()
    assert plateau.desired_pods.iloc[-1] >= 2 * replicas


def test_history_day_is_deterministic_and_in_slo_without_incidents() -> None:
    """(Its speed is measured in benchmarks/bench_lab.py, not asserted here.)"""
    start = datetime(2025, 1, 6, tzinfo=UTC)
    frames, truths = [], []
    for _ in range(2):
        lab = Lab(LabSettings(seed=11), SimClock(start))
        lab.generate_history(1.0)
        assert lab.clock.now() == start + timedelta(days=1)
        frames.append(lab.source.query_range(start, lab.clock.now(), timedelta(minutes=1)))
        truths.append(lab.ground_truth)
    pd.testing.assert_frame_equal(frames[0], frames[1])
    assert truths[0] == truths[1]
    assert {r.scenario for r in truths[0]} == {"pod_crashloop", "traffic_surge"}
    assert all(r.ends_at is not None and r.ends_at <= lab.clock.now() for r in truths[0])
    assert len(frames[0]) == 3 * (24 * 60 + 1)
    assert frames[0].request_rate.iloc[:3].isna().all()  # no rate at the very first scrape
    assert frames[0].request_rate.iloc[3:].notna().all()

    quiet = Lab(LabSettings(seed=11), SimClock(start))
    quiet.generate_history(1.0, incidents=False)
    assert quiet.ground_truth == []
    day = quiet.source.query_range(
        start + timedelta(minutes=5), quiet.clock.now(), timedelta(minutes=1)
    )
    assert day.p95_latency_ms.max() < 150 and day.error_rate.max() < 0.001
    assert day.request_rate.max() > 1.8 * day.request_rate.min()  # daily seasonality
    hour = (start, start + timedelta(hours=1), timedelta(minutes=1))
    other = Lab(LabSettings(seed=12), SimClock(start))
    other.step(timedelta(hours=1))
    same_seed = quiet.source.query_range(*hour).request_rate.to_numpy()
    other_seed = other.source.query_range(*hour).request_rate.to_numpy()
    assert abs(other_seed[3:] - same_seed[3:]).max() > 1.0  # noise follows the seed


def test_errors_name_the_bad_value() -> None:
    lab = Lab(LabSettings(), SimClock(NOON))
    with pytest.raises(UnknownServiceError, match="cart"):
        lab.inject(CrashLoopFault("cart"))
    with pytest.raises(InvalidTimeError):
        lab.step(timedelta(0))
    with pytest.raises(InvalidTimeError):
        TrafficSurgeFault(ramp=timedelta(minutes=30), duration=timedelta(minutes=40))
    with pytest.raises(contracts.InvalidTimeError):  # the clock is the contracts' own
        SimClock(datetime(2025, 1, 1))
    with pytest.raises(SettingsError, match="basket"):
        LabSettings(topology=TopologySettings(services=(ServiceSettings("a", calls="basket"),)))
    with pytest.raises(SettingsError):
        LabSettings(scrape=ScrapeSettings(interval_s=0))
    payments = lab.kube.core_v1.list_namespaced_pod(NS, label_selector="app=payments").items
    for _ in payments:
        lab.inject(CrashLoopFault("payments"))
    with pytest.raises(NoTargetError, match="payments"):
        lab.inject(CrashLoopFault("payments"))
