"""The HTTP face of serving: a FastAPI ingress that scores anomalies itself and forwards
forecasts to the forecaster deployment.

The detector runs inside the ingress replica: scoring a row costs well under a millisecond
(``models.PackedForest``), less than one more Ray hop would, so ``/v1/anomaly`` is one hop
from the proxy. The LSTM forecaster, heavy and called every few minutes, keeps its own
deployment with request batching.

Callers either send the model inputs themselves (rows, columns, history) or just name
services, in which case the ingress reads their latest online features from Feast, so the
control loop can score the live estate with nothing but entity ids. Anomaly bodies are
parsed straight into columns (:mod:`serving._columns`); forecast bodies are validated with
pydantic. Serving errors map to HTTP statuses here and nowhere else: malformed JSON -> 400,
unknown service -> 404, too many rows -> 413, bad input -> 422, unavailable model -> 503.
"""

from __future__ import annotations

import asyncio
import gc
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from ray import serve
from ray.serve import Deployment
from ray.serve.handle import DeploymentHandle

import features
from models import HISTORY_COLUMNS
from serving._champion import ModelStatus
from serving._columns import anomaly_body, frame_columns, parse_anomaly
from serving._errors import (
    InvalidInputError,
    MalformedBodyError,
    ModelUnavailableError,
    RequestTooLargeError,
    ServingError,
)
from serving._scorers import (
    Scored,
    detect,
    follow_champion,
    record_detector_shadow,
    shadow_of,
    warm_up,
)
from serving._settings import ServingSettings

if TYPE_CHECKING:
    from feast import FeatureStore

#: Longest forecast horizon accepted, in minutes.
MAX_HORIZON = 24 * 60


class FeatureRow(BaseModel):
    """One service's detector features: ``service`` plus numeric (or null) feature values."""

    model_config = ConfigDict(extra="allow")

    service: str = Field(min_length=1)

    @model_validator(mode="after")
    def _numeric_features(self) -> FeatureRow:
        for key, value in (self.model_extra or {}).items():
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise ValueError(f"feature {key!r} must be a number or null, got {value!r}")
        return self


class AnomalyRequest(BaseModel):
    """Exactly one of ``services`` (features read from Feast), feature ``rows``, or
    ``columns`` (one list per field, ``service`` included; the form for batches).

    Documents the body in the OpenAPI schema; the endpoint parses bodies itself
    (:func:`serving._columns.parse_anomaly`) by the same rules, much faster.
    """

    model_config = ConfigDict(extra="forbid")

    services: list[str] | None = Field(default=None, min_length=1)
    rows: list[FeatureRow] | None = Field(default=None, min_length=1)
    columns: dict[str, list[float | str | None]] | None = None


class HistoryPoint(BaseModel):
    """One per-minute request rate observation."""

    service: str = Field(min_length=1)
    timestamp: AwareDatetime
    request_rate: float | None


class ForecastRequest(BaseModel):
    """Either ``services`` (history read from Feast) or an explicit ``history``."""

    model_config = ConfigDict(extra="forbid")

    services: list[str] | None = Field(default=None, min_length=1)
    history: list[HistoryPoint] | None = Field(default=None, min_length=1)
    horizon: int = Field(default=30, ge=1, le=MAX_HORIZON)

    @model_validator(mode="after")
    def _one_source(self) -> ForecastRequest:
        if (self.services is None) == (self.history is None):
            raise ValueError("give exactly one of 'services' or 'history'")
        return self


class ModelRef(BaseModel):
    """The registered model version that answered."""

    name: str
    version: str


class ForecastPoint(BaseModel):
    service: str
    timestamp: datetime
    q10: float
    q50: float
    q90: float


class ForecastResponse(BaseModel):
    model: ModelRef
    forecast: list[ForecastPoint]


class ModelInfo(BaseModel):
    """What one model role serves."""

    name: str
    alias: str
    version: str | None
    ready: bool
    reason: str


app = FastAPI(title="ooda scoring", summary="Anomaly scores and load forecasts from @champion")


@app.exception_handler(ModelUnavailableError)
async def _model_unavailable(_: Request, exc: ModelUnavailableError) -> JSONResponse:
    detail = f"model {exc.model!r} has no version loaded under alias {exc.alias!r}: {exc.reason}"
    body = {"error": "model unavailable", "model": exc.model, "alias": exc.alias, "detail": detail}
    return JSONResponse(status_code=503, content=body)


@app.exception_handler(features.MissingFeaturesError)
async def _unknown_service(_: Request, exc: features.MissingFeaturesError) -> JSONResponse:
    return JSONResponse(status_code=404, content={"error": "unknown service", "detail": str(exc)})


@app.exception_handler(InvalidInputError)
async def _invalid_input(_: Request, exc: InvalidInputError) -> JSONResponse:
    if isinstance(exc, RequestTooLargeError):
        status, error = 413, "request too large"
    elif isinstance(exc, MalformedBodyError):
        status, error = 400, "malformed JSON"
    else:
        status, error = 422, "invalid input"
    return JSONResponse(status_code=status, content={"error": error, "detail": exc.detail})


def _answer(outcome: Scored | ServingError) -> Scored:
    """A model deployment's answer, or its refusal raised for the exception handlers."""
    if isinstance(outcome, ServingError):
        raise outcome
    return outcome


def _model_info(status: ModelStatus) -> ModelInfo:
    return ModelInfo(
        name=status.name,
        alias=status.alias,
        version=status.version,
        ready=status.ready,
        reason=status.reason,
    )


def _history_frame(points: list[HistoryPoint]) -> pd.DataFrame:
    frame = pd.DataFrame([point.model_dump() for point in points], columns=list(HISTORY_COLUMNS))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    frame["request_rate"] = frame["request_rate"].astype(float)
    return frame.sort_values(["service", "timestamp"], ignore_index=True)


def _history_from_windows(online: pd.DataFrame) -> pd.DataFrame:
    """Per-minute history rebuilt from ``request_rate_window`` (oldest first) + ``window_end``."""
    parts = []
    for row in online.itertuples(index=False):
        window = [float("nan") if v is None else float(v) for v in row.request_rate_window]
        end = pd.Timestamp(row.window_end)
        end = end.tz_localize("UTC") if end.tzinfo is None else end.tz_convert("UTC")
        timestamps = pd.date_range(end=end, periods=len(window), freq="1min")
        parts.append(
            pd.DataFrame({"service": row.service, "timestamp": timestamps, "request_rate": window})
        )
    history = pd.concat(parts, ignore_index=True)
    history["timestamp"] = history["timestamp"].astype("datetime64[ns, UTC]")
    return history


class _ScoringAPI:
    """Routes ``/v1/anomaly``, ``/v1/forecast``, ``/v1/models`` and ``/healthz``."""

    def __init__(self, forecaster: DeploymentHandle, settings: ServingSettings) -> None:
        self._forecaster = forecaster
        self._settings = settings
        # Feast takes seconds of CPU to import and open; at start-up that would slow the
        # loading of both models on a small machine, so the first request that reads the
        # feature store opens it (the loop sends its rows inline and never does).
        self._store: asyncio.Future[FeatureStore] | None = None
        self._detector = follow_champion(settings, settings.detector_name)
        warm_up(self._detector)
        # @challenger scores the same rows off the request path, for the shadow record.
        self._challenger = (
            follow_champion(settings, settings.detector_name, settings.shadow_alias)
            if settings.shadow_alias
            else None
        )
        self._shadows: set[asyncio.Task[None]] = set()
        # What is loaded now lives as long as the replica: keep it out of the collector's
        # full passes, which would otherwise stall requests for milliseconds.
        gc.collect()
        gc.freeze()
        loop = asyncio.get_running_loop()
        self._follower = loop.create_task(self._detector.follow(settings.poll_interval_s))
        if self._challenger is not None:
            self._shadow_follower = loop.create_task(
                self._challenger.follow(settings.poll_interval_s)
            )

    async def _online(self, services: list[str], feature_service: str) -> pd.DataFrame:
        """Latest online features of ``services`` (``MissingFeaturesError`` -> 404)."""
        if self._store is None:
            loop = asyncio.get_running_loop()
            self._store = loop.run_in_executor(None, _open_store, self._settings)
        store = await self._store
        online: pd.DataFrame = await asyncio.to_thread(
            features.online_features, store, services, feature_service
        )
        return online

    @app.post(
        "/v1/anomaly",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": AnomalyRequest.model_json_schema()}},
            }
        },
    )
    async def anomaly(self, request: Request) -> Response:
        """Anomaly score per row or service (>= 0.5 means anomalous)."""
        settings = self._settings
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > settings.max_body_bytes:
            raise RequestTooLargeError(
                f"body of {declared} bytes; at most {settings.max_body_bytes} per request"
            )
        parsed = parse_anomaly(await request.body(), settings.max_rows)
        service, columns = parsed.service, parsed.columns
        if parsed.services is not None:
            online = await self._online(parsed.services, settings.detector_features)
            service, columns = frame_columns(online)
        loaded = self._detector.current()
        name = settings.detector_name
        if len(service) <= settings.inline_rows:  # cheaper than a thread hop
            scores, flags = detect(loaded, service, columns, name)
        else:  # long batches must not stall the small requests behind them
            scores, flags = await asyncio.to_thread(detect, loaded, service, columns, name)
        challenger = shadow_of(self._detector, self._challenger)
        if challenger is not None and service:
            record = partial(
                record_detector_shadow, settings, loaded, challenger, service, columns, scores
            )
            task = asyncio.create_task(asyncio.to_thread(record))
            self._shadows.add(task)  # kept until done, so it is not collected mid-run
            task.add_done_callback(self._shadows.discard)
        body = anomaly_body(name, loaded.version, service, scores, flags, parsed.columnar)
        return Response(body, media_type="application/json")

    @app.post("/v1/forecast")
    async def forecast(self, body: ForecastRequest) -> ForecastResponse:
        """Request rate quantiles per service for the next ``horizon`` minutes."""
        if body.history is not None:
            history = _history_frame(body.history)
        else:
            online = await self._online(body.services or [], self._settings.forecaster_features)
            history = _history_from_windows(online)
        scored = _answer(await self._forecaster.forecast.remote(history, body.horizon))
        return ForecastResponse(
            model=ModelRef(name=scored.model, version=scored.version),
            forecast=[ForecastPoint(**record) for record in scored.frame.to_dict("records")],
        )

    async def _statuses(self) -> dict[str, ModelStatus]:
        forecaster: ModelStatus = await self._forecaster.status.remote()
        return {"detector": self._detector.status(), "forecaster": forecaster}

    @app.get("/v1/models")
    async def models(self) -> dict[str, ModelInfo]:
        """The version each model role serves (``version`` null when none is loaded), and
        what each scores in shadow (``detector_shadow``, ``forecaster_shadow``)."""
        statuses = await self._statuses()
        if self._challenger is not None:
            statuses["detector_shadow"] = self._challenger.status()
            shadow: ModelStatus | None = await self._forecaster.shadow_status.remote()
            if shadow is not None:
                statuses["forecaster_shadow"] = shadow
        return {role: _model_info(status) for role, status in statuses.items()}

    @app.get("/healthz")
    async def healthz(self) -> JSONResponse:
        """200 when both models are loaded, else 503 with the reasons."""
        statuses = await self._statuses()
        reasons = [f"{role}: {s.reason}" for role, s in statuses.items() if not s.ready]
        models = {role: _model_info(s).model_dump() for role, s in statuses.items()}
        if reasons:
            body = {"status": "unavailable", "reasons": reasons, "models": models}
            return JSONResponse(status_code=503, content=body)
        return JSONResponse(status_code=200, content={"status": "ok", "models": models})


def _open_store(settings: ServingSettings) -> FeatureStore:
    return features.open_store(features.FeatureRepoSettings(data_dir=settings.feature_data_dir))


#: The HTTP ingress deployment, bound to the forecaster deployment by ``serving.build_app``.
ScoringAPI: Deployment = serve.deployment(name="ScoringAPI", ray_actor_options={"num_cpus": 0.25})(
    serve.ingress(app)(_ScoringAPI)
)
