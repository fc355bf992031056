"""End-to-end: the Ray Serve app scores with the registry's champions and follows alias moves.

Ray Serve is started once for the module (it is the slow part) against a temporary MLflow
store holding real `models` pyfuncs and a temporary Feast repo filled with synthetic tidy
metrics; every test talks HTTP to it like the control loop does.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import mlflow
import pandas as pd
import pytest

from models import read_shadow
from serving import RunningApp, ServingSettings, free_serve_port, start, stop
from tests._narrow import some
from tests.serving._shared import (
    DETECTOR,
    FORECASTER,
    POLL_S,
    ROWS,
    SEASON,
    SERVICES,
    Registry,
    _history,
)
from training._registry import promote, rollback


@pytest.fixture(scope="module")
def app(registry: Registry, feature_dir: Path) -> Iterator[RunningApp]:
    settings = ServingSettings(
        tracking_uri=registry.uri,
        feature_data_dir=feature_dir,
        port=free_serve_port(),
        poll_interval_s=POLL_S,
        ray_num_cpus=2,
        start_timeout_s=240,
    )
    began = time.monotonic()
    running = start(settings)
    print(f"serve started in {time.monotonic() - began:.1f} s")
    try:
        yield running
    finally:
        stop()


@pytest.fixture
def http(app: RunningApp) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app.url, timeout=30) as client:
        yield client


def test_anomaly_rows_are_scored_by_the_champion(http: httpx.Client, registry: Registry) -> None:
    answer = http.post("/v1/anomaly", json={"rows": ROWS})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == {"name": DETECTOR, "version": "1"}
    expected = mlflow.pyfunc.load_model(registry.detector_model_uri).predict(pd.DataFrame(ROWS))
    assert [s["service"] for s in body["scores"]] == ["checkout", "payments"]
    assert [s["anomaly_score"] for s in body["scores"]] == pytest.approx(
        expected["anomaly_score"].tolist()
    )
    assert [s["is_anomaly"] for s in body["scores"]] == [False, True]


def test_anomaly_by_service_reads_online_features(http: httpx.Client, feature_dir: Path) -> None:
    answer = http.post("/v1/anomaly", json={"services": ["payments", "frontend"]})
    assert answer.status_code == 200, answer.text
    scores = answer.json()["scores"]
    assert [s["service"] for s in scores] == ["payments", "frontend"]
    assert all(0.0 <= s["anomaly_score"] <= 1.0 for s in scores)

    unknown = http.post("/v1/anomaly", json={"services": ["checkout", "nope"]})
    assert unknown.status_code == 404
    assert "nope" in unknown.json()["detail"]


def test_forecast_from_history_and_from_online_window(http: httpx.Client) -> None:
    end = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    history = _history(end, 3 * SEASON)
    points = [
        {"service": r.service, "timestamp": r.timestamp.isoformat(), "request_rate": r.request_rate}
        for r in history.itertuples()
    ]
    answer = http.post("/v1/forecast", json={"history": points, "horizon": 7})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == {"name": FORECASTER, "version": "1"}
    forecast = pd.DataFrame(body["forecast"])
    assert sorted(forecast["service"].unique()) == sorted(SERVICES)
    assert len(forecast) == 7 * len(SERVICES)
    stamps = pd.to_datetime(forecast["timestamp"], utc=True)
    assert stamps.min() == pd.Timestamp(end + timedelta(minutes=1))
    assert (forecast["q10"] <= forecast["q50"]).all() and (forecast["q50"] <= forecast["q90"]).all()

    online = http.post("/v1/forecast", json={"services": ["checkout"], "horizon": 3})
    assert online.status_code == 200, online.text
    assert [p["service"] for p in online.json()["forecast"]] == ["checkout"] * 3


def test_models_lists_versions_in_use(http: httpx.Client) -> None:
    answer = http.get("/v1/models")
    assert answer.status_code == 200
    body = answer.json()
    assert body["detector"]["name"] == DETECTOR
    assert body["detector"]["version"] == "1"
    assert body["forecaster"] == {
        "name": FORECASTER,
        "alias": "champion",
        "version": "1",
        "ready": True,
        "reason": "",
    }


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/v1/anomaly", {}, "exactly one of"),
        ("/v1/anomaly", {"services": ["a"], "rows": ROWS}, "exactly one of"),
        ("/v1/anomaly", {"rows": [{"service": "a", "error_rate": "high"}]}, "error_rate"),
        ("/v1/anomaly", {"rows": [{"service": "a", "error_rate": True}]}, "error_rate"),
        ("/v1/anomaly", {"rows": [{"service": "a", "error_rate": 0.1}]}, "p95_latency_ms"),
        ("/v1/anomaly", {"columns": {"service": ["a"], "error_rate": [0.1]}}, "p95_latency_ms"),
        ("/v1/anomaly", {"columns": {"service": ["a", "b"], "error_rate": [0.1]}}, "error_rate"),
        ("/v1/anomaly", {"rows": [{"error_rate": 0.1, "p95_latency_ms": 1}]}, "service"),
        ("/v1/forecast", {"services": ["checkout"], "horizon": 0}, "horizon"),
        (
            "/v1/forecast",
            {"history": [{"service": "a", "timestamp": "2025-01-01T00:00:00", "request_rate": 1}]},
            "timezone",
        ),
        (
            "/v1/forecast",
            {"history": [{"service": "a", "timestamp": "2025-01-01T00:00Z", "request_rate": 1}]},
            "rejected the input",
        ),
    ],
)
def test_malformed_requests_get_422(
    http: httpx.Client, path: str, body: dict[str, object], needle: str
) -> None:
    answer = http.post(path, json=body)
    assert answer.status_code == 422, answer.text
    assert needle in answer.text


BAD_BODIES = {
    "malformed JSON": (b'{"rows": [{"service": "a",', 400, "malformed JSON"),
    "NaN": (
        b'{"rows": [{"service": "a", "error_rate": NaN, "p95_latency_ms": 1}]}',
        422,
        "error_rate",
    ),
    "Infinity": (
        b'{"columns": {"service": ["a"], "error_rate": [0.1], "p95_latency_ms": [-Infinity]}}',
        422,
        "p95_latency_ms",
    ),
    "beyond a double": (
        b'{"rows": [{"service": "a", "error_rate": 1e999, "p95_latency_ms": 1}]}',
        422,
        "error_rate",
    ),
    "100,000 rows": (
        json.dumps(
            {"columns": {"service": ["a"] * 100_000, "error_rate": [0.0] * 100_000}}
        ).encode(),
        413,
        "'columns' has 100000 rows",
    ),
    "not an object": (b"[1, 2]", 422, "JSON object"),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_bad_anomaly_bodies_get_a_4xx_naming_the_field(http: httpx.Client, case: str) -> None:
    body, status, needle = BAD_BODIES[case]
    answer = http.post("/v1/anomaly", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == status, answer.text
    assert needle in answer.json()["detail"]


def test_an_oversized_body_is_refused_unread(http: httpx.Client) -> None:
    """A declared length over the limit is answered 413 before the body is parsed."""
    body = b'{"services": ["' + b"x" * (9 * 2**20) + b'"]}'
    answer = http.post("/v1/anomaly", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 413, answer.text[:200]
    assert "bytes" in answer.json()["detail"]


def test_columns_in_give_columns_out_with_the_same_scores_as_rows(http: httpx.Client) -> None:
    columns = {key: [row[key] for row in ROWS] for key in ROWS[0]}
    by_rows = http.post("/v1/anomaly", json={"rows": ROWS}).json()
    by_columns = http.post("/v1/anomaly", json={"columns": columns})
    assert by_columns.status_code == 200, by_columns.text
    answer = by_columns.json()["columns"]
    assert answer["service"] == [s["service"] for s in by_rows["scores"]]
    assert answer["anomaly_score"] == [s["anomaly_score"] for s in by_rows["scores"]]
    assert answer["is_anomaly"] == [False, True]


def test_bad_input_under_load_leaves_good_requests_served(http: httpx.Client) -> None:
    """Bad bodies, sent concurrently with good ones, get their 4xx; every good one gets 200."""
    bad = [body for body, _, _ in BAD_BODIES.values()]
    good_answers: list[int] = []
    bad_answers: list[int] = []

    def send_bad() -> None:
        with httpx.Client(base_url=str(http.base_url), timeout=30) as mine:
            for body in bad * 3:
                answer = mine.post(
                    "/v1/anomaly", content=body, headers={"content-type": "application/json"}
                )
                bad_answers.append(answer.status_code)

    worker = threading.Thread(target=send_bad)
    worker.start()
    while worker.is_alive() or len(good_answers) < 20:
        good_answers.append(http.post("/v1/anomaly", json={"rows": ROWS}).status_code)
    worker.join()
    assert set(good_answers) == {200}
    assert len(bad_answers) == 3 * len(bad) and all(400 <= s < 500 for s in bad_answers)


def test_promote_then_rollback_changes_the_served_version(
    http: httpx.Client, registry: Registry
) -> None:
    outcomes: list[tuple[int, str]] = []
    done = threading.Event()

    def hammer() -> None:
        while not done.is_set():
            answer = http.post("/v1/anomaly", json={"rows": ROWS})
            version = answer.json()["model"]["version"] if answer.status_code == 200 else ""
            outcomes.append((answer.status_code, version))

    worker = threading.Thread(target=hammer)
    worker.start()
    try:
        time.sleep(1)
        promote(registry.client, DETECTOR, 2, actor="test", reason="swap under load")
        moved = time.monotonic()
        while time.monotonic() - moved < 30 and not (outcomes and outcomes[-1][1] == "2"):
            time.sleep(0.1)
        swap_s = time.monotonic() - moved
    finally:
        done.set()
        worker.join()
    print(f"swap served after {swap_s:.1f} s, {len(outcomes)} requests")
    assert outcomes[-1] == (200, "2")
    assert swap_s < 30
    assert {status for status, _ in outcomes} == {200}
    versions = [version for _, version in outcomes]
    assert versions[: versions.index("2")] == ["1"] * versions.index("2")
    assert http.get("/v1/models").json()["detector"]["version"] == "2"

    # Rolling back moves the alias to the previous champion, and Serve follows it.
    rollback(registry.client, DETECTOR, actor="test", reason="v2 misbehaves")
    deadline = time.monotonic() + 30
    served = ""
    while time.monotonic() < deadline and served != "1":
        served = http.post("/v1/anomaly", json={"rows": ROWS}).json()["model"]["version"]
        time.sleep(0.2)
    assert served == "1"
    assert http.get("/v1/models").json()["detector"]["version"] == "1"


def _wait_for_health(http: httpx.Client, status: int) -> httpx.Response:
    deadline = time.monotonic() + 10 * POLL_S + 10
    while True:
        answer = http.get("/healthz")
        if answer.status_code == status or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def test_missing_alias_answers_503_and_recovers(http: httpx.Client, registry: Registry) -> None:
    registry.client.delete_registered_model_alias(FORECASTER, "champion")
    try:
        health = _wait_for_health(http, 503)
        assert health.status_code == 503
        assert any("'champion'" in reason for reason in health.json()["reasons"])
        answer = http.post("/v1/forecast", json={"services": ["checkout"]})
        assert answer.status_code == 503
        body = answer.json()
        assert (body["model"], body["alias"]) == (FORECASTER, "champion")
        assert "no version with alias 'champion'" in body["detail"]
        assert http.post("/v1/anomaly", json={"rows": ROWS}).status_code == 200
    finally:
        registry.client.set_registered_model_alias(FORECASTER, "champion", "1")
    assert _wait_for_health(http, 200).status_code == 200


def test_the_challenger_scores_in_shadow_and_never_answers(
    http: httpx.Client, registry: Registry, feature_dir: Path
) -> None:
    """With ``@challenger`` set, every request is still answered by the champion; the
    challenger's answers to the same inputs land in the shadow record beside it."""
    client = registry.client
    champion = str(client.get_model_version_by_alias(DETECTOR, "champion").version)
    source = client.get_model_version(FORECASTER, "1")
    extra = client.create_model_version(FORECASTER, some(source.source), run_id=source.run_id)
    other = "2" if champion == "1" else "1"
    promote(client, DETECTOR, other, alias="challenger", actor="test", reason="shadow")
    promote(
        client, FORECASTER, str(extra.version), alias="challenger", actor="test", reason="shadow"
    )
    try:
        deadline = time.monotonic() + 10 * POLL_S + 20
        models = http.get("/v1/models").json()
        while time.monotonic() < deadline and not (
            models.get("detector_shadow", {}).get("version") == other
            and models.get("forecaster_shadow", {}).get("version") == str(extra.version)
        ):
            time.sleep(0.2)
            models = http.get("/v1/models").json()
        assert models["detector_shadow"]["version"] == other, models
        answer = http.post("/v1/anomaly", json={"rows": ROWS})
        assert answer.json()["model"]["version"] == champion, "the challenger never answers"
        end = datetime.now(UTC).replace(second=0, microsecond=0)
        points = [
            {
                "service": r.service,
                "timestamp": r.timestamp.isoformat(),
                "request_rate": r.request_rate,
            }
            for r in _history(end, 3 * SEASON).itertuples()
        ]
        forecast = http.post("/v1/forecast", json={"history": points, "horizon": 5})
        assert forecast.status_code == 200 and forecast.json()["model"]["version"] == "1"
        shadow = feature_dir / "shadow.db"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            detected = read_shadow(shadow, "detector_shadow")
            forecasted = read_shadow(shadow, "forecaster_shadow")
            if len(detected) >= len(ROWS) and len(forecasted) >= 5 * len(SERVICES):
                break
            time.sleep(0.3)
        mine = detected[detected.challenger == other]
        assert list(mine.service[-len(ROWS) :]) == [r["service"] for r in ROWS]
        assert set(mine.champion) == {champion}
        # The same model under both aliases: the shadow answers what the champion answered.
        assert mine.challenger_score.tolist() == pytest.approx(mine.champion_score.tolist())
        assert set(forecasted.challenger) == {str(extra.version)}
        assert set(forecasted.champion) == {"1"}
        assert forecasted.challenger_q50.tolist() == pytest.approx(forecasted.champion_q50.tolist())
    finally:
        client.delete_registered_model_alias(DETECTOR, "challenger")
        client.delete_registered_model_alias(FORECASTER, "challenger")
