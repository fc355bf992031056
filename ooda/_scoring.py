"""HTTP client of the Ray Serve scoring endpoints, as the loop sees them.

The loop talks to the models only over HTTP, exactly as it would to a Serve application on a
Ray cluster; the transport is injectable (``httpx.MockTransport``) for tests. Every failure
becomes a :class:`ScoringUnavailableError` that names the endpoint and the reason, so the loop
can log it, skip what depended on it, and carry on.

The loop sends the feature rows it computed from its own snapshot (``rows`` and ``history``
bodies), built by the same ``features.build_features`` that fills Feast, so training and
scoring see the same features and a score always belongs to the snapshot it judges; callers
without features may still name services and let Serve read Feast's online store.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import httpx
import pandas as pd

from ooda._errors import ScoringUnavailableError
from ooda._records import AnomalyScores, LoadForecast
from ooda._settings import ServingClientSettings


class Scorer(Protocol):
    """What the loop asks of the models (the HTTP client, or a batching wrapper of it)."""

    def anomaly_rows(self, rows: pd.DataFrame) -> AnomalyScores: ...

    def forecast_history(self, history: pd.DataFrame, horizon: int) -> LoadForecast: ...


def _json_value(value: Any) -> Any:
    """A frame cell as JSON: NaN and infinities become null, numpy scalars plain numbers."""
    if isinstance(value, float | int) and not isinstance(value, bool):
        number = float(value)
        return number if math.isfinite(number) else None
    if hasattr(value, "item"):
        return _json_value(value.item())
    return value


class ScoringClient:
    """Calls ``/v1/anomaly`` and ``/v1/forecast`` with entity ids; Serve reads Feast itself."""

    def __init__(
        self, settings: ServingClientSettings, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._settings = settings
        self._http = httpx.Client(
            base_url=settings.base_url, timeout=settings.timeout_s, transport=transport
        )

    def _answer(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The endpoint's 200 answer; :class:`ScoringUnavailableError` naming it otherwise."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ScoringUnavailableError(
                f"{self._settings.base_url}{path} unreachable: {type(exc).__name__}: {exc}"
            ) from exc
        if response.status_code != 200:
            raise ScoringUnavailableError(
                f"{path} answered HTTP {response.status_code}: {response.text[:300]}"
            )
        return response

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._answer("POST", path, json=body)
        try:
            payload: dict[str, Any] = response.json()
        except ValueError as exc:
            raise ScoringUnavailableError(
                f"{path} answered non-JSON: {response.text[:200]}"
            ) from exc
        return payload

    def check(self) -> None:
        """Raise :class:`ScoringUnavailableError` unless the application answers ``/healthz``
        with 200 (its models loaded): a scorecard of served models needs them answering."""
        self._answer("GET", "/healthz")

    def anomaly(self, services: list[str]) -> AnomalyScores:
        """Anomaly scores of ``services`` from their latest online features."""
        return self._anomaly({"services": services})

    def anomaly_rows(self, rows: pd.DataFrame) -> AnomalyScores:
        """Anomaly scores of explicit detector feature rows (a ``service`` column plus
        features), sent column-wise: one list per column, not one object per row."""
        columns = {
            str(name): [_json_value(value) for value in rows[name].tolist()]
            for name in rows.columns
        }
        return self._anomaly({"columns": columns})

    def _anomaly(self, body: dict[str, Any]) -> AnomalyScores:
        payload = self._post("/v1/anomaly", body)
        try:
            if "columns" in payload:
                cols = payload["columns"]
                found = [
                    (str(s), float(a), bool(f))
                    for s, a, f in zip(
                        cols["service"], cols["anomaly_score"], cols["is_anomaly"], strict=True
                    )
                ]
            else:
                found = [
                    (str(r["service"]), float(r["anomaly_score"]), bool(r["is_anomaly"]))
                    for r in payload["scores"]
                ]
            return AnomalyScores(
                model_version=str(payload["model"]["version"]),
                scores={s: a for s, a, _ in found},
                anomalous={s: f for s, _, f in found},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ScoringUnavailableError(
                f"/v1/anomaly answered an unexpected body: {exc}"
            ) from exc

    def forecast(self, services: list[str]) -> LoadForecast:
        """Request-rate forecast of ``services`` over the configured horizon."""
        return self._forecast({"services": services, "horizon": self._settings.horizon})

    def forecast_history(self, history: pd.DataFrame, horizon: int) -> LoadForecast:
        """Forecast after an explicit per-minute ``service, timestamp, request_rate`` history."""
        points = [
            {
                "service": str(service),
                "timestamp": pd.Timestamp(ts).isoformat(),
                "request_rate": _json_value(rate),
            }
            for service, ts, rate in history[["service", "timestamp", "request_rate"]].itertuples(
                index=False
            )
        ]
        return self._forecast({"history": points, "horizon": horizon})

    def _forecast(self, body: dict[str, Any]) -> LoadForecast:
        payload = self._post("/v1/forecast", body)
        try:
            frame = pd.DataFrame(payload["forecast"])
            frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
            return LoadForecast(str(payload["model"]["version"]), frame)
        except (KeyError, TypeError, ValueError) as exc:
            raise ScoringUnavailableError(
                f"/v1/forecast answered an unexpected body: {exc}"
            ) from exc

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()
