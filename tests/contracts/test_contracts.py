"""The shared contracts: clocks, ids and the records that cross layers."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from contracts import (
    ActionKind,
    InvalidTimeError,
    PodState,
    ScenarioId,
    SimClock,
    WallClock,
    WorkloadState,
)

START = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)


def test_sim_clock_moves_only_forward_and_sleep_moves_it() -> None:
    clock = SimClock(START)
    clock.advance(timedelta(minutes=5))
    assert clock.now() == START + timedelta(minutes=5)
    clock.sleep(30)
    assert clock.now() == START + timedelta(minutes=5, seconds=30)
    with pytest.raises(InvalidTimeError, match="backwards"):
        clock.advance(timedelta(seconds=-1))
    with pytest.raises(InvalidTimeError, match="naive"):
        SimClock(datetime(2026, 1, 1))


def test_wall_clock_is_aware_and_really_sleeps() -> None:
    clock = WallClock()
    assert clock.now().tzinfo is not None
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)
    started = time.monotonic()
    clock.sleep(0.05)
    assert time.monotonic() - started >= 0.05


def test_the_chaos_contract_ids_are_stable() -> None:
    assert [s.value for s in ScenarioId] == [
        "pod_crashloop",
        "pod_crashloop_persistent",
        "http_5xx_spike",
        "memory_leak",
        "latency_p95",
        "node_not_ready",
        "node_disk_pressure",
        "db_read_latency",
        "packet_loss",
        "traffic_surge",
        "kafka_consumer_lag",
        "queue_depth",
        "upstream_throttling",
        "http_5xx_wedged",
    ]
    assert ActionKind("restart_pod") is ActionKind.RESTART_POD
    with pytest.raises(ValueError):
        ScenarioId("pod_crash")


def test_a_workload_is_keyed_by_namespace_and_deployment_and_orders_its_crash_loops() -> None:
    pods = (
        PodState("a", "n1", True, 0, None, True),
        PodState("b", "n1", False, 7, "CrashLoopBackOff", True),
        PodState("c", "n2", False, 9, "CrashLoopBackOff", True),
    )
    state = WorkloadState("shop", "checkout", "checkout", 3, 1, 2, None, pods, None)
    assert state.workload == "shop/checkout"
    assert [p.name for p in state.crashlooping] == ["c", "b"]
