"""Orient on the lab: the estate's components come from its metric families, and a slow
database three calls below the symptom is named as the root cause, not the services it slows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from contracts import MetricFamily, ScenarioId
from lab import Lab, LabSettings, SimClock
from lab.scenarios import scenario
from ooda import OodaSettings
from ooda._orient import estate_graph, orient, orientations

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


def test_what_the_metrics_do_not_allow_ranking_is_said_not_left_blank() -> None:
    """No history before the judged window (a loop just started), or none of the symptom's
    service in it: nothing is ranked, and the orientation says why; with history on both
    sides of the cut there is nothing to explain."""
    lab = Lab(LabSettings(seed=4), SimClock(START))
    lab.step(timedelta(minutes=30))
    services, families = _frames(lab, 30)
    calls = OodaSettings().calls
    now = lab.clock.now()
    young = orientations(calls, services, families, {"frontend": "p95"}, now - timedelta(hours=1))
    assert young["frontend"].causes == ()
    assert young["frontend"].unranked.startswith("no metrics both before and after")
    blind = services[services["service"] != "frontend"]
    cut = now - timedelta(minutes=5)
    gone = orientations(calls, blind, {}, {"frontend": "p95"}, cut)["frontend"]
    assert gone.unranked == f"no signal of frontend after {cut:%H:%M}"
    quiet = orientations(calls, services, families, {"frontend": "p95"}, cut)["frontend"]
    assert quiet.unranked == ""
