"""Each service's view of the families it depends on: what is a share, what is 0 (no such
dependency) and what is NaN (unknown), per minute and for the live row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from contracts import FAMILIES, MetricFamily
from features import ROLLUP_COLUMNS, service_rollup
from features._rollup import MAX_LAG_S

T0 = pd.Timestamp(datetime(2026, 11, 16, 9, 0, tzinfo=UTC))
T1 = T0 + timedelta(minutes=1)


def _frame(family: MetricFamily, rows: list[dict[str, object]]) -> pd.DataFrame:
    schema = FAMILIES[family]
    full = [
        {"region": "eu", **dict.fromkeys(schema.keys, ""), **dict.fromkeys(schema.values, 0.0), **r}
        for r in rows
    ]
    return pd.DataFrame(full, columns=list(schema.columns))


def _families() -> dict[MetricFamily, pd.DataFrame]:
    gib = 2.0**30
    pods = _frame(
        MetricFamily.POD,
        [
            {
                "timestamp": t,
                "service": s,
                "pod": f"{s}-{i}",
                "node": f"n{i}",
                "container_memory_working_set_bytes": (0.9 if (s, i) == ("api", 1) else 0.5) * gib,
                "kube_pod_container_resource_limits_memory_bytes": gib,
            }
            for t in (T0, T1)
            for s in ("api", "worker")
            for i in (1, 2)
        ],
    )
    nodes = _frame(
        MetricFamily.NODE,
        [
            {
                "timestamp": t,
                "node": n,
                "kube_node_status_condition_ready": 0.0 if (n, t) == ("n2", T1) else 1.0,
                "node_filesystem_avail_bytes": 40.0 if n == "n1" else 80.0,
                "node_filesystem_size_bytes": 100.0,
                "node_netstat_TcpExt_TCPRetransSegs_rate": 1.0,
                "node_netstat_Tcp_OutSegs_rate": 1000.0,
            }
            for t in (T0, T1)
            for n in ("n1", "n2")
        ],
    )
    kafka = _frame(
        MetricFamily.KAFKA,
        [
            {
                "timestamp": t,
                "service": "worker",
                "consumergroup": "g",
                "topic": "orders",
                "partition": str(p),
                "kafka_consumergroup_lag": 50.0,
                "kafka_consumergroup_current_offset_rate": 5.0 if t == T0 else 0.0,
            }
            for t in (T0, T1)
            for p in (0, 1)
        ],
    )
    database = _frame(
        MetricFamily.DATABASE,
        [
            {
                "timestamp": T0,
                "service": "api",
                "dbinstance_identifier": "db-1",
                "role": "primary",
                "aws_rds_read_latency_average": 0.004,
                "serving_reads": 1.0,
            },
            {
                "timestamp": T0,
                "service": "api",
                "dbinstance_identifier": "db-2",
                "role": "replica",
                "aws_rds_read_latency_average": 0.002,
                "aws_rds_replica_lag_average": 3.0,
            },
        ],
    )
    upstream = _frame(
        MetricFamily.UPSTREAM,
        [
            {
                "timestamp": t,
                "service": "api",
                "upstream": "cards",
                "http_client_requests_rate": 100.0,
                "http_client_requests_throttled_rate": 25.0,
                "http_client_request_duration_p95_ms": 80.0,
            }
            for t in (T0, T1)
        ],
    )
    return {
        MetricFamily.POD: pods,
        MetricFamily.NODE: nodes,
        MetricFamily.KAFKA: kafka,
        MetricFamily.DATABASE: database,
        MetricFamily.UPSTREAM: upstream,
    }


def _at(rollup: pd.DataFrame, service: str, t: pd.Timestamp) -> pd.Series:
    row = rollup[(rollup["service"] == service) & (rollup["timestamp"] == t)]
    assert len(row) == 1
    return row.iloc[0]


def test_each_service_sees_its_pods_nodes_and_dependencies() -> None:
    rollup = service_rollup(_families())
    assert list(rollup.columns) == ["timestamp", "region", "service", *ROLLUP_COLUMNS]
    api0, api1 = _at(rollup, "api", T0), _at(rollup, "api", T1)
    assert api0["pod_memory_utilisation_max"] == pytest.approx(0.9)
    assert api0["node_not_ready_share"] == 0.0
    assert api1["node_not_ready_share"] == 0.5  # one of its two pods sits on the dead node
    assert api0["node_disk_avail_min"] == pytest.approx(0.4)
    assert api0["node_retransmit_max"] == pytest.approx(0.001)
    assert api0["db_read_latency_ms"] == pytest.approx(4.0)  # the instance serving reads
    assert api0["db_replica_lag_s"] == pytest.approx(3.0)
    assert api0["upstream_throttled_share"] == pytest.approx(0.25)
    assert api0["upstream_p95_ms"] == pytest.approx(80.0)
    worker0, worker1 = _at(rollup, "worker", T0), _at(rollup, "worker", T1)
    assert worker0["kafka_lag_s"] == pytest.approx(100.0 / 10.0)
    assert worker1["kafka_lag_s"] == MAX_LAG_S  # waiting messages, nothing consumed


def test_no_such_dependency_is_zero_a_gap_or_an_absent_family_is_unknown() -> None:
    rollup = service_rollup(_families())
    worker = _at(rollup, "worker", T0)
    assert worker["db_read_latency_ms"] == 0.0  # the worker has no database
    assert worker["upstream_throttled_share"] == 0.0
    assert _at(rollup, "api", T0)["kafka_lag_s"] == 0.0
    # The database was scraped at T0 only: at T1 its values are unknown, not healthy.
    assert np.isnan(_at(rollup, "api", T1)["db_read_latency_ms"])
    # The queue family was not given at all.
    assert rollup["queue_oldest_age_s"].isna().all()


def test_the_live_row_is_each_service_s_newest_minute() -> None:
    families = _families()
    families[MetricFamily.UPSTREAM] = families[MetricFamily.UPSTREAM].iloc[:1]  # lags behind
    live = service_rollup(families, ["api"], latest=True)
    assert live["service"].tolist() == ["api"]
    row = live.iloc[0]
    assert row["timestamp"] == T1
    assert row["node_not_ready_share"] == 0.5
    assert row["upstream_throttled_share"] == pytest.approx(0.25)  # its own newest minute
    # CloudWatch's numbers arrive minutes late: each family counts with its newest minute.
    assert row["db_read_latency_ms"] == pytest.approx(4.0)


def test_no_family_gives_no_rows() -> None:
    assert service_rollup({}).empty
    assert list(service_rollup({}).columns) == ["timestamp", "region", "service", *ROLLUP_COLUMNS]
