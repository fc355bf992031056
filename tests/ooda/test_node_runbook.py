"""Node NotReady: the loop drains a dead node once, however many services it strands, and
reads the metric families it is given without trusting garbage."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from kubernetes.client.exceptions import ApiException

from contracts import MetricFamily
from lab._kubelet import NODE_MONITOR_GRACE_S, kill_node, pods_on
from ooda.runbooks import node_not_ready
from tests._narrow import some

from ._harness import lab_kube, make_lab, make_loop, run


def test_a_dead_node_is_drained_once_and_its_pods_move() -> None:
    lab = make_lab()
    loop = make_loop(lab)
    run(lab, loop, 2)
    node = lab.cluster.nodes[0]
    services = {
        lab.services[int(lab.cluster.pod_table.service[r])] for r in pods_on(lab.cluster, node)
    }
    assert len(services) > 1, "the node holds pods of several services"
    kill_node(node, lab.clock_s)
    run(lab, loop, 2)
    entries = [e for e in loop.audit.entries() if e.action == "drain_node"]
    drains = [e for e in entries if e.kind == "action"]
    assert len(drains) == 1, [e.outcome for e in drains]
    # The other services see the same node: no second plan, not even a refused one.
    assert not [e for e in entries if e.kind == "refusal"], [e.outcome for e in entries]
    assert drains[0].target == f"node/{node.name}"
    assert pods_on(lab.cluster, node) == []
    assert some(lab.kube.core_v1.read_node(node.name).spec).unschedulable


def test_a_ready_node_is_left_alone() -> None:
    lab = make_lab()
    loop = make_loop(lab)
    run(lab, loop, 10)
    assert not [e for e in loop.audit.entries() if e.action == "drain_node"]
    assert node_not_ready.NodeNotReady.families == ()


class _GarbageFamilies:
    """The lab's source, with a node family full of NaN, negatives and future rows."""

    def __init__(self, lab: Any) -> None:
        self.lab = lab

    def query_range(self, start: datetime, end: datetime, step: timedelta) -> pd.DataFrame:
        return self.lab.source.query_range(start, end, step)

    def query_family(
        self, family: MetricFamily, start: datetime, end: datetime, step: timedelta
    ) -> pd.DataFrame:
        frame = self.lab.source.query_family(family, start, end, step)
        if family is MetricFamily.NODE and len(frame):
            frame.loc[0, "node_filesystem_avail_bytes"] = -5.0
            frame.loc[1, "node_filesystem_avail_bytes"] = np.inf
            frame.loc[2, "timestamp"] = frame.loc[2, "timestamp"] + timedelta(hours=1)
        return frame


def test_an_estate_without_a_family_reads_it_as_empty_not_failed() -> None:
    """1,000 services and no database: the lab's empty database frame (every column float)
    was reported each tick as "database metrics failed"."""
    from contracts import FAMILIES
    from ooda._observe import clean_family

    schema = FAMILIES[MetricFamily.DATABASE]
    empty = pd.DataFrame({c: pd.Series(dtype=float) for c in schema.columns})
    frame, notes = clean_family(empty, MetricFamily.DATABASE, datetime(2026, 12, 7, tzinfo=UTC))
    assert frame.empty and list(frame.columns) == list(schema.columns) and notes == []


def test_a_family_with_garbage_is_cleaned_and_reported_once() -> None:
    from ooda._observe import clean_family

    lab = make_lab()
    source = _GarbageFamilies(lab)
    now = lab.clock.now()
    frame, notes = clean_family(
        source.query_family(
            MetricFamily.NODE, now - timedelta(minutes=5), now, timedelta(minutes=1)
        ),
        MetricFamily.NODE,
        now,
    )
    assert frame["node_filesystem_avail_bytes"].isna().sum() == 2
    assert (frame["timestamp"] <= pd.Timestamp(now)).all()
    assert any("blanked" in n for n in notes) and any("future" in n for n in notes)


def test_a_family_the_source_cannot_give_is_reported_and_the_loop_goes_on() -> None:
    class _NoFamilies:
        def __init__(self, lab: Any) -> None:
            self.lab = lab

        def query_range(self, start: datetime, end: datetime, step: timedelta) -> pd.DataFrame:
            return self.lab.source.query_range(start, end, step)

    from ooda import AuditLog, ControlLoop, OodaSettings, RuleScorer
    from ooda.runbooks.node_disk_pressure import NodeDiskPressure

    lab = make_lab()
    settings = OodaSettings()
    loop = ControlLoop(
        settings,
        clock=lab.clock,
        source=_NoFamilies(lab),  # type: ignore[arg-type]  # deliberately has no query_family
        scorer=RuleScorer(),
        kube=lab_kube(lab),
        audit=AuditLog(":memory:"),
        runbooks=[NodeDiskPressure(settings)],  # reads the node family
    )
    run(lab, loop, 1)
    reports = [e for e in loop.audit.entries() if "node metrics failed" in e.outcome]
    assert len(reports) == 1
    assert loop.stats.ticks == 4


def _silent_before_the_grace_period() -> tuple[Any, Any, str]:
    """A loop's snapshot of a node whose kubelet died 30 s ago: its Lease trails, its Ready
    condition is still True, and the services with pods there fail requests."""
    lab = make_lab()
    loop = make_loop(lab)
    run(lab, loop, 2)
    node = lab.cluster.nodes[0]
    kill_node(node, lab.clock_s)
    lab.step(timedelta(seconds=30))
    snapshot = loop.observe(lab.clock.now())
    assert snapshot is not None
    return snapshot, loop, node.name


def test_a_silent_kubelet_is_drained_before_its_node_turns_not_ready() -> None:
    lab = make_lab()
    loop = make_loop(lab)
    run(lab, loop, 2)
    node = lab.cluster.nodes[0]
    kill_node(node, lab.clock_s)
    died = lab.clock.now()
    run(lab, loop, 1)
    drains = [e for e in loop.audit.entries() if e.action == "drain_node" and e.kind == "action"]
    assert len(drains) == 1
    assert drains[0].target == f"node/{node.name}"
    # The node controller turns Ready to Unknown 40 s after the kubelet's silence began.
    assert drains[0].at - died < timedelta(seconds=NODE_MONITOR_GRACE_S)
    assert "heartbeat" in str(drains[0].evidence), drains[0].evidence


def test_a_trailing_heartbeat_alone_is_not_enough() -> None:
    snapshot, loop, name = _silent_before_the_grace_period()
    assert snapshot.nodes[name].ready == "True"
    assert snapshot.nodes[name].heartbeat_lag_s >= 20
    runbook = node_not_ready.NodeNotReady(loop.settings)
    failing = [s for s in snapshot.usable() if runbook.matches(snapshot, s) is not None]
    assert failing, "the services with pods on the silent node fail requests"
    service = failing[0]
    # Without failing requests a trailing Lease may be a kubelet restarting: wait.
    view = snapshot.views[service]
    quiet = view.history.assign(error_rate=0.0)
    calm = replace(snapshot, views={**snapshot.views, service: replace(view, history=quiet)})
    assert runbook.matches(calm, service) is None
    # Most nodes trailing together is the control plane stalling, not the nodes dying.
    lagging = {n: replace(s, heartbeat_lag_s=60.0) for n, s in snapshot.nodes.items()}
    assert runbook.matches(replace(snapshot, nodes=lagging), service) is None
    # Nothing read from the Leases: only the Ready condition counts.
    unread = {n: replace(s, heartbeat_lag_s=None) for n, s in snapshot.nodes.items()}
    assert runbook.matches(replace(snapshot, nodes=unread), service) is None


def test_heartbeats_that_cannot_be_read_are_reported_and_the_condition_still_heals() -> None:
    class _Forbidden:
        def list_namespaced_lease(self, namespace: str, **_: Any) -> Any:
            raise ApiException(status=403, reason="Forbidden")

    lab = make_lab()
    kube = replace(lab_kube(lab), coordination_v1=_Forbidden())
    loop = make_loop(lab, kube=kube)
    run(lab, loop, 1)
    node = lab.cluster.nodes[0]
    kill_node(node, lab.clock_s)
    run(lab, loop, 2)
    reports = [e for e in loop.audit.entries() if "node heartbeats failed" in e.outcome]
    assert len(reports) == 1, [e.outcome for e in reports]
    drains = [e for e in loop.audit.entries() if e.action == "drain_node" and e.kind == "action"]
    assert len(drains) == 1 and "Ready=Unknown" in str(drains[0].evidence)
