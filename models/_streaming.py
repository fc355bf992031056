"""A causal, online anomaly scorer for one univariate series (``ooda score-series``).

The control loop scores feature rows with a detector trained offline; a stream of one metric
with no training set needs the same detector to learn as it goes. This scorer is built from
the project's :class:`~models.IsolationForestDetector`, refitted every ``refit_every`` rows on
the window features of the rows seen so far, then turned into a surprise score:

1. window features of row *t* from rows <= *t* only: level, first difference, deviation from
   the short past, short-versus-long level shift, short spread, and deviation from the same
   time one season (a day) earlier;
2. the forest fitted on rows before the last refit scores rows up to the next refit;
3. the forest's calibrated score is compared with its own recent history: the z-score of a
   short moving average against the long run of earlier averages (the idea of an anomaly
   likelihood), so a series that is always noisy stops alarming while a change in behaviour
   stands out; ``z / (z + 3)`` maps it into [0, 1) without saturating (0.5 at z = 3);
4. a value beyond the range of every earlier value (by more than ``spatial_margin`` of that
   range) is an alarm on its own: the forest's averaged surprise is slow for a lone spike;
5. after an alarm, the following rows are silenced for a while, and the next alarm waits until
   the score has fallen back below ``rearm`` times the alarm level (1: the alarm level itself;
   lower: hysteresis, as alerting rules keep): one alert per incident, not one every few rows
   while a changed state stays surprising.

The defaults are what leave-one-category-out validation over the NAB subset under
``../shared/data/nab`` chooses (``benchmarks/bench_nab_cv.py``: the setting most folds pick);
its score on that subset is still an optimistic estimate for new series (``RESULTS.md`` gives
the held-out one beside it).

Nothing depends on the series' length or on rows after *t*, so scoring a prefix gives exactly
the scores of that prefix. The sampling interval and the season come from the timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np
import pandas as pd

from models._detectors import IsolationForestDetector
from models._errors import InsufficientHistoryError, InvalidInputError
from models._series import sampling_interval

FEATURES = ("level", "diff", "dev_short", "shift", "spread", "season")


@dataclass(frozen=True)
class StreamingSettings:
    """Knobs of :class:`StreamingScorer`, in rows of the series unless said otherwise."""

    warmup: int = 150
    """Rows seen before the first forest is fitted; earlier rows score 0."""
    refit_every: int = 100
    """Rows between two refits of the forest."""
    history: int = 2500
    """The most recent rows a forest is fitted on."""
    short: int = 12
    """Short window (the "now")."""
    long: int = 120
    """Long window (the "recent normal") for level shifts."""
    n_estimators: int = 100
    """Trees per forest."""
    average: int = 32
    """Rows in the moving average of forest scores compared with their history."""
    baseline: int = 4000
    """Rows of forest-score history the moving average is compared with."""
    baseline_min_averages: int = 4
    """Averages the baseline needs before a z-score is trusted (``average`` rows each)."""
    z_half: float = 3.0
    """The z-score that maps to 0.5."""
    spatial_margin: float = 0.05
    """A value this share of the past range beyond the past minimum or maximum is an alarm."""
    spatial_score: float = 0.6
    """The score such a value gets (at least ``alarm``)."""
    quiet_rows: int = 100
    """Rows after an alarm that are silenced (score 0)."""
    alarm: float = 0.5
    """Score from which a row counts as an alarm and silences the next ``quiet_rows``."""
    rearm: float = 1.0
    """After the quiet rows, the next alarm waits for a score below ``rearm * alarm`` (1: below
    the alarm level itself)."""
    seed: int = 0
    """Random seed of the forests (each refit derives its own from it)."""
    interval_rows: int = 20
    """Rows whose timestamps give the sampling interval."""


def window_features(values: np.ndarray, season: int, settings: StreamingSettings) -> pd.DataFrame:
    """Per-row features from the row and the rows before it (rolling windows look back)."""
    x = pd.Series(values, dtype=float)
    short, long = settings.short, settings.long
    past_short = x.shift(1).rolling(short, min_periods=1).mean()
    now = x.rolling(short, min_periods=1).mean()
    before = x.shift(short).rolling(long, min_periods=1).mean()
    seasonal = x - x.shift(season) if season > 1 else pd.Series(np.nan, index=x.index)
    frame = pd.DataFrame(
        {
            "level": x,
            "diff": x.diff(),
            "dev_short": x - past_short,
            "shift": now - before,
            "spread": x.rolling(short, min_periods=2).std(),
            "season": seasonal,
        }
    )
    return frame.fillna(0.0)


class StreamingScorer:
    """Learns online from a series and gives every row an anomaly score in [0, 1]."""

    def __init__(self, settings: StreamingSettings | None = None) -> None:
        self.settings = settings or StreamingSettings()
        s = self.settings
        if s.warmup < max(s.interval_rows, 10) or s.refit_every < 1 or s.history < s.warmup:
            raise InvalidInputError(
                f"need warmup >= max(interval_rows, 10), refit_every >= 1, history >= warmup;"
                f" got {s}"
            )
        if not 0 < s.rearm <= 1:
            raise InvalidInputError(f"rearm must be in (0, 1], got {s.rearm}")
        if s.spatial_score < s.alarm:
            raise InvalidInputError(
                f"spatial_score ({s.spatial_score}) must be at least alarm ({s.alarm})"
            )
        self.interval: pd.Timedelta | None = None
        self.season_rows = 0
        self.forest_scores: np.ndarray | None = None

    @property
    def is_causal(self) -> bool:
        """A row's score depends on that row and the rows before it only."""
        return True

    def fit(self, timestamps: pd.Series) -> Self:
        """Read the sampling interval and the daily season from the first timestamps (from
        all of them when the first ones never step forward; without a season when none do)."""
        try:
            self.interval = sampling_interval(timestamps, self.settings.interval_rows)
        except InsufficientHistoryError:
            try:
                self.interval = sampling_interval(timestamps)
            except InsufficientHistoryError:
                self.interval, self.season_rows = pd.Timedelta(0), 0
                return self
        per_day = pd.Timedelta(days=1) / self.interval
        self.season_rows = round(per_day) if 2 <= per_day <= 2000 else 0
        return self

    def score(self, timestamps: pd.Series, values: pd.Series | np.ndarray) -> np.ndarray:
        """Anomaly score per row, in [0, 1]."""
        x = np.asarray(values, dtype=float)
        if len(x) != len(timestamps):
            raise InvalidInputError(f"{len(timestamps)} timestamps but {len(x)} values")
        s = self.settings
        if len(x) <= s.warmup:
            return np.zeros(len(x))
        if self.interval is None:
            self.fit(timestamps)
        missing = ~np.isfinite(x)
        if missing.all():
            raise InvalidInputError("every value is missing (NaN)")
        filled = pd.Series(x).ffill().bfill().to_numpy()
        features = window_features(filled, self.season_rows, s)
        forest = self._forest_scores(features)
        self.forest_scores = forest
        return self.post_process(x, forest)

    def post_process(self, values: np.ndarray, forest: np.ndarray) -> np.ndarray:
        """The scores from the forest's scores of the same rows (:attr:`forest_scores`): the
        surprise transform, the range alarm and the silencing, with this scorer's settings.
        Cheap, so settings of these stages can be compared without refitting any forest."""
        s = self.settings
        x = np.asarray(values, dtype=float)
        missing = ~np.isfinite(x)
        filled = pd.Series(x).ffill().bfill().to_numpy()
        surprise = np.maximum(self._surprise(forest), self._spatial(filled))
        scores = self._damp(surprise)
        scores[missing] = 0.0
        scores[: s.warmup] = 0.0
        return scores

    # -- stages -----------------------------------------------------------------------------

    def _forest_scores(self, features: pd.DataFrame) -> np.ndarray:
        s = self.settings
        out = np.zeros(len(features))
        for start in range(s.warmup, len(features), s.refit_every):
            train = features.iloc[max(0, start - s.history) : start]
            detector = IsolationForestDetector(
                FEATURES,
                n_estimators=s.n_estimators,
                max_samples=min(256, len(train)),
                random_state=s.seed + start,
            ).fit(train)
            stop = min(start + s.refit_every, len(features))
            out[start:stop] = detector.score(features.iloc[start:stop])
        return out

    def _surprise(self, forest: np.ndarray) -> np.ndarray:
        """z-score of the short moving average against earlier averages, mapped to [0, 1)."""
        s = self.settings
        learnt = pd.Series(forest)
        learnt.iloc[: s.warmup] = np.nan  # no forest yet: not part of any baseline
        avg = learnt.rolling(s.average, min_periods=1).mean()
        past = avg.shift(s.average)
        mean = past.rolling(s.baseline, min_periods=s.average * s.baseline_min_averages).mean()
        std = past.rolling(s.baseline, min_periods=s.average * s.baseline_min_averages).std()
        z = ((avg - mean) / std.clip(lower=1e-3)).fillna(0.0).clip(lower=0.0).to_numpy()
        return np.asarray(z / (z + s.z_half), dtype=float)

    def _spatial(self, x: np.ndarray) -> np.ndarray:
        """``spatial_score`` where a value leaves the range of all values before it."""
        s = self.settings
        past = pd.Series(x).shift(1)
        high, low = past.expanding().max(), past.expanding().min()
        span = (high - low).clip(lower=1e-9)
        beyond = np.maximum((x - high) / span, (low - x) / span) > s.spatial_margin
        return np.where(beyond.fillna(False).to_numpy(), s.spatial_score, 0.0)

    def _damp(self, scores: np.ndarray) -> np.ndarray:
        """Silence the ``quiet_rows`` after each alarm, and every row after them until a score
        falls below the re-arm level."""
        s = self.settings
        out = scores.copy()
        quiet_until, armed = -1, True
        for i, value in enumerate(scores):
            if not armed and i > quiet_until and value < s.rearm * s.alarm:
                armed = True
            if i <= quiet_until or not armed:
                out[i] = 0.0
            elif value >= s.alarm:
                quiet_until, armed = i + s.quiet_rows, False
        return out
