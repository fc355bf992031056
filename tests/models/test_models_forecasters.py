"""Forecasters learn daily seasonality, give honest intervals and need documented history."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models import (
    InsufficientHistoryError,
    InvalidInputError,
    LSTMForecaster,
    SeasonalNaiveForecaster,
    forecast_metrics,
)
from tests.models.synthetic import traffic

NOISE = 0.05


def _relative_mae(
    forecaster: LSTMForecaster | SeasonalNaiveForecaster,
    data: pd.DataFrame,
    origins: list[pd.Timestamp],
) -> float:
    """Mean over origins of MAE / service mean level for a 30-minute horizon."""
    level = data.groupby("service")["request_rate"].mean()
    errors = []
    for origin in origins:
        history = data[data["timestamp"] <= origin]
        forecast = forecaster.predict(history.groupby("service").tail(forecaster.min_history), 30)
        joined = forecast.merge(data, on=["service", "timestamp"])
        assert len(joined) == 90
        errors.append(
            ((joined["q50"] - joined["request_rate"]).abs() / joined["service"].map(level)).mean()
        )
    return float(np.mean(errors))


def test_lstm_learns_daily_seasonality() -> None:
    data = traffic(4 * 1440, noise=NOISE, seed=3)
    train = data[data["timestamp"] < data["timestamp"].max() - pd.Timedelta(days=1)]
    forecaster = LSTMForecaster(n_epochs=8, max_samples_per_ts=500, learning_rate=2e-2).fit(train)
    origins = [train["timestamp"].max() + pd.Timedelta(hours=h) for h in (2, 8, 14, 20)]
    # 1 sigma of noise relative to the level; a persistence forecast scores about 1.2.
    assert _relative_mae(forecaster, data, origins) < 1.5 * NOISE
    end = origins[0]
    forecast = forecaster.predict(data[data["timestamp"] <= end], 30)
    actual = data[(data["timestamp"] > end) & (data["timestamp"] <= end + pd.Timedelta(minutes=30))]
    assert forecast_metrics(actual, forecast)["coverage_80"] >= 0.5


def test_lstm_scales_an_unseen_service_by_its_own_level() -> None:
    train = traffic(300, season=60, seed=4)
    forecaster = LSTMForecaster(
        input_chunk_length=20, training_length=30, n_epochs=1, max_samples_per_ts=40, num_samples=20
    ).fit(train)
    newcomer = traffic(20, season=60, seed=5, services=("search",))
    forecast = forecaster.predict(newcomer, 5)
    bigger = forecaster.predict(newcomer.assign(request_rate=newcomer["request_rate"] * 50), 5)
    assert set(forecast["service"]) == {"search"}
    np.testing.assert_allclose(bigger["q50"], 50 * forecast["q50"], rtol=1e-4)


def test_seasonal_naive_repeats_the_last_season() -> None:
    data = traffic(3 * 60, season=60, noise=0.0)
    forecaster = SeasonalNaiveForecaster(season=60).fit(data)
    forecast = forecaster.predict(data, 90)
    for service, rows in forecast.groupby("service"):
        past = data.loc[data["service"] == service, "request_rate"].to_numpy()[-60:]
        np.testing.assert_allclose(rows["q50"], np.r_[past, past[:30]])
        np.testing.assert_allclose(rows["q10"], rows["q50"], atol=1e-9)


def test_seasonal_naive_intervals_cover_about_80_percent() -> None:
    data = traffic(5 * 60, season=60, noise=0.1, seed=6)
    train = data[data["timestamp"] < data["timestamp"].min() + pd.Timedelta(hours=4)]
    forecaster = SeasonalNaiveForecaster(season=60).fit(train)
    forecast = forecaster.predict(train, 60)
    metrics = forecast_metrics(data, forecast, history=train, season=60)
    assert 0.65 <= metrics["coverage_80"] <= 0.95
    assert metrics["mase"] == pytest.approx(1.0, abs=0.2)


def test_history_requirements_are_enforced() -> None:
    data = traffic(3 * 60, season=60)
    forecaster = SeasonalNaiveForecaster(season=60).fit(data)
    with pytest.raises(InsufficientHistoryError, match="60 minutes"):
        forecaster.predict(data.groupby("service").tail(30), 5)
    with pytest.raises(InsufficientHistoryError, match="fit"):
        SeasonalNaiveForecaster(season=60).fit(data.groupby("service").head(60))
    with pytest.raises(InvalidInputError, match="horizon"):
        forecaster.predict(data, 0)


def test_gaps_in_history_are_interpolated() -> None:
    data = traffic(3 * 60, season=60, noise=0.0)
    forecaster = SeasonalNaiveForecaster(season=60).fit(data)
    gappy = data.drop(index=data.index[-30:-20])
    pd.testing.assert_frame_equal(
        forecaster.predict(gappy, 10).drop(columns=["q10", "q50", "q90"]),
        forecaster.predict(data, 10).drop(columns=["q10", "q50", "q90"]),
    )
    assert np.isfinite(forecaster.predict(gappy, 10)[["q10", "q50", "q90"]].to_numpy()).all()
