"""The lab's database: the ExternalName Services it is reached through, what a slow primary
does to its service, what repointing a Service does, and its CloudWatch series."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from botocore.exceptions import ClientError

from actuators import MERGE_PATCH
from contracts import FAMILIES, MetricFamily, ScenarioId, SimClock
from lab import Lab, LabSettings, ScenarioInstance, TopologySettings
from lab._database import Database
from lab.scenarios import check_scenario, scenario

START = datetime(2025, 1, 8, 11, 50, tzinfo=UTC)
NS = "shop"
PRIMARY = "payments-db.eu-west-1.rds.amazonaws.com"
REPLICA = "payments-db-replica.eu-west-1.rds.amazonaws.com"


@pytest.fixture
def lab() -> Lab:
    lab = Lab(LabSettings(seed=4), SimClock(START))
    lab.step(timedelta(minutes=5))
    return lab


def _db(lab: Lab) -> Database:
    db = lab.dependency("payments-db")
    assert isinstance(db, Database)
    return db


def _point(lab: Lab, service: str, target: str) -> None:
    body = {"spec": {"externalName": target}}
    lab.kube.core_v1.patch_namespaced_service(service, NS, body, _content_type=MERGE_PATCH)


def _p95(lab: Lab, service: str = "payments") -> float:
    now = lab.clock.now()
    frame = lab.source.query_range(now - timedelta(minutes=1), now, timedelta(minutes=1))
    return float(frame[frame["service"] == service]["p95_latency_ms"].iloc[-1])


def _errors(lab: Lab) -> float:
    now = lab.clock.now()
    frame = lab.source.query_range(now - timedelta(minutes=1), now, timedelta(minutes=1))
    return float(frame[frame["service"] == "payments"]["error_rate"].iloc[-1])


def _slow(magnitude: float = 20.0, writes: float = 0.0) -> ScenarioInstance:
    params: dict[str, float | str] = {"database": "payments-db", "ramp_s": 0.0, "writes": writes}
    return ScenarioInstance(ScenarioId.DB_READ_LATENCY, "payments", magnitude, params=params)


def test_the_lab_creates_the_writer_and_reader_services(lab: Lab) -> None:
    assert lab.kube.calls() == 0  # created by the lab, not through the API
    core = lab.kube.core_v1
    writer = core.read_namespaced_service("payments-db", NS)
    reader = core.read_namespaced_service("payments-db-reader", NS)
    assert writer.spec is not None and reader.spec is not None
    assert writer.spec.type == reader.spec.type == "ExternalName"
    assert writer.spec.external_name == PRIMARY
    assert reader.spec.external_name == "payments-db.shop.svc.cluster.local"
    db = _db(lab)
    assert db.serving == (db.primary, db.primary)
    lab.step(timedelta(minutes=1))
    assert lab.kube.calls() == 2  # resolving them each sub-step is no API call


def test_cloudwatch_series_of_both_instances(lab: Lab) -> None:
    frame = lab.source.query_family(
        MetricFamily.DATABASE, START, lab.clock.now(), timedelta(minutes=1)
    )
    assert tuple(frame.columns) == FAMILIES[MetricFamily.DATABASE].columns
    newest = frame[frame["timestamp"] == frame["timestamp"].max()].set_index("role")
    assert set(newest["dbinstance_identifier"]) == {"payments-db", "payments-db-replica"}
    assert (newest["service"] == "payments").all()
    # CloudWatch gives latencies in seconds: 1.5 ms reads, 3 ms writes, give or take noise
    assert newest["aws_rds_read_latency_average"].to_numpy() == pytest.approx(0.0015, rel=0.25)
    assert newest["aws_rds_write_latency_average"].to_numpy() == pytest.approx(0.003, rel=0.25)
    assert math.isnan(newest.loc["primary", "aws_rds_replica_lag_average"])
    assert newest.loc["replica", "aws_rds_replica_lag_average"] == pytest.approx(0.4, rel=0.25)
    assert newest.loc["primary", ["serving_reads", "serving_writes"]].tolist() == [1.0, 1.0]
    assert newest.loc["replica", ["serving_reads", "serving_writes"]].tolist() == [0.0, 0.0]


def test_a_slow_primary_slows_its_service_until_the_reads_are_switched(lab: Lab) -> None:
    healthy = _p95(lab)
    record = lab.inject(_slow())
    assert record.root_cause == "payments-db" and record.target == "payments"
    assert record.felt_by == ("frontend", "checkout", "payments")
    lab.step(timedelta(minutes=3))
    assert _p95(lab) > 2.5 * healthy and _p95(lab, "checkout") > 150.0
    assert lab.ground_truth[-1].ends_at is None

    _point(lab, "payments-db-reader", REPLICA)
    lab.step(timedelta(minutes=3))
    assert _p95(lab) < 1.2 * healthy
    db = _db(lab)
    assert db.serving == (db.replica, db.primary)  # the writes stay on the primary
    assert lab.ground_truth[-1].ends_at is not None  # the service no longer reads the primary
    frame = lab.source.query_family(
        MetricFamily.DATABASE, START, lab.clock.now(), timedelta(minutes=1)
    )
    newest = frame[frame["timestamp"] == frame["timestamp"].max()].set_index("role")
    assert newest.loc["replica", "serving_reads"] == 1.0
    assert newest.loc["primary", "serving_reads"] == 0.0
    # the primary stays slow, off the request path, until someone fixes it
    assert newest.loc["primary", "aws_rds_read_latency_average"] > 0.02


def test_a_sick_primary_needs_the_writes_moved_too(lab: Lab) -> None:
    healthy = _p95(lab)
    lab.inject(_slow(magnitude=30.0, writes=1.0))
    lab.step(timedelta(minutes=2))
    _point(lab, "payments-db-reader", REPLICA)
    lab.step(timedelta(minutes=3))
    assert _p95(lab) > 1.3 * healthy  # slow writes still hurt
    assert lab.ground_truth[-1].ends_at is None

    _point(lab, "payments-db-reader", "payments-db.shop.svc.cluster.local")
    _point(lab, "payments-db", REPLICA)  # the writer: the reads follow it through the CNAME
    lab.step(timedelta(minutes=2))
    db = _db(lab)
    assert db.serving == (db.replica, db.replica)
    assert _errors(lab) > 0.1  # a read replica takes no writes
    assert lab.ground_truth[-1].ends_at is None

    rds = lab.cloud.rds
    cluster = rds.failover_db_cluster(
        DBClusterIdentifier="payments-db", TargetDBInstanceIdentifier="payments-db-replica"
    )["DBCluster"]
    assert cluster["Status"] == "failing-over"
    assert {
        m["DBInstanceIdentifier"]: m["IsClusterWriter"] for m in cluster["DBClusterMembers"]
    } == {
        "payments-db": False,
        "payments-db-replica": True,
    }
    lab.step(timedelta(minutes=3))
    assert db.replica.writer and not db.primary.writer
    assert _p95(lab) < 1.2 * healthy and _errors(lab) < 0.01
    assert lab.ground_truth[-1].ends_at is not None
    (described,) = rds.describe_db_clusters(DBClusterIdentifier="payments-db")["DBClusters"]
    assert described["Status"] == "available"
    with pytest.raises(ClientError) as missing:
        rds.describe_db_clusters(DBClusterIdentifier="orders-db")
    assert missing.value.response["Error"]["Code"] == "DBClusterNotFoundFault"
    with pytest.raises(ClientError) as writer:  # the writer is no target
        rds.failover_db_cluster(
            DBClusterIdentifier="payments-db", TargetDBInstanceIdentifier="payments-db-replica"
        )
    assert writer.value.response["Error"]["Code"] == "InvalidParameterValue"


def test_clearing_heals_the_primary(lab: Lab) -> None:
    healthy = _p95(lab)
    record = lab.inject(_slow(writes=1.0))
    lab.step(timedelta(minutes=2))
    lab.clear(record)
    lab.step(timedelta(minutes=2))
    db = _db(lab)
    assert db.primary.read_latency_ms == 1.5 and db.primary.write_latency_ms == 3.0
    assert _p95(lab) < 1.2 * healthy and lab.ground_truth[-1].ends_at is not None


def test_a_service_that_resolves_to_no_instance_fails_its_requests(lab: Lab) -> None:
    _point(lab, "payments-db-reader", "nowhere.example.com")
    lab.step(timedelta(minutes=2))
    assert _db(lab).serving[0] is None
    assert _errors(lab) > 0.9


def test_a_down_instance_fails_requests_and_reports_nothing(lab: Lab) -> None:
    db = _db(lab)
    db.replica.up = False
    _point(lab, "payments-db-reader", REPLICA)
    lab.step(timedelta(minutes=2))
    assert _errors(lab) > 0.9
    frame = lab.source.query_family(
        MetricFamily.DATABASE, START, lab.clock.now(), timedelta(minutes=1)
    )
    newest = frame[frame["timestamp"] == frame["timestamp"].max()]
    assert newest["role"].tolist() == ["primary"]  # CloudWatch has no series of it


def test_a_healthy_estate_is_untouched_by_its_database(lab: Lab) -> None:
    """The healthy DB time is inside the service's own latency: nothing is added."""
    bare = Lab(LabSettings(seed=4, topology=TopologySettings(databases=())), SimClock(START))
    bare.step(timedelta(minutes=5))
    assert _p95(bare) == pytest.approx(_p95(lab))
    assert _errors(bare) == _errors(lab) == 0.0


def test_the_scenario_keeps_the_contract() -> None:
    for seed in (0, 1):
        check_scenario(scenario(ScenarioId.DB_READ_LATENCY), seed=seed)


def test_draws_span_read_slowdowns_and_sick_primaries(lab: Lab) -> None:
    rng = np.random.default_rng(0)
    drawn = [scenario(ScenarioId.DB_READ_LATENCY).draw(rng, lab) for _ in range(30)]
    assert all(10.0 <= d.magnitude <= 40.0 and d.duration is None for d in drawn)
    assert {d.params["writes"] for d in drawn} == {0.0, 1.0}
    assert all(d.params["database"] == "payments-db" for d in drawn)
