"""The Kafka consumer-lag runbook: when it adds consumers, how many, never past the
partitions, what it leaves alone; and its chaos certification."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from actuators import RestartPod, ScaleConsumers
from contracts import (
    METRIC_VALUE_COLUMNS,
    HpaState,
    MetricFamily,
    PodState,
    ScenarioId,
    WorkloadState,
)
from ooda import OodaSettings, RuleScorer
from ooda._chaos import ChaosSettings, certified, run_chaos
from ooda._chaos_report import to_json
from ooda._records import ServiceView, Snapshot
from ooda.runbooks import check_runbook, registered_runbooks
from ooda.runbooks.kafka_consumer_lag import KafkaConsumerLag
from tests.ooda._snapshots import region_snapshot

NOW = datetime(2025, 1, 8, 12, tzinfo=UTC)


def kafka_frame(
    lags: list[float], produced: float, consumed: float, partitions: int = 12
) -> pd.DataFrame:
    """The group ``payments`` on ``orders``: total lag per minute, rates spread evenly."""
    rows = []
    for i, lag in enumerate(lags):
        at = pd.Timestamp(NOW - timedelta(minutes=len(lags) - 1 - i))
        for p in range(partitions):
            rows.append(
                {
                    "timestamp": at,
                    "region": "eu-west-1",
                    "service": "payments",
                    "consumergroup": "payments",
                    "topic": "orders",
                    "partition": str(p),
                    "kafka_consumergroup_lag": lag / partitions,
                    "kafka_topic_partition_current_offset_rate": produced / partitions,
                    "kafka_consumergroup_current_offset_rate": consumed / partitions,
                }
            )
    return pd.DataFrame(rows)


def snapshot(frame: pd.DataFrame, ready: int = 5, max_replicas: int = 30) -> Snapshot:
    hpa = HpaState("payments", 3, max_replicas, ready, ready, 0.6)
    workload = WorkloadState("shop", "payments", "payments", ready, ready, 1, None, (), hpa)
    return region_snapshot(NOW, {"payments": workload}, families={MetricFamily.KAFKA: frame})


@pytest.fixture
def runbook() -> KafkaConsumerLag:
    check_runbook(KafkaConsumerLag)
    return KafkaConsumerLag(OodaSettings())


def test_a_group_falling_behind_gets_enough_consumers_to_catch_up(
    runbook: KafkaConsumerLag,
) -> None:
    # 150/s produced, 5 consumers manage 90/s: 40 % short, 20 s -> 44 s behind
    frame = kafka_frame([1000.0, 3000.0, 6600.0], produced=150.0, consumed=90.0, partitions=24)
    diagnosis = runbook.matches(snapshot(frame), "payments")
    assert diagnosis is not None and diagnosis.scenario is ScenarioId.KAFKA_CONSUMER_LAG
    assert diagnosis.evidence["lag_s"] == pytest.approx(44.0)
    assert diagnosis.evidence["minutes_to_objective"] == pytest.approx((120 - 44) / 0.4 / 60, 0.05)
    action = runbook.propose(diagnosis, snapshot(frame))
    assert isinstance(action, ScaleConsumers)
    # 18/s a consumer at 80 %: (150 + 6600 / 240) / 14.4 -> 13 consumers
    assert (action.replicas, action.partitions, action.deployment) == (13, 24, "payments")


def test_never_beyond_the_partition_count(runbook: KafkaConsumerLag) -> None:
    frame = kafka_frame([5000.0, 20000.0, 40000.0], produced=700.0, consumed=100.0, partitions=8)
    diagnosis = runbook.matches(snapshot(frame), "payments")
    assert diagnosis is not None
    action = runbook.propose(diagnosis, snapshot(frame))
    assert isinstance(action, ScaleConsumers) and action.replicas == 8 == action.partitions


def test_never_beyond_the_hpa_maximum(runbook: KafkaConsumerLag) -> None:
    frame = kafka_frame([5000.0, 20000.0, 40000.0], produced=700.0, consumed=100.0)
    action = runbook.propose(
        runbook.matches(snapshot(frame, max_replicas=7), "payments"),  # type: ignore[arg-type]
        snapshot(frame, max_replicas=7),
    )
    assert isinstance(action, ScaleConsumers) and action.replicas == 7


def test_a_consumer_per_partition_already_is_escalated_not_scaled(
    runbook: KafkaConsumerLag,
) -> None:
    frame = kafka_frame([5000.0, 20000.0, 40000.0], produced=700.0, consumed=400.0, partitions=6)
    diagnosis = runbook.matches(snapshot(frame, ready=6), "payments")
    assert diagnosis is not None and diagnosis.evidence["at_limit"]
    assert runbook.propose(diagnosis, snapshot(frame, ready=6)) is None


@pytest.mark.parametrize(
    ("lags", "consumed", "why"),
    [
        ([370.0, 380.0, 375.0], 150.0, "keeps up: a healthy half commit interval of lag"),
        ([17000.0, 17500.0, 18000.0], 145.0, "short by under the minimum share"),
        ([300.0, 500.0, 1200.0], 100.0, "behind, but only 8 s: a rebalance's stall"),
        ([9000.0, 7000.0, 5000.0], 100.0, "the lag in seconds is falling"),
        ([1000.0, 1500.0, 3000.0], 140.0, "the crossing is further than the lead"),
    ],
)
def test_leaves_groups_that_need_nothing_alone(
    runbook: KafkaConsumerLag, lags: list[float], consumed: float, why: str
) -> None:
    frame = kafka_frame(lags, produced=150.0, consumed=consumed)
    assert runbook.matches(snapshot(frame), "payments") is None, why


def test_other_services_and_missing_families_are_not_its_business(
    runbook: KafkaConsumerLag,
) -> None:
    frame = kafka_frame([1000.0, 3000.0, 6600.0], produced=150.0, consumed=90.0)
    assert runbook.matches(snapshot(frame.iloc[0:0]), "payments") is None
    other = snapshot(frame)
    other.workloads["checkout"] = other.workloads["payments"]
    assert runbook.matches(other, "checkout") is None


def test_a_crash_looping_consumer_is_the_crash_loop_runbook_s_even_between_crashes() -> None:
    """A consumer that crashes consumes nothing: its group lags. In the seconds its container
    runs between two crashes no pod waits in CrashLoopBackOff, but the loop has seen one
    within the crash-loop gap, and the crash-loop runbook (ahead of this one) keeps the
    service: a restart, not more crashing consumers."""
    frame = kafka_frame([1000.0, 3000.0, 6600.0], produced=150.0, consumed=90.0, partitions=24)
    base = snapshot(frame)
    running = PodState("payments-a", "node-1", True, 6, None, True, "h1")
    pods = (
        running,
        *(PodState(f"payments-{i}", "node-1", True, 0, None, True, "h1") for i in range(4)),
    )
    stamps = pd.date_range(end=NOW, periods=30, freq="1min")
    history = pd.DataFrame(
        {"timestamp": stamps, "region": "eu-west-1", "service": "payments"}
        | dict.fromkeys(METRIC_VALUE_COLUMNS, 0.5)
        | {"request_rate": 150.0, "p95_latency_ms": 80.0, "error_rate": 0.0, "ready_pods": 5.0}
    )
    settings = OodaSettings()
    books = [cls(settings) for cls in registered_runbooks().values()]

    def first(snap: Snapshot) -> tuple[str, object]:
        for book in books:
            diagnosis = book.matches(snap, "payments")
            if diagnosis is not None:
                return book.name, book.propose(diagnosis, snap)
        return "", None

    forgetful = replace(
        base,
        workloads={"payments": replace(base.workloads["payments"], pods=pods)},
        views={"payments": ServiceView("payments", history)},
    )
    assert first(forgetful)[0] == "kafka_consumer_lag"  # one read alone sees no crash loop
    remembered = replace(forgetful, crash_looped={"payments": frozenset({"payments-a"})})
    name, action = first(remembered)
    assert name == "pod_crashloop"
    assert isinstance(action, RestartPod) and action.pod == "payments-a"
    # Tried first, as when the root-cause ranking names the lagging topic, it declines too.
    assert KafkaConsumerLag(settings).matches(remembered, "payments") is None


def test_chaos_certifies_it() -> None:
    result = run_chaos(
        OodaSettings(),
        ChaosSettings((ScenarioId.KAFKA_CONSUMER_LAG,), runs=1, seed=5, clean_week_days=0),
        RuleScorer(),
    )
    assert certified(result) == {ScenarioId.KAFKA_CONSUMER_LAG: []}
    assert to_json(result)["confusion"] == {"kafka_consumer_lag": {"kafka_consumer_lag": 1}}


def test_the_limit_is_escalated_only_once_the_consumers_just_added_are_judged() -> None:
    """The scale-out that reached the partition count awaits its verdict: nothing more to do
    is no page yet (the consumers are starting); with no verdict pending, it is escalated."""
    from tests.ooda._harness import make_lab, make_loop

    loop = make_loop(make_lab())
    frame = kafka_frame([5000.0, 20000.0, 40000.0], produced=700.0, consumed=400.0, partitions=6)
    history = pd.DataFrame(
        {
            "timestamp": [pd.Timestamp(NOW)],
            "request_rate": [50.0],
            "request_rate_instant": [50.0],
            "error_rate": [0.0],
        }
    )
    at_limit = replace(
        snapshot(frame, ready=6), views={"payments": ServiceView("payments", history)}
    )
    assert loop.actor.decide(at_limit, "payments", awaiting=True) is None
    assert loop.audit.entries("escalation") == []
    assert loop.actor.decide(at_limit, "payments", awaiting=False) is None
    (escalation,) = loop.audit.entries("escalation")
    assert escalation.service == "payments" and "escalated" in escalation.outcome
