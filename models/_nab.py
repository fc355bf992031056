"""Numenta Anomaly Benchmark (NAB v1.1) scoring, so our detector can stand next to published ones.

NAB's scoreboard (Numenta HTM, CAD OSE, Twitter ADVec, ...) is the usual yardstick for
streaming anomaly detectors on real metric series. A number is only comparable with that
scoreboard if it is computed the way NAB computes it, so this module re-implements NAB
v1.1's `sweeper.py` / `optimizer.py` / `runner.normalize` rules, row for row:

* the first `min(floor(0.15 * n_rows), 0.15 * 5000)` rows of each file are probationary and
  never scored;
* a detection (`anomaly_score >= threshold`) inside a labelled window of `w` rows ending at
  row `end` earns `tpWeight * S(-(end - i + 1) / w) / S(-1)`, where `S` is `scaled_sigmoid`;
  only the best (earliest) detection of a window counts, and a window with none costs
  `-fnWeight`. The division by `S(-1)` is NAB's: a detection at a window's first row earns
  exactly `tpWeight`;
* a detection outside every window costs `fpWeight * S((i - prev_end) / (prev_width - 1))`
  after a window and `-fpWeight` before the first one (all are counted);
* one threshold per profile, for the whole corpus, maximises the summed raw score; it is
  found by NAB's sweep (all rows sorted by score, descending; ties go to the highest
  threshold, and `1.1` means "detect nothing");
* `normalised = 100 * (raw - null) / (perfect - null)`.

Our choices where NAB is silent or crashes (none of them changes a number on the NAB corpus,
where every window starts after the probationary period):

* null is the score of detecting nothing: `-fnWeight` per *scorable* window (one with at
  least one row after probation; NAB's sweeper ignores windows entirely inside probation).
* perfect is the score of detecting each scorable window at its first scorable row:
  `tpWeight` for a window starting after probation (NAB's `tpCount * tpWeight`), and the
  smaller earliest-possible score for a window that starts inside probation, so that a
  perfect detector always normalises to exactly 100. NAB counts every labelled window at
  `tpWeight` instead.
* window rows run from the first row stamped at or after `start` to the first row stamped
  `end` (NAB's `timestamps.index(end)`: a duplicated end timestamp ends the window at its
  first copy), or to the last row before `end` if no row has that stamp (NAB requires both
  limits to be exact row timestamps); a window of one row divides by 1, not by 0, when
  scoring the false positives after it.
* `NabResult.tp` / `.fn` count windows (detected / missed) and `.fp` counts false-positive
  rows; NAB's results files count rows for all three.

Exceptions::

    ModelError (models._errors)
    +-- NabError (also a ValueError)   bad corpus on disk, or bad scores for a file:
                                       wrong length, NaN, outside [0, 1], file missing
                                       or unknown; the message names the file and value
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models._errors import ModelError

PROBATIONARY_FRACTION = 0.15
"""Share of each file's rows, from its start, that NAB never scores (capped, see below)."""

PROBATIONARY_CAP = PROBATIONARY_FRACTION * 5000
"""NAB caps the probationary period at `0.15 * 5000` = 750 rows."""

NO_DETECTION_THRESHOLD = 1.1
"""The threshold NAB reports when detecting nothing scores best (above every score)."""


class NabError(ModelError, ValueError):
    """A NAB corpus or a detector's scores for it are unusable; the message names the value."""


def scaled_sigmoid(position: float) -> float:
    """NAB's `S(y)`: `2 / (1 + exp(5y)) - 1`, and `-1.0` for `y > 3`.

    `S(-1) = 0.98661` (a window's first row), `S(0) = 0` (just past its end),
    `S(1) = -0.98661` (one window-width past its end).
    """
    if position > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def _scaled_sigmoid_array(position: np.ndarray) -> np.ndarray:
    clipped = np.minimum(position, 3.0)  # exp() of the values replaced by -1 cannot overflow
    return np.where(position > 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * clipped)) - 1.0)


_MAX_TP = scaled_sigmoid(-1.0)


def probationary_rows(n_rows: int) -> int:
    """How many leading rows of an `n_rows` file NAB leaves unscored."""
    return int(min(math.floor(PROBATIONARY_FRACTION * n_rows), PROBATIONARY_CAP))


@dataclass(frozen=True)
class NabProfile:
    """One application profile of `profiles.json`: the weights of NAB's cost matrix."""

    name: str
    tp_weight: float
    fn_weight: float
    fp_weight: float
    tn_weight: float = 1.0  # in NAB's profiles, unused by its scorer


@dataclass(frozen=True, eq=False)
class NabFile:
    """One data file: its timestamps and labelled windows (inclusive `[start, end]` pairs).

    Derived on construction: `window_rows` (first and last row of each window) and the
    per-row NAB "sweep" values the scorer needs.
    """

    name: str
    """`<category>/<series>.csv`, the key of `combined_windows.json`."""
    timestamps: pd.DatetimeIndex
    windows: tuple[tuple[pd.Timestamp, pd.Timestamp], ...]
    path: Path | None = None
    """The csv on disk, when loaded by `load_nab_corpus`."""
    window_rows: tuple[tuple[int, int], ...] = field(init=False)
    _window_id: np.ndarray = field(init=False, repr=False)
    _value: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        stamps = pd.DatetimeIndex(self.timestamps)
        if len(stamps) == 0:
            raise NabError(f"{self.name}: no rows")
        if not stamps.is_monotonic_increasing:
            raise NabError(f"{self.name}: timestamps are not in order")
        windows = tuple((pd.Timestamp(a), pd.Timestamp(b)) for a, b in self.windows)
        rows: list[tuple[int, int]] = []
        for start, end in windows:
            first = int(stamps.searchsorted(start, side="left"))
            last = int(stamps.searchsorted(end, side="left"))
            if last >= len(stamps) or stamps[last] != end:
                last -= 1  # `end` is no row's timestamp: the window ends at the row before
            if first > last:
                raise NabError(f"{self.name}: window [{start}, {end}] covers no row")
            if rows and first <= rows[-1][1]:
                raise NabError(
                    f"{self.name}: window [{start}, {end}] overlaps or precedes the one before"
                )
            rows.append((first, last))
        object.__setattr__(self, "timestamps", stamps)
        object.__setattr__(self, "windows", windows)
        object.__setattr__(self, "window_rows", tuple(rows))
        window_id, value = _sweep_values(len(stamps), rows)
        object.__setattr__(self, "_window_id", window_id)
        object.__setattr__(self, "_value", value)

    @property
    def category(self) -> str:
        return self.name.split("/", 1)[0] if "/" in self.name else ""

    @property
    def n_rows(self) -> int:
        return len(self.timestamps)

    @property
    def probation(self) -> int:
        """Rows `0 .. probation - 1` are never scored."""
        return probationary_rows(self.n_rows)

    def scorable_windows(self) -> list[int]:
        """Indices of the windows with at least one row after the probationary period."""
        return [k for k, (_, last) in enumerate(self.window_rows) if last >= self.probation]

    def first_scorable_row(self, window: int) -> int:
        """The earliest row of window `window` a detection may score at."""
        return max(self.window_rows[window][0], self.probation)


def _sweep_values(n: int, windows: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the window it lies in (-1: none) and its unweighted NAB score if detected.

    Inside a window: `S(position) / S(-1)` in (0, 1]; outside: `S(distance past the
    previous window)` in [-1, 0), and -1 before the first window.
    """
    idx = np.arange(n)
    window_id = np.full(n, -1, dtype=np.int64)
    value = np.full(n, -1.0)
    ends = np.array([last for _, last in windows], dtype=np.int64)
    widths = np.array([last - first + 1 for first, last in windows], dtype=np.float64)
    for k, (first, last) in enumerate(windows):
        window_id[first : last + 1] = k
        inside = idx[first : last + 1]
        value[first : last + 1] = _scaled_sigmoid_array(-(last - inside + 1) / widths[k]) / _MAX_TP
    outside = np.flatnonzero(window_id < 0)
    previous = np.searchsorted(ends, outside, side="left") - 1  # last window ending before
    after = outside[previous >= 0]
    if after.size:
        prev = previous[previous >= 0]
        distance = (after - ends[prev]) / np.maximum(widths[prev] - 1.0, 1.0)
        value[after] = _scaled_sigmoid_array(distance)
    return window_id, value


@dataclass(frozen=True)
class NabCorpus:
    """Data files (by `<category>/<series>.csv`) and the scoring profiles (by name)."""

    files: Mapping[str, NabFile]
    profiles: Mapping[str, NabProfile]

    @property
    def n_windows(self) -> int:
        return sum(len(f.windows) for f in self.files.values())

    @property
    def n_rows(self) -> int:
        return sum(f.n_rows for f in self.files.values())

    @property
    def categories(self) -> dict[str, list[str]]:
        """File names by category, in name order."""
        out: dict[str, list[str]] = {}
        for name in sorted(self.files):
            out.setdefault(self.files[name].category, []).append(name)
        return out

    def subset(self, names: Iterable[str]) -> NabCorpus:
        """The corpus restricted to `names` (same profiles)."""
        chosen = list(names)
        unknown = [n for n in chosen if n not in self.files]
        if unknown:
            raise NabError(f"files not in the corpus: {unknown}")
        return NabCorpus({n: self.files[n] for n in chosen}, self.profiles)


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise NabError(f"NAB corpus file missing: {path}")
    with path.open() as fh:
        return json.load(fh)


def _profiles(raw: Any, path: Path) -> dict[str, NabProfile]:
    profiles: dict[str, NabProfile] = {}
    try:
        for name, spec in raw.items():
            cost = spec["CostMatrix"]
            profiles[name] = NabProfile(
                name=name,
                tp_weight=float(cost["tpWeight"]),
                fn_weight=float(cost["fnWeight"]),
                fp_weight=float(cost["fpWeight"]),
                tn_weight=float(cost.get("tnWeight", 1.0)),
            )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise NabError(f"{path}: not a NAB profiles file ({exc!r})") from exc
    if not profiles:
        raise NabError(f"{path}: no profiles")
    return profiles


def load_nab_corpus(root: Path) -> NabCorpus:
    """Load `root/data/<category>/<series>.csv`, `root/labels/combined_windows.json` and
    `root/profiles.json` (NAB's layout). Only timestamps are read from the data files.

    Label entries without a data file are ignored (the corpus may be a subset of NAB's 58
    files); a data file without a label entry is an error.
    """
    root = Path(root)
    labels = _read_json(root / "labels" / "combined_windows.json")
    profiles = _profiles(_read_json(root / "profiles.json"), root / "profiles.json")
    paths = sorted((root / "data").glob("*/*.csv"))
    if not paths:
        raise NabError(f"no <category>/<series>.csv files under {root / 'data'}")
    files: dict[str, NabFile] = {}
    for path in paths:
        name = f"{path.parent.name}/{path.name}"
        if name not in labels:
            raise NabError(f"{name}: no entry in {root / 'labels' / 'combined_windows.json'}")
        frame = pd.read_csv(path, usecols=["timestamp"])
        stamps = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"], format="ISO8601"))
        windows = tuple((pd.Timestamp(a), pd.Timestamp(b)) for a, b in labels[name])
        files[name] = NabFile(name, stamps, windows, path=path)
    return NabCorpus(files, profiles)


@dataclass(frozen=True)
class NabResult:
    """A detector's NAB score on a corpus for one profile, at the corpus-optimal threshold."""

    profile: NabProfile
    threshold: float
    """Rows with `anomaly_score >= threshold` are detections (1.1: none)."""
    raw: float
    null: float
    """Raw score of detecting nothing."""
    perfect: float
    """Raw score of detecting every window at its first scorable row, nothing else."""
    normalised: float
    """`100 * (raw - null) / (perfect - null)`: 0 = null, 100 = perfect (NaN: no windows)."""
    per_file: Mapping[str, float]
    per_file_null: Mapping[str, float]
    per_file_perfect: Mapping[str, float]
    tp: int
    """Windows detected."""
    fp: int
    """Rows detected outside every window (after probation)."""
    fn: int
    """Windows missed."""

    def normalised_over(self, names: Iterable[str]) -> float:
        """The normalised score of some files only, at the corpus threshold (NaN: no windows)."""
        chosen = list(names)
        unknown = [n for n in chosen if n not in self.per_file]
        if unknown:
            raise NabError(f"files not in this result: {unknown}")
        return _normalise(
            sum(self.per_file[n] for n in chosen),
            sum(self.per_file_null[n] for n in chosen),
            sum(self.per_file_perfect[n] for n in chosen),
        )


def _normalise(raw: float, null: float, perfect: float) -> float:
    if perfect == null:
        return float("nan")
    return 100.0 * (raw - null) / (perfect - null)


def _checked_scores(name: str, values: np.ndarray | pd.Series, n_rows: int) -> np.ndarray:
    try:
        arr = (
            values.to_numpy(dtype=float)
            if isinstance(values, pd.Series)
            else np.asarray(values, dtype=float)
        )
    except (TypeError, ValueError) as exc:
        raise NabError(f"{name}: scores are not numbers ({exc})") from exc
    if arr.ndim != 1 or len(arr) != n_rows:
        raise NabError(f"{name}: {arr.shape} scores for {n_rows} rows (one score per row)")
    nan = np.flatnonzero(np.isnan(arr))
    if nan.size:
        raise NabError(f"{name}: NaN score at row {int(nan[0])} ({nan.size} NaN in all)")
    bad = np.flatnonzero((arr < 0.0) | (arr > 1.0))
    if bad.size:
        row = int(bad[0])
        raise NabError(f"{name}: score {float(arr[row])!r} at row {row} is outside [0, 1]")
    return arr


def _best_threshold(
    scores: np.ndarray, weighted: np.ndarray, window: np.ndarray, fn_weight: float, n_win: int
) -> float:
    """NAB's sweep: the threshold of the highest corpus score (ties: the highest threshold).

    `window` holds corpus-wide window ids (-1: outside), `weighted` each row's score if
    detected. Rows are taken by descending anomaly score; an outside row adds its (negative)
    score, a window's part is `max(-fnWeight, best detected row so far)`, so a window row
    adds the rise of its window's running maximum.
    """
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    win = window[order]
    value = weighted[order]
    delta = np.where(win < 0, value, 0.0)
    inside = np.flatnonzero(win >= 0)
    if inside.size:
        groups = win[inside]
        running = pd.Series(value[inside]).groupby(groups).cummax()
        before = running.groupby(groups).shift(1).to_numpy(dtype=float, na_value=-np.inf)
        delta[inside] = np.maximum(running.to_numpy(), -fn_weight) - np.maximum(before, -fn_weight)
    base = -fn_weight * n_win
    if ranked.size == 0:
        return NO_DETECTION_THRESHOLD
    totals = base + np.cumsum(delta)
    last_of_tie = np.flatnonzero(np.r_[ranked[1:] != ranked[:-1], True])
    candidates = np.r_[base, totals[last_of_tie]]
    thresholds = np.r_[NO_DETECTION_THRESHOLD, ranked[last_of_tie]]
    return float(thresholds[int(np.argmax(candidates))])


def score_corpus(
    scores: Mapping[str, np.ndarray | pd.Series],
    corpus: NabCorpus,
    profile: NabProfile | str,
    threshold: float | None = None,
) -> NabResult:
    """Score a detector's per-row anomaly scores (in [0, 1]) on every file of `corpus`.

    `scores` maps each file name of the corpus to one score per row; `profile` is a
    `NabProfile` or the name of one of `corpus.profiles`. The threshold is NAB's sweep over
    `corpus` unless one is given (a threshold chosen on other files: a held-out score).
    """
    if isinstance(profile, str):
        if profile not in corpus.profiles:
            raise NabError(f"unknown profile {profile!r}; known: {sorted(corpus.profiles)}")
        profile = corpus.profiles[profile]
    missing = sorted(set(corpus.files) - set(scores))
    if missing:
        raise NabError(f"no scores for {len(missing)} corpus files, e.g. {missing[:3]}")
    unknown = sorted(set(scores) - set(corpus.files))
    if unknown:
        raise NabError(f"scores for files not in the corpus: {unknown[:3]}")
    tp_w, fp_w, fn_w = profile.tp_weight, profile.fp_weight, profile.fn_weight

    checked: dict[str, np.ndarray] = {}
    parts_s: list[np.ndarray] = []
    parts_v: list[np.ndarray] = []
    parts_w: list[np.ndarray] = []
    n_win = 0
    for name, nab_file in corpus.files.items():
        arr = _checked_scores(name, scores[name], nab_file.n_rows)
        checked[name] = arr
        start = nab_file.probation
        win = nab_file._window_id[start:]
        val = nab_file._value[start:]
        parts_s.append(arr[start:])
        parts_v.append(np.where(win >= 0, tp_w * val, fp_w * val))
        parts_w.append(np.where(win >= 0, win + n_win, -1))
        n_win += len(nab_file.windows)
    scorable_windows = sum(len(f.scorable_windows()) for f in corpus.files.values())
    threshold = (
        threshold
        if threshold is not None
        else _best_threshold(
            np.concatenate(parts_s) if parts_s else np.empty(0),
            np.concatenate(parts_v) if parts_v else np.empty(0),
            np.concatenate(parts_w) if parts_w else np.empty(0, dtype=np.int64),
            fn_w,
            scorable_windows,
        )
    )

    per_file: dict[str, float] = {}
    per_null: dict[str, float] = {}
    per_perfect: dict[str, float] = {}
    tp = fp = fn = 0
    for name, nab_file in corpus.files.items():
        start = nab_file.probation
        detected = checked[name] >= threshold
        detected[:start] = False
        outside = detected & (nab_file._window_id < 0)
        total = fp_w * float(nab_file._value[outside].sum())
        fp += int(outside.sum())
        null = perfect = 0.0
        for k in nab_file.scorable_windows():
            first = nab_file.first_scorable_row(k)
            last = nab_file.window_rows[k][1]
            hits = np.flatnonzero(detected[first : last + 1])
            null -= fn_w
            perfect += max(-fn_w, tp_w * float(nab_file._value[first]))
            if hits.size:
                tp += 1
                total += max(-fn_w, tp_w * float(nab_file._value[first + hits[0]]))
            else:
                fn += 1
                total -= fn_w
        per_file[name] = total
        per_null[name] = null
        per_perfect[name] = perfect
    raw = sum(per_file.values())
    null_total = sum(per_null.values())
    perfect_total = sum(per_perfect.values())
    return NabResult(
        profile=profile,
        threshold=threshold,
        raw=raw,
        null=null_total,
        perfect=perfect_total,
        normalised=_normalise(raw, null_total, perfect_total),
        per_file=per_file,
        per_file_null=per_null,
        per_file_perfect=per_perfect,
        tp=tp,
        fp=fp,
        fn=fn,
    )
