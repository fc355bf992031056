"""The NAB v1.1 scorer on hand-worked cases, against a slow reference, and on the real corpus.

Hand cases use one 20-row file, 5-minute steps. Its probationary period is
floor(0.15 * 20) = 3 rows (rows 0-2 never score) and, unless said otherwise, it has one
window of w = 4 rows, rows 10-13. S is NAB's scaled sigmoid, S(y) = 2 / (1 + exp(5y)) - 1;
NAB divides a true positive's S by S(-1) = 0.986614, so a window's first row earns tpWeight.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models import (
    NabCorpus,
    NabError,
    NabFile,
    NabProfile,
    load_nab_corpus,
    probationary_rows,
    scaled_sigmoid,
    score_corpus,
)

STANDARD = NabProfile("standard", tp_weight=1.0, fn_weight=1.0, fp_weight=0.11)
LOW_FP = NabProfile("reward_low_FP_rate", tp_weight=1.0, fn_weight=1.0, fp_weight=0.22)
LOW_FN = NabProfile("reward_low_FN_rate", tp_weight=1.0, fn_weight=2.0, fp_weight=0.11)
PROFILES = {p.name: p for p in (STANDARD, LOW_FP, LOW_FN)}
NAB_ROOT = Path(__file__).resolve().parents[3] / "shared" / "data" / "nab"


def _file(*windows: tuple[int, int], n: int = 20, name: str = "cat/a.csv") -> NabFile:
    stamps = pd.date_range("2024-01-01", periods=n, freq="5min")
    return NabFile(name, stamps, tuple((stamps[a], stamps[b]) for a, b in windows))


def _corpus(*files: NabFile) -> NabCorpus:
    return NabCorpus({f.name: f for f in files}, PROFILES)


def _one_window() -> NabCorpus:
    return _corpus(_file((10, 13)))


def _detect(*rows: int, n: int = 20) -> np.ndarray:
    scores = np.zeros(n)
    scores[list(rows)] = 1.0
    return scores


def test_scaled_sigmoid_and_probation() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(0.986614, abs=1e-6)  # 2 / (1 + e^-5) - 1
    assert scaled_sigmoid(-0.25) == pytest.approx(0.554600, abs=1e-6)  # 2 / (1 + e^-1.25) - 1
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(1.0) == pytest.approx(-0.986614, abs=1e-6)
    assert scaled_sigmoid(3.0) == pytest.approx(-1.0, abs=1e-6)  # still the formula
    assert scaled_sigmoid(3.01) == -1.0  # past 3: flat -1
    assert probationary_rows(20) == 3  # floor(3.0)
    assert probationary_rows(4032) == 604  # floor(604.8)
    assert probationary_rows(22695) == 750  # capped at 0.15 * 5000


def test_window_rows_from_timestamps() -> None:
    f = _file((10, 13), (16, 16))
    assert f.window_rows == ((10, 13), (16, 16))
    assert f.probation == 3
    # a window whose limits fall between rows keeps the rows inside it
    stamps = f.timestamps
    between = NabFile("cat/b.csv", stamps, ((stamps[2] + pd.Timedelta("1min"), stamps[5]),))
    assert between.window_rows == ((3, 5),)


def test_detection_at_the_window_start_earns_tp_weight() -> None:
    # row 10: position -(13 - 10 + 1) / 4 = -1, S(-1) / S(-1) = 1.0 (unweighted S = 0.98661)
    result = score_corpus({"cat/a.csv": _detect(10)}, _one_window(), STANDARD)
    assert result.threshold == 1.0
    assert result.raw == pytest.approx(1.0)
    assert (result.tp, result.fp, result.fn) == (1, 0, 0)
    assert result.normalised == pytest.approx(100.0)


def test_detection_at_the_window_end() -> None:
    # row 13: position -(13 - 13 + 1) / 4 = -0.25, S(-0.25) / S(-1) = 0.554600 / 0.986614
    result = score_corpus({"cat/a.csv": _detect(13)}, _one_window(), STANDARD)
    assert result.raw == pytest.approx(0.554600 / 0.986614, abs=1e-6)  # 0.562124
    # null -1, perfect +1: 100 * (0.562124 + 1) / 2 = 78.106
    assert result.normalised == pytest.approx(78.1062, abs=1e-3)


def test_false_positives_after_and_before_a_window() -> None:
    # row 14: (14 - 13) / (4 - 1) = 1/3 past the window, 0.11 * S(1/3) = 0.11 * -0.682262
    after = score_corpus({"cat/a.csv": _detect(10, 14)}, _one_window(), STANDARD)
    assert after.raw == pytest.approx(1.0 - 0.11 * 0.682262, abs=1e-6)  # 0.924951
    assert after.fp == 1
    # row 16: 3/3 = 1 window-width past, S(1) = -0.986614; FP weight doubles in low-FP
    far = score_corpus({"cat/a.csv": _detect(10, 16)}, _one_window(), LOW_FP)
    assert far.raw == pytest.approx(1.0 - 0.22 * 0.986614, abs=1e-6)
    # row 5, before any window: -fpWeight flat
    before = score_corpus({"cat/a.csv": _detect(5, 10)}, _one_window(), STANDARD)
    assert before.raw == pytest.approx(1.0 - 0.11)


def test_probationary_rows_are_never_scored() -> None:
    # row 2 is the last probationary row: ignored; row 3 is the first scored: an FP
    ignored = score_corpus({"cat/a.csv": _detect(0, 2, 10)}, _one_window(), STANDARD)
    assert ignored.raw == pytest.approx(1.0)
    assert ignored.fp == 0
    counted = score_corpus({"cat/a.csv": _detect(3, 10)}, _one_window(), STANDARD)
    assert counted.raw == pytest.approx(0.89)
    assert counted.fp == 1


def test_only_the_first_detection_in_a_window_counts() -> None:
    # rows 10 and 11: row 10 earns 1.0, row 11 adds nothing
    both = score_corpus({"cat/a.csv": _detect(10, 11)}, _one_window(), STANDARD)
    assert both.raw == pytest.approx(1.0)
    assert (both.tp, both.fn) == (1, 0)
    # rows 11 and 12: row 11 is at -(13 - 11 + 1) / 4 = -0.75, S(-0.75) / S(-1)
    later = score_corpus({"cat/a.csv": _detect(11, 12)}, _one_window(), STANDARD)
    assert later.raw == pytest.approx(0.954045 / 0.986614, abs=1e-6)  # 0.966989


def test_a_missed_window_costs_fn_weight() -> None:
    # 100 rows (probation 15), windows rows 40-42 and 70-72, only the second detected at its
    # start. (Long enough that detecting every row, 79 FPs, is no better.)
    corpus = _corpus(_file((40, 42), (70, 72), n=100))
    std = score_corpus({"cat/a.csv": _detect(70, n=100)}, corpus, STANDARD)
    assert std.threshold == 1.0
    assert std.raw == pytest.approx(1.0 - 1.0)
    assert (std.tp, std.fn) == (1, 1)
    # null -2, perfect 2: 100 * (0 + 2) / 4
    assert std.normalised == pytest.approx(50.0)
    low_fn = score_corpus({"cat/a.csv": _detect(70, n=100)}, corpus, LOW_FN)
    assert low_fn.raw == pytest.approx(1.0 - 2.0)
    # null -4, perfect 2: 100 * (-1 + 4) / 6
    assert low_fn.normalised == pytest.approx(50.0)


def test_threshold_optimisation_excludes_a_costly_false_positive() -> None:
    scores = np.full(20, 0.1)
    scores[10] = 0.9  # the window's first row
    scores[15:20] = 0.6  # five FPs after the window
    # thresholds: 1.1 -> -1 (missed); 0.9 -> +1; 0.6 -> 1 + five FP penalties < 1;
    # 0.1 -> worse still. Best: 0.9.
    result = score_corpus({"cat/a.csv": scores}, _one_window(), STANDARD)
    assert result.threshold == 0.9
    assert result.raw == pytest.approx(1.0)
    assert result.fp == 0
    # A threshold chosen elsewhere is used as given (a held-out score), not re-optimised.
    given = score_corpus({"cat/a.csv": scores}, _one_window(), STANDARD, threshold=0.6)
    assert given.threshold == 0.6 and given.fp == 5 and given.raw < result.raw


def test_threshold_optimisation_takes_a_false_positive_to_reach_a_window() -> None:
    scores = np.zeros(20)
    scores[5] = 0.7  # FP before the window: -0.11
    scores[12] = 0.6  # inside: -(13 - 12 + 1) / 4 = -0.5, S(-0.5) / S(-1) = 0.859793
    # 1.1 -> -1; 0.7 -> -1.11; 0.6 -> 0.859793 - 0.11 = 0.749793; 0.0 -> many FPs
    result = score_corpus({"cat/a.csv": scores}, _one_window(), STANDARD)
    assert result.threshold == 0.6
    assert result.raw == pytest.approx(0.848284 / 0.986614 - 0.11, abs=1e-6)


def test_tied_thresholds_go_to_the_highest() -> None:
    scores = np.zeros(20)
    scores[10], scores[11] = 0.9, 0.8  # 0.9 and 0.8 both score +1 (row 11 adds nothing)
    result = score_corpus({"cat/a.csv": scores}, _one_window(), STANDARD)
    assert result.threshold == 0.9


def test_normalisation_perfect_is_100_and_nothing_is_0() -> None:
    # 200-row files (probation 30): detecting every row costs ~170 FPs, far below null
    corpus = _corpus(_file((100, 103), n=200), _file((40, 42), (150, 155), n=200, name="cat/b.csv"))
    perfect = {"cat/a.csv": _detect(100, n=200), "cat/b.csv": _detect(40, 150, n=200)}
    nothing = {"cat/a.csv": np.zeros(200), "cat/b.csv": np.zeros(200)}
    for profile in PROFILES.values():
        top = score_corpus(perfect, corpus, profile)
        assert top.normalised == pytest.approx(100.0)
        assert top.perfect == pytest.approx(3.0)
        assert top.null == pytest.approx(-3.0 * profile.fn_weight)
        bottom = score_corpus(nothing, corpus, profile)
        assert bottom.threshold == 1.1  # NAB's "detect nothing"
        assert bottom.raw == pytest.approx(-3.0 * profile.fn_weight)
        assert bottom.normalised == pytest.approx(0.0)
    # the per-file breakdown renormalises any subset at the corpus threshold
    half = score_corpus(
        {"cat/a.csv": _detect(100, n=200), "cat/b.csv": np.zeros(200)}, corpus, STANDARD
    )
    assert half.per_file == pytest.approx({"cat/a.csv": 1.0, "cat/b.csv": -2.0})
    assert half.normalised_over(["cat/a.csv"]) == pytest.approx(100.0)
    assert half.normalised_over(["cat/b.csv"]) == pytest.approx(0.0)
    assert half.normalised == pytest.approx(100.0 * (-1.0 + 3.0) / 6.0)


def test_a_window_starting_in_probation_scores_from_its_first_scorable_row() -> None:
    # window rows 1-6 (w = 6), probation rows 0-2: the best possible detection is row 3,
    # at -(6 - 3 + 1) / 6 = -2/3, earning S(-2/3) / S(-1); that is the "perfect" score
    corpus = _corpus(_file((1, 6)))
    best = scaled_sigmoid(-4 / 6) / scaled_sigmoid(-1.0)
    result = score_corpus({"cat/a.csv": _detect(3)}, corpus, STANDARD)
    assert result.raw == pytest.approx(best)
    assert result.perfect == pytest.approx(best)
    assert result.normalised == pytest.approx(100.0)
    # a window entirely inside probation is neither a TP nor an FN
    hidden = score_corpus({"cat/a.csv": np.zeros(20)}, _corpus(_file((0, 2))), STANDARD)
    assert (hidden.tp, hidden.fn, hidden.raw) == (0, 0, 0.0)
    assert math.isnan(hidden.normalised)


def _reference_raw(
    scores: dict[str, np.ndarray], corpus: NabCorpus, profile: NabProfile, threshold: float
) -> float:
    """NAB's rules, one row at a time."""
    total = 0.0
    top = scaled_sigmoid(-1.0)
    for name, f in corpus.files.items():
        s = scores[name]
        start = min(math.floor(0.15 * f.n_rows), 750)
        for first, last in f.window_rows:
            if last < start:
                continue
            hits = [i for i in range(max(first, start), last + 1) if s[i] >= threshold]
            if hits:
                position = -(last - hits[0] + 1) / (last - first + 1)
                total += profile.tp_weight * scaled_sigmoid(position) / top
            else:
                total -= profile.fn_weight
        for i in range(start, f.n_rows):
            if s[i] < threshold or any(a <= i <= b for a, b in f.window_rows):
                continue
            before = [(a, b) for a, b in f.window_rows if b < i]
            if not before:
                total -= profile.fp_weight
            else:
                a, b = before[-1]
                total += profile.fp_weight * scaled_sigmoid((i - b) / (b - a))
    return total


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sweep_matches_scoring_every_threshold(seed: int) -> None:
    rng = np.random.default_rng(seed)
    corpus = _corpus(
        _file((4, 9), (30, 36), n=40, name="x/a.csv"),  # first window straddles probation
        _file((50, 57), n=80, name="x/b.csv"),
        _file(n=30, name="y/c.csv"),  # no window: FPs only
        _file((20, 22), (40, 44), (60, 69), n=90, name="y/d.csv"),
    )
    scores = {n: rng.integers(0, 21, f.n_rows) / 20.0 for n, f in corpus.files.items()}
    for profile in PROFILES.values():
        result = score_corpus(scores, corpus, profile)
        candidates = [1.1, *sorted(set(np.concatenate(list(scores.values()))), reverse=True)]
        raws = [_reference_raw(scores, corpus, profile, t) for t in candidates]
        best = int(np.argmax(raws))
        assert result.threshold == candidates[best]
        assert result.raw == pytest.approx(raws[best], abs=1e-9)
        assert sum(result.per_file.values()) == pytest.approx(result.raw)


def test_bad_scores_are_refused_by_name() -> None:
    corpus = _one_window()
    with pytest.raises(NabError, match=r"cat/a\.csv: \(19,\) scores for 20 rows"):
        score_corpus({"cat/a.csv": np.zeros(19)}, corpus, STANDARD)
    with_nan = np.zeros(20)
    with_nan[7] = np.nan
    with pytest.raises(NabError, match="NaN score at row 7"):
        score_corpus({"cat/a.csv": with_nan}, corpus, STANDARD)
    too_high = pd.Series(np.where(np.arange(20) == 4, 1.5, 0.0))
    with pytest.raises(NabError, match=r"score 1\.5 at row 4 is outside \[0, 1\]"):
        score_corpus({"cat/a.csv": too_high}, corpus, STANDARD)
    with pytest.raises(NabError, match=r"score -0\.1 at row 0"):
        score_corpus({"cat/a.csv": np.full(20, -0.1)}, corpus, STANDARD)
    with pytest.raises(NabError, match=r"no scores for 1 corpus files"):
        score_corpus({}, corpus, STANDARD)
    with pytest.raises(NabError, match=r"not in the corpus: \['cat/z\.csv'\]"):
        score_corpus({"cat/a.csv": np.zeros(20), "cat/z.csv": np.zeros(3)}, corpus, STANDARD)
    with pytest.raises(NabError, match="unknown profile 'nope'"):
        score_corpus({"cat/a.csv": np.zeros(20)}, corpus, "nope")
    assert issubclass(NabError, ValueError)


def _write_corpus(root: Path, labels: dict[str, list[list[str]]]) -> None:
    (root / "data" / "cat").mkdir(parents=True)
    (root / "labels").mkdir()
    stamps = pd.date_range("2024-01-01", periods=20, freq="5min")
    pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S"), "value": 1.0}).to_csv(
        root / "data" / "cat" / "a.csv", index=False
    )
    (root / "labels" / "combined_windows.json").write_text(json.dumps(labels))
    cost = {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11, "tnWeight": 1.0}
    (root / "profiles.json").write_text(json.dumps({"standard": {"CostMatrix": cost}}))


def test_load_a_corpus_from_disk(tmp_path: Path) -> None:
    window = [["2024-01-01 00:50:00.000000", "2024-01-01 01:05:00.000000"]]
    _write_corpus(tmp_path, {"cat/a.csv": window, "cat/gone.csv": []})
    corpus = load_nab_corpus(tmp_path)
    assert list(corpus.files) == ["cat/a.csv"]
    assert corpus.files["cat/a.csv"].window_rows == ((10, 13),)
    assert corpus.profiles["standard"].fp_weight == 0.11
    result = score_corpus({"cat/a.csv": _detect(10)}, corpus, "standard")
    assert result.normalised == pytest.approx(100.0)


def test_a_file_without_windows_entry_is_refused(tmp_path: Path) -> None:
    _write_corpus(tmp_path, {"cat/other.csv": []})
    with pytest.raises(NabError, match=r"cat/a\.csv: no entry in"):
        load_nab_corpus(tmp_path)


def test_a_window_on_no_row_is_refused() -> None:
    stamps = pd.date_range("2024-01-01", periods=20, freq="5min")
    late = (pd.Timestamp("2025-01-01"), pd.Timestamp("2025-01-02"))
    with pytest.raises(NabError, match=r"cat/a\.csv: window \[2025-01-01 00:00:00, .* no row"):
        NabFile("cat/a.csv", stamps, (late,))


@pytest.mark.skipif(not NAB_ROOT.is_dir(), reason=f"NAB data not present at {NAB_ROOT}")
def test_the_real_corpus_oracle_scores_100_and_silence_0() -> None:
    corpus = load_nab_corpus(NAB_ROOT)
    labels = json.loads((NAB_ROOT / "labels" / "combined_windows.json").read_text())
    assert len(corpus.files) == 44
    assert set(corpus.files) <= set(labels)  # every data file has a windows entry
    assert corpus.n_windows == sum(len(labels[name]) for name in corpus.files)
    assert set(corpus.profiles) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    oracle: dict[str, np.ndarray] = {}
    for name, f in corpus.files.items():
        scores = np.zeros(f.n_rows)
        for k in f.scorable_windows():
            scores[f.first_scorable_row(k)] = 1.0
        oracle[name] = scores
    silence = {name: np.zeros(f.n_rows) for name, f in corpus.files.items()}
    for profile in corpus.profiles:
        top = score_corpus(oracle, corpus, profile)
        assert top.normalised == pytest.approx(100.0, abs=1e-9)
        assert (top.tp, top.fp, top.fn) == (corpus.n_windows, 0, 0)
        assert score_corpus(silence, corpus, profile).normalised == pytest.approx(0.0, abs=1e-9)
