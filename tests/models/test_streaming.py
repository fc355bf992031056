"""The causal online scorer behind ``ooda score-series``."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from models import InvalidInputError, StreamingScorer, StreamingSettings, sampling_interval

SETTINGS = StreamingSettings(warmup=100, refit_every=50, history=500, baseline=400, n_estimators=30)


def _series(n: int = 900, jump_at: int | None = 700, seed: int = 3) -> tuple[pd.Series, np.ndarray]:
    rng = np.random.default_rng(seed)
    stamps = pd.Series(pd.date_range("2025-01-06", periods=n, freq="5min"))
    day = np.sin(2 * np.pi * np.arange(n) / 288)
    values = 50 + 10 * day + rng.normal(0, 1.0, n)
    if jump_at is not None:
        values[jump_at:] += 25.0
    return stamps, values


def test_scores_a_prefix_exactly_as_the_whole_series() -> None:
    stamps, values = _series()
    whole = StreamingScorer(SETTINGS).score(stamps, values)
    for cut in (101, 333, 750):
        prefix = StreamingScorer(SETTINGS).score(stamps[:cut], values[:cut])
        np.testing.assert_array_equal(prefix, whole[:cut])


def test_a_level_shift_raises_an_alarm_and_calm_data_stays_quiet() -> None:
    stamps, values = _series(jump_at=700)
    scores = StreamingScorer(SETTINGS).score(stamps, values)
    assert ((scores >= 0) & (scores <= 1)).all()
    assert (scores[: SETTINGS.warmup] == 0).all()
    assert scores[700:720].max() >= SETTINGS.alarm
    assert (scores[200:690] >= SETTINGS.alarm).sum() <= 3

    calm = StreamingScorer(SETTINGS).score(*_series(jump_at=None))
    assert (calm >= SETTINGS.alarm).sum() <= 3


def test_one_alarm_then_quiet_rows() -> None:
    stamps, values = _series(jump_at=700)
    scores = StreamingScorer(SETTINGS).score(stamps, values)
    first = int(np.argmax(scores >= SETTINGS.alarm))
    quiet = scores[first + 1 : first + 1 + SETTINGS.quiet_rows]
    assert (quiet == 0).all()


def test_interval_and_season_come_from_the_timestamps() -> None:
    stamps, _ = _series(n=50, jump_at=None)
    assert sampling_interval(stamps) == pd.Timedelta(minutes=5)
    scorer = StreamingScorer(SETTINGS).fit(stamps)
    assert scorer.season_rows == 288
    hourly = pd.Series(pd.date_range("2025-01-01", periods=50, freq="h"))
    assert StreamingScorer(SETTINGS).fit(hourly).season_rows == 24


def test_missing_values_score_zero_and_do_not_break_the_rest() -> None:
    stamps, values = _series()
    values[400:405] = np.nan
    scores = StreamingScorer(SETTINGS).score(stamps, values)
    assert (scores[400:405] == 0).all()
    assert np.isfinite(scores).all() and scores[700:720].max() >= SETTINGS.alarm


def test_bad_input_is_refused_with_the_reason() -> None:
    stamps, values = _series(n=200, jump_at=None)
    with pytest.raises(InvalidInputError, match="200 timestamps but 199 values"):
        StreamingScorer(SETTINGS).score(stamps, values[:-1])
    with pytest.raises(InvalidInputError, match="every value is missing"):
        StreamingScorer(SETTINGS).score(stamps, np.full(200, np.nan))
    with pytest.raises(InvalidInputError, match="warmup"):
        StreamingScorer(StreamingSettings(warmup=5))


def test_a_value_beyond_everything_seen_alarms_at_once() -> None:
    stamps, values = _series(jump_at=None)
    spike = values.copy()
    spike[600] = values[:600].max() + 0.5 * np.ptp(values[:600])
    scores = StreamingScorer(SETTINGS).score(stamps, spike)
    assert scores[600] >= SETTINGS.spatial_score
    just_inside = values.copy()
    just_inside[600] = values[:600].max()  # a tie with the past maximum is no record
    assert StreamingScorer(SETTINGS)._spatial(just_inside)[600] == 0.0


def test_post_processing_alone_reproduces_the_scores_and_follows_its_settings() -> None:
    """The forest's scores and the values give the scores back; other post-processing
    settings change only what they govern (here: how long an alarm silences)."""
    stamps, values = _series(jump_at=700)
    scorer = StreamingScorer(SETTINGS)
    scores = scorer.score(stamps, values)
    assert scorer.forest_scores is not None
    np.testing.assert_array_equal(scorer.post_process(values, scorer.forest_scores), scores)
    longer = StreamingScorer(replace(SETTINGS, quiet_rows=150))
    again = longer.post_process(values, scorer.forest_scores)
    first = int(np.argmax(again >= SETTINGS.alarm))
    assert first == int(np.argmax(scores >= SETTINGS.alarm))
    assert (again[first + 1 : first + 151] == 0).all()


def test_a_state_that_stays_surprising_alarms_once_until_the_score_falls_back() -> None:
    """Hysteresis: past the quiet rows, no new alarm while the score stays high; one comes once
    it has fallen below the re-arm level and risen again."""
    s = StreamingSettings(quiet_rows=10, rearm=0.8)
    raw = np.r_[np.zeros(5), np.full(60, 0.9), np.full(5, 0.45), np.full(5, 0.3), np.full(5, 0.9)]
    damped = StreamingScorer(s)._damp(raw)
    alarms = np.flatnonzero(damped >= s.alarm)
    assert list(alarms) == [5, 75]  # 0.45 is below the alarm but not below 0.8 of it
    with pytest.raises(InvalidInputError, match="rearm"):
        StreamingScorer(StreamingSettings(rearm=0.0))
