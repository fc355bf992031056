"""The memory leak: the working set climbs to the limit, GC slows the pod, the kernel
OOM-kills it; a restart before that ends it without either."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts import MetricFamily, ScenarioId
from lab import Lab, LabSettings, ScenarioInstance, SimClock

START = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)


def _leak(lab: Lab) -> str:
    instance = ScenarioInstance(
        ScenarioId.MEMORY_LEAK,
        "checkout",
        magnitude=1.0,
        params={"pick": 0.0, "to_limit_s": 600.0, "stagger": 0.8},
    )
    return lab.inject(instance).target


def _lab() -> Lab:
    lab = Lab(LabSettings(seed=2), SimClock(START))
    lab.step(timedelta(minutes=10))
    return lab


def test_the_leaking_pod_climbs_to_its_limit_and_is_oom_killed_once() -> None:
    lab = _lab()
    pod = _leak(lab)
    t0 = lab.clock.now()
    lab.step(timedelta(minutes=14))
    frame = lab.source.query_family(MetricFamily.POD, t0, lab.clock.now(), timedelta(minutes=1))
    mine = frame[frame["pod"] == pod]
    share = (
        mine["container_memory_working_set_bytes"]
        / mine["kube_pod_container_resource_limits_memory_bytes"]
    ).to_numpy()
    assert (share[:8] < 1.0).all() and (share[1:8] > share[:7]).all(), "it climbs"
    assert mine["kube_pod_container_status_restarts_total"].iloc[-1] == 1
    assert mine["kube_pod_container_status_last_terminated_oomkilled"].iloc[-1] == 1
    assert lab.ground_truth[-1].ends_at is not None, "the fresh process does not leak"
    others = frame[(frame["service"] == "checkout") & (frame["pod"] != pod)]
    assert (others["kube_pod_container_status_restarts_total"] == 0).all()


def test_deleting_the_leaking_pod_before_the_limit_ends_the_fault() -> None:
    lab = _lab()
    pod = _leak(lab)
    lab.step(timedelta(minutes=5))
    lab.kube.core_v1.delete_namespaced_pod(pod, "shop")
    lab.step(timedelta(seconds=15))
    record = lab.ground_truth[-1]
    assert record.ends_at is not None and record.ends_at <= lab.clock.now()
