"""A 5xx spike with no rollout near, logged by the service's own pods, is healed by a rollout
restart, verified and left as a finding; the restart is not read as a rollout afterwards. A
spike the pods do not log, one near a rollout, one on a sick node, one the service was
restarted for within the hour, and one while ooda's own action awaits its verdict, are not."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from contracts import NodeState, PodState, ScenarioId, WorkloadState
from lab import ScenarioInstance
from ooda import OodaSettings
from ooda._logs import TemplateSurge
from ooda._records import Snapshot
from ooda.runbooks.http_5xx_restart import Http5xxRestart
from tests._narrow import some
from tests.ooda._snapshots import region_snapshot

from ._harness import make_lab, make_loop, run

AT = datetime(2026, 11, 17, 16, 30, tzinfo=UTC)
LOGGED = TemplateSurge("ERROR pooled connection to <IP> reset", 0, 40, 5.4, "ERROR pooled ...")


def _snapshot(
    errors: tuple[float, ...] = (0.08, 0.09, 0.08),
    surges: tuple[TemplateSurge, ...] = (LOGGED,),
    calm: int = 30,
    **workload: object,
) -> Snapshot:
    """Checkout with ``errors`` in its newest minutes after ``calm`` minutes without, its
    pods logging ``surges``; ``workload`` overrides the Deployment's fields."""
    minutes = calm + len(errors)
    stamps = [AT - timedelta(minutes=minutes - 1 - i) for i in range(minutes)]
    history = pd.DataFrame(
        {
            "timestamp": stamps,
            "service": "checkout",
            "request_rate": 100.0,
            "request_rate_instant": 100.0,
            "error_rate": [0.0] * calm + list(errors),
            "p95_latency_ms": 90.0,
            "p99_latency_ms": 120.0,
            "cpu_utilisation": 0.4,
            "memory_utilisation": 0.5,
            "restarts": 0.0,
            "ready_pods": 3.0,
            "desired_pods": 3.0,
        }
    )
    pods = tuple(PodState(f"checkout-{i}", "n1", True, 0, None, True, "abc") for i in range(3))
    fields: dict[str, object] = {
        "revision": 3,
        "revision_at": AT - timedelta(days=2),
        "pods": pods,
        "current_template": "abc",
    }
    fields.update(workload)
    state = WorkloadState("shop", "checkout", "checkout", 3, 3, hpa=None, **fields)  # type: ignore[arg-type]
    nodes = {"n1": NodeState("n1", "True", False)}
    snap = region_snapshot(AT, {"checkout": state}, {"checkout": history}, nodes=nodes)
    return replace(snap, log_surges={"checkout": surges})


def test_a_logged_spike_with_no_rollout_near_is_diagnosed_after_three_minutes() -> None:
    runbook = Http5xxRestart(OodaSettings())
    found = some(runbook.matches(_snapshot(), "checkout"))
    assert found.scenario is ScenarioId.HTTP_5XX_WEDGED
    assert found.evidence["logged"] == LOGGED.template and found.evidence["minutes"] == 3
    action = runbook.propose(found, _snapshot())
    assert action.kind == "rollout_restart" and "no rollout near" in action.reason
    assert runbook.matches(_snapshot(errors=(0.08, 0.09)), "checkout") is None, "two minutes"


@pytest.mark.parametrize(
    ("why", "snapshot"),
    [
        ("the pods log nothing of it", lambda: _snapshot(surges=())),
        ("only warnings", lambda: _snapshot(surges=(replace(LOGGED, template="WARN slow"),))),
        ("errors with a rollout", lambda: _snapshot(revision_at=AT - timedelta(minutes=4))),
        ("a rollout since", lambda: _snapshot(revision_at=AT - timedelta(minutes=1))),
        ("restarted 40 min ago", lambda: _snapshot(restarted_at=AT - timedelta(minutes=40))),
        ("errors from the start", lambda: _snapshot(errors=(0.08,) * 33, calm=0)),
        (
            "a pod crash-loops",
            lambda: _snapshot(
                pods=(PodState("checkout-0", "n1", False, 4, "CrashLoopBackOff", True, "abc"),)
            ),
        ),
    ],
)
def test_no_restart_on_what_a_restart_does_not_explain(why: str, snapshot: object) -> None:
    assert callable(snapshot)
    assert Http5xxRestart(OodaSettings()).matches(snapshot(), "checkout") is None, why


def test_a_restart_an_hour_ago_no_longer_holds_it_back() -> None:
    later = _snapshot(restarted_at=AT - timedelta(minutes=61))
    assert Http5xxRestart(OodaSettings()).matches(later, "checkout") is not None


def test_a_rollout_long_before_the_errors_does_not_hold_it_back() -> None:
    """Seed 7's wedge 7: a benign rollout 8 minutes before the pods wedged; the rollback
    runbook rightly declined (the errors began after its 5 minutes), and so did this one."""
    earlier = _snapshot(revision_at=AT - timedelta(minutes=10))
    assert Http5xxRestart(OodaSettings()).matches(earlier, "checkout") is not None


def test_the_lab_s_wedged_pods_are_restarted_verified_and_left_as_a_finding() -> None:
    """Checkout's pods wedge with no rollout near: one rollout restart, verified healed, a
    finding for the owners, and no rollback of the restart's revision afterwards."""
    lab = make_lab()
    loop = make_loop(lab)
    run(lab, loop, 2)
    instance = ScenarioInstance(
        ScenarioId.HTTP_5XX_WEDGED,
        "checkout",
        magnitude=0.3,
        params={"share": 1.0, "pick": 0.0},
    )
    record = lab.inject(instance)
    run(lab, loop, 16)
    actions = loop.audit.entries("action")
    assert [a.action for a in actions] == ["rollout_restart"], actions
    assert actions[0].target == "deployment/shop/checkout"
    verdicts = [v.outcome for v in loop.audit.entries("verification")]
    assert verdicts == ["healed"], verdicts
    (finding,) = loop.audit.entries("finding")
    assert "find what wedged them" in finding.evidence["text"]
    assert lab.ground_truth[-1].ends_at is not None, record
    workload = some(loop.observe(lab.clock.now())).workloads["checkout"]
    assert workload.restarted_at is not None and workload.revision == 1


def test_the_callers_of_a_service_being_restarted_are_not_paged() -> None:
    """Payments wedges; frontend and checkout fail its calls. While payments' restart rolls
    out (and it is not diagnosed again: it was just restarted), their burn is payments'
    incident, not an unexplained one (the chaos run's first draws paged both)."""
    lab = make_lab()
    loop = make_loop(lab)
    run(lab, loop, 2)
    wedge = ScenarioInstance(
        ScenarioId.HTTP_5XX_WEDGED, "payments", magnitude=0.4, params={"share": 1.0}
    )
    lab.inject(wedge)
    run(lab, loop, 16)
    assert [(a.service, a.action) for a in loop.audit.entries("action")] == [
        ("payments", "rollout_restart")
    ]
    assert loop.audit.entries("escalation") == []
    assert [v.outcome for v in loop.audit.entries("verification")] == ["healed"]


def test_a_brownout_in_front_of_the_pods_restarts_nothing() -> None:
    """The region fails a share of frontend's requests before they reach a pod: the same
    spike in the metrics, nothing in the pods' logs, so no restart (test_unexplained has it
    escalated instead)."""
    lab = make_lab()
    loop = make_loop(lab)
    run(lab, loop, 2)
    lab.region_error_share = 0.3
    run(lab, loop, 8)
    assert loop.audit.entries("action") == []
    snapshot = some(loop.observe(lab.clock.now()))
    assert "frontend" in snapshot.log_surges, "the logs were read for the failing service"
    assert not [s for s in snapshot.log_surges["frontend"] if s.template.startswith("ERROR")]


def test_nothing_is_restarted_while_ooda_s_own_action_awaits_its_verdict() -> None:
    lab = make_lab()
    loop = make_loop(lab)
    snapshot = _snapshot()
    assert loop.actor.decide(snapshot, "checkout") is not None
    assert loop.actor.decide(snapshot, "checkout", awaiting=True) is None
