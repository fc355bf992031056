"""The services' request rates minute by minute, as one services x minutes array: what the
forecast watch and the plan look up thousands of times a tick (the actual at each forecast
point, the same minute a season ago, the last value at an origin). A dict of timestamps made
each lookup a Python call, and an array per service a call per service and forecast; over a
day of forecasts of 1,000 services either was seconds a minute
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


class MinuteGrid:
    """Values by service and minute number, one row per service and one column per minute (NaN:
    not seen); grows as services and minutes arrive. One array for every service, so a
    forecast's points of every service are looked up in one indexing, not a call per service.
    """

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}
        """Each service's row."""
        self.start = 0
        """The minute number of the first column."""
        self.values = np.empty((0, 0))

    def row(self, service: str) -> int:
        """``service``'s row, -1 when never seen."""
        return self.rows.get(service, -1)

    def rows_of(self, services: np.ndarray) -> np.ndarray:
        """The rows of ``services`` (-1 for one never seen), element by element."""
        names, inverse = np.unique(services.astype(str), return_inverse=True)
        return np.array([self.row(str(n)) for n in names], dtype=np.int64)[inverse]

    def put(self, service: str, minutes: np.ndarray, values: np.ndarray) -> None:
        """Set ``service``'s values at ``minutes`` (later ones win for a repeated minute)."""
        if minutes.size == 0:
            return
        if service not in self.rows:
            self.rows[service] = len(self.rows)
        low, high = int(minutes.min()), int(minutes.max())
        if self.values.shape[1] == 0:
            self.start = low
        n_rows, n_cols = len(self.rows), self.values.shape[1]
        before = max(self.start - low, 0)
        after = max(high - (self.start + n_cols) + 1, 0)
        if after:
            after = max(after, n_cols)  # doubling: amortised appends
        if before or after or n_rows > self.values.shape[0]:
            grown = np.full(
                (max(n_rows, 2 * self.values.shape[0]), before + n_cols + after), np.nan
            )
            grown[: self.values.shape[0], before : before + n_cols] = self.values
            self.values, self.start = grown, self.start - before
        self.values[self.rows[service], minutes - self.start] = values

    def get(self, rows: np.ndarray, minutes: np.ndarray) -> np.ndarray:
        """The values at (``rows``, ``minutes``), element by element (NaN where not seen)."""
        rows, minutes = np.broadcast_arrays(np.asarray(rows), np.asarray(minutes, dtype=np.int64))
        column = minutes - self.start
        inside = (rows >= 0) & (column >= 0) & (column < self.values.shape[1])
        out = np.full(rows.shape, np.nan)
        out[inside] = self.values[rows[inside], column[inside]]
        return out

    def last_at_or_before(self, rows: np.ndarray, minute: int) -> np.ndarray:
        """Per row, the newest value seen at or before ``minute`` (NaN: none)."""
        out = np.full(len(rows), np.nan)
        upto = min(minute - self.start + 1, self.values.shape[1])
        known = rows >= 0
        if upto <= 0 or not known.any():
            return out
        window = self.values[rows[known], :upto]
        seen = np.isfinite(window)
        last = upto - 1 - np.argmax(seen[:, ::-1], axis=1)
        found = seen.any(axis=1)
        picked = window[np.arange(len(window)), last]
        out[known] = np.where(found, picked, np.nan)
        return out

    def seen(self, service: str, until: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``service``'s minute numbers and values seen (up to ``until``), oldest first."""
        row = self.row(service)
        if row < 0:
            return np.empty(0, dtype=np.int64), np.empty(0)
        values = self.values[row]
        if until is not None:
            values = values[: max(until - self.start + 1, 0)]
        where = np.flatnonzero(np.isfinite(values))
        return where + self.start, values[where]

    def forget_before(self, minute: int) -> None:
        """Drop the values older than ``minute``."""
        cut = minute - self.start
        if cut > 0:
            self.values = self.values[:, cut:].copy()
            self.start = minute
