"""Two replicas of each model on this machine: both serve, directly and through the proxy.

Starts its own Serve application (the module in ``test_app.py`` has stopped its own by
then), from a registry and feature store of its own (``conftest.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ray import serve
from ray.serve.schema import ReplicaState

from serving import RunningApp, ServingSettings, free_serve_port, start, stop
from tests.serving._shared import ROWS, Registry


@pytest.fixture(scope="module")
def two_of_each(registry: Registry, feature_dir: Path) -> Iterator[RunningApp]:
    settings = ServingSettings(
        tracking_uri=registry.uri,
        feature_data_dir=feature_dir,
        port=free_serve_port(),
        ingress_replicas=2,
        forecaster_replicas=2,
        ray_num_cpus=2,
        start_timeout_s=240,
    )
    running = start(settings)
    try:
        yield running
    finally:
        stop()


def test_two_replicas_per_model_serve_directly_and_through_the_proxy(
    two_of_each: RunningApp,
) -> None:
    deployments = serve.status().applications["ooda"].deployments
    for name in ("ScoringAPI", "LoadForecaster"):
        running = deployments[name].replica_states.get(ReplicaState.RUNNING, 0)
        assert running == 2, (name, deployments[name].replica_states)
    port = int(two_of_each.url.rsplit(":", 1)[1])
    direct = {f"http://127.0.0.1:{p}" for p in range(port, port + 16)}
    answering = set()
    for url in sorted(direct):
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                answering.add(url)
        except httpx.HTTPError:
            continue
    assert len(answering) == 2, answering
    with httpx.Client(base_url=two_of_each.proxy_url, timeout=30) as http:
        answers = [http.post("/v1/anomaly", json={"rows": ROWS}) for _ in range(20)]
        assert {a.status_code for a in answers} == {200}
        forecast = http.post("/v1/forecast", json={"services": ["checkout"], "horizon": 3})
        assert forecast.status_code == 200, forecast.text
