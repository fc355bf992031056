"""The forecaster's live accuracy: notice when the champion goes bad, stop using it, roll the
alias back, and say so.

A forecaster that passed its training gate can still go bad in production: the traffic
changed shape, a bad version was promoted by hand, a feature broke upstream. Nobody looks at
forecast error at 3 a.m., and a bad forecaster is in charge of capacity: predictive floors
and surge scaling rest on it. So the loop keeps score.

Every forecast the loop is answered with (the raw answer, refused or not) is kept with the
version that made it. Each tick the request rates that came true are joined to the forecast
points they answer, and, over a rolling ``window``, the champion's mean absolute error is set
against the seasonal naive forecast's on the same points (the same minute a ``season`` ago;
the value at the forecast's origin until a season of history has been seen): their ratio is
the live MASE, and the share of actuals inside the 80 % band the live coverage.

A version whose ratio over the points that came true in the last ``judge_after`` (at least
``min_points`` of them, each judged by the freshest forecast for it, the one planning rested
on) is above ``max_ratio`` is *condemned*: its forecasts are not planned on (``ooda._forecast_plan``
plans on the better baseline instead; with ``plan_on_best`` off the HPA is left to react
alone), an escalation goes to a human, and, where the registry knows the champion it
replaced, that version is made to forecast the same origins from the same history; if it does
better, ``@champion`` moves back to it, tagged with who (ooda), why and the numbers. Serving
follows the alias within its poll interval, and the loop plans on forecasts again once they
come from a version that is not condemned -- or once the condemned one, still answering, is
back at or below the baseline over ``judge_after`` (*reinstated*: a forecaster worse than
seasonal naive for one bad stretch is not worse for good; on NAB's series, condemning for
good after 30 bad minutes left the loop on seasonal naive everywhere, ``bench_forecast_cv``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np
import pandas as pd

from ooda._minute_series import MinuteGrid, minute_number, minute_numbers, stamp_of
from ooda._records import LoadForecast, ServiceView
from ooda._settings import ModelWatchSettings

#: Most forecast origins the previous champion is replayed on before a rollback.
MAX_REPLAYS = 12


class AliasRegistry(Protocol):
    """What a live watch needs of a model's registry to move ``@champion`` back."""

    name: str

    def champion(self) -> str | None:
        """The version under ``@champion`` now (None: none)."""

    def previous(self, version: str) -> str | None:
        """The champion ``version`` replaced (None: none recorded)."""

    def rollback(self, version: str, reason: str, evidence: Mapping[str, Any]) -> str:
        """Move ``@champion`` from ``version`` to its predecessor; the new champion."""


class ForecasterRegistry(AliasRegistry, Protocol):
    """The forecaster's registry (``MlflowForecasterRegistry`` on MLflow)."""

    def forecast(self, version: str, history: pd.DataFrame, horizon: int) -> pd.DataFrame:
        """``version``'s forecast (service, timestamp, q10, q50, q90) after ``history``
        (service, timestamp, request_rate)."""


@dataclass(frozen=True)
class Accuracy:
    """A version's live error over the window, beside the seasonal naive baseline's."""

    version: str
    points: int
    """Forecast points (service-minutes) that have come true."""
    mae: float
    baseline_mae: float
    coverage: float
    """Share of the actuals inside the forecast's q10-q90 band."""

    @property
    def ratio(self) -> float:
        """MAE over the baseline's (the live MASE); above 1 the baseline would have done better."""
        if self.baseline_mae > 0:
            return self.mae / self.baseline_mae
        return 1.0 if self.mae == 0 else math.inf

    def numbers(self) -> dict[str, float]:
        """The figures, rounded, as evidence and tags."""
        return {
            "points": self.points,
            "mae": round(self.mae, 3),
            "baseline_mae": round(self.baseline_mae, 3),
            "mase": round(self.ratio, 3),
            "coverage_80": round(self.coverage, 3),
        }


#: The furthest step of a forecast that is judged or planned on, in minutes: a point further
#: out comes from a broken clock, and sizing arrays or replays by it would exhaust memory.
MAX_HORIZON = 24 * 60


@dataclass(frozen=True)
class WatchEvent:
    """Something the watch did, for the audit log."""

    at: datetime
    kind: str
    """``fallback`` (a version condemned), ``rollback`` (the alias moved back),
    ``no_rollback`` (why it stayed) or ``reinstated`` (a condemned version planned on again)."""
    version: str
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Kept:
    origin: datetime
    forecast: LoadForecast
    horizon: int
    seq: int
    """Its place in the order forecasts were kept (a later one judges a point: freshest)."""
    done: pd.DataFrame | None = None
    """Its points, once every one of them lies in the past (they no longer change)."""
    parsed: _Parsed | None = None
    """Its rows as arrays, read once."""


@dataclass(frozen=True)
class _Parsed:
    """A forecast's rows as arrays: minute numbers (-1: no time), services, quantiles."""

    stamps: pd.Series
    minutes: np.ndarray
    services: np.ndarray
    q10: np.ndarray
    q50: np.ndarray
    q90: np.ndarray

    @classmethod
    def of(cls, frame: pd.DataFrame) -> _Parsed:
        stamps = pd.to_datetime(frame["timestamp"], utc=True, errors="coerce").dt.floor("min")
        q = {
            c: pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float)
            for c in ("q10", "q50", "q90")
        }
        services = frame["service"].astype(str).to_numpy()
        return cls(stamps, minute_numbers(stamps), services, q["q10"], q["q50"], q["q90"])


class ForecastWatch:
    """Live accuracy of the forecasts the loop is answered with; see the module docstring."""

    def __init__(
        self, settings: ModelWatchSettings, registry: ForecasterRegistry | None = None
    ) -> None:
        self.settings = settings
        self.registry = registry
        self._actual = MinuteGrid()
        self._kept: deque[_Kept] = deque()
        self.condemned: set[str] = set()
        """Versions whose forecasts are no longer planned on."""
        self.last: dict[str, Accuracy] = {}
        """The latest accuracy of each version judged."""
        self._judged_at: datetime | None = None
        self._seeded = False
        self._pruned_at: int | None = None
        self._newest: int | None = None
        """The newest minute taken in, over every service."""
        self._seq = 0
        self._settled: dict[str, tuple[pd.DataFrame, int]] = {}
        """Per version, the points of its settled forecasts merged (freshest wins) and the
        ``seq`` of the last one merged: a minute's judgement adds only what settled since."""

    # -- input ----------------------------------------------------------------------------
    @property
    def seeded(self) -> bool:
        """Whether a season of history has been taken in (:meth:`seed`)."""
        return self._seeded

    def seed(self, history: pd.DataFrame) -> None:
        """Take in older request rates (``service, timestamp, request_rate``): a season of
        them makes the baseline seasonal naive from the first tick, not persistence."""
        self._seeded = True
        for service, rows in history.groupby("service"):
            self._take(str(service), rows)

    def observe(self, views: Mapping[str, ServiceView]) -> None:
        """Take the request rates that came true from this tick's views."""
        for service, view in views.items():
            self._take(service, view.history)
        self._prune()

    def _take(self, service: str, history: pd.DataFrame) -> None:
        if history.empty or "request_rate" not in history:
            return
        minutes = minute_numbers(pd.to_datetime(history["timestamp"], utc=True, errors="coerce"))
        values = pd.to_numeric(history["request_rate"], errors="coerce").to_numpy(dtype=float)
        good = (minutes >= 0) & np.isfinite(values)
        if not good.any():
            return
        self._actual.put(service, minutes[good], values[good])
        newest = int(minutes[good].max())
        self._newest = newest if self._newest is None else max(self._newest, newest)

    def _prune(self) -> None:
        """Forget actuals no judgement or baseline can need (checked hourly, not each tick)."""
        newest = self._newest
        if newest is None or (self._pruned_at is not None and newest - self._pruned_at < 60):
            return
        self._pruned_at = newest
        horizon = max((k.horizon for k in self._kept), default=60)
        keep = self.settings.window + self.settings.season + timedelta(minutes=horizon)
        self._actual.forget_before(newest - int(keep / timedelta(minutes=1)))

    def record(self, origin: datetime, forecast: LoadForecast) -> None:
        """Keep a forecast (as answered, before any check) and the version that made it."""
        frame = forecast.frame
        if not isinstance(frame, pd.DataFrame) or frame.empty or "timestamp" not in frame:
            return
        stamps = pd.to_datetime(frame["timestamp"], utc=True, errors="coerce")
        ahead = (stamps.max() - pd.Timestamp(origin)) / pd.Timedelta(minutes=1)
        horizon = int(min(MAX_HORIZON, max(1, ahead)))
        self._seq += 1
        self._kept.append(_Kept(origin, forecast, horizon, self._seq))
        while self._kept and origin - self._kept[0].origin > self.settings.window:
            self._kept.popleft()

    def kept(self) -> list[tuple[datetime, LoadForecast]]:
        """The forecasts kept over the window (origin, answer as it came), oldest first."""
        return [(k.origin, k.forecast) for k in self._kept]

    def rates(self, service: str, start: pd.Timestamp, length: int) -> np.ndarray:
        """``service``'s request rates that came true in the ``length`` minutes from
        ``start`` (NaN: not seen, or not yet)."""
        minutes = minute_number(start) + np.arange(length)
        return self._actual.get(np.full(length, self._actual.row(service)), minutes)

    def usable(self, forecast: LoadForecast | None) -> bool:
        """Whether ``forecast`` may be planned on (its version is not condemned)."""
        return forecast is not None and forecast.model_version not in self.condemned

    # -- judgement ------------------------------------------------------------------------
    def _points(self, kept: _Kept, now: datetime, q50: pd.Series | None = None) -> pd.DataFrame:
        """The points of one forecast that have come true: actual, forecast and baseline."""
        if kept.done is not None and q50 is None:
            return kept.done
        if kept.parsed is None:
            kept.parsed = _Parsed.of(kept.forecast.frame)
        f = kept.parsed
        grid = self._actual
        rows = grid.rows_of(f.services)
        season = int(pd.Timedelta(self.settings.season) // pd.Timedelta(minutes=1))
        actual = np.where(f.minutes >= 0, grid.get(rows, f.minutes), np.nan)
        baseline = grid.get(rows, f.minutes - season)
        missing = np.isnan(baseline)
        if missing.any():  # until a season is seen: the value at the origin
            origin = minute_number(pd.Timestamp(kept.origin))
            baseline[missing] = grid.last_at_or_before(rows[missing], origin)
        keep = (
            (f.minutes >= 0)
            & (f.minutes <= minute_number(pd.Timestamp(now)))
            & np.isfinite(actual)
            & np.isfinite(baseline)
        )
        point = f.q50 if q50 is None else pd.to_numeric(q50, errors="coerce").to_numpy(float)
        points = pd.DataFrame(
            {
                "service": f.services[keep],
                "timestamp": f.stamps[keep].array,
                "actual": actual[keep],
                "q10": f.q10[keep],
                "q50": point[keep],
                "q90": f.q90[keep],
                "baseline": baseline[keep],
            }
        )
        settled = pd.Timestamp(now) - pd.Timedelta(minutes=5)  # the last actuals are in
        if q50 is None and not f.stamps.isna().all() and f.stamps.max() < settled:
            kept.done = points
            kept.parsed = None  # its points no longer change
        return points

    def accuracy(
        self, version: str, now: datetime, since: datetime | None = None
    ) -> Accuracy | None:
        """``version``'s live accuracy over the points that came true after ``since`` (by
        default: over the window); None when none has."""
        return _accuracy(version, self._version_points(version, now), since)

    def _version_points(self, version: str, now: datetime) -> pd.DataFrame:
        """Every point of ``version``'s kept forecasts that came true, each judged by the
        freshest forecast for it. Settled forecasts are merged once, in the order kept, up to
        the first one still open; the open ones are added each time."""
        mine = [k for k in self._kept if k.forecast.model_version == version]
        merged, upto = self._settled.get(version, (pd.DataFrame(), 0))
        new: list[pd.DataFrame] = []
        open_: list[pd.DataFrame] = []
        for kept in mine:
            if kept.seq <= upto:
                continue
            points = self._points(kept, now)
            if not open_ and kept.done is not None:
                new.append(points.assign(seq=kept.seq))
                upto = kept.seq
            else:
                open_.append(points)
        if new:
            merged = self._fresher(merged, new)
        if not merged.empty and mine:  # a forecast no longer kept no longer judges
            merged = merged.iloc[int(np.searchsorted(merged["seq"].to_numpy(), mine[0].seq)) :]
        self._settled[version] = (merged, upto)
        if not open_:
            return merged
        return self._fresher(merged, open_)

    def _fresher(self, older: pd.DataFrame, newer: list[pd.DataFrame]) -> pd.DataFrame:
        """``older`` (one point per service and minute, in the order kept) and then ``newer``,
        a later forecast's point replacing an earlier one for the same service and minute."""
        fresh = pd.concat([p for p in newer if not p.empty] or [pd.DataFrame()], ignore_index=True)
        if fresh.empty:
            return older
        fresh = fresh.assign(key=self._keys(fresh))
        fresh = fresh.drop_duplicates("key", keep="last")
        if older.empty:
            return fresh.reset_index(drop=True)
        stale = np.isin(older["key"].to_numpy(), fresh["key"].to_numpy())
        return pd.concat([older[~stale], fresh], ignore_index=True)

    def _keys(self, points: pd.DataFrame) -> np.ndarray:
        """One integer per (service, minute): the service's row, then the minute number."""
        rows = self._actual.rows_of(points["service"].to_numpy())
        return (rows << 32) | minute_numbers(points["timestamp"])

    def tick(self, now: datetime) -> list[WatchEvent]:
        """Judge every version seen in the window; condemn (and roll back) the bad ones."""
        s = self.settings
        events: list[WatchEvent] = []
        if not s.enabled or (
            self._judged_at is not None and now - self._judged_at < timedelta(minutes=1)
        ):
            return events  # points come true a minute at a time
        self._judged_at = now
        versions = {k.forecast.model_version for k in self._kept}
        for gone in set(self._settled) - versions:
            del self._settled[gone]
        for version in sorted(versions):
            points = self._version_points(version, now)  # once: both figures read them
            overall = _accuracy(version, points)
            if overall is not None:
                self.last[version] = overall
            acc = _accuracy(version, points, since=now - s.judge_after)
            if acc is None or acc.points < s.min_points:
                continue
            if version in self.condemned:
                if acc.ratio <= s.max_ratio:  # better than the baseline again, over the window
                    self.condemned.discard(version)
                    events.append(
                        WatchEvent(
                            now,
                            "reinstated",
                            version,
                            f"forecaster v{version}: live MASE {acc.ratio:.2f} over the"
                            f" {acc.points} points of the last {s.judge_after}: planned on again",
                            acc.numbers(),
                        )
                    )
                continue
            if acc.ratio <= s.max_ratio:
                continue
            self.condemned.add(version)
            instead = (
                "capacity is planned on the better of seasonal naive and the last value"
                if s.plan_on_best
                else "predictive scaling off, the HPA reacts alone"
            )
            events.append(
                WatchEvent(
                    now,
                    "fallback",
                    version,
                    f"forecaster v{version}: live MASE {acc.ratio:.2f} over the {acc.points}"
                    f" points of the last {s.judge_after} (seasonal naive is better):"
                    f" {instead}",
                    acc.numbers(),
                )
            )
            if s.rollback and self.registry is not None:
                events.append(self._roll_back(version, acc, now))
        return events

    def _roll_back(self, version: str, acc: Accuracy, now: datetime) -> WatchEvent:
        registry = self.registry
        assert registry is not None
        previous = replay_target(registry, version, now)
        if isinstance(previous, WatchEvent):
            return previous
        replays = [k for k in self._kept if k.forecast.model_version == version][-MAX_REPLAYS:]
        mine, theirs = [], []
        try:
            for kept in replays:
                history = self._history_before(kept.origin)
                if history.empty:
                    continue
                answer = registry.forecast(previous, history, kept.horizon)
                q50 = _aligned_q50(kept.forecast.frame, answer)
                mine.append(self._points(kept, now))
                theirs.append(self._points(kept, now, q50))
        except Exception as exc:
            why = f"v{previous} could not forecast the same window: {exc}"
            return WatchEvent(now, "no_rollback", version, why)
        a = pd.concat([p for p in mine if not p.empty] or [pd.DataFrame()], ignore_index=True)
        b = pd.concat([p for p in theirs if not p.empty] or [pd.DataFrame()], ignore_index=True)
        if a.empty or b.empty or b["q50"].isna().any():
            why = f"v{previous} could not be judged on the same points"
            return WatchEvent(now, "no_rollback", version, why)
        mae_now = float(np.abs(a["q50"] - a["actual"]).mean())
        mae_before = float(np.abs(b["q50"] - b["actual"]).mean())
        numbers = {
            **acc.numbers(),
            "replayed_points": len(b),
            f"mae_v{version}": round(mae_now, 3),
            f"mae_v{previous}": round(mae_before, 3),
        }
        if mae_before >= mae_now:
            why = (
                f"v{previous} forecasts the same window no better (MAE {mae_before:.1f} against"
                f" {mae_now:.1f}): @champion stays, the fallback holds"
            )
            return WatchEvent(now, "no_rollback", version, why, numbers)
        reason = (
            f"live accuracy watch: v{version} MASE {acc.ratio:.2f} over {acc.points} points;"
            f" v{previous} MAE {mae_before:.1f} against {mae_now:.1f} on the same window"
        )
        return roll_back(registry, version, now, reason, numbers)

    def _history_before(self, origin: datetime) -> pd.DataFrame:
        """The request rates seen up to ``origin`` (what the forecast was made from)."""
        cut = minute_number(pd.Timestamp(origin))
        parts = []
        for service in self._actual.rows:
            minutes, values = self._actual.seen(service, until=cut)
            parts.append(
                pd.DataFrame(
                    {"service": service, "timestamp": stamp_of(minutes), "request_rate": values}
                )
            )
        if not parts:
            return pd.DataFrame(columns=["service", "timestamp", "request_rate"])
        frame = pd.concat(parts, ignore_index=True)
        return frame.sort_values(["service", "timestamp"], ignore_index=True)


def _accuracy(version: str, points: pd.DataFrame, since: datetime | None = None) -> Accuracy | None:
    """The accuracy over ``points`` (:meth:`ForecastWatch._version_points`) that came true
    after ``since``; None when there are none."""
    if points.empty:
        return None
    if since is not None:
        points = points[points["timestamp"] > pd.Timestamp(since)]
        if points.empty:
            return None
    actual = points["actual"].to_numpy()
    inside = (actual >= points["q10"].to_numpy()) & (actual <= points["q90"].to_numpy())
    return Accuracy(
        version,
        len(points),
        float(np.abs(points["q50"].to_numpy() - actual).mean()),
        float(np.abs(points["baseline"].to_numpy() - actual).mean()),
        float(inside.mean()),
    )


def replay_target(registry: AliasRegistry, version: str, now: datetime) -> str | WatchEvent:
    """The champion ``version`` replaced, to replay on the same input; or why there is none
    (the registry is down, ``version`` is no longer champion, or it replaced nothing)."""
    try:
        current, previous = registry.champion(), registry.previous(version)
    except Exception as exc:  # the registry is down: fall back only, and say so
        return WatchEvent(now, "no_rollback", version, f"registry unreachable: {exc}")
    if current != version:
        why = f"@champion is v{current}, not v{version}: left alone"
        return WatchEvent(now, "no_rollback", version, why)
    if previous is None:
        why = f"v{version} has no previous champion to roll back to"
        return WatchEvent(now, "no_rollback", version, why)
    return previous


def roll_back(
    registry: AliasRegistry,
    version: str,
    now: datetime,
    reason: str,
    numbers: Mapping[str, Any],
) -> WatchEvent:
    """Move ``@champion`` back from ``version``, the replay having shown its predecessor
    better; the event says what happened."""
    try:
        back = registry.rollback(version, reason, numbers)
    except Exception as exc:
        return WatchEvent(now, "no_rollback", version, f"rollback failed: {exc}", dict(numbers))
    return WatchEvent(
        now, "rollback", version, f"@champion rolled back from v{version} to v{back}", dict(numbers)
    )


def _aligned_q50(frame: pd.DataFrame, answer: pd.DataFrame) -> pd.Series:
    """The answer's q50 at each (service, timestamp) of ``frame`` (NaN where it has none)."""
    keys = pd.DataFrame(
        {
            "service": frame["service"].astype(str).reset_index(drop=True),
            "timestamp": pd.to_datetime(frame["timestamp"], utc=True)
            .dt.floor("min")
            .reset_index(drop=True),
        }
    )
    got = answer.assign(
        service=answer["service"].astype(str),
        timestamp=pd.to_datetime(answer["timestamp"], utc=True).dt.floor("min"),
    ).drop_duplicates(["service", "timestamp"])
    merged = keys.merge(
        got[["service", "timestamp", "q50"]], on=["service", "timestamp"], how="left"
    )
    return merged["q50"].astype(float).reset_index(drop=True)
