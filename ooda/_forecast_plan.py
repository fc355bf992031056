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
of the two baselines, never on the version it stopped trusting; so it does while no answer is
fresh enough (the forecaster failing or unreachable), for the services and steps of the last
answer. Until ``min_completed``
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
from ooda._model_watch import MAX_HORIZON, ForecastWatch
from ooda._records import LoadForecast
from ooda._settings import ModelWatchSettings

#: The baselines, by the name a plan's ``sources`` gives them.
SEASONAL_NAIVE = "seasonal_naive"
NAIVE = "naive"
_CHAMPION = "champion"
_COVERAGE = 0.8
QS = ("q10", "q50", "q90")


@dataclass(frozen=True)
class _Dense:
    """One forecast as arrays: (quantile, service, step) values in the order of :data:`QS`,
    step ``k`` at column ``k - 1``, NaN where it gave none; ``given`` marks the rows it had."""

    services: dict[str, int]
    values: np.ndarray
    given: np.ndarray

    @property
    def horizon(self) -> int:
        return int(self.values.shape[2])


def _dense(frame: pd.DataFrame, origin: pd.Timestamp) -> _Dense:
    stamps = pd.to_datetime(frame["timestamp"], utc=True, errors="coerce").dt.floor("min")
    steps = ((stamps - origin) / pd.Timedelta(minutes=1)).to_numpy(dtype=float)
    good = np.isfinite(steps) & (steps >= 1) & (steps <= MAX_HORIZON)
    names, rows = np.unique(frame["service"].astype(str).to_numpy()[good], return_inverse=True)
    cols = steps[good].astype(int) - 1
    horizon = int(cols.max()) + 1 if cols.size else 0
    values = np.full((len(QS), len(names), horizon), np.nan)
    for k, q in enumerate(QS):
        values[k, rows, cols] = pd.to_numeric(frame[q], errors="coerce").to_numpy(float)[good]
    given = np.zeros((len(names), horizon), dtype=bool)
    given[rows, cols] = True
    return _Dense({str(n): i for i, n in enumerate(names)}, values, given)


class ForecastPlanner:
    """Turns the champion's newest answer into the plan; see the module docstring."""

    def __init__(self, settings: ModelWatchSettings, watch: ForecastWatch) -> None:
        self.settings = settings
        self.watch = watch
        self._cache: dict[int, tuple[LoadForecast, _Dense]] = {}
        self._planned: tuple[LoadForecast, bool, LoadForecast | None] | None = None
        self._baselined: tuple[pd.Timestamp, LoadForecast | None] | None = None

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

    def plan_on_baselines(
        self, last: LoadForecast | None, asked_at: datetime, origin: datetime
    ) -> LoadForecast | None:
        """The plan at ``origin`` when no answer is fresh enough to plan on (the forecaster
        failing, refused or unreachable): the better baseline per service, for the services
        and steps of the ``last`` answer (asked at ``asked_at``), judged and recalibrated on
        the forecasts kept before. None while too few of those have come true."""
        if last is None or not self.settings.plan_on_best:
            return None
        at = pd.Timestamp(origin).floor("min")
        if self._baselined is not None and self._baselined[0] == at:
            return self._baselined[1]
        shape = _dense(last.frame, pd.Timestamp(asked_at).floor("min"))
        planned = self._plan(last, origin, trusted=False, shape=shape)
        self._baselined = (at, planned)
        return planned

    def _plan(
        self, forecast: LoadForecast, origin: datetime, trusted: bool, shape: _Dense | None = None
    ) -> LoadForecast | None:
        """``shape``: the services and steps to plan, when not ``forecast``'s own at
        ``origin``."""
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
        current = _dense(forecast.frame, at) if shape is None else shape
        minute = pd.Timedelta(minutes=1)
        offsets = np.array([(o - at) // minute for o, _ in past], dtype=int)
        stack, present = self._stack(current, past)
        parts: list[tuple[str, np.ndarray, np.ndarray]] = []
        sources = {}
        for service, s in current.services.items():
            planned = self._service(
                service, current, s, stack[:, :, s], present[:, s], offsets, at, trusted
            )
            if planned is None:
                continue
            steps, values, source = planned
            parts.append((service, steps, values))
            sources[service] = version if source == _CHAMPION else source
        if not parts:
            return None
        name = version if trusted else "baselines"
        return LoadForecast(name, _frame(at, parts), sources=sources)

    def _stack(
        self, current: _Dense, past: list[tuple[pd.Timestamp, LoadForecast]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The past forecasts of the current answer's services, (quantile, origin, service,
        step) cut at its horizon, and which (origin, service) a forecast had at all. Single
        precision: a day of forecasts of 1,000 services is 100 MB so, 200 MB in double."""
        n = len(current.services)
        stack = np.full((len(QS), len(past), n, current.horizon), np.nan, dtype=np.float32)
        present = np.zeros((len(past), n), dtype=bool)
        for o, (origin, f) in enumerate(past):
            d = self._quantiles(f, origin)
            pairs = [
                (current.services[k], i) for k, i in d.services.items() if k in current.services
            ]
            if not pairs:
                continue
            mine, theirs = (np.array(c) for c in zip(*pairs, strict=True))
            h = min(current.horizon, d.horizon)
            stack[:, o, mine, :h] = d.values[:, theirs, :h]
            present[o, mine] = True
        return stack, present

    def _service(
        self,
        service: str,
        current: _Dense,
        s: int,
        past: np.ndarray,
        present: np.ndarray,
        offsets: np.ndarray,
        at: pd.Timestamp,
        trusted: bool,
    ) -> tuple[np.ndarray, np.ndarray, str] | None:
        """One service's plan: its steps, its (quantile, step) values, and its source."""
        given = np.flatnonzero(current.given[s])
        answer = current.values[:, s, :]
        answered = (given + 1, answer[:, given], _CHAMPION) if trusted else None
        if not given.size or present.sum() < self.settings.min_completed:
            return answered
        horizon = int(given[-1]) + 1
        minutes = np.r_[offsets[present], 0]  # the origins, in minutes after ``at``
        index = minutes - minutes[0]
        minute = pd.Timedelta(minutes=1)
        start = at + int(minutes[0]) * minute
        season = int(pd.Timedelta(self.settings.season) // minute)
        extended = self.watch.rates(
            service, start - season * minute, int(index[-1]) + horizon + 1 + season
        )
        values = extended[season:]
        candidates = _baselines(index, horizon, values, extended)
        if trusted:
            own = np.concatenate([past[:, present, :horizon], answer[:, None, :horizon]], axis=1)
            lower, point, upper = own
            candidates[_CHAMPION] = RollingForecast(_CHAMPION, index + 1, point, lower, upper)
        usable = {n: f for n, f in candidates.items() if np.isfinite(f.point[-1]).all()}
        if not usable or not _calibrated(usable, values, self.settings.min_completed):
            return answered
        window = len(index)
        names, weights = combine_weights(usable, values, CombineRule.BEST, window)
        combined = blend(usable, names, weights)
        banded = recalibrate(combined, values, IntervalMethod.RATIO, window, _COVERAGE, last=1)
        source = names[int(np.argmax(weights[-1]))]
        planned = np.stack([banded.lower[-1], banded.point[-1], banded.upper[-1]])
        return np.arange(1, horizon + 1), np.maximum(planned, 0.0), source

    def _quantiles(self, forecast: LoadForecast, origin: pd.Timestamp) -> _Dense:
        cached = self._cache.get(id(forecast))
        if cached is None or cached[0] is not forecast:  # held, so its id is not reused
            cached = (forecast, _dense(forecast.frame, origin))
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


def _frame(at: pd.Timestamp, parts: list[tuple[str, np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """The plan's rows: per service, its steps after ``at`` and their quantiles."""
    steps = np.concatenate([p[1] for p in parts])
    values = np.concatenate([p[2] for p in parts], axis=1)
    return pd.DataFrame(
        {
            "service": np.repeat([p[0] for p in parts], [len(p[1]) for p in parts]),
            "timestamp": at + pd.to_timedelta(steps, unit="min"),
            **{q: values[k] for k, q in enumerate(QS)},
        }
    )
