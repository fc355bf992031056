"""The failover's probes of a region from outside it: an HTTP request from where ooda runs,
or the blackbox exporter's ``probe_success`` read from Prometheus -- the second against
Debian's blackbox exporter, scraped by the session's real Prometheus, probing two regions'
``/healthz``, one of which goes down."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from features import PrometheusSettings, PrometheusSource
from lab import Lab, LabSettings, LiveLab, SimClock
from lab.servers import BlackboxExporter, PrometheusServer
from ooda import ConfigError
from ooda._config import PROBE_QUERY, validate
from ooda._failover_run import HttpProbe, PrometheusProbe, make_probe
from tests.conftest import _serving

REPO = Path(__file__).resolve().parents[2]
HOME, STANDBY = "eu-west-1", "eu-central-1"


def _config(**failover: Any) -> dict[str, Any]:
    raw = yaml.safe_load((REPO / "deploy" / "lab.yaml").read_text())
    raw["regions"] = [{**raw["regions"][0], "name": HOME}, {**raw["regions"][0], "name": STANDBY}]
    raw["failover"] = {"record": "shop.example.com", "hosted_zone_id": "Z0123", **failover}
    return raw


def _prometheus_answering(
    answer: Callable[[httpx.Request], httpx.Response],
) -> PrometheusSource:
    settings = PrometheusSettings(url="http://prom.test", region="probes", attempts=2)
    return PrometheusSource(settings, transport=httpx.MockTransport(answer), sleep=lambda _s: None)


def _vector(*values: str) -> dict[str, Any]:
    result = [{"metric": {"prober": str(i)}, "value": [0, v]} for i, v in enumerate(values)]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def test_a_region_is_judged_on_every_probers_answers() -> None:
    queries: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        queries.append(request.url.params["query"])
        values = {HOME: ("1", "0", "0.5", "NaN"), STANDBY: ()}
        region = HOME if HOME in queries[-1] else STANDBY
        return httpx.Response(200, json=_vector(*values[region]))

    probe = PrometheusProbe(_prometheus_answering(answer), PROBE_QUERY)
    assert probe(HOME) == pytest.approx(0.5)  # NaN is no answer, not a failure
    assert probe(STANDBY) is None  # no series: no probe answer, not a dead region
    assert queries == [PROBE_QUERY.replace("{region}", r) for r in (HOME, STANDBY)]


def test_a_prometheus_that_cannot_answer_says_nothing_and_is_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = True

    def answer(request: httpx.Request) -> httpx.Response:
        if down:
            return httpx.Response(503, text="overloaded")
        return httpx.Response(200, json=_vector("1"))

    probe = PrometheusProbe(_prometheus_answering(answer), PROBE_QUERY)
    with caplog.at_level(logging.INFO, logger="ooda.failover"):
        assert probe(HOME) is None
        assert probe(HOME) is None
        down = False
        assert probe(HOME) == 1.0
    unread = [r.getMessage() for r in caplog.records if "unread" in r.getMessage()]
    assert len(unread) == 1 and "503" in unread[0], unread
    assert any("read again" in r.getMessage() for r in caplog.records)


def test_a_query_that_is_not_a_vector_is_no_answer() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        body = {"status": "success", "data": {"resultType": "scalar", "result": [0, "1"]}}
        return httpx.Response(200, json=body)

    assert PrometheusProbe(_prometheus_answering(answer), PROBE_QUERY)(HOME) is None


@pytest.mark.parametrize(
    ("failover", "message"),
    [
        (
            {"probe_prometheus": {"url": "http://p:9090"}, "probes": {HOME: "http://h/healthz"}},
            "give probes or probe_prometheus, not both",
        ),
        (
            {"probe_prometheus": {"url": "http://p:9090", "query": "avg(probe_success)"}},
            "failover.probe_prometheus.query: must contain {region} to tell the regions apart",
        ),
        ({"probes": {HOME: "http://h/healthz"}}, "missing ['eu-central-1']"),
    ],
)
def test_a_failover_needs_one_kind_of_probe_for_every_region(
    failover: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        validate(_config(**failover))
    assert message in str(caught.value)


def test_the_configured_probe_is_the_one_built() -> None:
    http = make_probe(validate(_config(probes={HOME: "http://h/", STANDBY: "http://s/"})))
    from_prometheus = make_probe(validate(_config(probe_prometheus={"url": "http://p:9090"})))
    assert isinstance(http, HttpProbe) and isinstance(from_prometheus, PrometheusProbe)
    assert from_prometheus.query == PROBE_QUERY
    assert from_prometheus.source.settings.url == "http://p:9090"
    http.close()
    from_prometheus.close()


@pytest.fixture
def blackbox(tmp_path: Path) -> Iterator[BlackboxExporter]:
    yield from _serving(BlackboxExporter(tmp_path / "blackbox"))


def _until(predicate: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.5)


def test_the_blackbox_exporters_probes_call_a_dead_region_down(
    prometheus: PrometheusServer, blackbox: BlackboxExporter
) -> None:
    labs = {
        r: LiveLab(Lab(LabSettings(seed=5), SimClock(datetime.now(UTC)))).start()
        for r in (HOME, STANDBY)
    }
    urls = {r: f"http://127.0.0.1:{live.port}/healthz" for r, live in labs.items()}
    job = f"blackbox-{id(labs):x}"
    config = validate(_config(probe_prometheus={"url": prometheus.url, "timeout": "2s"}))
    probe = make_probe(config)
    here = HttpProbe(urls, timeout_s=2)
    try:
        prometheus.probe(
            job,
            blackbox.address,
            {u: {"region": r} for r, u in urls.items()},
            interval=timedelta(seconds=1),
        )
        _until(lambda: probe(HOME) == 1.0 and probe(STANDBY) == 1.0, "both regions' probes to pass")
        assert here(HOME) == here(STANDBY) == 1.0
        with labs[HOME].lock:
            labs[HOME].lab.region_down = True
        floor = config.failover_settings().failover.probe_floor
        _until(lambda: (p := probe(HOME)) is not None and p < floor, "the home's probes to fail")
        assert probe(STANDBY) == 1.0
        assert here(HOME) == 0.0 and here(STANDBY) == 1.0
    finally:
        prometheus.probe(job, blackbox.address, {})
        probe.close()
        here.close()
        for live in labs.values():
            live.stop()
