"""What the serving tests share: a temporary MLflow registry holding real `models` pyfuncs
and a temporary Feast repo filled with synthetic tidy metrics, one of each per module."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cloudpickle
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types import ParamSchema, ParamSpec

import contracts
import features
from models import InsufficientHistoryError, RobustZScoreDetector, log_detector
from training._registry import promote

DETECTOR = "ooda-detector"
FORECASTER = "ooda-forecaster"
SERVICES = ("frontend", "checkout", "payments")
DETECTOR_COLUMNS = ("error_rate", "p95_latency_ms")
SEASON = 5
POLL_S = 1.0


class LastValueForecaster(PythonModel):
    """Forecasts each service's last request rate, +-10 %, with the contract's frames.

    Stands in for `models.log_forecaster`, whose signature check rejects the contract's
    timezone-aware timestamps in MLflow 3.17 (reported to the models owner).
    """

    def predict(
        self, context: object, model_input: pd.DataFrame, params: dict[str, int] | None = None
    ) -> pd.DataFrame:
        horizon = int((params or {})["horizon"])
        if model_input.groupby("service").size().min() < 2:
            raise InsufficientHistoryError("LastValueForecaster needs two points per service")
        frames = []
        for service, rows in model_input.sort_values("timestamp").groupby("service", sort=False):
            last = rows.iloc[-1]
            steps = pd.date_range(last["timestamp"], periods=horizon + 1, freq="1min")[1:]
            rate = float(last["request_rate"])
            frames.append(
                pd.DataFrame(
                    {
                        "service": service,
                        "timestamp": steps,
                        "q10": 0.9 * rate,
                        "q50": rate,
                        "q90": 1.1 * rate,
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class Registry:
    uri: str
    client: MlflowClient
    detector_model_uri: str


def _history(end: datetime, minutes: int) -> pd.DataFrame:
    stamps = pd.date_range(end=end, periods=minutes, freq="1min", tz="UTC")
    frames = [
        pd.DataFrame(
            {
                "timestamp": stamps,
                "service": service,
                "request_rate": 100.0 * (i + 1) + 10 * np.sin(np.arange(minutes) / 3),
            }
        )
        for i, service in enumerate(SERVICES)
    ]
    return pd.concat(frames, ignore_index=True)


def _metrics(end: datetime, minutes: int) -> pd.DataFrame:
    """Tidy metrics (the metric-source frame) for every service, one row a minute."""
    history = _history(end, minutes)
    rng = np.random.default_rng(7)
    n = len(history)
    return pd.DataFrame(
        {
            "timestamp": history["timestamp"],
            "region": "eu-west-1",
            "service": history["service"],
            "request_rate": history["request_rate"],
            "request_rate_instant": history["request_rate"],
            "p95_latency_ms": 80 + rng.normal(0, 5, n),
            "p99_latency_ms": 120 + rng.normal(0, 5, n),
            "error_rate": np.abs(rng.normal(0.001, 0.0005, n)),
            "cpu_utilisation": 0.5 + rng.normal(0, 0.02, n),
            "memory_utilisation": 0.4 + rng.normal(0, 0.02, n),
            "restarts": 0.0,
            "ready_pods": 3.0,
            "desired_pods": 3.0,
        }
    )[list(contracts.METRIC_COLUMNS)]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("serving", artifact_location=(root / "art").as_uri())
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    rng = np.random.default_rng(0)
    train = pd.DataFrame(
        {
            "service": np.repeat(SERVICES, 200),
            "error_rate": np.abs(rng.normal(0.001, 0.0005, 600)),
            "p95_latency_ms": rng.normal(80, 5, 600),
        }
    )
    detector = RobustZScoreDetector(features=DETECTOR_COLUMNS).fit(train)
    # Replicas cannot import this test module, so the model class travels by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with mlflow.start_run(experiment_id=experiment) as run:
        logged_detector = log_detector(detector, train.head(5))
        logged_forecaster = mlflow.pyfunc.log_model(
            name="forecaster",
            python_model=LastValueForecaster(),
            signature=ModelSignature(params=ParamSchema([ParamSpec("horizon", "long", 30)])),
            pip_requirements=[],
        )
    for name, logged, versions in (
        (DETECTOR, logged_detector, 2),
        (FORECASTER, logged_forecaster, 1),
    ):
        client.create_registered_model(name)
        for _ in range(versions):
            client.create_model_version(name, logged.model_uri, run_id=run.info.run_id)
        promote(client, name, 1, actor="test", reason="first champion")
    return Registry(uri, client, logged_detector.model_uri)


@pytest.fixture(scope="module")
def feature_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("feast") / "data"
    store = features.open_store(features.FeatureRepoSettings(data_dir=data_dir))
    features.apply(store)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    features.push_live(store, _metrics(now, 2 * features.FORECAST_WINDOW))
    return data_dir


ROWS = [
    {"service": "checkout", "error_rate": 0.001, "p95_latency_ms": 81.0},
    {"service": "payments", "error_rate": 0.4, "p95_latency_ms": 900.0},
]
