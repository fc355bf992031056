"""Online model combination and conformal intervals for rolling-origin forecasts.

No single model wins on every series: the LSTM wins on traffic with a daily shape, "same
time yesterday" on clean seasonal signals, "the last value" on a random walk such as CPU
utilisation, and the in-sample winner is not the winner on series nobody has seen. So the
forecast a user gets (``ooda forecast-series --model auto``) weighs the candidates by how
well each did on its *recent completed* forecasts, and its 80 % interval is recalibrated
the same way: from the errors of forecasts whose horizon has already passed. Both use only
data before each origin, both adapt when a series changes, and their settings are chosen
by cross-validation across NAB's categories (``benchmarks/bench_forecast.py --cv``), not
on the series being scored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from models._backtest import (
    INTERVAL,
    LstmSettings,
    RollingForecast,
    default_warmup,
    lstm_rolling,
    rolling_origins,
    season_rows,
    seasonal_naive_rolling,
)
from models._errors import InsufficientHistoryError, InvalidInputError, ModelError


class CombineRule(StrEnum):
    """How the candidates' point forecasts are merged at each origin."""

    BEST = "best"
    """The candidate with the lowest recent MAE."""
    INVERSE = "inverse"
    """Weights proportional to 1 / recent MAE."""
    INVERSE_SQUARED = "inverse_squared"
    """Weights proportional to 1 / recent MAE², nearer to ``best`` but smoother."""
    MEAN = "mean"
    """Equal weights."""


class IntervalMethod(StrEnum):
    """How the 80 % interval of a rolling forecast is (re)calibrated at each origin."""

    MODEL = "model"
    """The model's own quantiles, unchanged."""
    RATIO = "ratio"
    """The model's own half-widths, stretched per step so that the recent completed
    forecasts would have been covered (split conformal on the normalised error)."""
    RESIDUAL = "residual"
    """q10/q90 of the recent completed forecasts' signed errors, per step, around the point."""


@dataclass(frozen=True)
class CombineSettings:
    """The combination and interval rules of :func:`combine` and :func:`conformalize`.

    The defaults were chosen by leave-one-category-out cross-validation over the NAB subset
    (``bench_forecast.py --cv``; RESULTS.md has the table).
    """

    rule: CombineRule = CombineRule.BEST
    """How the candidates are merged."""
    window_days: float = 1.0
    """Completed forecasts (by origin, up to this many days back) that judge each candidate."""
    interval: IntervalMethod = IntervalMethod.RATIO
    """How the interval is calibrated."""
    interval_window_days: float = 14.0
    """Completed forecasts (days back) that calibrate the interval."""
    coverage: float = 1.0 - 2 * INTERVAL[0]
    """Nominal coverage of the interval (0.8: q10..q90)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.coverage < 1.0:
            raise InvalidInputError(f"coverage must lie in (0, 1), got {self.coverage!r}")
        for name in ("window_days", "interval_window_days"):
            value = getattr(self, name)
            if not value > 0:
                raise InvalidInputError(f"{name} must be positive, got {value!r}")


def window_origins(days: float, rows_per_day: float, horizon: int) -> int:
    """Origins in ``days`` days of a series with ``rows_per_day`` rows a day (at least 4)."""
    return max(4, math.ceil(days * rows_per_day / horizon))


def naive_rolling(values: np.ndarray, warmup: int, horizon: int) -> RollingForecast:
    """The last value, held for the whole horizon (model ``"naive"``): the right forecast for
    a random walk. q10/q90 per step from the warm-up's ``h``-step differences."""
    y = np.asarray(values, dtype=float)
    if warmup <= horizon + 1:
        raise InsufficientHistoryError(
            f"naive needs a warm-up longer than the horizon ({horizon}), got {warmup}"
        )
    origins = rolling_origins(len(y), warmup, horizon)
    last = y[origins - 1]
    point = np.repeat(last[:, None], horizon, axis=1)
    warm = y[:warmup]
    lower = np.empty(horizon)
    upper = np.empty(horizon)
    for h in range(horizon):
        diffs = warm[h + 1 :] - warm[: -(h + 1)]
        diffs = diffs[np.isfinite(diffs)]
        lower[h], upper[h] = np.quantile(diffs, INTERVAL) if diffs.size else (0.0, 0.0)
    return RollingForecast("naive", origins, point, point + lower[None, :], point + upper[None, :])


def _actuals(forecast: RollingForecast, values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=float)[forecast.origins[:, None] + np.arange(forecast.horizon)]


def _completed(origins: np.ndarray, horizon: int) -> np.ndarray:
    """For each origin, how many earlier origins' whole horizon lies before it."""
    return np.searchsorted(origins + horizon, origins, side="right")


def _recent_mae(forecast: RollingForecast, actual: np.ndarray, window: int) -> np.ndarray:
    """Per origin, the MAE of the last ``window`` completed forecasts (NaN: none yet)."""
    error = np.abs(actual - forecast.point)
    seen = np.isfinite(error)
    count = seen.sum(axis=1)  # 0 for an origin none of whose rows came true yet: NaN
    total = np.where(seen, error, 0.0).sum(axis=1)
    per_origin = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    known = np.isfinite(per_origin)
    sums = np.concatenate([[0.0], np.cumsum(np.where(known, per_origin, 0.0))])
    counts = np.concatenate([[0], np.cumsum(known)])
    done = _completed(forecast.origins, forecast.horizon)
    start = np.maximum(done - window, 0)
    n = counts[done] - counts[start]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (sums[done] - sums[start]) / np.maximum(n, 1), np.nan)


def _aligned(forecasts: Mapping[str, RollingForecast]) -> dict[str, RollingForecast]:
    """The candidates restricted to the origins they all share."""
    if not forecasts:
        raise InvalidInputError("combine needs at least one candidate forecast")
    common: np.ndarray | None = None
    for f in forecasts.values():
        common = f.origins if common is None else np.intersect1d(common, f.origins)
    assert common is not None
    if common.size == 0:
        raise InsufficientHistoryError("the candidate forecasts share no origin")
    out = {}
    for name, f in forecasts.items():
        keep = np.isin(f.origins, common)
        out[name] = RollingForecast(f.model, f.origins[keep], *(a[keep] for a in f.arrays()))
    return out


def combine_weights(
    forecasts: Mapping[str, RollingForecast],
    values: np.ndarray,
    rule: CombineRule,
    window: int,
) -> tuple[list[str], np.ndarray]:
    """Candidate names and their weights per origin, (origins, candidates), rows summing to 1.

    Until a forecast has completed, every candidate weighs the same.
    """
    names = list(forecasts)
    first = forecasts[names[0]]
    actual = _actuals(first, values)
    errors = np.stack([_recent_mae(forecasts[n], actual, window) for n in names], axis=1)
    weights = np.full(errors.shape, 1.0 / len(names))
    judged = np.isfinite(errors).all(axis=1)
    e = np.maximum(errors[judged], 1e-12)
    if rule is CombineRule.BEST:
        w = (e == e.min(axis=1, keepdims=True)).astype(float)
    elif rule is CombineRule.INVERSE:
        w = 1.0 / e
    elif rule is CombineRule.INVERSE_SQUARED:
        w = 1.0 / e**2
    else:
        w = np.ones_like(e)
    weights[judged] = w / w.sum(axis=1, keepdims=True)
    return names, weights


def combine(
    forecasts: Mapping[str, RollingForecast],
    values: np.ndarray,
    rule: CombineRule,
    window: int,
) -> RollingForecast:
    """One forecast (model ``"combined"``) from several of the same series, weighted per origin
    by :func:`combine_weights`; the bounds are weighted the same way."""
    aligned = _aligned(forecasts)
    return blend(aligned, *combine_weights(aligned, values, rule, window))


def blend(
    forecasts: Mapping[str, RollingForecast], names: list[str], weights: np.ndarray
) -> RollingForecast:
    """One forecast (model ``"combined"``) from candidates that share their origins, weighted
    per origin by ``weights`` (origins, candidates) in the order of ``names``, as
    :func:`combine_weights` gives them."""
    origins = forecasts[names[0]].origins
    if weights.shape != (len(origins), len(names)):
        raise InvalidInputError(
            f"weights of shape {weights.shape} for {len(origins)} origins and {len(names)}"
            " candidates"
        )
    stacked = [np.stack([getattr(forecasts[n], a) for n in names], axis=-1) for a in _ARRAYS]
    point, lower, upper = (np.einsum("ohc,oc->oh", s, weights) for s in stacked)
    return RollingForecast("combined", origins, point, lower, upper)


_ARRAYS = ("point", "lower", "upper")


def _windows(values: np.ndarray, done: np.ndarray, window: int) -> np.ndarray:
    """(origins, window, ...) rows ``done - window .. done - 1`` of ``values``, NaN before 0."""
    index = done[:, None] - window + np.arange(window)[None, :]
    padded = np.concatenate([np.full((1, *values.shape[1:]), np.nan), values])
    return padded[np.where(index >= 0, index + 1, 0)]


def _row_quantile(pool: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Linear-interpolated quantile along axis 1 ignoring NaN; ``level`` is (origins, steps)."""
    ordered = np.sort(pool, axis=1)  # NaN sort last
    n = np.isfinite(pool).sum(axis=1)
    position = level * np.maximum(n - 1, 0)
    below = np.floor(position).astype(int)
    above = np.minimum(below + 1, np.maximum(n - 1, 0))
    low = np.take_along_axis(ordered, below[:, None, :], axis=1)[:, 0, :]
    high = np.take_along_axis(ordered, above[:, None, :], axis=1)[:, 0, :]
    return np.asarray(low + (position - below) * (high - low))


#: Completed forecasts a step needs behind it before :func:`conformalize` recalibrates it.
MIN_CALIBRATION = 10

#: A half-width narrower than this share of the typical one (the larger of the recent
#: completed forecasts' mean half-width and their mean absolute error) is taken at that
#: share: a band that collapses to nothing at some origins (seasonal naive on a flat stretch,
#: a spike series' zero days) would otherwise stretch every other band by millions
#: (``bench_forecast_cv``: 5e12 times seasonal naive's MAE on a disk-write series). Coverage
#: and interval score are flat for shares of 0.1-1 on NAB; the value was not chosen on it.
HALF_WIDTH_FLOOR = 0.25


def _half_width_floor(
    half_widths: np.ndarray, error: np.ndarray, done: np.ndarray, window: int
) -> np.ndarray:
    """Per origin, the smallest half-width :data:`HALF_WIDTH_FLOOR` allows, from the last
    ``window`` completed forecasts (NaN: none has completed to say what is typical)."""

    def recent_mean(values: np.ndarray) -> np.ndarray:
        known = np.isfinite(values)
        sums = np.concatenate([[0.0], np.cumsum(np.where(known, values, 0.0).sum(axis=1))])
        counts = np.concatenate([[0], np.cumsum(known.sum(axis=1))])
        start = np.maximum(done - window, 0)
        n = counts[done] - counts[start]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, (sums[done] - sums[start]) / np.maximum(n, 1), np.nan)

    typical = np.fmax(recent_mean(half_widths), recent_mean(np.abs(error)))
    return np.asarray(HALF_WIDTH_FLOOR * typical)


def conformalize(
    forecast: RollingForecast,
    values: np.ndarray,
    method: IntervalMethod,
    window: int,
    coverage: float = 1.0 - 2 * INTERVAL[0],
    last: int | None = None,
) -> RollingForecast:
    """The forecast with its interval recalibrated at each origin from the last ``window``
    completed forecasts (:class:`IntervalMethod`). A step with fewer than
    :data:`MIN_CALIBRATION` completed forecasts behind it keeps the model's own interval.
    ``last``: recalibrate only the last this many origins (the rest keep their own interval),
    for a live forecast that needs its newest origin only."""
    if method is IntervalMethod.MODEL:
        return forecast
    point = forecast.point
    rows = slice(None) if last is None else slice(max(len(point) - last, 0), None)
    error = _actuals(forecast, values) - point
    done = _completed(forecast.origins, forecast.horizon)
    pool_error = _windows(error, done[rows], window)
    n = np.isfinite(pool_error).sum(axis=1)
    enough = n >= MIN_CALIBRATION
    lower, upper = forecast.lower.copy(), forecast.upper.copy()
    own_lower, own_upper = forecast.lower[rows], forecast.upper[rows]
    if method is IntervalMethod.RATIO:
        below = np.maximum(point - forecast.lower, 0.0)
        above = np.maximum(forecast.upper - point, 0.0)
        floor = _half_width_floor(np.concatenate([below, above], axis=1), error, done, window)
        # A zero half-width with no floor yet gives no ratio: it joins no pool.
        below = np.fmax(below, floor[:, None])
        above = np.fmax(above, floor[:, None])
        below[below <= 0] = np.nan
        above[above <= 0] = np.nan
        with np.errstate(invalid="ignore"):
            ratio = np.where(error >= 0, error / above, -error / below)
        ratio[~np.isfinite(error)] = np.nan
        pool = _windows(ratio, done[rows], window)
        # Split conformal's finite-sample level, ceil((n + 1) c) / n.
        level = np.minimum(1.0, np.ceil((n + 1) * coverage) / np.maximum(n, 1))
        factor = _row_quantile(pool, level)
        new_lower = np.where(enough, point[rows] - factor * below[rows], own_lower)
        new_upper = np.where(enough, point[rows] + factor * above[rows], own_upper)
        lower[rows] = np.where(np.isfinite(new_lower), new_lower, own_lower)
        upper[rows] = np.where(np.isfinite(new_upper), new_upper, own_upper)
    else:
        tail = (1.0 - coverage) / 2
        shape = point[rows].shape
        lo = _row_quantile(pool_error, np.full(shape, tail))
        hi = _row_quantile(pool_error, np.full(shape, 1.0 - tail))
        lower[rows] = np.where(enough, point[rows] + lo, own_lower)
        upper[rows] = np.where(enough, point[rows] + hi, own_upper)
    return RollingForecast(forecast.model, forecast.origins, point, lower, upper)


#: The candidates of ``auto``, each also available alone.
MODELS = ("lstm", "ets", "seasonal_naive", "naive")


@dataclass(frozen=True)
class Candidate:
    """One candidate of an ``auto`` forecast: how it did, and what it weighed at the end."""

    mae: float
    """MAE over every forecast row (known only afterwards: not what chose the weights)."""
    weight: float
    """Its weight at the last origin, from its recent completed forecasts."""


def _run(
    model: str,
    timestamps: pd.Series,
    values: np.ndarray,
    season: int,
    warmup: int,
    horizon: int,
    lstm: LstmSettings | None,
) -> RollingForecast:
    if model == "lstm":
        return lstm_rolling(timestamps, values, warmup, horizon, lstm)
    if model == "ets":
        from models._holt_winters import holt_winters_rolling

        return holt_winters_rolling(values, season, warmup, horizon)
    if model == "seasonal_naive":
        return seasonal_naive_rolling(values, season, warmup, horizon)
    if model == "naive":
        return naive_rolling(values, warmup, horizon)
    raise InvalidInputError(f"unknown model {model!r}; choose one of {MODELS} or 'auto'")


def rolling_forecast(
    timestamps: pd.Series,
    values: np.ndarray,
    horizon: int,
    model: str = "auto",
    warmup: int | None = None,
    lstm: LstmSettings | None = None,
    settings: CombineSettings | None = None,
) -> tuple[RollingForecast, dict[str, Candidate]]:
    """Rolling-origin forecasts of a series with ``model`` alone, or ``auto``: every model of
    :data:`MODELS` that can forecast it, combined per origin by their recent completed
    forecasts (:func:`combine`), the interval recalibrated by :func:`conformalize`.

    Returns the forecasts and, for ``auto``, each candidate's record (empty otherwise).
    """
    s = settings or CombineSettings()
    interval, season = season_rows(timestamps)
    y = np.asarray(values, dtype=float)
    warmup = default_warmup(len(y), season) if warmup is None else warmup
    if model != "auto":
        return _run(model, timestamps, y, season, warmup, horizon, lstm), {}
    forecasts: dict[str, RollingForecast] = {}
    refusals: list[str] = []
    for candidate in MODELS:
        try:
            forecasts[candidate] = _run(candidate, timestamps, y, season, warmup, horizon, lstm)
        except ModelError as exc:
            refusals.append(f"{candidate}: {exc}")
    if not forecasts:
        raise InsufficientHistoryError("no model can forecast this series: " + "; ".join(refusals))
    return combine_candidates(forecasts, y, pd.Timedelta(days=1) / interval, horizon, s)


def combine_candidates(
    forecasts: Mapping[str, RollingForecast],
    values: np.ndarray,
    rows_per_day: float,
    horizon: int,
    settings: CombineSettings | None = None,
) -> tuple[RollingForecast, dict[str, Candidate]]:
    """``auto`` from forecasts already made: :func:`combine` then :func:`conformalize` with
    ``settings``' windows in days of ``rows_per_day`` rows. Returns it and each candidate's
    record."""
    s = settings or CombineSettings()
    y = np.asarray(values, dtype=float)
    window = window_origins(s.window_days, rows_per_day, horizon)
    aligned = _aligned(forecasts)
    names, weights = combine_weights(aligned, y, s.rule, window)
    combined = combine(aligned, y, s.rule, window)
    interval_window = window_origins(s.interval_window_days, rows_per_day, horizon)
    result = conformalize(combined, y, s.interval, interval_window, s.coverage)
    actual = _actuals(result, y)
    record = {
        name: Candidate(
            mae=float(np.nanmean(np.abs(actual - aligned[name].point))),
            weight=float(weights[-1, k]),
        )
        for k, name in enumerate(names)
    }
    return result, record
