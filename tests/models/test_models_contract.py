"""The one contract every model class honours (run over every class the package exports)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import models
from models import (
    DETECTOR_CLASSES,
    FORECAST_COLUMNS,
    FORECASTER_CLASSES,
    Detector,
    Forecaster,
    MissingFeatureError,
    NotFittedError,
)

HORIZON = 7


@dataclass(frozen=True)
class Case:
    """How to build, feed and read one model class."""

    make: Callable[[], Any]
    train: str  # name of the session fixture with training data
    required: str  # a column whose absence must raise MissingFeatureError

    @property
    def is_detector(self) -> bool:
        return self.train == "feature_rows"


CASES: dict[str, Case] = {
    "IsolationForestDetector": Case(
        lambda: models.IsolationForestDetector(n_estimators=50), "feature_rows", "restarts"
    ),
    "RobustZScoreDetector": Case(models.RobustZScoreDetector, "feature_rows", "error_rate"),
    "SeasonalNaiveForecaster": Case(
        lambda: models.SeasonalNaiveForecaster(season=60), "hourly_traffic", "request_rate"
    ),
    "LSTMForecaster": Case(
        lambda: models.LSTMForecaster(
            input_chunk_length=20,
            training_length=30,
            hidden_dim=8,
            n_epochs=1,
            max_samples_per_ts=40,
            num_samples=20,
        ),
        "hourly_traffic",
        "request_rate",
    ),
}


def test_every_model_class_is_covered() -> None:
    assert set(CASES) == set(DETECTOR_CLASSES) | set(FORECASTER_CLASSES)


def _input(case: Case, model: Any, train: pd.DataFrame) -> pd.DataFrame:
    if case.is_detector:
        return train.iloc[:200].reset_index(drop=True)
    return train.groupby("service").tail(model.min_history).reset_index(drop=True)


def _run(case: Case, model: Any, frame: pd.DataFrame) -> Any:
    return model.score(frame) if case.is_detector else model.predict(frame, HORIZON)


def _assert_same(a: Any, b: Any) -> None:
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b)
    else:
        np.testing.assert_array_equal(a, b)


@pytest.fixture(scope="module", params=sorted(CASES))
def fitted(request: pytest.FixtureRequest) -> tuple[Case, Any, pd.DataFrame]:
    case = CASES[request.param]
    train: pd.DataFrame = request.getfixturevalue(case.train)
    model = case.make()
    assert not model.is_fitted
    assert model.fit(train) is model
    return case, model, train


def test_unfitted_model_refuses(fitted: tuple[Case, Any, pd.DataFrame], tmp_path: Path) -> None:
    case, fitted_model, train = fitted
    model = case.make()
    with pytest.raises(NotFittedError, match=type(model).__name__):
        _run(case, model, _input(case, fitted_model, train))
    with pytest.raises(NotFittedError):
        model.save(tmp_path / "m")


def test_capabilities(fitted: tuple[Case, Any, pd.DataFrame]) -> None:
    case, model, _ = fitted
    assert model.is_fitted
    assert model.handles_missing is True
    assert isinstance(model.params, dict) and model.params
    if case.is_detector:
        assert isinstance(model, Detector)
        assert model.feature_names == models.DEFAULT_DETECTOR_FEATURES
    else:
        assert isinstance(model, Forecaster)
        assert model.is_probabilistic is True
        assert model.services == ("checkout", "frontend", "payments")
        assert model.min_history > 0


def test_output_shape_and_range(fitted: tuple[Case, Any, pd.DataFrame]) -> None:
    case, model, train = fitted
    frame = _input(case, model, train)
    out = _run(case, model, frame)
    if case.is_detector:
        assert out.shape == (len(frame),)
        assert np.all((out >= 0) & (out <= 1))
        # training-like rows are mostly normal at the fitted threshold
        assert (out >= models.ANOMALY_THRESHOLD).mean() < 0.05
        return
    assert tuple(out.columns) == FORECAST_COLUMNS
    assert len(out) == HORIZON * 3
    assert str(out["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert (out["q10"] <= out["q50"]).all() and (out["q50"] <= out["q90"]).all()
    assert (out["q10"] >= 0).all()
    for service, rows in out.groupby("service"):
        last = frame.loc[frame["service"] == service, "timestamp"].max()
        expected = pd.date_range(last + pd.Timedelta(minutes=1), periods=HORIZON, freq="min")
        assert list(rows["timestamp"]) == list(expected)


def test_deterministic_and_save_load_round_trip(
    fitted: tuple[Case, Any, pd.DataFrame], tmp_path: Path
) -> None:
    case, model, train = fitted
    frame = _input(case, model, train)
    before = _run(case, model, frame)
    _assert_same(before, _run(case, model, frame))
    model.save(tmp_path / "saved")
    loaded = type(model).load(tmp_path / "saved")
    assert loaded.is_fitted and loaded.params == model.params
    _assert_same(before, _run(case, loaded, frame))
    load_any = models.load_detector if case.is_detector else models.load_forecaster
    _assert_same(before, _run(case, load_any(tmp_path / "saved"), frame))


def test_nans_are_handled(fitted: tuple[Case, Any, pd.DataFrame]) -> None:
    case, model, train = fitted
    frame = _input(case, model, train).copy()
    column = case.required
    frame.loc[frame.index[1:4], column] = np.nan
    out = _run(case, model, frame)
    values = out if case.is_detector else out[["q10", "q50", "q90"]].to_numpy()
    assert np.isfinite(values).all()


def test_missing_column_is_named(fitted: tuple[Case, Any, pd.DataFrame]) -> None:
    case, model, train = fitted
    frame = _input(case, model, train).drop(columns=[case.required])
    with pytest.raises(MissingFeatureError, match=case.required) as info:
        _run(case, model, frame)
    assert info.value.missing == (case.required,)
