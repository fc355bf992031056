"""Open any saved model from its directory, whatever its class.

The MLflow wrappers and the registry only know "a detector" or "a forecaster"; the
manifest written by `save()` names the class, and this table maps the name back.
"""

from __future__ import annotations

from pathlib import Path

from models._detectors import IsolationForestDetector, RobustZScoreDetector
from models._errors import ModelFileError
from models._lstm import LSTMForecaster
from models._persistence import read_manifest
from models._protocols import Detector, Forecaster
from models._seasonal_naive import SeasonalNaiveForecaster

DETECTOR_CLASSES: dict[str, type[IsolationForestDetector] | type[RobustZScoreDetector]] = {
    cls.__name__: cls for cls in (IsolationForestDetector, RobustZScoreDetector)
}
FORECASTER_CLASSES: dict[str, type[LSTMForecaster] | type[SeasonalNaiveForecaster]] = {
    cls.__name__: cls for cls in (LSTMForecaster, SeasonalNaiveForecaster)
}


def load_detector(path: str | Path) -> Detector:
    """Open a detector saved by any detector class's `save()`."""
    kind = read_manifest(Path(path))["kind"]
    if kind not in DETECTOR_CLASSES:
        raise ModelFileError(
            f"{str(path)!r} holds a {kind!r}, not one of {sorted(DETECTOR_CLASSES)}"
        )
    return DETECTOR_CLASSES[kind].load(path)


def load_forecaster(path: str | Path) -> Forecaster:
    """Open a forecaster saved by any forecaster class's `save()`."""
    kind = read_manifest(Path(path))["kind"]
    if kind not in FORECASTER_CLASSES:
        raise ModelFileError(
            f"{str(path)!r} holds a {kind!r}, not one of {sorted(FORECASTER_CLASSES)}"
        )
    return FORECASTER_CLASSES[kind].load(path)
