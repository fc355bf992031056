"""The lab's metric source: tidy frame shape, PromQL-like maths, gaps and exposition."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from contracts import METRIC_COLUMNS
from lab import (
    InvalidTimeError,
    Lab,
    LabSettings,
    ScrapeSettings,
    SimClock,
    histogram_quantile,
)
from tests._narrow import name_of

START = datetime(2025, 1, 8, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def lab() -> Lab:
    lab = Lab(LabSettings(), SimClock(START))
    lab.step(timedelta(minutes=90))
    return lab


def test_query_range_columns_and_dtypes(lab: Lab) -> None:
    end = lab.clock.now()
    frame = lab.source.query_range(end - timedelta(minutes=60), end, timedelta(minutes=1))
    assert tuple(frame.columns) == METRIC_COLUMNS
    assert str(frame.timestamp.dtype) == "datetime64[ns, UTC]"
    assert frame.region.dtype == object and frame.service.dtype == object
    for column in METRIC_COLUMNS[3:]:
        assert frame[column].dtype == np.float64, column
    assert len(frame) == 61 * 3
    assert list(frame.service.iloc[:3]) == ["frontend", "checkout", "payments"]
    assert set(frame.region) == {"eu-west-1"}
    assert frame.timestamp.iloc[-1] == end and frame.timestamp.is_monotonic_increasing
    assert not frame.isna().any().any()
    assert frame.request_rate.between(50, 1000).all()
    assert frame.p95_latency_ms.between(40, 150).all()
    assert (frame.p99_latency_ms > frame.p95_latency_ms).all()
    assert frame.cpu_utilisation.between(0.3, 0.8).all()
    assert frame.memory_utilisation.between(0.3, 0.7).all()
    assert (frame.error_rate == 0).all() and (frame.restarts == 0).all()
    front = frame[frame.service == "frontend"].request_rate.to_numpy()
    check = frame[frame.service == "checkout"].request_rate.to_numpy()
    np.testing.assert_allclose(check, 0.5 * front, rtol=1e-9)  # fan-out
    # On a steady estate the last two scrapes' rate is the minute's, within its noise.
    np.testing.assert_allclose(frame.request_rate_instant, frame.request_rate, rtol=0.1)


def test_live_queries_are_step_aligned(lab: Lab) -> None:
    end = lab.clock.now()
    fine = lab.source.query_range(end - timedelta(minutes=60), end, timedelta(seconds=15))
    coarse = lab.source.query_range(end - timedelta(minutes=60), end, timedelta(minutes=1))
    assert len(fine) == 241 * 3
    assert fine.timestamp.iloc[1] - fine.timestamp.iloc[0] == timedelta(0)
    assert fine.timestamp.iloc[3] - fine.timestamp.iloc[0] == timedelta(seconds=15)
    # Both resolutions see the same hour of traffic.
    assert abs(fine.request_rate.mean() / coarse.request_rate.mean() - 1) < 0.02
    before = lab.source.query_range(START - timedelta(hours=1), START, timedelta(minutes=1))
    assert len(before) == 3  # only the first scrape lies inside
    with pytest.raises(InvalidTimeError):
        lab.source.query_range(end, end - timedelta(minutes=1), timedelta(minutes=1))
    with pytest.raises(InvalidTimeError):
        lab.source.query_range(end - timedelta(minutes=1), end, timedelta(0))


def test_histogram_quantile_interpolates_like_promql() -> None:
    le = np.array([0.1, 0.2, 0.4, math.inf])
    counts = np.array([[10.0, 30.0, 40.0, 40.0], [10.0, 30.0, 40.0, 50.0], [0, 0, 0, 0]])
    p50 = histogram_quantile(0.5, le, counts)
    assert p50[0] == pytest.approx(0.15)  # rank 20: half-way through (0.1, 0.2]
    assert p50[1] == pytest.approx(0.175)  # rank 25: 15/20 through (0.1, 0.2]
    assert histogram_quantile(0.95, le, counts)[0] == pytest.approx(0.36)
    assert histogram_quantile(0.9, le, counts)[1] == pytest.approx(0.4)  # +Inf bucket
    assert histogram_quantile(0.05, le, counts)[0] == pytest.approx(0.02)  # rank 2, from 0
    assert math.isnan(p50[2])


def test_dropped_scrapes_make_gaps() -> None:
    settings = LabSettings(scrape=ScrapeSettings(drop_probability=0.6))
    lab = Lab(settings, SimClock(START))
    lab.step(timedelta(minutes=60))
    frame = lab.source.query_range(START, lab.clock.now(), timedelta(seconds=15))
    gaps = frame.request_rate.isna().mean()
    assert 0.05 < gaps < 0.9
    assert frame.ready_pods.isna().any() and frame.cpu_utilisation.isna().any()
    assert frame.request_rate.dropna().between(50, 1000).all()


def test_exposition_uses_exporter_names(lab: Lab) -> None:
    text = lab.source.exposition()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, kind in (
        ("kube_pod_container_status_restarts", "counter"),
        ("kube_deployment_status_replicas_ready", "gauge"),
        ("kube_deployment_spec_replicas", "gauge"),
        ("kube_pod_container_resource_requests", "gauge"),
        ("kube_pod_container_resource_limits", "gauge"),
        ("kube_pod_info", "gauge"),
        ("container_cpu_usage_seconds", "counter"),
        ("container_memory_working_set_bytes", "gauge"),
        ("http_request_duration_seconds", "histogram"),
        ("http_requests", "counter"),
        ("kube_node_status_condition", "gauge"),
        ("node_filesystem_avail_bytes", "gauge"),
        ("kafka_consumergroup_lag", "gauge"),
        ("aws_rds_read_latency_average", "gauge"),
        ("aws_sqs_approximate_age_of_oldest_message_average", "gauge"),
        ("http_client_requests", "counter"),
    ):
        assert families[name].type == kind, name
    pod = name_of(lab.kube.core_v1.list_namespaced_pod("shop").items[0])
    cpu = [s for s in families["container_cpu_usage_seconds"].samples if s.labels["pod"] == pod]
    assert len(cpu) == 1 and cpu[0].value > 0 and cpu[0].labels["namespace"] == "shop"
    buckets = [
        s
        for s in families["http_request_duration_seconds"].samples
        if s.name.endswith("_bucket") and s.labels["service"] == "checkout"
    ]
    assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].labels["region"] == "eu-west-1"
    counts = [b.value for b in buckets]
    assert counts == sorted(counts) and counts[-1] > 0
    codes = {
        s.labels["code"]
        for s in families["http_requests"].samples
        if s.labels["service"] == "checkout"
    }
    assert codes == {"200", "500", "503"}
    limits = [s.value for s in families["kube_pod_container_resource_limits"].samples]
    assert 536870912 in limits
    ready = [
        s.labels["node"]
        for s in families["kube_node_status_condition"].samples
        if s.labels["condition"] == "Ready" and s.value == 1
    ]
    assert sorted(ready) == sorted(name_of(n) for n in lab.kube.core_v1.list_node().items)


def test_history_is_openmetrics_with_every_scrape_timestamped(lab: Lab) -> None:
    """(promtool's backfill of it is tested against a real Prometheus in tests/features.)"""
    text = lab.source.history_openmetrics()
    assert text.endswith("# EOF\n")
    spec = re.compile(
        r'^kube_deployment_spec_replicas\{[^}]*deployment="checkout"[^}]*\} ([0-9.]+) ([0-9.]+)$',
        re.MULTILINE,
    )
    points = [(float(v), float(t)) for v, t in spec.findall(text)]
    frame = lab.source.query_range(START, lab.clock.now(), timedelta(seconds=15))
    checkout = frame[frame.service == "checkout"]
    assert [v for v, _ in points] == checkout.desired_pods.tolist()
    stamps = [t for _, t in points]
    assert stamps == [t.timestamp() for t in checkout.timestamp]
