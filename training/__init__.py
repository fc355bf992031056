"""Training pipelines and the model registry: Feast history in, judged MLflow versions out.

Every candidate is evaluated on a held-back tail against a simple baseline and the current
champion; only a winner moves the ``champion`` alias (never stages). Promotion and rollback
move aliases and leave tags saying who and why.

Exception tree::

    RegistryError
    ├── UnknownModelError        no registered model of that name
    ├── MissingAliasError        the model has no version under that alias
    ├── SignatureMismatchError   its signature differs from the champion's
    ├── ShadowGateError          the challenger did not win on the shadow record
    └── NothingToRollBackError   champion has no previous version to return to
"""

from __future__ import annotations

from training._drift import FeatureDrift, feature_drift
from training._pipeline import (
    Incident,
    TrainingResult,
    label_incidents,
    request_rate_series,
    train_detector,
    train_forecaster,
    training_window,
)
from training._registry import (
    CHALLENGER,
    CHAMPION,
    MissingAliasError,
    ModelVersionInfo,
    NothingToRollBackError,
    RegistryError,
    SignatureMismatchError,
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
from training._shadow_gate import (
    ShadowGateError,
    ShadowVerdict,
    judge_detector_shadow,
    judge_forecaster_shadow,
    promote_challenger,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "DetectorTraining",
    "FeatureDrift",
    "ForecasterTraining",
    "Incident",
    "MissingAliasError",
    "ModelVersionInfo",
    "NothingToRollBackError",
    "RegistryError",
    "RegistrySettings",
    "ShadowGateError",
    "ShadowVerdict",
    "SignatureMismatchError",
    "TrainingResult",
    "TrainingSettings",
    "UnknownModelError",
    "feature_drift",
    "judge_detector_shadow",
    "judge_forecaster_shadow",
    "label_incidents",
    "list_models",
    "promote",
    "promote_challenger",
    "request_rate_series",
    "rollback",
    "train_detector",
    "train_forecaster",
    "training_window",
]
