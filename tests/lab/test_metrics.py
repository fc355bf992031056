"""The lab's metric source: tidy frame shape, PromQL-like maths, gaps and exposition."""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from contracts import METRIC_COLUMNS
from lab import (
    InvalidTimeError,
    Lab,
    LabSettings,
    ScrapeSettings,
    SimClock,
    histogram_quantile,
)

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


def test_live_queries_are_fast_and_step_aligned(lab: Lab) -> None:
    end = lab.clock.now()
    began = time.perf_counter()
    fine = lab.source.query_range(end - timedelta(minutes=60), end, timedelta(seconds=15))
    coarse = lab.source.query_range(end - timedelta(minutes=60), end, timedelta(minutes=1))
    assert time.perf_counter() - began < 0.2
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
    for name, kind in (
        ("kube_pod_container_status_restarts_total", "counter"),
        ("kube_deployment_status_replicas_ready", "gauge"),
        ("kube_deployment_spec_replicas", "gauge"),
        ("kube_pod_container_resource_requests", "gauge"),
        ("kube_pod_container_resource_limits", "gauge"),
        ("container_cpu_usage_seconds_total", "counter"),
        ("container_memory_working_set_bytes", "gauge"),
        ("http_request_duration_seconds", "histogram"),
        ("http_requests_total", "counter"),
    ):
        assert f"# TYPE {name} {kind}\n" in text and f"# HELP {name} " in text
    pod = lab.kube.core_v1.list_namespaced_pod("shop").items[0].metadata.name
    assert re.search(rf'container_cpu_usage_seconds_total\{{[^}}]*pod="{pod}"[^}}]*\}} \d', text)
    assert 'http_request_duration_seconds_bucket{region="eu-west-1",namespace="shop",' in text
    assert re.search(r'le="\+Inf"\} \d+', text)
    assert re.search(r'http_requests_total\{[^}]*service="checkout",code="503"\} \d+', text)
    assert 'resource="memory",unit="byte"} 536870912' in text
    sample = re.compile(r"^[a-z_]+\{[^}]*\} [-+0-9.e]+$")
    assert all(line.startswith("#") or sample.match(line) for line in text.splitlines())
