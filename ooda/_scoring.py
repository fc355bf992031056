"""HTTP client of the Ray Serve scoring endpoints, as the loop sees them.

The loop talks to the models only over HTTP, exactly as it would to a Serve application on a
Ray cluster; the transport is injectable (``httpx.MockTransport``) for tests. Every failure
becomes a :class:`ScoringUnavailableError` that names the endpoint and the reason, so the loop
can log it, skip what depended on it, and carry on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pandas as pd

from ooda._errors import ScoringUnavailableError
from ooda._settings import ServingClientSettings


@dataclass(frozen=True)
class AnomalyScores:
    """Scores of one request: per service, and the model version that produced them."""

    model_version: str
    scores: dict[str, float]
    anomalous: dict[str, bool]


@dataclass(frozen=True)
class LoadForecast:
    """A forecast of request rate per service (columns service, timestamp, q10, q50, q90)."""

    model_version: str
    frame: pd.DataFrame


class ScoringClient:
    """Calls ``/v1/anomaly`` and ``/v1/forecast`` with entity ids; Serve reads Feast itself."""

    def __init__(
        self, settings: ServingClientSettings, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._settings = settings
        self._http = httpx.Client(
            base_url=settings.base_url, timeout=settings.timeout_s, transport=transport
        )

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise ScoringUnavailableError(
                f"{self._settings.base_url}{path} unreachable: {type(exc).__name__}: {exc}"
            ) from exc
        if response.status_code != 200:
            raise ScoringUnavailableError(
                f"{path} answered HTTP {response.status_code}: {response.text[:300]}"
            )
        try:
            payload: dict[str, Any] = response.json()
        except ValueError as exc:
            raise ScoringUnavailableError(
                f"{path} answered non-JSON: {response.text[:200]}"
            ) from exc
        return payload

    def anomaly(self, services: list[str]) -> AnomalyScores:
        """Anomaly scores of ``services`` from their latest online features."""
        payload = self._post("/v1/anomaly", {"services": services})
        try:
            rows = payload["scores"]
            return AnomalyScores(
                model_version=str(payload["model"]["version"]),
                scores={r["service"]: float(r["anomaly_score"]) for r in rows},
                anomalous={r["service"]: bool(r["is_anomaly"]) for r in rows},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ScoringUnavailableError(
                f"/v1/anomaly answered an unexpected body: {exc}"
            ) from exc

    def forecast(self, services: list[str]) -> LoadForecast:
        """Request-rate forecast of ``services`` over the configured horizon."""
        payload = self._post(
            "/v1/forecast", {"services": services, "horizon": self._settings.horizon}
        )
        try:
            frame = pd.DataFrame(payload["forecast"])
            frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
            return LoadForecast(str(payload["model"]["version"]), frame)
        except (KeyError, TypeError, ValueError) as exc:
            raise ScoringUnavailableError(
                f"/v1/forecast answered an unexpected body: {exc}"
            ) from exc

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()
