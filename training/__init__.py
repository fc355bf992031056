"""Training pipelines and the model registry: Feast history in, judged MLflow versions out.

Every candidate is evaluated on a held-back tail against a simple baseline and the current
champion; only a winner moves the ``champion`` alias (never stages). Promotion and rollback
move aliases and leave tags saying who and why.

Exception tree::

    RegistryError
    ├── UnknownModelError        no registered model of that name
    ├── MissingAliasError        the model has no version under that alias
    └── NothingToRollBackError   champion has no previous version to return to
"""

from __future__ import annotations

from training._pipeline import Incident, TrainingResult, train_detector, train_forecaster
from training._registry import (
    MissingAliasError,
    ModelVersionInfo,
    NothingToRollBackError,
    RegistryError,
    UnknownModelError,
    list_models,
    promote,
    rollback,
)
from training._settings import (
    DetectorTraining,
    ForecasterTraining,
    RegistrySettings,
    TrainingSettings,
)

__all__ = [
    "DetectorTraining",
    "ForecasterTraining",
    "Incident",
    "MissingAliasError",
    "ModelVersionInfo",
    "NothingToRollBackError",
    "RegistryError",
    "RegistrySettings",
    "TrainingResult",
    "TrainingSettings",
    "UnknownModelError",
    "list_models",
    "promote",
    "rollback",
    "train_detector",
    "train_forecaster",
]
