"""The projection runbooks act on: believed only when the samples make a line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from ooda.runbooks._trend import project_crossing

NOW = datetime(2026, 11, 16, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=5)


def _series(values: list[float]) -> tuple[pd.Series, pd.Series]:
    stamps = pd.Series(
        pd.to_datetime([NOW - timedelta(minutes=len(values) - 1 - i) for i in range(len(values))])
    )
    return stamps, pd.Series(values, dtype=float)


@settings(max_examples=60, deadline=None)
@given(
    start=st.floats(0.3, 0.9),
    per_min=st.floats(0.005, 0.05),
)
def test_a_straight_fall_projects_its_own_crossing(start: float, per_min: float) -> None:
    values = [start - per_min * i for i in range(6)]
    stamps, series = _series(values)
    found = project_crossing(stamps, series, 0.1, falling=True, now=NOW, window=WINDOW, min_fit=0.9)
    assert found is not None
    expected = max(0.0, (values[-1] - 0.1) / per_min * 60.0)
    assert abs(found.eta_s - expected) < 1e-6 * max(1.0, expected)


def test_noise_and_a_rise_are_no_trend_and_too_few_points_are_none() -> None:
    rng = np.random.default_rng(3)
    stamps, noisy = _series(list(0.5 + rng.normal(0, 0.02, 6)))
    assert (
        project_crossing(stamps, noisy, 0.1, falling=True, now=NOW, window=WINDOW, min_fit=0.9)
        is None
    )
    stamps, rising = _series([0.5, 0.52, 0.54, 0.56, 0.58, 0.6])
    assert (
        project_crossing(stamps, rising, 0.1, falling=True, now=NOW, window=WINDOW, min_fit=0.9)
        is None
    )
    stamps, short = _series([0.5, 0.4, 0.3])
    assert (
        project_crossing(stamps, short, 0.1, falling=True, now=NOW, window=WINDOW, min_fit=0.9)
        is None
    )


def test_a_series_already_across_projects_zero_and_nan_is_ignored() -> None:
    stamps, series = _series([0.2, 0.15, float("nan"), 0.09, 0.08, 0.07])
    found = project_crossing(stamps, series, 0.1, falling=True, now=NOW, window=WINDOW, min_fit=0.9)
    assert found is not None and found.eta_s == 0.0 and found.latest == 0.07
