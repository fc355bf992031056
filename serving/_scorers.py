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
import logging
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

from models import ANOMALY_THRESHOLD, FORECAST_COLUMNS, ModelError, append_shadow, pyfunc_history
from serving._champion import ChampionModel, LoadedModel, ModelStatus
from serving._errors import InvalidInputError, ModelUnavailableError, ServingError
from serving._settings import ServingSettings

_log = logging.getLogger(__name__)


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


def follow_champion(settings: ServingSettings, name: str, alias: str = "") -> ChampionModel:
    """Point this replica at the registry, load ``alias`` (the champion by default) and keep
    following it."""
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    champion = ChampionModel(name, alias or settings.alias, client, mlflow.pyfunc.load_model)
    champion.refresh()
    return champion


def shadow_of(champion: ChampionModel, shadow: ChampionModel | None) -> LoadedModel | None:
    """The challenger to score in shadow now: loaded, and another version than the
    champion's (None: no shadow scoring)."""
    if shadow is None:
        return None
    try:
        mine, theirs = champion.current(), shadow.current()
    except ModelUnavailableError:
        return None
    return None if theirs.version == mine.version else theirs


def record_detector_shadow(
    settings: ServingSettings,
    champion: LoadedModel,
    challenger: LoadedModel,
    service: list[str],
    columns: dict[str, np.ndarray],
    scores: np.ndarray,
) -> None:
    """Score the same rows with the challenger and append both answers (run off the request
    path; a challenger that fails is logged, never raised)."""
    name = settings.detector_name
    try:
        theirs, _ = detect(challenger, service, columns, name)
        at = pd.Timestamp.now(tz="UTC").isoformat()
        rows = [
            (at, name, champion.version, challenger.version, s, float(a), float(b))
            for s, a, b in zip(service, scores, theirs, strict=True)
        ]
        append_shadow(settings.shadow_file, "detector_shadow", rows)
    except Exception as exc:  # a shadow's failure must never reach a caller, nor pass unsaid
        _log.warning("shadow %s v%s not recorded: %s", name, challenger.version, exc)


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
        self._settings = settings
        self._name = settings.forecaster_name
        self._champion = follow_champion(settings, settings.forecaster_name)
        loop = asyncio.get_running_loop()
        self._follower = loop.create_task(self._champion.follow(settings.poll_interval_s))
        self._shadow: ChampionModel | None = None
        self._shadows: set[asyncio.Task[None]] = set()
        if settings.shadow_alias:
            self._shadow = follow_champion(settings, self._name, settings.shadow_alias)
            self._shadow_follower = loop.create_task(self._shadow.follow(settings.poll_interval_s))
        _tune_batching(self._forecast_batch, settings)

    def shadow_status(self) -> ModelStatus | None:
        """What the shadow alias serves (None: shadow scoring is off)."""
        return None if self._shadow is None else self._shadow.status()

    def _record_shadow(
        self,
        loaded: LoadedModel,
        challenger: LoadedModel,
        history: pd.DataFrame,
        horizon: int,
        answered: pd.DataFrame,
    ) -> None:
        """The challenger's forecast from the same history, beside the champion's answer."""
        try:
            theirs = pd.DataFrame(
                challenger.predict(pyfunc_history(history), params={"horizon": horizon})
            )[list(FORECAST_COLUMNS)]
        except Exception as exc:  # a challenger's failure must never reach a caller
            _log.warning("shadow %s v%s failed: %s", self._name, challenger.version, exc)
            return
        keys = ["service", "timestamp"]
        mine = answered.assign(timestamp=pd.to_datetime(answered["timestamp"], utc=True))
        theirs = theirs.assign(timestamp=pd.to_datetime(theirs["timestamp"], utc=True))
        both = mine.merge(theirs, on=keys, suffixes=("_a", "_b"))
        at = pd.Timestamp.now(tz="UTC").isoformat()
        rows = [
            (at, self._name, loaded.version, challenger.version, str(r.service),
             r.timestamp.isoformat(), r.q10_a, r.q50_a, r.q90_a, r.q10_b, r.q50_b, r.q90_b)
            for r in both.itertuples(index=False)
        ]  # fmt: skip
        try:
            append_shadow(self._settings.shadow_file, "forecaster_shadow", rows)
        except Exception as exc:
            _log.warning("shadow %s v%s not recorded: %s", self._name, challenger.version, exc)

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
        challenger = shadow_of(self._champion, self._shadow)
        for group in _disjoint_groups(requests):
            outcomes = await _each_alone(
                predict, [requests[i] for i in group], self._name, loaded.version
            )
            results.update(zip(group, outcomes, strict=True))
            answered = [o.frame for o in outcomes if isinstance(o, Scored)]
            if challenger is not None and answered:
                history = pd.concat([requests[i].history for i in group], ignore_index=True)
                task = asyncio.create_task(
                    asyncio.to_thread(
                        self._record_shadow,
                        loaded,
                        challenger,
                        history,
                        requests[group[0]].horizon,
                        pd.concat(answered, ignore_index=True),
                    )
                )
                self._shadows.add(task)  # kept until done, so it is not collected mid-run
                task.add_done_callback(self._shadows.discard)
        return [results[index] for index in range(len(requests))]


#: Deployment forecasting load with the forecaster champion (one replica by default).
LoadForecaster: Deployment = serve.deployment(
    name="LoadForecaster", ray_actor_options={"num_cpus": 0.5}
)(_LoadForecaster)
