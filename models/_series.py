"""Frame <-> per-service series conversions shared by the forecasters.

Forecasters take the long tidy frame (`timestamp, service, request_rate`) and answer a long
frame (`service, timestamp, q10, q50, q90`); in between they need one regular per-minute
series per service. Scrapes miss minutes and repeat them, so the series are resampled onto
the minute grid and gaps are interpolated: a forecaster fed a gappy history should still
answer rather than fail the scaling decision that depends on it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models._errors import InsufficientHistoryError, InvalidInputError, MissingFeatureError

#: Input columns of every forecaster.
HISTORY_COLUMNS: tuple[str, ...] = ("timestamp", "service", "request_rate")
#: Output columns of every forecaster's `predict()`.
FORECAST_COLUMNS: tuple[str, ...] = ("service", "timestamp", "q10", "q50", "q90")
#: Forecast quantile levels, matching the q10/q50/q90 columns.
QUANTILES: tuple[float, float, float] = (0.1, 0.5, 0.9)
#: The forecasters' time step.
STEP = pd.Timedelta(minutes=1)


def per_service_series(
    frame: pd.DataFrame, model: str, step: pd.Timedelta = STEP
) -> dict[str, pd.Series]:
    """Split a long history frame into regular `request_rate` series by service (one row a
    `step`, a minute by default).

    Naive timestamps are read as UTC. Duplicate minutes are averaged, missing minutes are
    interpolated in time (and edge gaps filled from the nearest value).
    """
    missing = [c for c in HISTORY_COLUMNS if c not in frame.columns]
    if missing:
        raise MissingFeatureError(missing, model=model)
    if frame.empty:
        raise InvalidInputError(f"{model}: the history frame is empty")
    data = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(frame["timestamp"], utc=True),
            "service": frame["service"].astype(str),
            "request_rate": pd.to_numeric(frame["request_rate"], errors="coerce"),
        }
    )
    result: dict[str, pd.Series] = {}
    for service, group in data.groupby("service", sort=True):
        series = group.set_index("timestamp")["request_rate"].sort_index()
        series = series.resample(step).mean().interpolate(method="time", limit_direction="both")
        if series.isna().all():
            raise InvalidInputError(f"{model}: request_rate of service {service!r} is all NaN")
        result[str(service)] = series.astype(float)
    return result


def require_length(series: dict[str, pd.Series], minimum: int, model: str, purpose: str) -> None:
    """Raise `InsufficientHistoryError` naming the services shorter than `minimum` minutes."""
    short = {s: len(v) for s, v in series.items() if len(v) < minimum}
    if short:
        raise InsufficientHistoryError(
            f"{model} needs at least {minimum} minutes of history to {purpose}; got {short}"
        )


def check_horizon(horizon: int, model: str) -> int:
    """Validate a forecast horizon (in steps)."""
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise InvalidInputError(f"{model}: horizon must be a positive integer, got {horizon!r}")
    return int(horizon)


def forecast_frame(
    service: str, last: pd.Timestamp, quantiles: np.ndarray, step: pd.Timedelta = STEP
) -> pd.DataFrame:
    """Rows for one service from a (horizon, 3) array, made ordered and non-negative."""
    ordered = np.clip(np.sort(np.asarray(quantiles, dtype=float), axis=1), 0.0, None)
    horizon = len(ordered)
    return pd.DataFrame(
        {
            "service": service,
            "timestamp": pd.date_range(last + step, periods=horizon, freq=step),
            "q10": ordered[:, 0],
            "q50": ordered[:, 1],
            "q90": ordered[:, 2],
        }
    )


def concat_forecasts(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Stack per-service forecasts into the output frame."""
    return pd.concat(parts, ignore_index=True).loc[:, list(FORECAST_COLUMNS)]


def sampling_interval(timestamps: pd.Series, rows: int | None = None) -> pd.Timedelta:
    """Median positive step of the timestamps (of the first ``rows`` only, when given)."""
    head = pd.to_datetime(timestamps if rows is None else timestamps.iloc[: max(rows, 2)])
    steps = head.diff().dropna()
    steps = steps[steps > pd.Timedelta(0)]
    if steps.empty:
        raise InsufficientHistoryError(
            f"need two increasing timestamps to find the sampling interval, got {len(head)} rows"
        )
    return pd.Timedelta(steps.median())


def series_scale(values: pd.Series) -> float:
    """Positive level of a series (its mean), 1.0 when the series is flat at zero."""
    mean = float(np.nanmean(values.to_numpy(dtype=float)))
    return mean if np.isfinite(mean) and mean > 0 else 1.0
