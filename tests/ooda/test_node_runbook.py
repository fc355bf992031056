"""Node NotReady: the loop drains a dead node once, however many services it strands, and
reads the metric families it is given without trusting garbage."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from contracts import MetricFamily
from lab._kubelet import kill_node, pods_on
from ooda.runbooks import node_not_ready

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
    assert lab.kube.core_v1.read_node(node.name).spec.unschedulable


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
        source=_NoFamilies(lab),
        scorer=RuleScorer(),
        kube=lab_kube(lab),
        audit=AuditLog(":memory:"),
        runbooks=[NodeDiskPressure(settings)],  # reads the node family
    )
    run(lab, loop, 1)
    reports = [e for e in loop.audit.entries() if "node metrics failed" in e.outcome]
    assert len(reports) == 1
    assert loop.stats.ticks == 4
