"""A node filling its disk in a cluster with no room for its pods: the loop does not drain it
(its serving pods would wait Pending), touches nothing, and tells a human why; with room, the
same fault is drained."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from contracts import ScenarioId
from lab import Lab, LabSettings, ScenarioInstance, SimClock
from tests._narrow import some

from ._harness import START, make_loop, run


def _lab(node_cpu_cores: float) -> Lab:
    """Three nodes; each service's three pods request 0.5 CPU, so 2 cores a node leave room
    for two of a drained node's three pods on the other two."""
    settings = LabSettings(seed=3)
    topology = replace(settings.topology, node_cpu_cores=node_cpu_cores)
    lab = Lab(replace(settings, topology=topology), SimClock(START - timedelta(hours=2)))
    lab.generate_history(days=2 / 24, incidents=False)
    return lab


def _fill_a_disk(lab: Lab) -> str:
    instance = ScenarioInstance(
        ScenarioId.NODE_DISK_PRESSURE, "checkout", params={"pick": 0.0, "lead_s": 600.0}
    )
    return lab.inject(instance).target


def test_a_disk_filling_on_a_full_cluster_is_escalated_not_drained() -> None:
    lab = _lab(node_cpu_cores=2.0)
    loop = make_loop(lab)
    node = _fill_a_disk(lab)
    run(lab, loop, 10)
    refusals = [e for e in loop.audit.entries("action") if e.action == "drain_node"]
    assert refusals, "the runbook proposed a drain"
    assert all("would have no node to go to" in e.outcome for e in refusals)
    assert "Insufficient cpu" in refusals[0].outcome
    escalations = [e for e in loop.audit.entries("escalation") if e.action == "drain_node"]
    assert len(escalations) == 1 and "no node to go to" in escalations[0].outcome
    assert not some(lab.kube.core_v1.read_node(node).spec).unschedulable


def test_the_same_disk_with_room_is_drained() -> None:
    lab = _lab(node_cpu_cores=16.0)
    loop = make_loop(lab)
    node = _fill_a_disk(lab)
    run(lab, loop, 10)
    applied = [
        e
        for e in loop.audit.entries("action")
        if e.action == "drain_node" and e.outcome == "applied"
    ]
    assert [e.target for e in applied] == [f"node/{node}"]
    assert not loop.audit.entries("escalation")
