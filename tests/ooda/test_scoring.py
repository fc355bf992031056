from __future__ import annotations

import json

import httpx
import numpy as np
import pandas as pd
import pytest

from ooda import ScoringClient, ScoringUnavailableError, ServingClientSettings


def client(handler: object) -> ScoringClient:
    return ScoringClient(ServingClientSettings(horizon=30), transport=httpx.MockTransport(handler))  # type: ignore[arg-type]


def test_anomaly_scores_are_parsed_per_service() -> None:
    seen: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(
            200,
            json={
                "model": {"name": "ooda-detector", "version": "3"},
                "scores": [{"service": "checkout", "anomaly_score": 0.91, "is_anomaly": True}],
            },
        )

    scores = client(handler).anomaly(["checkout"])
    assert seen == [{"services": ["checkout"]}]
    assert scores.model_version == "3"
    assert scores.scores == {"checkout": 0.91} and scores.anomalous == {"checkout": True}


def test_forecast_frame_has_utc_timestamps() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content) == {"services": ["frontend"], "horizon": 30}
        return httpx.Response(
            200,
            json={
                "model": {"name": "ooda-forecaster", "version": "1"},
                "forecast": [
                    {
                        "service": "frontend",
                        "timestamp": "2026-11-16T09:01:00+00:00",
                        "q10": 1.0,
                        "q50": 2.0,
                        "q90": 3.0,
                    }
                ],
            },
        )

    fc = client(handler).forecast(["frontend"])
    assert str(fc.frame["timestamp"].dt.tz) == "UTC"
    assert fc.frame["q90"].tolist() == [3.0]


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(503, json={"error": "ooda-detector@champion missing"}), "503"),
        (httpx.Response(200, text="not json"), "non-JSON"),
        (httpx.Response(200, json={"unexpected": 1}), "unexpected body"),
    ],
)
def test_bad_answers_become_scoring_unavailable(response: httpx.Response, message: str) -> None:
    with pytest.raises(ScoringUnavailableError, match=message):
        client(lambda _r: response).anomaly(["checkout"])


def test_unreachable_endpoint_names_the_url() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(ScoringUnavailableError, match=r"127\.0\.0\.1:8000/v1/forecast unreachable"):
        client(handler).forecast(["frontend"])


def test_feature_rows_go_column_wise_and_columnar_answers_are_read() -> None:
    """One list per column on the wire (no per-row objects); NaN travels as null."""
    seen: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(
            200,
            json={
                "model": {"name": "ooda-detector", "version": "4"},
                "columns": {
                    "service": ["checkout", "payments"],
                    "anomaly_score": [0.2, 0.8],
                    "is_anomaly": [False, True],
                },
            },
        )

    rows = pd.DataFrame(
        {"service": ["checkout", "payments"], "error_rate": [0.001, np.nan], "restarts": [0, 2]}
    )
    scores = client(handler).anomaly_rows(rows)
    assert seen == [
        {
            "columns": {
                "service": ["checkout", "payments"],
                "error_rate": [0.001, None],
                "restarts": [0.0, 2.0],
            }
        }
    ]
    assert scores.model_version == "4"
    assert scores.anomalous == {"checkout": False, "payments": True}


def test_check_passes_only_when_healthz_answers_200() -> None:
    answers = iter(
        [httpx.Response(200, json={"status": "ok"}), httpx.Response(503, text="loading")]
    )
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        return next(answers)

    scoring = client(handler)
    scoring.check()
    with pytest.raises(ScoringUnavailableError, match=r"/healthz answered HTTP 503: loading"):
        scoring.check()
    assert paths == ["/healthz", "/healthz"]
