"""Ray Serve endpoints that score the registry's ``@champion`` models, following alias moves.

:class:`ScoringAPI` is the HTTP ingress (``/v1/anomaly``, ``/v1/forecast``, ``/v1/models``,
``/healthz``). It holds the detector champion itself (one hop from the proxy) and forwards
forecasts to :class:`LoadForecaster`, the LSTM's own deployment. Each loads
``models:/NAME@champion`` and polls the registry, so a promotion or rollback (an alias
move) is served within one poll interval without a restart and without failed requests.
The ingress reads online features from Feast when a request names only services (a
service without online features, ``features.MissingFeaturesError``, answers HTTP 404).
Load beyond ``max_ongoing_requests`` + ``max_queued_requests`` is answered 503 at once.

Exceptions::

    ServingError
    ├── InvalidSettingsError     unknown or mistyped serve config arg
    ├── ModelUnavailableError    nothing loaded under the alias (HTTP 503)
    ├── InvalidInputError        input does not fit the model (HTTP 422)
    │   ├── MalformedBodyError   the body is not JSON (HTTP 400)
    │   └── RequestTooLargeError more rows or bytes than one request may carry (HTTP 413)
    └── ServeStartError          Serve did not start, or not healthy in time
"""

from __future__ import annotations

from serving._api import ScoringAPI
from serving._app import RunningApp, app_builder, build_app, deploy, start, stop, wait_healthy
from serving._champion import ChampionModel, LoadedModel, ModelStatus
from serving._errors import (
    InvalidInputError,
    InvalidSettingsError,
    MalformedBodyError,
    ModelUnavailableError,
    RequestTooLargeError,
    ServeStartError,
    ServingError,
)
from serving._ports import free_serve_port
from serving._scorers import LoadForecaster, Scored
from serving._settings import ServingSettings

__all__ = [
    "ChampionModel",
    "InvalidInputError",
    "InvalidSettingsError",
    "LoadForecaster",
    "LoadedModel",
    "MalformedBodyError",
    "ModelStatus",
    "ModelUnavailableError",
    "RequestTooLargeError",
    "RunningApp",
    "Scored",
    "ScoringAPI",
    "ServeStartError",
    "ServingError",
    "ServingSettings",
    "app_builder",
    "build_app",
    "deploy",
    "free_serve_port",
    "start",
    "stop",
    "wait_healthy",
]
