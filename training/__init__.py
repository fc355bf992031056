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

Names are imported on first use (PEP 562): the settings a process is configured with
(``TrainingSettings``) should not pay for Feast, darts and PyTorch, which the pipelines import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "CHALLENGER": "training._registry",
    "CHAMPION": "training._registry",
    "DetectorTraining": "training._settings",
    "FeatureDrift": "training._drift",
    "ForecasterTraining": "training._settings",
    "Incident": "training._pipeline",
    "MissingAliasError": "training._registry",
    "ModelVersionInfo": "training._registry",
    "NothingToRollBackError": "training._registry",
    "RegistryError": "training._registry",
    "RegistrySettings": "training._settings",
    "ShadowGateError": "training._shadow_gate",
    "ShadowVerdict": "training._shadow_gate",
    "SignatureMismatchError": "training._registry",
    "TrainingResult": "training._pipeline",
    "TrainingSettings": "training._settings",
    "UnknownModelError": "training._registry",
    "feature_drift": "training._drift",
    "judge_detector_shadow": "training._shadow_gate",
    "judge_forecaster_shadow": "training._shadow_gate",
    "label_incidents": "training._pipeline",
    "list_models": "training._registry",
    "promote": "training._registry",
    "promote_challenger": "training._shadow_gate",
    "request_rate_series": "training._pipeline",
    "rollback": "training._registry",
    "train_detector": "training._pipeline",
    "train_forecaster": "training._pipeline",
    "training_window": "training._pipeline",
}

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'training' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
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
