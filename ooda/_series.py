"""``ooda score-series`` and ``ooda forecast-series``: one univariate series in, a CSV out.

The series format is NAB's (``timestamp,value``), so the detector and the forecaster can be
measured on data nobody here made. Bad input is refused with the row and value that are wrong,
before anything is written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ooda._errors import SeriesInputError


def read_series(path: Path) -> pd.DataFrame:
    """``timestamp`` (datetime, never decreasing), ``value`` (float, NaN for blanks) and
    ``text``, the timestamp exactly as written, to echo it unchanged."""
    try:
        frame = pd.read_csv(path, dtype={"timestamp": str})
    except FileNotFoundError as exc:
        raise SeriesInputError(f"{path}: no such file") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SeriesInputError(f"{path}: not a CSV file ({exc})") from exc
    missing = {"timestamp", "value"} - set(frame.columns)
    if missing:
        raise SeriesInputError(
            f"{path}: needs columns timestamp,value; missing {sorted(missing)}"
            f" (has {list(frame.columns)})"
        )
    if frame.empty:
        raise SeriesInputError(f"{path}: no rows")
    stamps = pd.to_datetime(frame["timestamp"], errors="coerce")
    bad = stamps.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise SeriesInputError(
            f"{path}: row {row + 2}: timestamp {frame['timestamp'].iloc[row]!r} is not a date"
        )
    # A repeated timestamp is kept as its own row (NAB's files have some); going back is not.
    steps = stamps.diff().iloc[1:]
    if (steps < pd.Timedelta(0)).any():
        row = int(np.flatnonzero((steps < pd.Timedelta(0)).to_numpy())[0]) + 1
        raise SeriesInputError(
            f"{path}: row {row + 2}: timestamp {frame['timestamp'].iloc[row]!r} comes before"
            " the row above it"
        )
    values = pd.to_numeric(frame["value"], errors="coerce")
    garbage = values.isna() & frame["value"].notna()
    if garbage.any():
        row = int(np.flatnonzero(garbage.to_numpy())[0])
        raise SeriesInputError(
            f"{path}: row {row + 2}: value {frame['value'].iloc[row]!r} is not a number"
        )
    return pd.DataFrame(
        {"timestamp": stamps, "value": values.astype(float), "text": frame["timestamp"]}
    )


def score_series(input_path: Path, output_path: Path) -> pd.DataFrame:
    """Score every row causally; write ``timestamp,value,anomaly_score``."""
    from models import StreamingScorer

    series = read_series(input_path)
    scores = StreamingScorer().score(series["timestamp"], series["value"])
    out = pd.DataFrame(
        {
            "timestamp": series["text"],
            "value": series["value"],
            "anomaly_score": np.round(scores, 6),
        }
    )
    output_path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(output_path, index=False)
    return out


def forecast_series(
    input_path: Path, horizon: int, output_path: Path, model: str = "auto"
) -> tuple[pd.DataFrame, str, dict[str, float]]:
    """Rolling-origin forecasts; write ``timestamp,value,forecast,lower,upper`` (80 %) for the
    forecast rows. Returns them, the model used and the validation errors behind the choice."""
    from models import InsufficientHistoryError, InvalidInputError, rolling_forecast

    if horizon < 1:
        raise SeriesInputError(f"--horizon must be a positive number of rows, got {horizon}")
    series = read_series(input_path)
    values = series["value"].interpolate(limit_direction="both").to_numpy()
    if not np.isfinite(values).all():
        raise SeriesInputError(f"{input_path}: every value is missing")
    try:
        result, errors = rolling_forecast(series["timestamp"], values, horizon, model)
    except (InsufficientHistoryError, InvalidInputError) as exc:
        raise SeriesInputError(f"{input_path}: {exc}") from exc
    rows = result.rows()
    out = pd.DataFrame(
        {
            "timestamp": series["text"].iloc[rows].to_numpy(),
            "value": series["value"].iloc[rows].to_numpy(),
            "forecast": np.round(result.point.ravel(), 6),
            "lower": np.round(result.lower.ravel(), 6),
            "upper": np.round(result.upper.ravel(), 6),
        }
    )
    output_path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(output_path, index=False)
    return out, result.model, errors
