"""What predictive scaling plans on: per service, the champion's forecast, seasonal naive or
the last value, whichever forecast that service best over the last day, with its 80 % band
recalibrated from the errors of the forecasts that have come true.

A forecaster's quality is not uniform: the LSTM wins on traffic with a daily shape, the same
minute yesterday on a clean seasonal service, the last value on a random walk, and a model
that was right last week can be wrong today. Held out over NAB's categories
(``benchmarks/bench_forecast_cv.py``), planning on the LSTM alone gives 0.867x seasonal
naive's MAE; on the LSTM while the accuracy watch trusts it, 0.737x; on this per-service
choice, about 0.65x, with the band covering 80 %. It is the rule ``ooda forecast-series``
ships (:func:`models.combine` with ``best``, :func:`models.conformalize` with ``ratio``),
played on the forecasts the loop was actually answered with, so the number describes what
runs.

A condemned champion (``ooda._model_watch``) is no candidate: the loop plans on the better
of the two baselines, never on the version it stopped trusting. Until ``min_completed``
forecasts of the current version have come true there is nothing to judge by, and the plan
is the champion's answer as it came (or none, when it is condemned).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from models import (
    MIN_CALIBRATION,
    CombineRule,
    IntervalMethod,
    RollingForecast,
    blend,
    combine_weights,
)
from models import conformalize as recalibrate
from ooda._model_watch import ForecastWatch
from ooda._records import LoadForecast
from ooda._settings import ModelWatchSettings

#: The baselines, by the name a plan's ``sources`` gives them.
SEASONAL_NAIVE = "seasonal_naive"
NAIVE = "naive"
_CHAMPION = "champion"
_COVERAGE = 0.8
QS = ("q10", "q50", "q90")


@dataclass(frozen=True)
class _Quantiles:
    """One service's rows of one forecast, by step (minutes after its origin, from 1)."""

    steps: np.ndarray
    q10: np.ndarray
    q50: np.ndarray
    q90: np.ndarray


def _by_service(frame: pd.DataFrame, origin: pd.Timestamp) -> dict[str, _Quantiles]:
    stamps = pd.to_datetime(frame["timestamp"], utc=True, errors="coerce").dt.floor("min")
    steps = ((stamps - origin) / pd.Timedelta(minutes=1)).to_numpy(dtype=float)
    values = {q: pd.to_numeric(frame[q], errors="coerce").to_numpy(dtype=float) for q in QS}
    services = frame["service"].astype(str).to_numpy()
    out = {}
    for service in np.unique(services):
        mine = (services == service) & np.isfinite(steps) & (steps >= 1)
        out[str(service)] = _Quantiles(steps[mine].astype(int), *(values[q][mine] for q in QS))
    return out


class ForecastPlanner:
    """Turns the champion's newest answer into the plan; see the module docstring."""

    def __init__(self, settings: ModelWatchSettings, watch: ForecastWatch) -> None:
        self.settings = settings
        self.watch = watch
        self._cache: dict[int, tuple[LoadForecast, dict[str, _Quantiles]]] = {}
        self._planned: tuple[LoadForecast, bool, LoadForecast | None] | None = None

    def plan(self, forecast: LoadForecast | None, origin: datetime) -> LoadForecast | None:
        """The forecast to plan capacity on, made at ``origin`` from ``forecast`` (the
        champion's checked answer) and the forecasts that came true before it."""
        if forecast is None:
            return None
        trusted = self.watch.usable(forecast)  # asked every tick: condemned means at once
        if self._planned is not None:
            answered, was_trusted, planned = self._planned
            if answered is forecast and was_trusted == trusted:
                return planned
        planned = self._plan(forecast, origin, trusted)
        self._planned = (forecast, trusted, planned)
        return planned

    def _plan(self, forecast: LoadForecast, origin: datetime, trusted: bool) -> LoadForecast | None:
        if not self.settings.plan_on_best:
            return forecast if trusted else None
        version = forecast.model_version
        at = pd.Timestamp(origin).floor("min")
        past = [
            (pd.Timestamp(o).floor("min"), f)
            for o, f in self.watch.kept()
            if pd.Timestamp(o).floor("min") < at and (not trusted or f.model_version == version)
        ]
        self._forget(f for _, f in past)
        current = _by_service(forecast.frame, at)
        rows, sources = [], {}
        for service, answer in current.items():
            planned = self._service(service, answer, past, at, trusted)
            if planned is None:
                continue
            frame, source = planned
            rows.append(frame)
            sources[service] = version if source == _CHAMPION else source
        if not rows:
            return None
        name = version if trusted else "baselines"
        return LoadForecast(name, pd.concat(rows, ignore_index=True), sources=sources)

    def _service(
        self,
        service: str,
        answer: _Quantiles,
        past: list[tuple[pd.Timestamp, LoadForecast]],
        at: pd.Timestamp,
        trusted: bool,
    ) -> tuple[pd.DataFrame, str] | None:
        horizon = int(answer.steps.max()) if answer.steps.size else 0
        history = []
        for origin, f in past:
            mine = self._quantiles(f, origin).get(service)
            if mine is not None and mine.steps.size:
                history.append((origin, mine))
        answered = (_frame(service, at, answer), _CHAMPION) if trusted else None
        if horizon == 0 or len(history) < self.settings.min_completed:
            return answered
        origins = [o for o, _ in history] + [at]
        start = origins[0]
        minute = pd.Timedelta(minutes=1)
        index = np.array([(o - start) // minute for o in origins])
        season = int(pd.Timedelta(self.settings.season) // minute)
        extended = self.watch.rates(
            service, start - season * minute, index[-1] + horizon + 1 + season
        )
        values = extended[season:]
        candidates = _baselines(index, horizon, values, extended)
        if trusted:
            own = [q for _, q in history] + [answer]
            candidates[_CHAMPION] = _rolling(_CHAMPION, index, horizon, own)
        usable = {n: f for n, f in candidates.items() if np.isfinite(f.point[-1]).all()}
        if not usable or not _calibrated(usable, values, self.settings.min_completed):
            return answered
        window = len(index)
        names, weights = combine_weights(usable, values, CombineRule.BEST, window)
        combined = blend(usable, names, weights)
        banded = recalibrate(combined, values, IntervalMethod.RATIO, window, _COVERAGE, last=1)
        source = names[int(np.argmax(weights[-1]))]
        steps = np.arange(1, horizon + 1)
        planned = _Quantiles(
            steps,
            np.maximum(banded.lower[-1], 0.0),
            np.maximum(banded.point[-1], 0.0),
            np.maximum(banded.upper[-1], 0.0),
        )
        return _frame(service, at, planned), source

    def _quantiles(self, forecast: LoadForecast, origin: pd.Timestamp) -> dict[str, _Quantiles]:
        cached = self._cache.get(id(forecast))
        if cached is None or cached[0] is not forecast:  # held, so its id is not reused
            cached = (forecast, _by_service(forecast.frame, origin))
            self._cache[id(forecast)] = cached
        return cached[1]

    def _forget(self, kept: Iterable[LoadForecast]) -> None:
        """Drop what was cached for forecasts the watch no longer keeps."""
        alive = {id(f) for f in kept}
        for key in [k for k in self._cache if k not in alive]:
            del self._cache[key]


def _baselines(
    index: np.ndarray, horizon: int, values: np.ndarray, extended: np.ndarray
) -> dict[str, RollingForecast]:
    """Seasonal naive (``extended``: the values a season earlier on) and the last value at
    every origin, without a band of their own: recalibration gives them one from their
    errors."""
    steps = np.arange(1, horizon + 1)
    seasonal = extended[index[:, None] + steps[None, :]]
    seen = np.where(np.isfinite(values), np.arange(len(values)), -1)
    latest = np.maximum.accumulate(seen)[index]  # the newest minute seen up to each origin
    last = np.where(latest >= 0, values[np.maximum(latest, 0)], np.nan)
    held = np.repeat(last[:, None], horizon, axis=1)
    first = index + 1  # a forecast's first row: the minute after its origin
    return {
        SEASONAL_NAIVE: RollingForecast(SEASONAL_NAIVE, first, seasonal, seasonal, seasonal),
        NAIVE: RollingForecast(NAIVE, first, held, held, held),
    }


def _calibrated(candidates: dict[str, RollingForecast], values: np.ndarray, least: int) -> bool:
    """Whether every candidate has, at every step, ``least`` (and at least
    :data:`models.MIN_CALIBRATION`) completed forecasts that came true to judge and
    calibrate it by (a baseline has no band of its own until then)."""
    for f in candidates.values():
        horizon = f.point.shape[1]
        done = f.origins + horizon <= f.origins[-1]
        rows = f.origins[done][:, None] + np.arange(horizon)[None, :]
        judged = np.isfinite(values[rows] - f.point[done]).sum(axis=0)
        if judged.size == 0 or judged.min() < max(least, MIN_CALIBRATION):
            return False
    return True


def _rolling(name: str, index: np.ndarray, horizon: int, rows: list[_Quantiles]) -> RollingForecast:
    """Forecasts at ``index`` (their origins' minutes) as (origins, steps) arrays."""
    arrays = [np.full((len(index), horizon), np.nan) for _ in QS]
    for i, q in enumerate(rows):
        inside = q.steps <= horizon
        for array, value in zip(arrays, (q.q50, q.q10, q.q90), strict=True):
            array[i, q.steps[inside] - 1] = value[inside]
    point, lower, upper = arrays
    return RollingForecast(name, index + 1, point, lower, upper)


def _frame(service: str, origin: pd.Timestamp, q: _Quantiles) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "service": service,
            "timestamp": origin + pd.to_timedelta(q.steps, unit="min"),
            "q10": q.q10,
            "q50": q.q50,
            "q90": q.q90,
        }
    )
