"""Ray Serve endpoints that score the registry's ``@champion`` models, following alias moves.

One deployment per model role (:class:`AnomalyScorer`, :class:`LoadForecaster`) loads
``models:/NAME@champion`` and polls the registry, so a promotion or rollback (an alias
move) is served within one poll interval without a restart and without failed requests.
:class:`ScoringAPI` is the HTTP ingress (``/v1/anomaly``, ``/v1/forecast``, ``/v1/models``,
``/healthz``); it reads online features from Feast when a request names only services
(a service without online features, ``features.MissingFeaturesError``, answers HTTP 404).

Exceptions::

    ServingError
    ├── InvalidSettingsError     unknown or mistyped serve config arg
    ├── ModelUnavailableError    nothing loaded under the alias (HTTP 503)
    ├── InvalidInputError        input does not fit the model (HTTP 422)
    └── ServeStartError          start() timed out waiting for /healthz
"""

from __future__ import annotations

from serving._api import ScoringAPI
from serving._app import RunningApp, app_builder, build_app, start, stop
from serving._champion import ChampionModel, LoadedModel, ModelStatus
from serving._errors import (
    InvalidInputError,
    InvalidSettingsError,
    ModelUnavailableError,
    ServeStartError,
    ServingError,
)
from serving._scorers import AnomalyScorer, LoadForecaster, Scored
from serving._settings import ServingSettings

__all__ = [
    "AnomalyScorer",
    "ChampionModel",
    "InvalidInputError",
    "InvalidSettingsError",
    "LoadForecaster",
    "LoadedModel",
    "ModelStatus",
    "ModelUnavailableError",
    "RunningApp",
    "Scored",
    "ScoringAPI",
    "ServeStartError",
    "ServingError",
    "ServingSettings",
    "app_builder",
    "build_app",
    "start",
    "stop",
]
