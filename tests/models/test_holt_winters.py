"""Rolling Holt-Winters (ETS(A,Ad,A)) on a synthetic daily-seasonal 5-minute series."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
from statsmodels.tsa.holtwinters import ExponentialSmoothing

from models import InsufficientHistoryError, coverage, holt_winters_rolling, mase
from models import _holt_winters as holt_winters
from models._backtest import (
    RollingForecast,
    default_warmup,
    rolling_origins,
    seasonal_naive_rolling,
)
from models._holt_winters import _forecast, _params_from, _states

SEASON = 288  # one day of 5-minute rows; 14 days: a warm-up of 4.2 days
HORIZON = 12


def _series(days: int = 14, seed: int = 3) -> np.ndarray:
    """Daily sine, a slow upward trend and Gaussian noise, 5-minute rows."""
    rng = np.random.default_rng(seed)
    t = np.arange(days * SEASON)
    daily = 40.0 * np.sin(2 * np.pi * t / SEASON)
    return 200.0 + 0.02 * t + daily + rng.normal(0.0, 6.0, t.size)


@pytest.fixture(scope="module")
def series() -> np.ndarray:
    return _series()


@pytest.fixture(scope="module")
def warmup(series: np.ndarray) -> int:
    return default_warmup(len(series), SEASON)


@pytest.fixture(scope="module")
def ets(series: np.ndarray, warmup: int) -> RollingForecast:
    return holt_winters_rolling(series, SEASON, warmup, HORIZON)


def test_shapes_and_origins(series: np.ndarray, warmup: int, ets: RollingForecast) -> None:
    origins = rolling_origins(len(series), warmup, HORIZON)
    assert ets.model == "ets"
    np.testing.assert_array_equal(ets.origins, origins)
    for array in (ets.point, ets.lower, ets.upper):
        assert array.shape == (len(origins), HORIZON)
        assert np.isfinite(array).all()
    assert (ets.lower < ets.upper).all()


def test_recursion_is_statsmodels(series: np.ndarray, warmup: int) -> None:
    """With statsmodels' parameters, our recursion gives its fitted values and forecast."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence does not matter here
        fitted = ExponentialSmoothing(
            series[:warmup],
            trend="add",
            damped_trend=True,
            seasonal="add",
            seasonal_periods=SEASON,
            initialization_method="estimated",
        ).fit()
    params = _params_from(dict(fitted.params), seasonal=True)
    level, trend, season = _states(series[:warmup], params)
    one_step = _forecast(level, trend, season, params.phi, np.arange(warmup), 1)[:, 0]
    np.testing.assert_allclose(one_step, fitted.fittedvalues, rtol=1e-9)
    ahead = _forecast(level, trend, season, params.phi, np.array([warmup]), HORIZON)[0]
    np.testing.assert_allclose(ahead, fitted.forecast(HORIZON), rtol=1e-9)


def test_failed_fit_falls_back_with_a_warning(
    series: np.ndarray,
    warmup: int,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real_fit = holt_winters._fit_once

    def failing(y: np.ndarray, season: int, initialization: str) -> holt_winters._Params:
        if initialization == "estimated":
            raise RuntimeError("did not converge: test")
        return real_fit(y, season, initialization)

    monkeypatch.setattr(holt_winters, "_fit_once", failing)
    with caplog.at_level(logging.WARNING, logger="models._holt_winters"):
        result = holt_winters_rolling(series, SEASON, warmup, HORIZON)
    assert "fell back to season 288, heuristic" in caplog.text
    assert "did not converge: test" in caplog.text
    assert np.isfinite(result.point).all()


def test_beats_seasonal_naive(series: np.ndarray, warmup: int, ets: RollingForecast) -> None:
    naive = seasonal_naive_rolling(series, SEASON, warmup, HORIZON)
    actual = series[ets.rows()]
    ets_mase = mase(actual, ets.point, series[:warmup], SEASON)
    naive_mase = mase(actual, naive.point, series[:warmup], SEASON)
    assert ets_mase < 0.85 * naive_mase


def test_interval_coverage(series: np.ndarray, ets: RollingForecast) -> None:
    share = coverage(series[ets.rows()], ets.lower, ets.upper)
    assert 0.6 <= share <= 0.95


def test_forecasts_use_only_the_past(series: np.ndarray, warmup: int, ets: RollingForecast) -> None:
    k = 5
    origin = int(ets.origins[k])
    changed = series.copy()
    changed[origin:] = 3.0 * changed[origin:] + 100.0
    again = holt_winters_rolling(changed, SEASON, warmup, HORIZON)
    np.testing.assert_array_equal(again.point[: k + 1], ets.point[: k + 1])
    np.testing.assert_array_equal(again.lower[: k + 1], ets.lower[: k + 1])
    np.testing.assert_array_equal(again.upper[: k + 1], ets.upper[: k + 1])
    # ... while later origins do see the change (so the check above could fail).
    assert np.abs(again.point[k + 1 :] - ets.point[k + 1 :]).min() > 1.0


def test_nan_carries_the_one_step_forecast(
    series: np.ndarray, warmup: int, ets: RollingForecast
) -> None:
    k = 3
    origin = int(ets.origins[k])
    gappy = series.copy()
    gappy[origin - 1] = np.nan
    again = holt_winters_rolling(gappy, SEASON, warmup, HORIZON)
    assert np.isfinite(again.point).all()
    np.testing.assert_array_equal(again.point[:k], ets.point[:k])
    # A missing row moves the forecast by much less than the noise (6) would.
    assert np.abs(again.point[k] - ets.point[k]).max() < 6.0


def test_without_season() -> None:
    """season < 2: Holt's damped trend, which follows a straight line closely."""
    rng = np.random.default_rng(0)
    line = 10.0 + 0.5 * np.arange(400) + rng.normal(0.0, 0.1, 400)
    result = holt_winters_rolling(line, 0, 200, HORIZON)
    actual = line[result.rows()]
    assert np.abs(result.point - actual.reshape(result.point.shape)).mean() < 2.0


def test_short_warmup_is_refused(series: np.ndarray) -> None:
    with pytest.raises(InsufficientHistoryError, match="warm-up"):
        holt_winters_rolling(series, SEASON, 5, HORIZON)
