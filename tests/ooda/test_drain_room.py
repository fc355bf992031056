"""A node filling its disk in a cluster with no room for its pods: the loop does not drain it
(its serving pods would wait Pending), touches nothing, and tells a human why; with room, the
same fault is drained, and so it is into Pending where the cluster adds nodes."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from actuators import ACTION, CHANGED_BY
from contracts import ScenarioId
from lab import Lab, LabSettings, ScenarioInstance, SimClock
from ooda import AuditEntry, ControlLoop, OodaSettings
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


def _drained(node_cpu_cores: float, settings: OodaSettings) -> tuple[ControlLoop, list[AuditEntry]]:
    """A disk filling for ten minutes on a lab with nodes of ``node_cpu_cores``: the loop and
    its applied drains, each checked to be of the filling node, now cordoned."""
    lab = _lab(node_cpu_cores)
    loop = make_loop(lab, settings)
    node = _fill_a_disk(lab)
    run(lab, loop, 10)
    applied = [
        e
        for e in loop.audit.entries("action")
        if e.action == "drain_node" and e.outcome == "applied"
    ]
    assert all(e.target == f"node/{node}" for e in applied)
    assert not applied or some(lab.kube.core_v1.read_node(node).spec).unschedulable
    return loop, applied


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
    loop, applied = _drained(16.0, OodaSettings())
    assert len(applied) == 1
    assert not loop.audit.entries("escalation")


def test_a_cluster_that_adds_nodes_is_drained_into_pending() -> None:
    """The same full cluster with a node autoscaler behind it (``nodes_on_demand``): the drain
    goes ahead, and the audit names the pods that wait Pending for the node it adds."""
    _, applied = _drained(2.0, OodaSettings(nodes_on_demand=True))
    assert len(applied) == 1
    pending = applied[0].evidence["result"]["before"]["pending"]
    assert pending and all("Insufficient cpu" in why for why in pending.values())


@pytest.mark.parametrize("by", ["ooda", "a human"])
def test_a_drain_that_stopped_is_resumed_but_a_humans_cordon_is_left(by: str) -> None:
    """A drain whose PodDisruptionBudgets refused for the whole retry window (seed 41: the
    HPA adding pods under a wave kept every budget at zero) leaves the node cordoned with the
    pods still on it. The loop resumes its own drain once the cooldown allows; a node a human
    cordoned is their maintenance, left alone until the kubelet evicts."""
    lab = _lab(node_cpu_cores=16.0)
    loop = make_loop(lab)
    node = _fill_a_disk(lab)
    notes = {CHANGED_BY: "ooda", ACTION: "drain_node"} if by == "ooda" else {}
    body = {"metadata": {"annotations": notes}, "spec": {"unschedulable": True}}
    lab.kube.core_v1.patch_node(node, body)
    run(lab, loop, 10)
    drained = [e for e in loop.audit.entries("action") if e.action == "drain_node"]
    assert [e.outcome for e in drained] == (["applied"] if by == "ooda" else [])


def test_a_drain_its_budgets_stop_is_applied_in_part_and_continued_not_failed() -> None:
    """PodDisruptionBudgets that let no pod go (rollouts holding them at zero) stop the drain
    with the pods on the cordoned node. The budgets did their job: the drain is applied in
    part and no failed heal is counted. Once they allow again, the next drain of the node
    continues the same heal, which is judged once."""
    lab = _lab(node_cpu_cores=16.0)
    loop = make_loop(lab)
    services = [s.name for s in lab.settings.topology.services]
    for app in services:
        held = {
            "metadata": {"name": app},
            "spec": {"selector": {"matchLabels": {"app": app}}, "maxUnavailable": 0},
        }
        lab.kube.policy_v1.create_namespaced_pod_disruption_budget("shop", held)
    instance = ScenarioInstance(
        ScenarioId.NODE_DISK_PRESSURE, "checkout", params={"pick": 0.0, "lead_s": 1200.0}
    )
    node = lab.inject(instance).target

    def drains() -> list[AuditEntry]:
        return [e for e in loop.audit.entries("action") if e.action == "drain_node"]

    for _ in range(12 * 4):
        if drains():
            break
        run(lab, loop, 0.25)
    first = some(drains()[0] if drains() else None)
    assert first.outcome == "applied" and first.target == f"node/{node}"
    after = first.evidence["result"]["after"]
    assert after["waiting_on_budget"] and not after["evicted"]
    assert loop.budget.failed("drain_node", lab.clock.now()) == 0
    for app in services:
        lab.kube.policy_v1.delete_namespaced_pod_disruption_budget(app, "shop")
    run(lab, loop, 8)
    assert [e.outcome for e in drains()] == ["applied", "applied"]
    verdicts = [e.outcome for e in loop.audit.entries("verification") if e.action == "drain_node"]
    assert verdicts == ["continued", "healed"]
    assert loop.budget.failed("drain_node", lab.clock.now()) == 0
    pods = lab.kube.core_v1.list_namespaced_pod("shop").items
    assert not [p for p in pods if some(p.spec).node_name == node]
