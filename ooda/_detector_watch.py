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
a version not condemned again.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import pandas as pd

from models import ANOMALY_THRESHOLD, ModelError, RobustZScoreDetector
from ooda._model_watch import AliasRegistry, WatchEvent, replay_target, roll_back
from ooda._records import AnomalyScores, ServiceView
from ooda._settings import DetectorWatchSettings, SloSettings

#: The name the baseline's verdicts go under in a fallback's scores.
BASELINE = "robust_z"
#: Most feature rows the baseline is fitted on (a sample of the window's calm ones).
MAX_BASELINE_ROWS = 20_000


class DetectorRegistry(AliasRegistry, Protocol):
    """The detector's registry (``MlflowDetectorRegistry`` on MLflow)."""

    def anomalous(self, version: str, rows: pd.DataFrame) -> list[bool]:
        """``version``'s verdict on each feature row (``service`` + features)."""


#: A verdict of one service-minute (None: no verdict to judge).
Flag = Callable[[str, pd.Timestamp, "_Minute"], bool | None]


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


@dataclass
class _Minute:
    version: str
    champion: bool
    baseline: bool | None
    breach: bool
    verified: bool = False


def _stretches(minutes: list[pd.Timestamp], gap: timedelta) -> list[tuple[datetime, datetime]]:
    """Sorted minutes joined into (start, end) stretches, closer than ``gap`` being one."""
    out: list[tuple[datetime, datetime]] = []
    for at in sorted(minutes):
        if out and at - out[-1][1] < gap:
            out[-1] = (out[-1][0], at)
        else:
            out.append((at, at))
    return out


@dataclass
class DetectorWatch:
    """Live precision and recall of the detector the loop is answered by; see the module."""

    settings: DetectorWatchSettings
    registry: DetectorRegistry | None = None
    """Where the previous champion is replayed and the alias rolled back (None: fall back only)."""
    _minutes: dict[str, dict[pd.Timestamp, _Minute]] = field(default_factory=dict)
    _rows: deque[tuple[pd.Timestamp, pd.DataFrame]] = field(default_factory=deque)
    """Each scoring's feature rows, oldest first."""
    _baseline: RobustZScoreDetector | None = None
    _fitted_at: datetime | None = None
    _judged_at: datetime | None = None
    _pruned_at: datetime | None = None
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
        for service, anomalous in scores.anomalous.items():
            view = views.get(service)
            if view is None or view.history.empty:
                continue
            slo = slo_for(service)
            latest = view.latest
            breach = bool(
                float(latest["p95_latency_ms"]) > slo.p95_ms
                or float(latest["error_rate"]) > slo.max_error_rate
            )
            kept = self._minutes.setdefault(service, {})
            before = kept.get(minute)
            kept[minute] = _Minute(
                scores.model_version,
                bool(anomalous),
                None if service not in baseline else baseline[service] >= ANOMALY_THRESHOLD,
                breach,
                verified=before.verified if before else False,
            )
        if self._rows and self._rows[-1][0] == minute:
            self._rows.pop()
        self._rows.append((minute, rows))
        self._prune(now)
        return self.verdicts(scores, baseline)

    def verified(self, service: str, start: datetime, end: datetime) -> None:
        """A heal of ``service`` applied at ``start`` was verified at ``end``: a real incident."""
        first = pd.Timestamp(start).floor("min")
        kept = self._minutes.setdefault(service, {})
        for minute in pd.date_range(first, pd.Timestamp(end).floor("min"), freq="min"):
            if minute in kept:
                kept[minute].verified = True
            else:
                kept[minute] = _Minute("", False, None, False, verified=True)

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

    # -- the baseline ---------------------------------------------------------------------
    def _fit_baseline(self, now: datetime) -> None:
        s = self.settings
        if self._fitted_at is not None and now - self._fitted_at < s.refit_every:
            return
        cut = pd.Timestamp(now) - s.lead
        near: dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]] = {}
        for service, minutes in self._minutes.items():
            bad = _stretches(self._incident_minutes(minutes), s.gap)
            near[service] = [(a - s.lead, b + s.lead) for a, b in bad]
        parts = []
        for at, frame in self._rows:
            if at >= cut:
                break
            calm = [not any(a <= at <= b for a, b in near.get(str(x), ())) for x in frame.service]
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
        if self._pruned_at is not None and now - self._pruned_at < timedelta(minutes=10):
            return
        self._pruned_at = now
        for kept in self._minutes.values():
            for at in [t for t in kept if t < oldest]:
                del kept[at]

    # -- judgement ------------------------------------------------------------------------
    def quality(self, detector: str, now: datetime) -> Quality:
        """``detector``'s record over the window (a version, or :data:`BASELINE`), on the
        minutes both it and the baseline gave a verdict for."""
        if detector == BASELINE:
            return self._quality(detector, now, lambda s, at, m: m.baseline)
        return self._quality(
            detector, now, lambda s, at, m: m.champion if m.version == detector else None
        )

    def _quality(self, name: str, now: datetime, flag: Flag) -> Quality:
        s = self.settings
        since = pd.Timestamp(now) - s.window
        flagged_total = flagged_true = incidents = caught = 0
        for service, kept in self._minutes.items():
            judged = {at: m for at, m in kept.items() if at >= since}
            verdicts = {
                at: v
                for at, m in judged.items()
                if m.baseline is not None and (v := flag(service, at, m)) is not None
            }
            if not verdicts:
                continue
            flagged = [at for at, v in verdicts.items() if v]
            real = _stretches(self._incident_minutes(judged), s.gap)
            real = [(a, b) for a, b in real if any(a <= t <= b for t in verdicts)]
            near = [(a - s.lead, b + s.lead) for a, b in real]
            flagged_total += len(flagged)
            flagged_true += sum(any(a <= t <= b for a, b in near) for t in flagged)
            incidents += len(real)
            caught += sum(any(a - s.lead <= t <= b for t in flagged) for a, b in real)
        return Quality(name, flagged_total, flagged_true, incidents, caught)

    def _incident_minutes(self, judged: Mapping[pd.Timestamp, _Minute]) -> list[pd.Timestamp]:
        breach = [at for at, m in judged.items() if m.breach]
        long_enough = [
            minute
            for start, end in _stretches(breach, timedelta(minutes=2))
            if end - start >= self.settings.min_breach - timedelta(minutes=1)
            for minute in breach
            if start <= minute <= end
        ]
        return sorted({*long_enough, *(at for at, m in judged.items() if m.verified)})

    def tick(self, now: datetime) -> list[WatchEvent]:
        """Judge every version seen in the window against the baseline; condemn the worse."""
        s = self.settings
        if not s.enabled or (self._judged_at is not None and now - self._judged_at < s.judge_every):
            return []
        self._judged_at = now
        if self._baseline is None:
            return []
        baseline = self.last[BASELINE] = self.quality(BASELINE, now)
        events = []
        versions = {m.version for kept in self._minutes.values() for m in kept.values()}
        for version in sorted(versions - self.condemned - {""}):
            mine = self.last[version] = self.quality(version, now)
            worse = mine.f1 < baseline.f1 - s.margin
            if mine.incidents < s.min_incidents or not worse:
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
                events.append(self._roll_back(self.registry, version, mine, now))
        return events

    def _roll_back(
        self, registry: DetectorRegistry, version: str, mine: Quality, now: datetime
    ) -> WatchEvent:
        """Replay the previous champion on the rows ``version`` judged; roll back if better."""
        previous = replay_target(registry, version, now)
        if isinstance(previous, WatchEvent):
            return previous
        parts = []
        for at, frame in self._rows:
            mine_here = [
                (m := self._minutes.get(str(x), {}).get(at)) is not None and m.version == version
                for x in frame["service"]
            ]
            parts.append(frame[mine_here].assign(_at=at))
        rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        if rows.empty:
            why = f"no rows of v{version} kept to replay v{previous} on"
            return WatchEvent(now, "no_rollback", version, why)
        try:
            flags = registry.anomalous(previous, rows.drop(columns=["_at"]))
        except Exception as exc:
            why = f"v{previous} could not score the same rows: {exc}"
            return WatchEvent(now, "no_rollback", version, why)
        replayed = {
            (str(x), at): bool(f)
            for x, at, f in zip(rows["service"], rows["_at"], flags, strict=True)
        }
        theirs = self._quality(
            previous,
            now,
            lambda s, at, m: replayed.get((s, at)) if m.version == version else None,
        )
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
