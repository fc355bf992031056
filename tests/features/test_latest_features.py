"""features: `latest_features` is `latest_rows(build_features(...))`, computed alone.

Hypothesis draws the shape of each service's metrics (length, gaps, seconds offsets, how
often values are NaN, rates that are noisy, constant, zero or never reported) and a seed for
the values; timestamps mostly on the minute make rows fall exactly on window edges.

Window means are compared with a tolerance: pandas sums rolling windows incrementally with
Kahan compensation, `latest_features` sums each window once, so the two may differ in the
last bits (values are drawn in thousandths up to 1000, as metrics are, so that difference
stays relative to the mean; a 1e-300 after a run of 1e3 would drift in pandas' running sum).
Everything else, `request_rate_window` included (the same `np.interp` over the same
nanoseconds), must be identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts import METRIC_COLUMNS
from features import (
    FEATURE_ROW_COLUMNS,
    FeatureSchemaError,
    build_features,
    latest_features,
    latest_rows,
)

START = datetime(2024, 3, 4, tzinfo=UTC)
MEANS = (
    "error_rate_5m_mean",
    "p95_latency_ms_5m_mean",
    "request_rate_1h_mean",
    "request_rate_ratio_1h",
)
EXACT = [c for c in FEATURE_ROW_COLUMNS if c not in (*MEANS, "request_rate_window")]


@dataclass(frozen=True)
class Shape:
    """How one service's metrics look; the values themselves come from a seed."""

    delay: int  # minutes after START of its first row
    minutes: int
    kept: float  # share of the minutes that have a row; the rest are gaps
    seconds: str  # rows off the minute: "none", "some" or "all"
    nan: float  # chance of each value being NaN
    rate: str  # "noisy", "constant", "zero" or "none" (never reported)


shapes = st.builds(
    Shape,
    delay=st.integers(0, 30),
    minutes=st.integers(1, 120),
    kept=st.sampled_from([1.0, 0.8, 0.3]),
    seconds=st.sampled_from(["none", "some", "all"]),
    nan=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
    rate=st.sampled_from(["noisy", "constant", "zero", "none"]),
)


def metrics_frame(services: list[Shape], seed: int) -> pd.DataFrame:
    """A shuffled tidy frame with a duplicate row or two, one service per shape."""
    rng = np.random.default_rng(seed)
    frames = []
    for i, shape in enumerate(services):
        minutes = np.arange(shape.minutes) + shape.delay
        minutes = minutes[rng.random(shape.minutes) < shape.kept]
        n = len(minutes)
        seconds = rng.integers(0, 60, n)
        if shape.seconds == "none":
            seconds[:] = 0
        elif shape.seconds == "some":
            seconds[rng.random(n) < 0.7] = 0
        values = {
            "request_rate": rng.integers(0, 10**6, n) / 1000,
            "request_rate_instant": rng.integers(0, 10**6, n) / 1000,
            "p95_latency_ms": rng.integers(0, 10**6, n) / 1000,
            "p99_latency_ms": rng.integers(0, 10**6, n) / 1000,
            "error_rate": rng.integers(0, 1000, n) / 1000,
            "cpu_utilisation": rng.random(n),
            "memory_utilisation": rng.random(n),
            "restarts": rng.poisson(0.5, n).astype(float),
            "ready_pods": rng.integers(0, 5, n).astype(float),
            "desired_pods": rng.integers(0, 5, n).astype(float),
        }
        for column in values.values():
            column[rng.random(n) < shape.nan] = np.nan
        if shape.rate != "noisy":
            rate = {"constant": 12.5, "zero": 0.0, "none": np.nan}[shape.rate]
            values["request_rate"] = np.full(n, rate)
        frames.append(
            pd.DataFrame(
                {
                    "timestamp": pd.Timestamp(START)
                    + pd.to_timedelta(minutes * 60 + seconds, unit="s"),
                    "region": rng.choice(["eu-west-1", "us-east-1"], n),
                    "service": f"svc-{(i * 7) % 5}",  # not in sorted order
                    **values,
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True).loc[:, list(METRIC_COLUMNS)]
    duplicates = frame.sample(n=min(2, len(frame)), random_state=seed)
    return pd.concat([frame, duplicates]).sample(frac=1.0, random_state=seed)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(shapes, min_size=1, max_size=5), st.integers(0, 2**32 - 1))
def test_latest_features_equal_the_newest_built_rows(services: list[Shape], seed: int) -> None:
    metrics = metrics_frame(services, seed)
    expected = latest_rows(build_features(metrics))
    actual = latest_features(metrics)

    assert list(actual.columns) == list(FEATURE_ROW_COLUMNS)
    pd.testing.assert_series_equal(actual.dtypes, expected.dtypes)
    pd.testing.assert_frame_equal(actual[EXACT], expected[EXACT], check_exact=True)
    for column in MEANS:
        np.testing.assert_allclose(
            actual[column], expected[column], rtol=1e-9, atol=1e-12, err_msg=column
        )
    for got, want in zip(
        actual["request_rate_window"], expected["request_rate_window"], strict=True
    ):
        assert got.dtype == want.dtype == np.float32
        np.testing.assert_array_equal(got, want)


ONE = Shape(delay=0, minutes=10, kept=1.0, seconds="none", nan=0.0, rate="noisy")


def test_an_empty_frame_gives_no_rows() -> None:
    empty = metrics_frame([ONE], 0).iloc[:0]
    pd.testing.assert_frame_equal(latest_features(empty), latest_rows(build_features(empty)))


def test_missing_timestamps_are_rejected() -> None:
    metrics = metrics_frame([ONE], 0)
    metrics.iloc[3, metrics.columns.get_loc("timestamp")] = pd.NaT
    for compute in (latest_features, build_features):
        with pytest.raises(FeatureSchemaError, match="timestamp"):
            compute(metrics)
