"""Observe: what the loop reads once per tick, and how it refuses to trust bad input."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

import features
from contracts import MetricFamily
from lab import Lab
from ooda import BadMetricsError, clean_metrics, service_views
from ooda._observe import detector_rows, forecast_history
from tests.ooda._harness import make_lab

SERVICES = ["frontend", "checkout", "payments"]


@pytest.fixture(scope="module")
def lab() -> Lab:
    return make_lab(hours=2)


@pytest.fixture(scope="module")
def metrics(lab: Lab) -> tuple[pd.DataFrame, datetime]:
    now = lab.clock.now()
    raw = lab.source.query_range(now - timedelta(minutes=75), now, timedelta(minutes=1))
    return raw, now


def test_detector_rows_carry_each_service_s_newest_view_of_the_families(
    lab: Lab, metrics: tuple[pd.DataFrame, datetime]
) -> None:
    raw, now = metrics
    clean, _ = clean_metrics(raw, now)
    start = now - timedelta(minutes=30)
    families = {
        f: lab.source.query_family(f, start, now, timedelta(minutes=1)) for f in MetricFamily
    }
    rows = detector_rows(clean, SERVICES, families).set_index("service")
    live = features.service_rollup(families, SERVICES, latest=True).set_index("service")
    columns = list(features.ROLLUP_COLUMNS)
    pd.testing.assert_frame_equal(rows.loc[SERVICES, columns], live.loc[SERVICES, columns])
    assert rows[columns].notna().all().all()
    # The estate's consumer group is payments': the others have no lag, not an unknown one.
    assert rows.loc["payments", "kafka_lag_s"] > 0
    assert rows.loc[["frontend", "checkout"], "kafka_lag_s"].eq(0).all()


def test_detector_rows_from_the_last_hour_equal_those_from_the_whole_history(
    metrics: tuple[pd.DataFrame, datetime],
) -> None:
    raw, now = metrics
    clean, notes = clean_metrics(raw, now)
    assert notes == []
    views = service_views(clean, SERVICES, now, timedelta(minutes=3))
    for service in SERVICES:  # one slice per service of the sorted frame
        expected = clean[clean["service"] == service].reset_index(drop=True)
        pd.testing.assert_frame_equal(views[service].history, expected)
    fast = detector_rows(clean, SERVICES).reset_index(drop=True)
    own = ["service", *features.SERVICE_DETECTOR_FEATURES]
    full = features.latest_rows(features.build_features(clean))[own]
    pd.testing.assert_frame_equal(fast[own], full.reset_index(drop=True))
    # No family read: the detector's family features are unknown, not zero.
    assert fast[list(features.ROLLUP_COLUMNS)].isna().all().all()
    assert detector_rows(clean, SERVICES[1:])["service"].tolist() == sorted(SERVICES[1:])
    history = forecast_history(clean, SERVICES)
    assert history.groupby("service").size().to_dict() == dict.fromkeys(
        SERVICES, features.FORECAST_WINDOW
    )
    tails = [clean[clean["service"] == s].tail(features.FORECAST_WINDOW) for s in SERVICES]
    assert set(history["timestamp"]) == set(pd.concat(tails)["timestamp"])


def test_impossible_values_are_blanked_and_named(metrics: tuple[pd.DataFrame, datetime]) -> None:
    raw, now = metrics
    bad = raw.copy()
    bad.loc[0, "error_rate"] = 3.0
    bad.loc[1, "request_rate"] = -5.0
    bad.loc[2, "p95_latency_ms"] = np.inf
    clean, notes = clean_metrics(bad, now)
    assert "1 impossible value(s) in 'error_rate' blanked" in notes
    assert "1 impossible value(s) in 'request_rate' blanked" in notes
    assert "1 impossible value(s) in 'p95_latency_ms' blanked" in notes
    assert clean["error_rate"].max() <= 1 and (clean["request_rate"].dropna() >= 0).all()
    assert np.isfinite(clean["p95_latency_ms"].dropna()).all()


def test_future_rows_and_duplicates_are_dropped(metrics: tuple[pd.DataFrame, datetime]) -> None:
    raw, now = metrics
    future = raw.tail(3).copy()
    future["timestamp"] = future["timestamp"] + pd.Timedelta(hours=2)
    frame = pd.concat([raw, raw.head(2), future], ignore_index=True)
    clean, notes = clean_metrics(frame, now)
    assert "3 row(s) from the future dropped" in notes
    assert "2 duplicate row(s) dropped" in notes
    assert len(clean) == len(raw)


def test_naive_timestamps_refuse_the_whole_frame(metrics: tuple[pd.DataFrame, datetime]) -> None:
    raw, now = metrics
    naive = raw.copy()
    naive["timestamp"] = naive["timestamp"].dt.tz_localize(None)
    with pytest.raises(BadMetricsError, match="timezone-aware"):
        clean_metrics(naive, now)
    with pytest.raises(BadMetricsError, match="no column"):
        clean_metrics(raw.drop(columns=["error_rate"]), now)


def test_an_idle_service_is_said_to_be_idle_not_broken(
    metrics: tuple[pd.DataFrame, datetime],
) -> None:
    """A warm standby serves no requests: its p95 and error ratio are undefined, which is
    idleness, not a broken exporter; a NaN where requests were served stays a NaN problem."""
    raw, now = metrics
    clean, _ = clean_metrics(raw, now)
    newest = clean["timestamp"] == clean["timestamp"].max()
    idle = newest & (clean["service"] == "frontend")
    broken = newest & (clean["service"] == "checkout")
    clean.loc[idle, "request_rate"] = 0.0
    clean.loc[idle | broken, ["p95_latency_ms", "error_rate"]] = np.nan
    views = service_views(clean, SERVICES, now, timedelta(minutes=3))
    assert views["frontend"].problems == [
        "idle: no requests in the newest minute (no p95, no errors)"
    ]
    assert views["checkout"].problems == [
        "newest sample has NaN in ['p95_latency_ms', 'error_rate']"
    ]
    assert not views["frontend"].usable and views["payments"].problems == []
