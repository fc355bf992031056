"""Scoring with a registered model's champion: the detector in the ingress, the forecaster in
its own Ray Serve deployment.

Refusals (no model under the alias, input the model rejects) are returned to the ingress
as :class:`~serving.ServingError` values rather than raised: they are answers (503, 422),
not replica failures, so they must not fill the replica logs with tracebacks.

The forecaster batches concurrent requests (``@serve.batch``) into one ``predict`` call,
which is where the LSTM's per-call overhead is paid, and runs ``predict`` off the event loop
so that status checks and alias polling stay responsive while a batch is scored. A batch
takes one snapshot of the current model version, so every row of a response comes from the
version the response names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from ray import serve
from ray.serve import Deployment

from models import ANOMALY_THRESHOLD, FORECAST_COLUMNS, ModelError, pyfunc_history
from serving._champion import ChampionModel, LoadedModel, ModelStatus
from serving._errors import InvalidInputError, ModelUnavailableError, ServingError
from serving._settings import ServingSettings


@dataclass(frozen=True)
class Scored:
    """A model's answer to one request, with the version that produced it."""

    #: Registered model name.
    model: str
    #: Registered model version that scored the request.
    version: str
    #: Detector: ``service, anomaly_score, is_anomaly``;
    #: forecaster: ``service, timestamp, q10, q50, q90``.
    frame: pd.DataFrame


_Request = TypeVar("_Request")


@dataclass(frozen=True)
class _ForecastRequest:
    history: pd.DataFrame
    horizon: int


def follow_champion(settings: ServingSettings, name: str) -> ChampionModel:
    """Point this replica at the registry, load the champion and keep following it."""
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    champion = ChampionModel(name, settings.alias, client, mlflow.pyfunc.load_model)
    champion.refresh()
    return champion


def warm_up(champion: ChampionModel) -> None:
    """Score one row of zeros, so the first caller does not pay for loading the compiled
    forest traversal (hundreds of milliseconds); a model that refuses it is left as it is."""
    try:
        detector = getattr(champion.current().python_model, "detector", None)
        if detector is not None and hasattr(detector, "score_array"):
            detector.score_array(np.zeros((1, len(detector.feature_names))))
    except (ServingError, ModelError, ValueError):
        pass


def _tune_batching(handler: Any, settings: ServingSettings) -> None:
    """Apply the batch settings to a ``@serve.batch`` method (typed by Ray as a plain
    callable, hence ``Any``)."""
    handler.set_max_batch_size(settings.max_batch_size)
    handler.set_batch_wait_timeout_s(settings.batch_wait_timeout_s)


def require_columns(loaded: LoadedModel, frame: pd.DataFrame, name: str) -> None:
    """Refuse a frame without every input column of the model's signature."""
    missing = [column for column in loaded.input_names if column not in frame.columns]
    if missing:
        raise InvalidInputError(f"model {name!r} version {loaded.version} needs columns {missing}")


def detect(
    loaded: LoadedModel, service: list[str], columns: dict[str, np.ndarray], name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Anomaly score and flag per row, from the loaded detector.

    One of ours (``models.DetectorModel``) scores the feature columns as a matrix, with no
    frame and no per-call schema check; any other pyfunc gets a frame through ``predict``.
    """
    missing = [c for c in loaded.input_names if c != "service" and c not in columns]
    if missing:
        raise InvalidInputError(f"model {name!r} version {loaded.version} needs columns {missing}")
    detector = getattr(loaded.python_model, "detector", None)
    try:
        if detector is not None and hasattr(detector, "score_array"):
            names = detector.feature_names
            absent = [c for c in names if c not in columns]
            if absent:
                raise InvalidInputError(
                    f"model {name!r} version {loaded.version} needs columns {absent}"
                )
            matrix = (
                np.column_stack([columns[c] for c in names])
                if service
                else np.empty((0, len(names)))
            )
            scores = np.asarray(detector.score_array(matrix), dtype=float)
            return scores, scores >= ANOMALY_THRESHOLD
        frame = pd.DataFrame({"service": service, **columns})
        inputs = frame[list(loaded.input_names)] if loaded.input_names else frame
        output = pd.DataFrame(loaded.predict(inputs))
    except (ModelError, MlflowException) as exc:
        raise InvalidInputError(
            f"model {name!r} version {loaded.version} rejected the input: {exc}"
        ) from exc
    return (
        output["anomaly_score"].to_numpy(dtype=float),
        output["is_anomaly"].to_numpy(dtype=bool),
    )


async def _each_alone(
    predict: Callable[[list[_Request]], Awaitable[list[Scored]]],
    requests: list[_Request],
    name: str,
    version: str,
) -> list[Scored | ServingError]:
    """Run a batch; if the model rejects it, rerun request by request so only bad ones fail.

    Batching must not let one caller's bad input fail its neighbours' requests. Rejections
    (the model package's own errors, MLflow schema enforcement) come back as values, not
    raised, so the batch machinery hands each caller its own outcome.
    """
    try:
        return list(await predict(requests))
    except (ModelError, MlflowException) as exc:
        if len(requests) == 1:
            detail = f"model {name!r} version {version} rejected the input: {exc}"
            return [InvalidInputError(detail)]
    outcomes = [await _each_alone(predict, [one], name, version) for one in requests]
    return [outcome for alone in outcomes for outcome in alone]


def _disjoint_groups(requests: Sequence[_ForecastRequest]) -> list[list[int]]:
    """Group request indices so each group shares a horizon and no service appears twice."""
    groups: list[tuple[int, set[str], list[int]]] = []
    for index, request in enumerate(requests):
        services = set(request.history["service"])
        for horizon, seen, members in groups:
            if horizon == request.horizon and not seen & services:
                seen |= services
                members.append(index)
                break
        else:
            groups.append((request.horizon, services, [index]))
    return [members for _, _, members in groups]


class _LoadForecaster:
    """Forecasts per-minute request rate quantiles with the forecaster champion."""

    def __init__(self, settings: ServingSettings) -> None:
        self._name = settings.forecaster_name
        self._champion = follow_champion(settings, settings.forecaster_name)
        self._follower = asyncio.get_running_loop().create_task(
            self._champion.follow(settings.poll_interval_s)
        )
        _tune_batching(self._forecast_batch, settings)

    def status(self) -> ModelStatus:
        """Served version and readiness."""
        return self._champion.status()

    async def forecast(self, history: pd.DataFrame, horizon: int) -> Scored | ServingError:
        """``horizon`` per-minute quantile steps per service after its ``history``."""
        try:
            require_columns(self._champion.current(), history, self._name)
        except ServingError as exc:
            return exc
        return await self._forecast_batch(_ForecastRequest(history, horizon))

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.01)
    async def _forecast_batch(
        self, requests: list[_ForecastRequest]
    ) -> list[Scored | ServingError]:
        """Forecast several requests, one ``predict`` call per group of compatible ones."""
        try:
            loaded = self._champion.current()
        except ModelUnavailableError as exc:  # unloaded since the request was checked
            return [exc] * len(requests)

        async def predict(group: list[_ForecastRequest]) -> list[Scored]:
            history = pyfunc_history(
                pd.concat([request.history for request in group], ignore_index=True)
            )
            params = {"horizon": group[0].horizon}
            output = await asyncio.to_thread(loaded.predict, history, params=params)
            forecast = pd.DataFrame(output)[list(FORECAST_COLUMNS)]
            return [
                Scored(
                    self._name,
                    loaded.version,
                    forecast[forecast["service"].isin(set(request.history["service"]))].reset_index(
                        drop=True
                    ),
                )
                for request in group
            ]

        results: dict[int, Scored | ServingError] = {}
        for group in _disjoint_groups(requests):
            outcomes = await _each_alone(
                predict, [requests[i] for i in group], self._name, loaded.version
            )
            results.update(zip(group, outcomes, strict=True))
        return [results[index] for index in range(len(requests))]


#: Deployment forecasting load with the forecaster champion (one replica by default).
LoadForecaster: Deployment = serve.deployment(
    name="LoadForecaster", ray_actor_options={"num_cpus": 0.5}
)(_LoadForecaster)
