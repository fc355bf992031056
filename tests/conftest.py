"""Session-wide servers: one real Prometheus for every test that needs one.

The server loads a recorded lab history (backfilled with promtool) and can scrape live
targets. Where it cannot start, its tests are skipped with the reason -- unless CI
(``OODA_REQUIRE_SERVERS=1``, set by ``.ci/run``), where that is a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from contracts import ScenarioId
from lab import Lab, LabSettings, SimClock
from lab.scenarios import scenario
from lab.servers import PrometheusServer, ServerError

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


def require_server(reason: str) -> None:
    """Skip on a laptop, fail in CI: a real server that cannot start."""
    if os.environ.get("OODA_REQUIRE_SERVERS") == "1":
        pytest.fail(f"OODA_REQUIRE_SERVERS=1 but a server is unavailable: {reason}")
    pytest.skip(f"server unavailable: {reason}")


@dataclass(frozen=True)
class RecordedLab:
    """A lab that ran a few faults, and the window it recorded."""

    lab: Lab
    start: datetime
    end: datetime


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
    try:
        server.backfill(recorded_lab.lab.source.history_openmetrics())
        server.start()
    except ServerError as exc:
        server.stop()
        require_server(str(exc))
    try:
        yield server
    finally:
        server.stop()
