"""A service's request rates minute by minute, as one array: what the forecast watch and the
plan look up thousands of times a tick (the actual at each forecast point, the same minute a
season ago, the last value at an origin). A dict of timestamps made each lookup a Python
call; over a day of forecasts of 200 services that was most of a second a minute
(``benchmarks/bench_forecast_plan.py``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

_EPOCH = pd.Timestamp("1970-01-01", tz="UTC")
_MINUTE = pd.Timedelta(minutes=1)


def minute_numbers(stamps: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """Minutes since the epoch (floored) of timezone-aware UTC ``stamps``; -1 for NaT."""
    index = pd.DatetimeIndex(stamps)
    known = ~index.isna()
    out = np.full(len(index), -1, dtype=np.int64)
    out[known] = np.asarray((index[known] - _EPOCH) // _MINUTE, dtype=np.int64)
    return out


def minute_number(at: pd.Timestamp) -> int:
    """Minutes since the epoch of one UTC timestamp (floored)."""
    return int((pd.Timestamp(at) - _EPOCH) // _MINUTE)


def stamp_of(minute: np.ndarray) -> pd.DatetimeIndex:
    """The UTC timestamps of minute numbers."""
    return pd.DatetimeIndex(_EPOCH + pd.to_timedelta(minute, unit="min"))


class MinuteSeries:
    """Values by minute number (NaN: not seen); grows at either end as values arrive."""

    def __init__(self) -> None:
        self.start = 0
        self.values = np.empty(0)

    def put(self, minutes: np.ndarray, values: np.ndarray) -> None:
        """Set the values at ``minutes`` (later ones win for a repeated minute)."""
        if minutes.size == 0:
            return
        low, high = int(minutes.min()), int(minutes.max())
        if self.values.size == 0:
            self.start, self.values = low, np.full(high - low + 1, np.nan)
        if low < self.start:
            self.values = np.concatenate([np.full(self.start - low, np.nan), self.values])
            self.start = low
        end = self.start + self.values.size
        if high >= end:
            grow = max(high - end + 1, self.values.size)  # doubling: amortised appends
            self.values = np.concatenate([self.values, np.full(grow, np.nan)])
        self.values[minutes - self.start] = values

    def get(self, minutes: np.ndarray) -> np.ndarray:
        """The values at ``minutes`` (NaN where not seen)."""
        index = np.asarray(minutes, dtype=np.int64) - self.start
        inside = (index >= 0) & (index < self.values.size)
        out = np.full(index.shape, np.nan)
        out[inside] = self.values[index[inside]]
        return out

    def last_at_or_before(self, minute: int) -> float | None:
        """The newest value seen at or before ``minute``."""
        upto = min(minute - self.start + 1, self.values.size)
        if upto <= 0:
            return None
        seen = np.flatnonzero(np.isfinite(self.values[:upto]))
        return float(self.values[seen[-1]]) if seen.size else None

    def seen(self, until: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The minute numbers and values seen (up to ``until``), oldest first."""
        values = self.values if until is None else self.values[: max(until - self.start + 1, 0)]
        where = np.flatnonzero(np.isfinite(values))
        return where + self.start, values[where]

    def forget_before(self, minute: int) -> None:
        """Drop the values older than ``minute``."""
        cut = minute - self.start
        if cut > 0:
            self.values = self.values[cut:].copy()
            self.start = minute
