"""Models logged as MLflow pyfuncs load back (here and in a fresh process) and answer the same.

The fresh process loads the detector and the seasonal-naive forecaster, once: it proves
the wrappers are pickled by reference to the installed package without paying the
Lightning import (tens of seconds here) again; the LSTM round trip runs in-process.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from models import (
    Forecaster,
    ForecasterModel,
    IsolationForestDetector,
    LSTMForecaster,
    SeasonalNaiveForecaster,
    log_detector,
    log_forecaster,
    pyfunc_history,
)


@pytest.fixture()
def tracking(tmp_path: Path) -> Iterator[Path]:
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.set_experiment(
        experiment_id=mlflow.create_experiment(
            "models-tests", artifact_location=(tmp_path / "artifacts").as_uri()
        )
    )
    yield tmp_path
    mlflow.set_tracking_uri(previous)


_FRESH_PROCESS = """
import sys, mlflow, pandas as pd
mlflow.set_tracking_uri(sys.argv[1])
for uri, role, path in zip(sys.argv[2::3], sys.argv[3::3], sys.argv[4::3]):
    params = {"horizon": 5} if role == "forecaster" else None
    out = mlflow.pyfunc.load_model(uri).predict(pd.read_parquet(path), params=params)
    out.to_parquet(path + ".out")
"""


def test_loadable_in_a_fresh_process(
    tracking: Path, feature_rows: pd.DataFrame, hourly_traffic: pd.DataFrame
) -> None:
    """Only the package is shared with the new interpreter: wrappers pickle by reference."""
    detector = IsolationForestDetector(n_estimators=50).fit(feature_rows)
    forecaster = SeasonalNaiveForecaster(season=60).fit(hourly_traffic)
    rows = feature_rows.iloc[:20].reset_index(drop=True)
    history = pyfunc_history(hourly_traffic)
    with mlflow.start_run():
        cases = [
            (log_detector(detector, input_example=rows), "detector", rows),
            (log_forecaster(forecaster, input_example=history), "forecaster", history),
        ]
    argv = [sys.executable, "-c", _FRESH_PROCESS, mlflow.get_tracking_uri()]
    for i, (info, role, frame) in enumerate(cases):
        frame.to_parquet(tracking / f"{i}.parquet")
        argv += [info.model_uri, role, str(tracking / f"{i}.parquet")]
    subprocess.run(argv, check=True, cwd=tracking, timeout=300)
    pd.testing.assert_frame_equal(
        pd.read_parquet(tracking / "0.parquet.out"),
        mlflow.pyfunc.load_model(cases[0][0].model_uri).predict(rows),
    )
    pd.testing.assert_frame_equal(
        pd.read_parquet(tracking / "1.parquet.out"), forecaster.predict(history, 5)
    )


def test_detector_round_trip(tracking: Path, feature_rows: pd.DataFrame) -> None:
    detector = IsolationForestDetector(n_estimators=50).fit(feature_rows)
    rows = feature_rows.iloc[:20].reset_index(drop=True)
    with mlflow.start_run():
        info = log_detector(detector, input_example=rows.iloc[:5])
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    out = loaded.predict(rows)
    assert list(out.columns) == ["service", "anomaly_score", "is_anomaly"]
    np.testing.assert_array_equal(out["anomaly_score"], detector.score(rows))
    assert (out["is_anomaly"] == (out["anomaly_score"] >= 0.5)).all()
    assert list(out["service"]) == list(rows["service"])
    assert loaded.metadata.metadata["kind"] == "IsolationForestDetector"
    assert loaded.metadata.metadata["role"] == "detector"


def test_forecasters_round_trip(tracking: Path, hourly_traffic: pd.DataFrame) -> None:
    forecasters: dict[str, Forecaster] = {
        "naive": SeasonalNaiveForecaster(season=60).fit(hourly_traffic),
        "lstm": LSTMForecaster(
            input_chunk_length=20,
            training_length=30,
            n_epochs=1,
            max_samples_per_ts=40,
            num_samples=20,
        ).fit(hourly_traffic),
    }
    with mlflow.start_run():
        for name, forecaster in forecasters.items():
            history = hourly_traffic.groupby("service").tail(forecaster.min_history)
            info = log_forecaster(forecaster, input_example=history, name=name, horizon=12)
            loaded = mlflow.pyfunc.load_model(info.model_uri)
            history = pyfunc_history(history)
            assert loaded.metadata.metadata["min_history"] == forecaster.min_history
            assert isinstance(loaded.unwrap_python_model(), ForecasterModel)
            default = loaded.predict(history)
            assert len(default) == 12 * 3
            out = loaded.predict(history, params={"horizon": 5})
            pd.testing.assert_frame_equal(out, forecaster.predict(history, 5))
