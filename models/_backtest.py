"""Rolling-origin forecasts of one univariate series (``ooda forecast-series``).

After a warm-up, one ``horizon``-step forecast is made every ``horizon`` steps, each from the
data before its origin only. That is how a forecaster is used (and judged) in production: a
model fitted on the past, asked again and again as time moves on. The sampling interval and
the daily season come from the timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from models._errors import InsufficientHistoryError, InvalidInputError
from models._series import sampling_interval

#: The central 80 % interval: q10 and q90.
INTERVAL = (0.1, 0.9)


@dataclass(frozen=True)
class RollingForecast:
    """Forecasts from several origins of one series; arrays are (origins, horizon)."""

    model: str
    origins: np.ndarray
    """Row index of each origin: its forecast covers rows ``origin .. origin + horizon - 1``."""
    point: np.ndarray
    lower: np.ndarray
    """q10 of each forecast step."""
    upper: np.ndarray
    """q90 of each forecast step."""

    @property
    def horizon(self) -> int:
        return int(self.point.shape[1])

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``point, lower, upper``."""
        return self.point, self.lower, self.upper

    def rows(self) -> np.ndarray:
        """Row index of every forecast value, flattened like ``point.ravel()``."""
        return (self.origins[:, None] + np.arange(self.horizon)[None, :]).ravel()


def rolling_origins(n_rows: int, warmup: int, horizon: int) -> np.ndarray:
    """Origins ``warmup, warmup + horizon, ...`` whose whole horizon lies inside the series."""
    if horizon < 1:
        raise InvalidInputError(f"horizon must be a positive integer, got {horizon!r}")
    if warmup + horizon > n_rows:
        raise InsufficientHistoryError(
            f"{n_rows} rows leave nothing to forecast after a warm-up of {warmup} rows"
            f" with horizon {horizon}"
        )
    return np.arange(warmup, n_rows - horizon + 1, horizon)


def season_rows(timestamps: pd.Series) -> tuple[pd.Timedelta, int]:
    """The sampling interval (median step) and the rows in one day (0 when not whole)."""
    interval = sampling_interval(timestamps)
    per_day = pd.Timedelta(days=1) / interval
    return interval, round(per_day) if abs(per_day - round(per_day)) < 1e-6 else 0


def default_warmup(n_rows: int, season: int) -> int:
    """Three seasons (days) of history, or 30 % of the series if that is more."""
    return max(3 * max(season, 1), int(0.3 * n_rows))


def seasonal_naive_rolling(
    values: np.ndarray, season: int, warmup: int, horizon: int
) -> RollingForecast:
    """``y[t] = y[t - season]`` (repeated for steps beyond one season), with intervals from the
    seasonal differences of the warm-up: q10/q90 of ``y[t] - y[t - season * k]`` for the ``k``
    each step needs."""
    if season < 1 or warmup <= season:
        raise InsufficientHistoryError(
            f"seasonal naive needs a warm-up longer than one season ({season} rows), got {warmup}"
        )
    y = np.asarray(values, dtype=float)
    origins = rolling_origins(len(y), warmup, horizon)
    steps = np.arange(horizon)
    lags = season * (steps // season + 1)
    point = y[origins[:, None] + steps[None, :] - lags[None, :]]
    warm = y[:warmup]
    lower = np.empty(horizon)
    upper = np.empty(horizon)
    for h, lag in enumerate(lags):
        diffs = warm[lag:] - warm[:-lag]
        diffs = diffs[np.isfinite(diffs)]
        lower[h], upper[h] = np.quantile(diffs, INTERVAL) if diffs.size else (0.0, 0.0)
    return RollingForecast(
        "seasonal_naive", origins, point, point + lower[None, :], point + upper[None, :]
    )


@dataclass(frozen=True)
class LstmSettings:
    """The LSTM of :func:`lstm_rolling`: the project's forecaster at the series' own step."""

    input_chunk_length: int = 72
    """Steps the network reads before each forecast (6 hours of 5-minute data)."""
    training_length: int = 96
    """Steps per training sequence."""
    hidden_dim: int = 24
    """LSTM units."""
    n_epochs: int = 12
    """Training epochs."""
    learning_rate: float = 3e-3
    """Adam learning rate."""
    max_samples_per_ts: int = 1500
    """Training windows drawn (strided) from the warm-up."""
    num_samples: int = 100
    """Sample paths per forecast, for the quantiles."""
    random_state: int = 0
    """Seed of the weights and of the sampling."""
    calibrate: bool = True
    """Stretch the 80 % interval to the coverage seen on held-out warm-up rows."""
    calibration_share: float = 0.25
    """Share of the warm-up held out (at its end) to calibrate the interval."""


def _lstm_quantiles(
    s: LstmSettings,
    series: pd.Series,
    fit_rows: int,
    origins: np.ndarray,
    horizon: int,
    step: pd.Timedelta,
) -> np.ndarray:
    """(origins, horizon, 3) quantiles of an LSTM fitted on ``series[:fit_rows]``."""
    from models._lstm import LSTMForecaster

    forecaster = LSTMForecaster(
        input_chunk_length=s.input_chunk_length,
        training_length=s.training_length,
        hidden_dim=s.hidden_dim,
        n_epochs=s.n_epochs,
        learning_rate=s.learning_rate,
        max_samples_per_ts=s.max_samples_per_ts,
        num_samples=s.num_samples,
        random_state=s.random_state,
        step_seconds=round(step.total_seconds()),
    )
    history = pd.DataFrame(
        {
            "timestamp": series.index[:fit_rows],
            "service": "series",
            "request_rate": series.to_numpy()[:fit_rows],
        }
    )
    forecaster.fit(history)
    windows = [series.iloc[o - s.input_chunk_length : o] for o in origins]
    return np.stack(forecaster.predict_windows("series", windows, horizon))


def interval_factors(actual: np.ndarray, quantiles: np.ndarray, coverage: float) -> np.ndarray:
    """Per step, the factor by which the q10..q50..q90 half-widths must stretch (or shrink)
    for ``coverage`` of ``actual`` to fall inside: split-conformal calibration."""
    median = quantiles[:, :, 1]
    below = np.maximum(median - quantiles[:, :, 0], 1e-9)
    above = np.maximum(quantiles[:, :, 2] - median, 1e-9)
    error = actual - median
    ratio = np.where(error >= 0, error / above, -error / below)
    return np.asarray(np.quantile(ratio, coverage, axis=0), dtype=float)


def lstm_rolling(
    timestamps: pd.Series,
    values: np.ndarray,
    warmup: int,
    horizon: int,
    settings: LstmSettings | None = None,
) -> RollingForecast:
    """The project's :class:`~models.LSTMForecaster`, fitted once on the warm-up rows, then
    asked from every origin with the ``input_chunk_length`` rows before it (one batch).

    Sampled paths of a network are over-confident out of sample, so with ``calibrate`` the
    interval is stretched per step by :func:`interval_factors`, measured on the last
    ``calibration_share`` of the warm-up by a model fitted on the rest (past data only).
    """
    s = settings or LstmSettings()
    interval, _ = season_rows(timestamps)
    y = pd.Series(np.asarray(values, dtype=float)).interpolate(limit_direction="both")
    stamps = pd.DatetimeIndex(pd.to_datetime(timestamps))
    origins = rolling_origins(len(y), max(warmup, s.input_chunk_length), horizon)
    # The grid the forecaster works on: the series' own timestamps, snapped to its step.
    series = pd.Series(y.to_numpy(), index=pd.date_range(stamps[0], periods=len(y), freq=interval))
    quantiles = _lstm_quantiles(s, series, warmup, origins, horizon, interval)
    median = quantiles[:, :, 1]
    lower, upper = quantiles[:, :, 0], quantiles[:, :, 2]
    split = int((1 - s.calibration_share) * warmup)
    if s.calibrate and split > s.training_length + s.input_chunk_length:
        held_out = rolling_origins(warmup, split, horizon)
        past = _lstm_quantiles(s, series, split, held_out, horizon, interval)
        actual = y.to_numpy()[held_out[:, None] + np.arange(horizon)[None, :]]
        factors = interval_factors(actual, past, 1.0 - 2 * INTERVAL[0])[None, :]
        lower = median - factors * (median - lower)
        upper = median + factors * (upper - median)
    return RollingForecast("lstm", origins, median, lower, upper)
