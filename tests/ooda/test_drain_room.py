"""A node filling its disk in a cluster with no room for its pods: the loop does not drain it
(its serving pods would wait Pending), touches nothing, and tells a human why; with room, the
same fault is drained, and so it is into Pending where the cluster adds nodes."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from actuators import ACTION, CHANGED_BY, FIELD_MANAGER
from contracts import ScenarioId
from lab import Lab, LabSettings, ScenarioInstance, SimClock
from ooda import AuditEntry, ControlLoop, OodaSettings
from ooda.runbooks.node_disk_pressure import NodeDiskPressure
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


@pytest.mark.parametrize("by", ["ooda", "a human", "a human after ooda"])
def test_a_drain_that_stopped_is_resumed_but_a_humans_cordon_is_left(by: str) -> None:
    """A drain that stopped (ooda restarted between its steps, say) leaves the node cordoned
    with the pods still on it. The loop resumes its own drain; a node a human cordoned is
    their maintenance, left alone until the kubelet evicts -- also when ooda had cordoned it
    before and the human uncordoned and cordoned it again, which leaves ooda's annotations on
    the node (the API server's field ownership says whose the cordon is)."""
    lab = _lab(node_cpu_cores=16.0)
    loop = make_loop(lab)
    node = _fill_a_disk(lab)
    core = lab.kube.core_v1
    if by != "a human":
        notes = {CHANGED_BY: "ooda", ACTION: "drain_node"}
        body = {"metadata": {"annotations": notes}, "spec": {"unschedulable": True}}
        core.patch_node(node, body, field_manager=FIELD_MANAGER)
    if by != "ooda":
        core.patch_node(node, {"spec": {"unschedulable": None}}, field_manager="kubectl-cordon")
        core.patch_node(node, {"spec": {"unschedulable": True}}, field_manager="kubectl-cordon")
    run(lab, loop, 10)
    drained = [e for e in loop.audit.entries("action") if e.action == "drain_node"]
    assert [e.outcome for e in drained][:1] == (["applied"] if by == "ooda" else [])


def _hold_budgets(lab: Lab) -> list[str]:
    """A PodDisruptionBudget at zero on every service (a rollout holding it); the services."""
    services = [s.name for s in lab.settings.topology.services]
    for app in services:
        held = {
            "metadata": {"name": app},
            "spec": {"selector": {"matchLabels": {"app": app}}, "maxUnavailable": 0},
        }
        lab.kube.policy_v1.create_namespaced_pod_disruption_budget("shop", held)
    return services


def _held_drain(release_after: float | None) -> tuple[Lab, ControlLoop, str]:
    """A disk filling (the kubelet's threshold in 25 minutes) on a lab whose every
    PodDisruptionBudget lets no pod go (rollouts holding them at zero) until
    ``release_after`` minutes after the first drain stopped (None: never); the loop runs 9
    minutes from then, before the kubelet would evict."""
    lab = _lab(node_cpu_cores=16.0)
    loop = make_loop(lab)
    services = _hold_budgets(lab)
    instance = ScenarioInstance(
        ScenarioId.NODE_DISK_PRESSURE, "checkout", params={"pick": 0.0, "lead_s": 1500.0}
    )
    node = lab.inject(instance).target
    first = _first_drain(lab, loop)
    assert first.outcome == "applied" and first.target == f"node/{node}"
    after = first.evidence["result"]["after"]
    assert after["waiting_on_budget"] and not after["evicted"]
    if release_after is not None:
        run(lab, loop, release_after)
        for app in services:
            lab.kube.policy_v1.delete_namespaced_pod_disruption_budget(app, "shop")
    run(lab, loop, 9 - (release_after or 0))
    return lab, loop, node


def _drains(loop: ControlLoop) -> list[AuditEntry]:
    return [e for e in loop.audit.entries("action") if e.action == "drain_node"]


def _first_drain(lab: Lab, loop: ControlLoop) -> AuditEntry:
    """The first drain's result, the loop run until it comes (20 minutes at most)."""
    for _ in range(20 * 4):
        if _drains(loop):
            break
        run(lab, loop, 0.25)
    return some(_drains(loop)[0] if _drains(loop) else None)


def test_a_drain_its_budgets_stop_is_applied_in_part_and_continued_as_one_heal() -> None:
    """The budgets did their job: the drain that stopped on them is applied in part and no
    failed heal is counted; once they allow, the next drain of the node (after the cooldown)
    empties it. The two are one heal, judged once."""
    lab, loop, node = _held_drain(release_after=3)
    steps = _drains(loop)
    assert [e.outcome for e in steps] == ["applied", "applied"]
    verdicts = [e.outcome for e in loop.audit.entries("verification") if e.action == "drain_node"]
    assert verdicts == ["continued"] * (len(steps) - 1) + ["healed"]
    assert loop.budget.failed("drain_node", lab.clock.now()) == 0
    pods = lab.kube.core_v1.list_namespaced_pod("shop").items
    assert not [p for p in pods if some(p.spec).node_name == node]


def test_a_drain_its_budgets_never_allow_fails_by_the_first_steps_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Steps do not renew the deadline: a budget that never lets the drain finish fails the
    heal at the first step's deadline (made 6 minutes here, so that it comes after the second
    step, 5 minutes on, and before the kubelet's own evictions), and a human is told."""
    monkeypatch.setattr(NodeDiskPressure, "deadline", timedelta(minutes=6))
    lab, loop, _ = _held_drain(release_after=None)
    first = _drains(loop)[0]
    verdicts = [e for e in loop.audit.entries("verification") if e.action == "drain_node"]
    failed = some(next((e for e in verdicts if e.outcome == "failed"), None))
    # The deadline, and the tick after the second drain's own 90 s of retries.
    assert failed.at - first.at <= timedelta(minutes=8)
    assert loop.budget.failed("drain_node", lab.clock.now()) == 1
    assert [e for e in loop.audit.entries("escalation") if e.action == "drain_node"]


def test_a_drain_stops_when_the_lease_lapses_and_the_next_leader_finishes_it() -> None:
    """A drain waiting on its budgets stops at its next round once this replica's Lease
    lapses (another may act 15 s on), refused, not failed, and not after its 90 s; the next
    leader, rebuilt from the same audit log, drains the node once the budgets allow."""
    lab = _lab(node_cpu_cores=16.0)
    services = _hold_budgets(lab)
    node = _fill_a_disk(lab)
    loop = make_loop(lab)

    def leading() -> bool:
        began = [e.at for e in loop.audit.entries("intent") if e.action == "drain_node"]
        return not began or lab.clock.now() < began[0] + timedelta(seconds=20)

    loop._may_act = leading
    stopped = _first_drain(lab, loop)
    intent = next(e for e in loop.audit.entries("intent") if e.action == "drain_node")
    assert stopped.outcome.startswith("refused: this replica may act no more"), stopped.outcome
    assert stopped.at - intent.at < timedelta(seconds=40)
    assert loop.budget.failed("drain_node", lab.clock.now()) == 0
    on_node = [
        p
        for p in lab.kube.core_v1.list_namespaced_pod("shop").items
        if some(p.spec).node_name == node
    ]
    assert on_node and some(lab.kube.core_v1.read_node(node).spec).unschedulable

    for app in services:
        lab.kube.policy_v1.delete_namespaced_pod_disruption_budget(app, "shop")
    successor = make_loop(lab, audit=loop.audit)
    run(lab, successor, 8)
    assert [e.outcome for e in _drains(successor)][-1] == "applied"
    pods = lab.kube.core_v1.list_namespaced_pod("shop").items
    assert not [p for p in pods if some(p.spec).node_name == node]
