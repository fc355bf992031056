"""MLflow pyfunc wrappers, so the registry holds models any MLflow client can load.

The fitted model is saved with its own `save()` into an artifact directory and reopened in
`load_context`; the wrapper pickled by MLflow only holds small settings and refers to this
package by name. The package's source goes with the model (`code_paths`), so a logged model
loads wherever its pip requirements are installed, without this project. Those requirements
are pinned from the running environment instead of being inferred, because inference imports
the model in a subprocess (slow with torch) and cannot see that `models` is our own code.
The model's kind and role are written into the MLmodel metadata so that a loaded model can
say what it is (`loaded.metadata.metadata`).
"""

from __future__ import annotations

import tempfile
from importlib import metadata as distributions
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import infer_signature
from mlflow.models.model import ModelInfo
from mlflow.pyfunc import PythonModel, PythonModelContext

from models._catalog import load_detector, load_forecaster
from models._detectors import ANOMALY_THRESHOLD
from models._errors import MissingFeatureError, NotFittedError
from models._protocols import Detector, Forecaster
from models._series import check_horizon

_ARTIFACT = "model"
_COMMON_REQUIREMENTS = ("mlflow", "pandas", "numpy", "scikit-learn", "joblib", "numba")
#: This package's source directory, shipped with every logged model.
_CODE = str(Path(__file__).resolve().parent)
_FORECASTER_REQUIREMENTS = ("darts", "torch")


def _pins(names: tuple[str, ...]) -> list[str]:
    return [f"{name}=={distributions.version(name)}" for name in names]


def pyfunc_history(history: pd.DataFrame) -> pd.DataFrame:
    """A history frame as the forecaster pyfunc's input schema wants it.

    MLflow's schema enforcement rejects timezone-aware datetimes, so the pyfunc takes
    `timestamp` as timezone-naive UTC (the forecasters read naive times as UTC and answer
    with timezone-aware UTC timestamps).
    """
    timestamps = pd.to_datetime(history["timestamp"], utc=True).dt.tz_convert(None)
    return pd.DataFrame(
        {
            "service": history["service"].astype(str).to_numpy(),
            "timestamp": timestamps.to_numpy(),
            "request_rate": history["request_rate"].astype(float).to_numpy(),
        }
    )


def _score_frame(detector: Detector, frame: pd.DataFrame) -> pd.DataFrame:
    """The detector pyfunc's answer: `service, anomaly_score, is_anomaly` per input row."""
    if "service" not in frame.columns:
        raise MissingFeatureError(["service"], model="DetectorModel")
    scores = detector.score(frame)
    return pd.DataFrame(
        {
            "service": frame["service"].astype(str).to_numpy(),
            "anomaly_score": scores,
            "is_anomaly": scores >= ANOMALY_THRESHOLD,
        }
    )


class DetectorModel(PythonModel):
    """pyfunc: frame of `service` + feature columns -> `service, anomaly_score, is_anomaly`."""

    def __init__(self) -> None:
        self._detector: Detector | None = None

    @property
    def detector(self) -> Detector:
        """The underlying detector (after `load_context`)."""
        if self._detector is None:
            raise NotFittedError("DetectorModel (load_context was not called)")
        return self._detector

    def load_context(self, context: PythonModelContext) -> None:
        self._detector = load_detector(context.artifacts[_ARTIFACT])

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        return _score_frame(self.detector, model_input)


class ForecasterModel(PythonModel):
    """pyfunc: long history `service, timestamp, request_rate` + param `horizon` ->
    `service, timestamp, q10, q50, q90` (input timestamps tz-naive UTC: `pyfunc_history`)."""

    def __init__(self, default_horizon: int = 30) -> None:
        self.default_horizon = check_horizon(default_horizon, "ForecasterModel")
        self._forecaster: Forecaster | None = None

    @property
    def forecaster(self) -> Forecaster:
        """The underlying forecaster (after `load_context`)."""
        if self._forecaster is None:
            raise NotFittedError("ForecasterModel (load_context was not called)")
        return self._forecaster

    def load_context(self, context: PythonModelContext) -> None:
        self._forecaster = load_forecaster(context.artifacts[_ARTIFACT])

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        horizon = (params or {}).get("horizon", self.default_horizon)
        return self.forecaster.predict(model_input, check_horizon(int(horizon), "ForecasterModel"))


def log_detector(
    detector: Detector,
    input_example: pd.DataFrame,
    name: str = "detector",
    registered_model_name: str | None = None,
) -> ModelInfo:
    """Log a fitted detector as a pyfunc in the active run (signature from `input_example`,
    which needs `service` and the detector's feature columns)."""
    if not detector.is_fitted:
        raise NotFittedError(type(detector).__name__)
    output = _score_frame(detector, input_example)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / _ARTIFACT
        detector.save(path)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=DetectorModel(),
            artifacts={_ARTIFACT: str(path)},
            signature=infer_signature(input_example, output),
            input_example=input_example,
            pip_requirements=_pins(_COMMON_REQUIREMENTS),
            code_paths=[_CODE],
            registered_model_name=registered_model_name,
            metadata={
                "role": "detector",
                "kind": type(detector).__name__,
                "features": list(detector.feature_names),
            },
        )


def log_forecaster(
    forecaster: Forecaster,
    input_example: pd.DataFrame,
    name: str = "forecaster",
    horizon: int = 30,
    registered_model_name: str | None = None,
) -> ModelInfo:
    """Log a fitted forecaster as a pyfunc in the active run; `horizon` becomes the default
    of the `horizon` inference parameter. `input_example` is a history frame of at least
    `forecaster.min_history` minutes per service (its timestamps are stored tz-naive UTC,
    see `pyfunc_history`)."""
    if not forecaster.is_fitted:
        raise NotFittedError(type(forecaster).__name__)
    horizon = check_horizon(horizon, "log_forecaster")
    input_example = pyfunc_history(input_example)
    output = forecaster.predict(input_example, horizon)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / _ARTIFACT
        forecaster.save(path)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=ForecasterModel(default_horizon=horizon),
            artifacts={_ARTIFACT: str(path)},
            signature=infer_signature(input_example, output, params={"horizon": horizon}),
            input_example=input_example,
            pip_requirements=_pins(_COMMON_REQUIREMENTS + _FORECASTER_REQUIREMENTS),
            code_paths=[_CODE],
            registered_model_name=registered_model_name,
            metadata={
                "role": "forecaster",
                "kind": type(forecaster).__name__,
                "min_history": forecaster.min_history,
                "default_horizon": horizon,
            },
        )
