"""The lab's Kafka topic: lag grows only when the group consumes less than is produced,
consumers past the partition count add nothing, and kafka-exporter's names."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from contracts import FAMILIES, MetricFamily, ScenarioId
from lab import Lab, LabSettings, ScenarioInstance, SettingsError, SimClock
from lab._kafka import Topic, range_assignment
from lab._settings import TopicSettings, TopologySettings
from lab.scenarios import check_scenario, scenario

NOON = datetime(2025, 1, 8, 12, tzinfo=UTC)


def warm_lab() -> Lab:
    lab = Lab(LabSettings(seed=3), SimClock(NOON))
    lab.step(timedelta(minutes=10))
    return lab


def topic(lab: Lab) -> Topic:
    found = lab.dependency("orders")
    assert isinstance(found, Topic)
    return found


def instance(kind: str, magnitude: float) -> ScenarioInstance:
    return ScenarioInstance(
        ScenarioId.KAFKA_CONSUMER_LAG,
        "payments",
        magnitude=magnitude,
        duration=timedelta(minutes=30),
        params={"topic": "orders", "kind": kind},
    )


def test_the_range_assignor_gives_the_first_consumers_one_more_and_idles_the_rest() -> None:
    assert np.bincount(range_assignment(12, 5)).tolist() == [3, 3, 2, 2, 2]
    assert range_assignment(4, 9).tolist() == [0, 1, 2, 3]  # consumers 4..8 own nothing
    assert range_assignment(4, 0).tolist() == [-1, -1, -1, -1]


def test_consumers_beyond_the_partition_count_add_nothing() -> None:
    orders = topic(warm_lab())
    partitions = orders.settings.partitions
    full = orders.capacity(partitions).sum()
    assert full == pytest.approx(partitions * orders.settings.consumer_rate)
    assert orders.capacity(partitions + 6).sum() == pytest.approx(full)
    assert orders.capacity(partitions - 1).sum() < full
    # 5 consumers of 12 partitions: the ones holding 3 are the bottleneck of their partitions
    small = Topic(warm_lab(), TopicSettings("t", "checkout", "payments", "g", partitions=12))
    assert small.capacity(5).min() == pytest.approx(small.settings.consumer_rate / 3)


def test_a_healthy_group_keeps_up_and_lags_half_a_commit_interval() -> None:
    lab = warm_lab()
    orders = topic(lab)
    lab.step(timedelta(minutes=20))
    now = lab.clock.now()
    frame = lab.source.query_family(
        MetricFamily.KAFKA, now - timedelta(minutes=5), now, timedelta(minutes=1)
    )
    assert list(frame.columns) == list(FAMILIES[MetricFamily.KAFKA].columns)
    newest = frame[frame.timestamp == frame.timestamp.max()]
    assert len(newest) == orders.settings.partitions
    assert set(newest.partition) == {str(p) for p in range(orders.settings.partitions)}
    assert set(newest.consumergroup) == {"payments"} and set(newest.topic) == {"orders"}
    assert set(newest.service) == {"payments"}
    produced = newest.kafka_topic_partition_current_offset_rate.sum()
    consumed = newest.kafka_consumergroup_current_offset_rate.sum()
    assert consumed == pytest.approx(produced, rel=0.02)
    lag_s = newest.kafka_consumergroup_lag.sum() / produced
    assert lag_s == pytest.approx(orders.settings.commit_interval_s / 2, rel=0.1)
    # half the capacity in use at noon, as the defaults promise
    assert 0.3 < produced / orders.capacity(orders.members).sum() < 0.7


@pytest.mark.parametrize(("kind", "magnitude"), [("slow_consumer", 0.3), ("producer_burst", 4.0)])
def test_lag_grows_when_consumption_falls_below_production(kind: str, magnitude: float) -> None:
    lab = warm_lab()
    control = copy.deepcopy(lab)
    record = lab.inject(instance(kind, magnitude))
    assert record.root_cause == "orders" and record.felt_by == ("payments",)
    lags = []
    for _ in range(3):
        lab.step(timedelta(minutes=3))
        lags.append(topic(lab).lag.sum())
    control.step(timedelta(minutes=9))
    assert lags[0] < lags[1] < lags[2]
    assert lags[2] > 20 * topic(control).lag.sum()
    # the consumers' work is I/O: their CPU, and so the HPA, does not see the lag
    cpu = [
        e.source.query_range(NOON, e.clock.now(), timedelta(minutes=1))
        .query("service == 'payments'")["cpu_utilisation"]
        .iloc[-5:]
        .mean()
        for e in (lab, control)
    ]
    if kind == "slow_consumer":
        assert cpu[0] == pytest.approx(cpu[1], rel=0.05)


def test_the_lag_drains_when_consumers_are_added_and_the_fault_ends_by_itself() -> None:
    lab = warm_lab()
    lab.inject(instance("slow_consumer", 0.3))
    lab.step(timedelta(minutes=5))
    behind = topic(lab).lag.sum()
    lab.kube.autoscaling_v2.patch_namespaced_horizontal_pod_autoscaler(
        "payments", "shop", {"spec": {"minReplicas": 20}}
    )
    lab.step(timedelta(minutes=10))
    assert topic(lab).members == 20
    assert topic(lab).lag.sum() < 0.05 * behind
    lab.step(timedelta(minutes=20))
    assert lab.ground_truth[-1].ends_at is not None
    assert topic(lab).consumer_factor == 1.0


def test_the_scenario_keeps_the_contract_for_both_kinds() -> None:
    for seed in (0, 4):
        record = check_scenario(scenario(ScenarioId.KAFKA_CONSUMER_LAG), seed=seed)
        assert record.root_cause == "orders" and record.target == "payments"
    drawn = {
        scenario(ScenarioId.KAFKA_CONSUMER_LAG)
        .draw(np.random.default_rng(s), warm_lab())
        .params["kind"]
        for s in range(8)
    }
    assert drawn == {"slow_consumer", "producer_burst"}


def test_settings_refuse_a_negative_rebalance() -> None:
    bad = TopicSettings("t", "checkout", "payments", "g", rebalance_s=-1.0)
    with pytest.raises(SettingsError, match="rebalance_s"):
        LabSettings(topology=TopologySettings(topics=(bad,)))
