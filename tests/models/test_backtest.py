"""Rolling-origin forecasts: past data only, the LSTM at the series' own step, model choice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models import (
    InsufficientHistoryError,
    LstmSettings,
    lstm_rolling,
    rolling_forecast,
    seasonal_naive_rolling,
)
from models._backtest import interval_factors, rolling_origins, season_rows

TINY = LstmSettings(
    input_chunk_length=24,
    training_length=36,
    hidden_dim=8,
    n_epochs=20,
    learning_rate=2e-2,
    max_samples_per_ts=400,
    num_samples=20,
)


def _series(days: int = 6, noise: float = 0.5, seed: int = 1) -> tuple[pd.Series, np.ndarray]:
    stamps = pd.Series(pd.date_range("2025-03-03", periods=days * 48, freq="30min"))
    rng = np.random.default_rng(seed)
    t = np.arange(len(stamps))
    values = 100 + 30 * np.sin(2 * np.pi * t / 48) + rng.normal(0, noise, len(t))
    return stamps, values


def test_origins_step_by_the_horizon_and_stay_inside() -> None:
    assert rolling_origins(30, 10, 5).tolist() == [10, 15, 20, 25]
    assert rolling_origins(29, 10, 5).tolist() == [10, 15, 20]
    with pytest.raises(InsufficientHistoryError, match="nothing to forecast"):
        rolling_origins(12, 10, 5)


def test_interval_and_season_come_from_the_timestamps() -> None:
    stamps, _ = _series()
    interval, season = season_rows(stamps)
    assert (interval, season) == (pd.Timedelta(minutes=30), 48)


def test_seasonal_naive_repeats_the_last_season_and_ignores_the_future() -> None:
    _, y = _series()
    f = seasonal_naive_rolling(y, 48, 100, 12)
    np.testing.assert_array_equal(f.point[0], y[100 - 48 : 100 - 48 + 12])
    assert (f.lower <= f.point).all() and (f.point <= f.upper).all()
    later = y.copy()
    later[f.origins[1] :] += 1000
    np.testing.assert_array_equal(seasonal_naive_rolling(later, 48, 100, 12).point[:2], f.point[:2])


def test_lstm_rolling_uses_only_the_past_and_tracks_the_season() -> None:
    stamps, y = _series(days=10)
    f = lstm_rolling(stamps, y, 288, 6, TINY)
    assert f.point.shape == (len(f.origins), 6) and f.origins[0] == 288
    assert (f.lower <= f.upper).all()
    mae = np.mean(np.abs(y[f.rows()] - f.point.ravel()))
    assert mae < 0.2 * np.std(y), f"the LSTM should follow the daily cycle, MAE {mae:.2f}"
    later = y.copy()
    later[f.origins[3] :] *= 3
    again = lstm_rolling(stamps, later, 288, 6, TINY)
    np.testing.assert_allclose(again.point[:3], f.point[:3])


def test_auto_weighs_the_candidates_by_their_recent_forecasts() -> None:
    stamps, y = _series(noise=0.0)  # a perfect daily cycle: seasonal naive is exact
    f, candidates = rolling_forecast(stamps, y, 12, "auto", warmup=150, lstm=TINY)
    assert set(candidates) == {"lstm", "ets", "seasonal_naive", "naive"}
    assert candidates["seasonal_naive"].mae == pytest.approx(0.0, abs=1e-9)
    # ETS is exact on a noiseless cycle too; the others are not and weigh nothing.
    assert candidates["seasonal_naive"].weight + candidates["ets"].weight > 0.99
    assert candidates["naive"].weight < 0.01 and candidates["lstm"].weight < 0.01
    assert sum(c.weight for c in candidates.values()) == pytest.approx(1.0)
    assert f.model == "combined"
    tail = f.rows() >= f.origins[len(f.origins) // 2]
    assert np.abs(y[f.rows()][tail] - f.point.ravel()[tail]).max() < 0.1


def test_interval_factors_stretch_to_the_held_out_coverage() -> None:
    # One step; median 10, q10 8, q90 11 (half-widths 2 below, 1 above).
    quantiles = np.tile(np.array([8.0, 10.0, 11.0]), (5, 1, 1))
    actual = np.array([[10.5], [12.0], [9.0], [6.0], [13.0]])
    # Errors in half-widths: 0.5, 2, 0.5, 2, 3 -> the 80th percentile is 2.2 (linear).
    factors = interval_factors(actual, quantiles, 0.8)
    np.testing.assert_allclose(factors, [2.2])
    inside = (actual[:, 0] >= 10 - 2.2 * 2) & (actual[:, 0] <= 10 + 2.2 * 1)
    assert inside.mean() == 0.8
