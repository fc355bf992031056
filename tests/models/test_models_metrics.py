"""Evaluation metrics give the textbook values on hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from models import InvalidInputError, detector_metrics, forecast_metrics


def test_detector_metrics_at_the_half_threshold() -> None:
    labels = [True, True, False, False, False]
    scores = [0.9, 0.4, 0.6, 0.1, 0.2]
    metrics = detector_metrics(labels, scores)
    assert metrics["precision"] == pytest.approx(0.5)
    assert metrics["recall"] == pytest.approx(0.5)
    assert metrics["f1"] == pytest.approx(0.5)
    assert metrics["average_precision"] == pytest.approx((1 + 2 / 3) / 2)
    assert math.isnan(detector_metrics([False, False], [0.1, 0.7])["average_precision"])
    with pytest.raises(InvalidInputError, match="shapes"):
        detector_metrics([True], [0.1, 0.2])


def test_forecast_metrics() -> None:
    times = pd.date_range("2024-01-01", periods=4, freq="min", tz="UTC")
    actual = pd.DataFrame({"timestamp": times, "service": "a", "request_rate": [10.0, 20, 30, 40]})
    forecast = pd.DataFrame(
        {
            "service": "a",
            "timestamp": times,
            "q10": [9.0, 15, 31, 30],
            "q50": [10.0, 20, 33, 36],
            "q90": [11.0, 25, 35, 45],
        }
    )
    history = pd.DataFrame(
        {
            "timestamp": pd.date_range("2023-12-31 23:50", periods=10, freq="min", tz="UTC"),
            "service": "a",
            "request_rate": np.arange(10.0) * 2,  # lag-1 naive error is 2 everywhere
        }
    )
    metrics = forecast_metrics(actual, forecast, history=history, season=1)
    assert metrics["mae"] == pytest.approx(7 / 4)
    assert metrics["smape"] == pytest.approx(100 * (2 * 3 / 63 + 2 * 4 / 76) / 4)
    assert metrics["mase"] == pytest.approx(7 / 8)
    assert metrics["coverage_80"] == pytest.approx(3 / 4)
    assert math.isnan(forecast_metrics(actual, forecast)["mase"])
    with pytest.raises(InvalidInputError, match="no \\(service, timestamp\\)"):
        forecast_metrics(actual.assign(service="b"), forecast)
