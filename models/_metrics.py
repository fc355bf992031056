"""Evaluation metrics used by the training gates and the accuracy monitor.

Detector metrics are taken at the same 0.5 decision threshold the control loop uses, plus
average precision which does not depend on it. Forecast metrics are scale-free where they
can be (sMAPE, MASE) because services differ by orders of magnitude in traffic; MASE is
relative to the seasonal-naive forecaster, the baseline a model must beat to be promoted.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_fscore_support

from models._detectors import ANOMALY_THRESHOLD
from models._errors import InvalidInputError, MissingFeatureError
from models._series import FORECAST_COLUMNS, HISTORY_COLUMNS, per_service_series


def detector_metrics(
    labels: Sequence[bool] | np.ndarray, scores: Sequence[float] | np.ndarray
) -> dict[str, float]:
    """Precision, recall and F1 at the 0.5 threshold, and average precision.

    `average_precision` is NaN when `labels` holds no positive.
    """
    y_true = np.asarray(labels, dtype=bool)
    y_score = np.asarray(scores, dtype=float)
    if y_true.shape != y_score.shape or y_true.ndim != 1 or len(y_true) == 0:
        raise InvalidInputError(
            f"labels and scores must be equal-length non-empty vectors, got shapes "
            f"{y_true.shape} and {y_score.shape}"
        )
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_score >= ANOMALY_THRESHOLD, average="binary", zero_division=0.0
    )
    ap = float(average_precision_score(y_true, y_score)) if y_true.any() else float("nan")
    return {
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "average_precision": ap,
    }


def forecast_metrics(
    actual: pd.DataFrame,
    forecast: pd.DataFrame,
    history: pd.DataFrame | None = None,
    season: int = 1440,
) -> dict[str, float]:
    """MAE, sMAPE (%), MASE and 80 % interval coverage of `forecast` against `actual`.

    `actual` has `timestamp, service, request_rate`; `forecast` is a forecaster's output.
    They are matched on (service, timestamp). MASE divides the MAE by the in-sample MAE of
    the seasonal-naive forecast (lag `season` minutes) over `history`; it is NaN when no
    history, or none longer than one season, is given.
    """
    missing = [c for c in HISTORY_COLUMNS if c not in actual.columns]
    missing += [c for c in FORECAST_COLUMNS if c not in forecast.columns]
    if missing:
        raise MissingFeatureError(missing, model="forecast_metrics")
    truth = actual.loc[:, list(HISTORY_COLUMNS)].assign(
        timestamp=pd.to_datetime(actual["timestamp"], utc=True)
    )
    pred = forecast.assign(timestamp=pd.to_datetime(forecast["timestamp"], utc=True))
    joined = pred.merge(truth, on=["service", "timestamp"], how="inner").dropna(
        subset=["request_rate"]
    )
    if joined.empty:
        raise InvalidInputError("forecast_metrics: no (service, timestamp) in both frames")
    y = joined["request_rate"].to_numpy(dtype=float)
    q50 = joined["q50"].to_numpy(dtype=float)
    abs_err = np.abs(y - q50)
    denominator = np.abs(y) + np.abs(q50)
    smape = np.where(denominator > 0, 2.0 * abs_err / np.where(denominator > 0, denominator, 1), 0)
    inside = (y >= joined["q10"].to_numpy(dtype=float)) & (y <= joined["q90"].to_numpy(dtype=float))
    mae = float(abs_err.mean())
    return {
        "mae": mae,
        "smape": float(100.0 * smape.mean()),
        "mase": mae / _seasonal_naive_mae(history, season) if history is not None else float("nan"),
        "coverage_80": float(inside.mean()),
        "n": float(len(joined)),
    }


def _seasonal_naive_mae(history: pd.DataFrame, season: int) -> float:
    """In-sample MAE of y[t] ~ y[t - season] pooled over services (NaN if undefined)."""
    errors = [
        np.abs(values.to_numpy()[season:] - values.to_numpy()[:-season])
        for values in per_service_series(history, "forecast_metrics").values()
        if len(values) > season
    ]
    if not errors:
        return float("nan")
    scale = float(np.concatenate(errors).mean())
    return scale if scale > 0 else float("nan")
