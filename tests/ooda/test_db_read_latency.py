"""The database read-latency runbook: when it switches which Service to the replica, when it
refuses (a lagging or unhealthy replica), what it leaves alone; the switch and its undo on
the lab; and its chaos certification."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from actuators import ActionContext, SwitchDatabase
from contracts import HpaState, MetricFamily, ScenarioId, WorkloadState
from lab import ScenarioInstance
from lab._database import Database
from ooda import OodaSettings, RuleScorer
from ooda._chaos import ChaosSettings, certified, run_chaos
from ooda._chaos_report import to_json
from ooda._records import Snapshot
from ooda._runs import Mode
from ooda.runbooks import check_runbook
from ooda.runbooks.db_read_latency import DbReadLatency
from tests._narrow import some
from tests.ooda._harness import make_lab, make_loop, run
from tests.ooda._snapshots import region_snapshot

NOW = datetime(2025, 1, 8, 12, tzinfo=UTC)
REPLICA = "payments-db-replica.eu-west-1.rds.amazonaws.com"
PRIMARY = "payments-db.eu-west-1.rds.amazonaws.com"


def db_frame(
    primary_read_ms: list[float],
    *,
    primary_write_ms: list[float] | None = None,
    replica_read_ms: float = 1.5,
    lag_s: float = 0.4,
    reads_on_primary: bool = True,
) -> pd.DataFrame:
    """``payments-db`` and its replica, a row each per minute; the newest minute last."""
    rows = []
    writes = primary_write_ms or [3.0] * len(primary_read_ms)
    for i, (read, write) in enumerate(zip(primary_read_ms, writes, strict=True)):
        at = pd.Timestamp(NOW - timedelta(minutes=len(primary_read_ms) - 1 - i))
        for ident, role, read_ms, write_ms, replica_lag, serving in (
            ("payments-db", "primary", read, write, float("nan"), reads_on_primary),
            ("payments-db-replica", "replica", replica_read_ms, 3.0, lag_s, not reads_on_primary),
        ):
            rows.append(
                {
                    "timestamp": at,
                    "region": "eu-west-1",
                    "service": "payments",
                    "dbinstance_identifier": ident,
                    "role": role,
                    "aws_rds_read_latency_average": read_ms / 1000.0,
                    "aws_rds_write_latency_average": write_ms / 1000.0,
                    "aws_rds_replica_lag_average": replica_lag,
                    "serving_reads": float(serving),
                    "serving_writes": float(role == "primary"),
                }
            )
    return pd.DataFrame(rows)


def snapshot(frame: pd.DataFrame, p95_now: float = 180.0, normal_p95: float = 72.0) -> Snapshot:
    stamps = pd.date_range(end=NOW, periods=80, freq="1min")
    p95 = [normal_p95] * 79 + [p95_now]
    history = pd.DataFrame({"timestamp": stamps, "p95_latency_ms": p95})
    hpa = HpaState("payments", 3, 30, 4, 4, 0.6)
    workload = WorkloadState("shop", "payments", "payments", 4, 4, 1, None, (), hpa)
    return region_snapshot(
        NOW, {"payments": workload}, {"payments": history}, families={MetricFamily.DATABASE: frame}
    )


@pytest.fixture
def runbook() -> DbReadLatency:
    check_runbook(DbReadLatency)
    return DbReadLatency(OodaSettings())


SLOW = [1.5] * 12 + [4.0, 15.0, 30.0]


def test_slow_reads_move_to_the_replica_through_the_reader_service(
    runbook: DbReadLatency,
) -> None:
    snap = snapshot(db_frame(SLOW))
    diagnosis = runbook.matches(snap, "payments")
    assert diagnosis is not None and diagnosis.scenario is ScenarioId.DB_READ_LATENCY
    assert diagnosis.evidence["read_latency_ms"] == pytest.approx(30.0)
    assert diagnosis.target == "service/shop/payments-db-reader"
    action = runbook.propose(diagnosis, snap)
    assert isinstance(action, SwitchDatabase)
    assert action.db_service == "payments-db-reader" and action.traffic == "reads"
    assert action.secondary == REPLICA and action.secondary_healthy
    assert action.replica_lag_s == pytest.approx(0.4) and action.max_replica_lag_s == 30.0


def test_a_sick_primary_moves_reads_and_writes_through_the_writer_service(
    runbook: DbReadLatency,
) -> None:
    snap = snapshot(db_frame(SLOW, primary_write_ms=[3.0] * 12 + [8.0, 30.0, 60.0]))
    diagnosis = runbook.matches(snap, "payments")
    assert diagnosis is not None and diagnosis.evidence["primary_sick"]
    action = runbook.propose(diagnosis, snap)
    assert isinstance(action, SwitchDatabase)
    assert action.db_service == "payments-db" and action.traffic == "reads_and_writes"
    assert (action.cluster, action.secondary_instance) == ("payments-db", "payments-db-replica")


def test_writes_turning_slow_after_the_reads_moved_follow_them(runbook: DbReadLatency) -> None:
    writes = [3.0] * 13 + [20.0, 50.0]
    frame = db_frame([1.5] * 15, primary_write_ms=writes, reads_on_primary=False)
    snap = snapshot(frame)
    action = runbook.propose(runbook.matches(snap, "payments"), snap)  # type: ignore[arg-type]
    assert isinstance(action, SwitchDatabase)
    assert action.db_service == "payments-db" and action.traffic == "reads_and_writes"


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"lag_s": 45.0}, "the replica is 45 s behind: its reads are stale"),
        ({"lag_s": float("nan")}, "the replica reports no lag: it is not known healthy"),
        ({"replica_read_ms": 25.0}, "the replica is slow too"),
    ],
)
def test_a_replica_unfit_to_serve_is_escalated_not_switched_to(
    runbook: DbReadLatency, fields: dict[str, Any], why: str
) -> None:
    snap = snapshot(db_frame(SLOW, **fields))
    diagnosis = runbook.matches(snap, "payments")
    assert diagnosis is not None, why  # the cause is known and reported ...
    assert runbook.propose(diagnosis, snap) is None, why  # ... but a human decides


@pytest.mark.parametrize(
    ("frame", "p95_now", "why"),
    [
        (db_frame([1.5] * 15), 180.0, "the database is quick: the slowness is elsewhere"),
        (db_frame(SLOW), 75.0, "the service does not feel it"),
        (db_frame([20.0] * 12 + [22.0, 25.0, 30.0]), 180.0, "that slow is its normal"),
        (db_frame(SLOW, reads_on_primary=False), 180.0, "the reads are already switched"),
        (db_frame([1.5] * 14 + [5.0]), 180.0, "under the bound"),
    ],
)
def test_leaves_alone_what_is_not_a_slow_database(
    runbook: DbReadLatency, frame: pd.DataFrame, p95_now: float, why: str
) -> None:
    assert runbook.matches(snapshot(frame, p95_now=p95_now), "payments") is None, why


def test_no_database_series_is_no_diagnosis(runbook: DbReadLatency) -> None:
    assert runbook.matches(snapshot(db_frame(SLOW).iloc[0:0]), "payments") is None
    assert runbook.matches(snapshot(db_frame(SLOW)), "checkout") is None


# -- on the lab -----------------------------------------------------------------------------


def _slow_reads() -> ScenarioInstance:
    params: dict[str, float | str] = {"database": "payments-db", "ramp_s": 60.0, "writes": 0.0}
    return ScenarioInstance(ScenarioId.DB_READ_LATENCY, "payments", 20.0, params=params)


def _reader(lab: Any) -> str:
    svc = lab.kube.core_v1.read_namespaced_service("payments-db-reader", "shop")
    return str(svc.spec.external_name)


def test_the_switch_and_its_undo_and_the_loop_switching_by_itself() -> None:
    lab = make_lab(seed=3, hours=1.4)
    loop = make_loop(lab)
    lab.inject(_slow_reads())
    lab.step(timedelta(minutes=2))
    snap = loop.observe(lab.clock.now())
    assert snap is not None
    runbook = DbReadLatency(OodaSettings())
    diagnosis = runbook.matches(snap, "payments")
    assert diagnosis is not None
    action = runbook.propose(diagnosis, snap)
    assert isinstance(action, SwitchDatabase)
    context = ActionContext(lab.kube.clients())
    result = action.apply(context)
    db = lab.dependency("payments-db")
    assert isinstance(db, Database)
    assert _reader(lab) == REPLICA and db.serving[0] is db.replica
    action.undo(context, result)
    assert _reader(lab) == "payments-db.shop.svc.cluster.local"
    assert db.serving[0] is db.primary
    assert lab.ground_truth[-1].ends_at is None  # the reads went back to the slow primary

    run(lab, loop, minutes=2)
    assert _reader(lab) == REPLICA
    assert lab.ground_truth[-1].ends_at is not None


def test_the_loop_fails_a_sick_primarys_cluster_over_and_moves_the_writes() -> None:
    """Reads and writes slow: the replica is promoted (the lab's fake RDS API, as boto3's)
    and the writer Service repointed; the writes fail while it is promoted, then the
    service is healed. Without the failover the replica would refuse every write."""
    lab = make_lab(seed=3, hours=1.4)
    loop = make_loop(lab)
    db = lab.dependency("payments-db")
    assert isinstance(db, Database)
    params: dict[str, float | str] = {"database": "payments-db", "ramp_s": 60.0, "writes": 1.0}
    lab.inject(ScenarioInstance(ScenarioId.DB_READ_LATENCY, "payments", 20.0, params=params))
    run(lab, loop, minutes=8)
    actions = [e.detail for e in loop.events if e.kind == "action"]
    assert actions and all(a.startswith("switch_database") for a in actions), actions
    assert db.replica.writer and not db.primary.writer
    assert db.serving == (db.replica, db.replica)
    assert lab.ground_truth[-1].ends_at is not None


def test_the_loop_leaves_the_service_alone_when_the_replica_lags() -> None:
    lab = make_lab(seed=3, hours=1.4)
    db = lab.dependency("payments-db")
    assert isinstance(db, Database)
    db.replica_lag_s = 90.0
    loop = make_loop(lab)
    lab.inject(_slow_reads())
    run(lab, loop, minutes=5)
    assert _reader(lab) == "payments-db.shop.svc.cluster.local"
    writer = lab.kube.core_v1.read_namespaced_service("payments-db", "shop")
    assert some(writer.spec).external_name == PRIMARY
    assert lab.ground_truth[-1].ends_at is None
    diagnosed = [e for e in loop.events if e.kind == "diagnosis" and e.service == "payments"]
    assert diagnosed and "db_read_latency" in diagnosed[0].detail
    assert not [e for e in loop.events if e.kind == "action"]


def test_chaos_certifies_the_database_switch() -> None:
    result = run_chaos(
        OodaSettings(),
        ChaosSettings((ScenarioId.DB_READ_LATENCY,), runs=1, seed=5, clean_week_days=0),
        RuleScorer(),
    )
    assert certified(result) == {ScenarioId.DB_READ_LATENCY: []}
    report = to_json(result)
    assert report["confusion"] == {"db_read_latency": {"db_read_latency": 1}}
    # The RCA column, on a symptom three calls above its cause (frontend > checkout >
    # payments > payments-db): the database is ranked first.
    unattended = result.instances[0].runs[Mode.OFF]
    assert unattended.felt_by[0] == "frontend" and unattended.root_cause == "payments-db"
    assert unattended.rca[:1] == ("payments-db",)
    assert [r["rca_top1"] for r in report["scenarios"]] == [1]
