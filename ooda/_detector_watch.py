"""The anomaly detector's live precision and recall, against a robust z-score baseline; the
loop falls back to the baseline when the champion does worse.

A detector that passed its training gate can go bad in production as a forecaster can: it
cries wolf every minute (and every runbook that reads the score acts on noise), or it goes
quiet before real failures. Nobody labels anomalies at 3 a.m., but the loop knows two kinds
of truth without a human:

* an **incident**: a service breached its SLO (p95 or error rate) for at least
  ``min_breach`` minutes, or a heal of it was *verified* (the loop acted and the symptom
  cleared: the problem was real even if the SLO held, as with a leak restarted before OOM);
  incident minutes closer than ``gap`` are one incident.

Precision is over minutes: the share of the minutes called anomalous that lie within ``lead``
of an incident (before it: an early warning; after: the score settling), so a detector that
cries wolf all day scores what it deserves. Recall is over incidents: the share with a
minute called anomalous within ``lead`` before them or during them.

Over the rolling ``window`` the champion's precision, recall and F1 are set against those of
a robust z-score detector (:class:`models.RobustZScoreDetector`) fitted on the same feature
rows (older than ``lead``, away from incidents, refitted every hour), on the minutes both
gave a verdict for. When, with at least ``min_incidents`` incidents in the window, the
champion's F1 is below the baseline's by more than ``margin``, its version is condemned: the
loop takes the baseline's verdicts instead of its own, and an escalation says so. Where the
registry knows the champion it replaced, that version scores the rows the condemned one
judged; if its F1 on the same minutes is higher, ``@champion`` moves back to it, tagged with
who (ooda), why and the numbers. Serving follows the alias, and the loop takes the scores of
a version not condemned again -- or of the condemned one, still scoring, once its own
verdicts over the window (kept all along) are at least as good as the baseline's again
(*reinstated*: the bad stretch has left the window; the bar is the baseline itself, not
``margin`` below it, so a version does not flap at the edge).

Each scoring is kept as arrays and the figures are counted on a services x minutes grid
(runs, stretches and leads by prefix sums), so a judgement over six hours of a thousand
services takes tens of milliseconds, not a walk over every service-minute.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

import numpy as np
import pandas as pd

from models import ANOMALY_THRESHOLD, ModelError, RobustZScoreDetector
from ooda._model_watch import AliasRegistry, WatchEvent, replay_target, roll_back
from ooda._records import AnomalyScores, ServiceView
from ooda._settings import DetectorWatchSettings, SloSettings

#: The name the baseline's verdicts go under in a fallback's scores.
BASELINE = "robust_z"
#: Most feature rows the baseline is fitted on (a sample of the window's calm ones).
MAX_BASELINE_ROWS = 20_000
_MINUTE = pd.Timedelta(minutes=1)


class DetectorRegistry(AliasRegistry, Protocol):
    """The detector's registry (``MlflowDetectorRegistry`` on MLflow)."""

    def anomalous(self, version: str, rows: pd.DataFrame) -> list[bool]:
        """``version``'s verdict on each feature row (``service`` + features)."""


@dataclass(frozen=True)
class Quality:
    """One detector's live record over the window."""

    detector: str
    """A model version, or :data:`BASELINE`."""
    flagged: int
    """Minutes it called anomalous."""
    flagged_true: int
    """Of those, minutes within ``lead`` of an incident (before, during or after)."""
    incidents: int
    caught: int
    """Incidents with a flagged minute within ``lead`` before them, or during them."""

    @property
    def precision(self) -> float:
        """Share of flagged minutes near an incident (minutes: crying wolf all day is not
        one false alarm)."""
        return self.flagged_true / self.flagged if self.flagged else math.nan

    @property
    def recall(self) -> float:
        return self.caught / self.incidents if self.incidents else math.nan

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall; 0 when either is 0 or undefined."""
        p, r = self.precision, self.recall
        if math.isnan(p):
            p = 0.0
        if math.isnan(r) or p + r == 0:
            return 0.0
        return 2 * p * r / (p + r)

    def numbers(self) -> dict[str, float]:
        """The figures, rounded, as evidence."""

        def rounded(value: float) -> float:
            return round(value, 3) if not math.isnan(value) else -1.0

        return {
            "flagged_minutes": self.flagged,
            "false_alarm_minutes": self.flagged - self.flagged_true,
            "incidents": self.incidents,
            "caught": self.caught,
            "precision": rounded(self.precision),
            "recall": rounded(self.recall),
            "f1": rounded(self.f1),
        }


@dataclass(frozen=True)
class _Scoring:
    """One scoring's verdicts: a row per service of ``services`` (indices into the watch's
    service list)."""

    minute: pd.Timestamp
    version: str
    services: np.ndarray
    champion: np.ndarray
    baseline: np.ndarray
    """1 anomalous, 0 not, -1 no baseline verdict."""
    breach: np.ndarray


@dataclass(frozen=True)
class _Grid:
    """The kept minutes as services x minutes arrays, each row padded on both sides so that
    stretches, leads and gaps never reach into the next service's row."""

    start: pd.Timestamp
    """The minute of the first unpadded column."""
    pad: int
    width: int
    present: np.ndarray
    champion: np.ndarray
    known: np.ndarray
    """The baseline gave a verdict."""
    baseline: np.ndarray
    breach: np.ndarray
    verified: np.ndarray
    version: np.ndarray
    """The version that answered, per column ("" where nothing did)."""

    def column(self, minute: pd.Timestamp) -> int:
        return self.pad + int((minute - self.start) // _MINUTE)

    def incidents(self, min_breach: int, since: int = 0) -> np.ndarray:
        """Incident minutes (flat): breaches of at least ``min_breach`` minutes in a row, and
        verified heals; nothing before column ``since``."""
        breach = self.breach.copy()
        breach[:, :since] = False
        flat = breach.ravel()
        starts = flat & ~np.concatenate([[False], flat[:-1]])
        run = np.cumsum(starts) * flat
        length = np.bincount(run)
        long_enough = flat & (length[run] >= min_breach)
        verified = self.verified.copy()
        verified[:, :since] = False
        return np.asarray(long_enough | verified.ravel())


def _stretches(flat: np.ndarray, gap: int) -> tuple[np.ndarray, np.ndarray]:
    """First and last flat index of each stretch of marked minutes, closer than ``gap`` being
    one."""
    idx = np.flatnonzero(flat)
    if not len(idx):
        return idx, idx
    breaks = np.diff(idx) >= gap
    return idx[np.concatenate([[True], breaks])], idx[np.concatenate([breaks, [True]])]


def _between(prefix: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Marked cells in ``[first, last]`` of each pair, from a prefix sum with a leading 0."""
    return np.asarray(prefix[last + 1] - prefix[first])


def _cumulative(flat: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(flat, dtype=np.int64)])


def _near(size: int, first: np.ndarray, last: np.ndarray, lead: int) -> np.ndarray:
    """Cells within ``lead`` of a stretch (before or after it)."""
    edges = np.zeros(size + 1, dtype=np.int64)
    np.add.at(edges, first - lead, 1)
    np.add.at(edges, last + lead + 1, -1)
    return np.asarray(np.cumsum(edges)[:size] > 0)


@dataclass
class DetectorWatch:
    """Live precision and recall of the detector the loop is answered by; see the module."""

    settings: DetectorWatchSettings
    registry: DetectorRegistry | None = None
    """Where the previous champion is replayed and the alias rolled back (None: fall back only)."""
    _index: dict[str, int] = field(default_factory=dict)
    """Each service seen, and its row in the grid."""
    _scorings: deque[_Scoring] = field(default_factory=deque)
    """Each scoring's verdicts, oldest first (one per minute)."""
    _verified: list[tuple[int, pd.Timestamp, pd.Timestamp]] = field(default_factory=list)
    """Verified heals: service row, first and last minute."""
    _rows: deque[tuple[pd.Timestamp, pd.DataFrame]] = field(default_factory=deque)
    """Each scoring's feature rows, oldest first."""
    _baseline: RobustZScoreDetector | None = None
    _fitted_at: datetime | None = None
    _judged_at: datetime | None = None
    condemned: set[str] = field(default_factory=set)
    """Versions whose verdicts the loop no longer takes."""
    last: dict[str, Quality] = field(default_factory=dict)
    """The latest record of each detector judged (versions and the baseline)."""

    # -- input ----------------------------------------------------------------------------
    def observe(
        self,
        now: datetime,
        scores: AnomalyScores,
        rows: pd.DataFrame,
        views: Mapping[str, ServiceView],
        slo_for: Callable[[str], SloSettings],
    ) -> AnomalyScores:
        """Take this scoring's verdicts and feature rows (``service`` + features) and the SLIs
        of the same minute; returns the scores the loop should act on (the baseline's
        verdicts when the champion's version is condemned)."""
        minute = pd.Timestamp(now).floor("min")
        self._fit_baseline(now)
        baseline = self._baseline_scores(rows)
        services, champion, base, breach = [], [], [], []
        for service, anomalous in scores.anomalous.items():
            view = views.get(service)
            if view is None or view.history.empty:
                continue
            slo = slo_for(service)
            latest = view.latest
            breach.append(
                float(latest["p95_latency_ms"]) > slo.p95_ms
                or float(latest["error_rate"]) > slo.max_error_rate
            )
            services.append(self._index.setdefault(service, len(self._index)))
            champion.append(bool(anomalous))
            given = baseline.get(service)
            base.append(-1 if given is None else int(given >= ANOMALY_THRESHOLD))
        if self._scorings and self._scorings[-1].minute == minute:
            self._scorings.pop()
        self._scorings.append(
            _Scoring(
                minute,
                scores.model_version,
                np.array(services, dtype=np.int64),
                np.array(champion, dtype=bool),
                np.array(base, dtype=np.int8),
                np.array(breach, dtype=bool),
            )
        )
        if self._rows and self._rows[-1][0] == minute:
            self._rows.pop()
        self._rows.append((minute, rows))
        self._prune(now)
        return self.verdicts(scores, baseline)

    def verified(self, service: str, start: datetime, end: datetime) -> None:
        """A heal of ``service`` applied at ``start`` was verified at ``end``: a real incident."""
        row = self._index.setdefault(service, len(self._index))
        first, last = pd.Timestamp(start).floor("min"), pd.Timestamp(end).floor("min")
        self._verified.append((row, first, last))

    def verdicts(self, scores: AnomalyScores, baseline: Mapping[str, float]) -> AnomalyScores:
        """``scores`` as the loop should act on them: the baseline's ``baseline`` scores when
        the champion's version is condemned (0 where the baseline has none)."""
        if scores.model_version not in self.condemned:
            return scores
        mine = {s: float(baseline.get(s, 0.0)) for s in scores.anomalous}
        return AnomalyScores(
            f"{BASELINE} (v{scores.model_version} condemned)",
            mine,
            {s: v >= ANOMALY_THRESHOLD for s, v in mine.items()},
        )

    # -- the kept minutes as a grid ---------------------------------------------------------
    def _grid(self, now: datetime) -> _Grid:
        s = self.settings
        last = pd.Timestamp(now).floor("min")
        oldest = [last - s.window - s.lead]  # and whatever is still kept from before
        oldest += [self._scorings[0].minute] if self._scorings else []
        oldest += [self._rows[0][0]] if self._rows else []
        start = min(oldest)
        pad = 1 + max(s.lead, s.gap) // _MINUTE
        width = pad + int((last - start) // _MINUTE) + 1 + pad
        shape = (max(1, len(self._index)), width)
        present, champion, known, baseline, breach, verified = (
            np.zeros(shape, dtype=bool) for _ in range(6)
        )
        version = np.full(width, "", dtype=object)
        grid = _Grid(
            start, pad, width, present, champion, known, baseline, breach, verified, version
        )
        for scoring in self._scorings:
            if not start <= scoring.minute <= last:
                continue
            col, rows = grid.column(scoring.minute), scoring.services
            present[rows, col] = True
            champion[rows, col] = scoring.champion
            known[rows, col] = scoring.baseline >= 0
            baseline[rows, col] = scoring.baseline == 1
            breach[rows, col] = scoring.breach
            version[col] = scoring.version
        for row, first, end in self._verified:
            a, b = max(first, start), min(end, last)
            if a <= b:
                verified[row, grid.column(a) : grid.column(b) + 1] = True
        return grid

    # -- the baseline ---------------------------------------------------------------------
    def _fit_baseline(self, now: datetime) -> None:
        s = self.settings
        if self._fitted_at is not None and now - self._fitted_at < s.refit_every:
            return
        cut = pd.Timestamp(now) - s.lead
        grid = self._grid(now)
        first, last = _stretches(grid.incidents(s.min_breach // _MINUTE), s.gap // _MINUTE)
        near = _near(grid.present.size, first, last, s.lead // _MINUTE).reshape(grid.present.shape)
        parts = []
        for at, frame in self._rows:
            if at >= cut:
                break
            if at < grid.start:
                continue
            rows = self._rows_of(frame)
            calm = rows < 0
            calm[~calm] = ~near[rows[~calm], grid.column(at)]
            parts.append(frame[calm])
        if sum(1 for p in parts if len(p)) < s.min_baseline_minutes:
            return
        frame = pd.concat(parts, ignore_index=True).drop(columns=["service"], errors="ignore")
        if len(frame) > MAX_BASELINE_ROWS:
            frame = frame.sample(MAX_BASELINE_ROWS, random_state=0)
        features = [c for c in frame.columns if frame[c].notna().any()]
        try:
            detector = RobustZScoreDetector(features=features)
            self._baseline = detector.fit(frame[features].astype(float))
        except ModelError:
            return  # too few or constant rows: no baseline yet, nothing judged against it
        self._fitted_at = now

    def _baseline_scores(self, rows: pd.DataFrame) -> dict[str, float]:
        if self._baseline is None or rows.empty:
            return {}
        features = list(self._baseline.feature_names)
        if any(f not in rows.columns for f in features):
            return {}
        scores = self._baseline.score(rows[features].astype(float))
        return {str(s): float(v) for s, v in zip(rows["service"], scores, strict=True)}

    def _prune(self, now: datetime) -> None:
        oldest = pd.Timestamp(now) - self.settings.window - self.settings.lead
        while self._rows and self._rows[0][0] < oldest:
            self._rows.popleft()
        while self._scorings and self._scorings[0].minute < oldest:
            self._scorings.popleft()
        self._verified = [v for v in self._verified if v[2] >= oldest]
        self._compact()

    def _rows_of(self, frame: pd.DataFrame) -> np.ndarray:
        """The grid row of each feature row's service (-1: a service never scored)."""
        return np.array([self._index.get(str(x), -1) for x in frame["service"]], dtype=np.int64)

    def _compact(self) -> None:
        """Forget services no kept scoring or heal names, once they are most of the grid's
        rows (services come and go on a real estate)."""
        newest = len(self._scorings[-1].services) if self._scorings else 0
        if newest * 2 + 100 >= len(self._index):
            return  # at least the newest scoring's services live: nothing to forget yet
        live = np.zeros(len(self._index), dtype=bool)
        for scoring in self._scorings:
            live[scoring.services] = True
        for row, _, _ in self._verified:
            live[row] = True
        if live.sum() * 2 + 100 >= len(self._index):
            return
        remap = np.full(len(self._index), -1, dtype=np.int64)
        remap[live] = np.arange(int(live.sum()))
        self._index = {s: int(remap[i]) for s, i in self._index.items() if live[i]}
        self._scorings = deque(replace(c, services=remap[c.services]) for c in self._scorings)
        self._verified = [(int(remap[r]), a, b) for r, a, b in self._verified]

    # -- judgement ------------------------------------------------------------------------
    def quality(self, detector: str, now: datetime) -> Quality:
        """``detector``'s record over the window (a version, or :data:`BASELINE`), on the
        minutes both it and the baseline gave a verdict for."""
        grid = self._grid(now)
        judged = grid.present & grid.known
        if detector == BASELINE:
            return self._quality(detector, now, grid, judged, grid.baseline)
        return self._quality(
            detector, now, grid, judged & (grid.version == detector)[None, :], grid.champion
        )

    def _quality(
        self, name: str, now: datetime, grid: _Grid, judged: np.ndarray, flags: np.ndarray
    ) -> Quality:
        """``flags`` judged where ``judged`` (both services x minutes) within the window."""
        s = self.settings
        since = grid.column(pd.Timestamp(now).floor("min") - s.window)
        if pd.Timestamp(now) - s.window > pd.Timestamp(now).floor("min") - s.window:
            since += 1  # the window starts after a minute's beginning: that minute is out
        judged = judged.copy()
        judged[:, :since] = False
        verdicts = judged.ravel()
        flagged = verdicts & flags.ravel()
        lead = s.lead // _MINUTE
        first, last = _stretches(grid.incidents(s.min_breach // _MINUTE, since), s.gap // _MINUTE)
        real = _between(_cumulative(verdicts), first, last) > 0
        first, last = first[real], last[real]
        near = _near(len(flagged), first, last, lead)
        caught = _between(_cumulative(flagged), first - lead, last) > 0
        return Quality(
            name, int(flagged.sum()), int((flagged & near).sum()), len(first), int(caught.sum())
        )

    def tick(self, now: datetime) -> list[WatchEvent]:
        """Judge every version seen in the window against the baseline; condemn the worse."""
        s = self.settings
        if not s.enabled or (self._judged_at is not None and now - self._judged_at < s.judge_every):
            return []
        self._judged_at = now
        if self._baseline is None:
            return []
        grid = self._grid(now)
        judged = grid.present & grid.known
        baseline = self.last[BASELINE] = self._quality(BASELINE, now, grid, judged, grid.baseline)
        events = []
        for version in sorted(set(grid.version) - {""}):
            mine = self.last[version] = self._quality(
                version, now, grid, judged & (grid.version == version)[None, :], grid.champion
            )
            if mine.incidents < s.min_incidents:
                continue
            if version in self.condemned:
                if mine.f1 >= baseline.f1:  # as good as the baseline again, over the window
                    self.condemned.discard(version)
                    events.append(self._reinstated(version, mine, baseline, now))
                continue
            if mine.f1 >= baseline.f1 - s.margin:
                continue
            self.condemned.add(version)
            summary = (
                f"detector v{version}: live F1 {mine.f1:.2f} (precision"
                f" {mine.precision:.2f}, recall {mine.recall:.2f}) against the robust"
                f" z-score's {baseline.f1:.2f} over the last {s.window}: the loop takes"
                " the baseline's verdicts; roll the alias back by hand"
            )
            events.append(
                WatchEvent(
                    now,
                    "fallback",
                    version,
                    summary,
                    {
                        **mine.numbers(),
                        **{f"baseline_{k}": v for k, v in baseline.numbers().items()},
                    },
                )
            )
            if self.registry is not None:
                events.append(self._roll_back(self.registry, version, mine, now, grid))
        return events

    def _reinstated(
        self, version: str, mine: Quality, baseline: Quality, now: datetime
    ) -> WatchEvent:
        summary = (
            f"detector v{version}: live F1 {mine.f1:.2f} against the robust z-score's"
            f" {baseline.f1:.2f} over the last {self.settings.window}: its verdicts are"
            " taken again"
        )
        numbers = {**mine.numbers(), **{f"baseline_{k}": v for k, v in baseline.numbers().items()}}
        return WatchEvent(now, "reinstated", version, summary, numbers)

    def _roll_back(
        self, registry: DetectorRegistry, version: str, mine: Quality, now: datetime, grid: _Grid
    ) -> WatchEvent:
        """Replay the previous champion on the rows ``version`` judged; roll back if better."""
        previous = replay_target(registry, version, now)
        if isinstance(previous, WatchEvent):
            return previous
        answered = {c.minute: c for c in self._scorings if c.version == version}
        parts = []
        for at, frame in self._rows:
            scoring = answered.get(at)
            if scoring is None or at < grid.start:
                continue
            parts.append(frame[np.isin(self._rows_of(frame), scoring.services)].assign(_at=at))
        rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        if rows.empty:
            why = f"no rows of v{version} kept to replay v{previous} on"
            return WatchEvent(now, "no_rollback", version, why)
        try:
            flags = registry.anomalous(previous, rows.drop(columns=["_at"]))
        except Exception as exc:
            why = f"v{previous} could not score the same rows: {exc}"
            return WatchEvent(now, "no_rollback", version, why)
        replayed = np.zeros_like(grid.present)
        flagged = np.zeros_like(grid.present)
        cells = (
            np.array([self._index[str(x)] for x in rows["service"]]),
            np.array([grid.column(at) for at in rows["_at"]]),
        )
        replayed[cells] = True
        flagged[cells] = np.asarray(flags, dtype=bool)
        judged = grid.present & grid.known & replayed & (grid.version == version)[None, :]
        theirs = self._quality(previous, now, grid, judged, flagged)
        numbers = {
            **{f"v{version}_{k}": v for k, v in mine.numbers().items()},
            **{f"v{previous}_{k}": v for k, v in theirs.numbers().items()},
        }
        if theirs.f1 <= mine.f1:
            why = (
                f"v{previous} does no better on the same rows (F1 {theirs.f1:.2f} against"
                f" {mine.f1:.2f}): @champion stays, the fallback holds"
            )
            return WatchEvent(now, "no_rollback", version, why, numbers)
        reason = (
            f"live detector watch: v{version} F1 {mine.f1:.2f} over {mine.incidents} incidents;"
            f" v{previous} F1 {theirs.f1:.2f} on the same rows"
        )
        return roll_back(registry, version, now, reason, numbers)
