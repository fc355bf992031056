"""Orient on the lab: the estate's components come from its metric families, and a slow
database three calls below the symptom is named as the root cause, not the services it slows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from contracts import MetricFamily, ScenarioId
from lab import Lab, LabSettings, SimClock
from lab.scenarios import scenario
from ooda import OodaSettings
from ooda._orient import estate_graph, orient

START = datetime(2025, 1, 8, 8, tzinfo=UTC)


def _frames(lab: Lab, minutes: int):
    now = lab.clock.now()
    since = now - timedelta(minutes=minutes)
    step = timedelta(minutes=1)
    services = lab.source.query_range(since, now, step)
    families = {f: lab.source.query_family(f, since, now, step) for f in MetricFamily}
    return services, families


def test_the_graph_joins_services_to_what_their_families_name() -> None:
    lab = Lab(LabSettings(seed=2), SimClock(START))
    lab.step(timedelta(minutes=10))
    _, families = _frames(lab, 10)
    graph = estate_graph(OodaSettings().calls, families)
    assert graph["frontend"][0] == "checkout" and "payments" in graph["checkout"]
    assert {"payments-db", "payments-db-replica", "card-gateway", "orders"} <= set(
        graph["payments"]
    )
    assert "receipts" in graph["checkout"]
    nodes = set(families[MetricFamily.NODE].node)
    assert nodes & set(graph["payments"]) and all(graph[n] == [] for n in nodes)


def test_a_slow_database_three_calls_down_is_the_root_cause() -> None:
    lab = Lab(LabSettings(seed=4), SimClock(START))
    lab.step(timedelta(minutes=90))
    record = lab.inject(scenario(ScenarioId.DB_READ_LATENCY).draw(np.random.default_rng(4), lab))
    lab.step(timedelta(minutes=10))
    services, families = _frames(lab, 100)
    target = record.felt_by[0]
    causes = orient(OodaSettings().calls, services, families, target, record.injected_at)
    assert causes[0].node == record.root_cause == "payments-db", causes[:3]
    assert causes[0].path == ("frontend", "checkout", "payments", "payments-db")


def test_a_quiet_estate_has_no_root_cause() -> None:
    lab = Lab(LabSettings(seed=4), SimClock(START))
    lab.step(timedelta(minutes=100))
    services, families = _frames(lab, 100)
    at = lab.clock.now() - timedelta(minutes=10)
    assert orient(OodaSettings().calls, services, families, "frontend", at) == []
