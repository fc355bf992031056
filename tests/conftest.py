"""Session-wide servers: one real Kubernetes control plane (with ooda's chart installed on
demand) and one real Prometheus for every test that needs them, an Apache Kafka broker, an
SQS-compatible endpoint and a PostgreSQL server.

The control plane's binaries are built on first use. Prometheus loads a recorded lab history
(backfilled with promtool) and can scrape live targets. Where one cannot start, its tests
are skipped with the reason -- unless CI (``OODA_REQUIRE_K8S=1``, ``OODA_REQUIRE_SERVERS=1``,
set by ``.ci/run``), where that is a failure: CI can never pass without them.

``make test`` runs the suite on two pytest-xdist workers (``--dist loadgroup``): every module
that asks for one of these servers runs on one worker, so each starts once; any other module
runs whole on either worker, so its module fixtures are built once. The long modules go first,
so that neither worker is left with one at the end.
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest

from contracts import ScenarioId
from lab import Lab, LabSettings, SimClock
from lab.k8s import K8sError, KubeCluster
from lab.scenarios import scenario
from lab.servers import (
    AlertmanagerServer,
    KafkaBroker,
    PostgresServer,
    PrometheusServer,
    Server,
    ServerError,
    SqsServer,
)
from tests.k8s._chart import ChartRelease, install_chart

S = TypeVar("S", bound=Server)

#: The recorded history's first scrape.
HISTORY_START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
#: Faults played one after another over the history, so that every family moves.
HISTORY_FAULTS = (
    ScenarioId.MEMORY_LEAK,
    ScenarioId.KAFKA_CONSUMER_LAG,
    ScenarioId.NODE_DISK_PRESSURE,
    ScenarioId.POD_CRASHLOOP,
    ScenarioId.QUEUE_DEPTH,
    ScenarioId.UPSTREAM_THROTTLING,
    ScenarioId.DB_READ_LATENCY,
    ScenarioId.HTTP_5XX_SPIKE,
)


#: The session's servers: a module asking for any of them runs on the servers' worker.
SERVER_FIXTURES = frozenset(
    {
        "kube_cluster",
        "ooda_chart",
        "prometheus",
        "alertmanager",
        "alert_receiver",
        "sqs_server",
        "kafka_broker",
        "postgres",
    }
)
SERVERS_GROUP = "servers"
#: The groups of several minutes each (the end-to-end demo and served chaos; the servers'
#: modules, the `ooda run` processes among them; the notebooks), started first so neither
#: worker ends on one; the rest keep their collection order.
LONG_MODULES = ("tests/test_e2e.py", SERVERS_GROUP, "tests/notebooks/test_notebooks.py")
_DYNAMIC_FIXTURE = re.compile(r"getfixturevalue\(\s*[\"'](\w+)[\"']")


@functools.cache
def _asks_dynamically(path: Path) -> bool:
    """Whether ``path`` takes a server with ``request.getfixturevalue``."""
    return bool(SERVER_FIXTURES & set(_DYNAMIC_FIXTURE.findall(path.read_text())))


def _uses_servers(item: pytest.Item) -> bool:
    if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("k8s"):
        return True
    return _asks_dynamically(Path(str(item.fspath)))


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group each module (or every module with a server) for ``--dist loadgroup``, longest
    first."""
    root = Path(str(config.rootpath))
    modules: dict[str, str] = {}
    for item in items:
        module = Path(str(item.fspath)).relative_to(root).as_posix()
        if modules.get(module) != SERVERS_GROUP:
            modules[module] = SERVERS_GROUP if _uses_servers(item) else module
    group = {
        id(item): modules[Path(str(item.fspath)).relative_to(root).as_posix()] for item in items
    }

    def rank(item: pytest.Item) -> int:
        name = group[id(item)]
        return LONG_MODULES.index(name) if name in LONG_MODULES else len(LONG_MODULES)

    items.sort(key=rank)  # stable: collection order within each rank
    for item in items:
        item.add_marker(pytest.mark.xdist_group(group[id(item)]))


def require_server(reason: str) -> None:
    """Skip on a laptop, fail in CI: a real server that cannot start."""
    if os.environ.get("OODA_REQUIRE_SERVERS") == "1":
        pytest.fail(f"OODA_REQUIRE_SERVERS=1 but a server is unavailable: {reason}")
    pytest.skip(f"server unavailable: {reason}")


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[KubeCluster]:
    """The real control plane (KWOK nodes), started once."""
    cluster = KubeCluster()
    try:
        cluster.start()
    except K8sError as exc:
        if os.environ.get("OODA_REQUIRE_K8S") == "1":
            pytest.fail(
                f"OODA_REQUIRE_K8S=1 but the Kubernetes control plane is unavailable: {exc}"
            )
        pytest.skip(f"no Kubernetes control plane: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


def _serving(server: S, prepare: Callable[[], None] | None = None) -> Iterator[S]:
    """Start ``server`` (after ``prepare``), hand it out, stop it; one that cannot start is a
    skip here and a failure in CI."""
    try:
        if prepare is not None:
            prepare()
        server.start()
    except ServerError as exc:
        server.stop()
        require_server(str(exc))
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class RecordedLab:
    """A lab that ran a few faults, and the window it recorded."""

    lab: Lab
    start: datetime
    end: datetime


@pytest.fixture(scope="session")
def ooda_chart(kube_cluster: KubeCluster) -> ChartRelease:
    """ooda's chart rendered by helm and applied, with a kubeconfig for its ServiceAccount."""
    return install_chart(kube_cluster)


@pytest.fixture(scope="session")
def recorded_lab() -> RecordedLab:
    """Half an hour of quiet, then each of ``HISTORY_FAULTS`` for 12 minutes, cleared by hand."""
    lab = Lab(LabSettings(seed=11), SimClock(HISTORY_START))
    rng = np.random.default_rng(11)
    lab.step(timedelta(minutes=30))
    for scenario_id in HISTORY_FAULTS:
        record = lab.inject(scenario(scenario_id).draw(rng, lab))
        lab.step(timedelta(minutes=12))
        lab.clear(record)
        lab.step(timedelta(minutes=3))
    return RecordedLab(lab, HISTORY_START, lab.clock.now())


@pytest.fixture(scope="session")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, recorded_lab: RecordedLab
) -> Iterator[PrometheusServer]:
    """Debian's Prometheus holding ``recorded_lab``'s history; lookback = the lab's 1-minute
    gauge window, so gauges compare sample for sample."""
    workdir: Path = tmp_path_factory.mktemp("prometheus")
    server = PrometheusServer(workdir, lookback=timedelta(minutes=1))
    history = recorded_lab.lab.source.history_openmetrics()
    yield from _serving(server, lambda: server.backfill(history))


class Receiver:
    """A local HTTP receiver of alerts: every JSON body POSTed to it, in order."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, object]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                received.append(json.loads(self.rfile.read(length) or b"null"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture(scope="session")
def alert_receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture(scope="session")
def alertmanager(
    tmp_path_factory: pytest.TempPathFactory, alert_receiver: Receiver
) -> Iterator[AlertmanagerServer]:
    """Debian's Alertmanager, routing every alert to ``alert_receiver``."""
    server = AlertmanagerServer(tmp_path_factory.mktemp("alertmanager"), alert_receiver.url)
    yield from _serving(server)


@pytest.fixture(scope="session")
def sqs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqsServer]:
    """An SQS-compatible endpoint (moto's server); tests ``reset`` it before use."""
    yield from _serving(SqsServer(tmp_path_factory.mktemp("sqs")))


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A real Apache Kafka broker (KRaft, one node)."""
    yield from _serving(KafkaBroker(tmp_path_factory.mktemp("kafka")))


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """Debian's PostgreSQL; a test takes a database of its own with ``database()``."""
    yield from _serving(PostgresServer(tmp_path_factory.mktemp("postgres")))
