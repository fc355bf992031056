"""The diagnosis drives the decision: a symptom is healed where its root cause is.

Unit tests of the decide rule with two stand-in runbooks (a capacity one that would scale
any slow service, a database one that only the database's user matches), then the loop on
the lab: a slow database three calls below the entry service is named as the root cause of
each caller's symptom, and the database's heal carries the ranking in its evidence.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from actuators import Action, ActionContext, Guard, ScaleDeployment, SwitchDatabase
from contracts import KubeClients, ScenarioId, WorkloadState
from lab import Lab, LabSettings, SimClock
from lab.scenarios import scenario
from ooda import AuditLog, OodaSettings
from ooda._act import Actor
from ooda._autonomy import ErrorBudget
from ooda._journal import Journal
from ooda._records import (
    ComponentKind,
    Diagnosis,
    Orientation,
    RootCause,
    Snapshot,
)
from ooda.runbooks import Runbook
from tests.ooda._harness import make_loop, run
from tests.ooda._snapshots import region_snapshot

NOW = datetime(2025, 1, 8, 12, tzinfo=UTC)
SERVICES = ("checkout", "payments")


class ScaleWhenSlow(Runbook):
    """Stands in for a capacity runbook: every slow service gets more pods."""

    name = "scale_when_slow"
    scenarios = (ScenarioId.LATENCY_P95,)
    priority = 10
    follows_root_cause = True

    def matches(self, snapshot: Snapshot, service: str) -> Diagnosis | None:
        return self.diagnose(snapshot, service, 0.6, {})

    def propose(self, diagnosis: Diagnosis, snapshot: Snapshot) -> Action | None:
        return ScaleDeployment("shop", diagnosis.service, deployment=diagnosis.service, replicas=9)


class FailOverDatabase(Runbook):
    """Stands in for the database runbook: only the database's user matches it."""

    name = "fail_over_database"
    scenarios = (ScenarioId.DB_READ_LATENCY,)
    priority = 50
    heals = ComponentKind.DATABASE
    users: tuple[str, ...] = ("payments",)

    def matches(self, snapshot: Snapshot, service: str) -> Diagnosis | None:
        if service not in self.users:
            return None
        return self.diagnose(snapshot, service, 0.9, {}, target="service/shop/payments-db")

    def propose(self, diagnosis: Diagnosis, snapshot: Snapshot) -> Action | None:
        return SwitchDatabase(
            "shop", diagnosis.service, db_service="payments-db", secondary="payments-db-replica"
        )


def _cause(component: str, kind: ComponentKind, owners: tuple[str, ...]) -> RootCause:
    return RootCause(component, kind, 6.5, 190.0, ("checkout", "payments", component), owners)


def _snapshot(orientation: dict[str, Orientation]) -> Snapshot:
    history = pd.DataFrame(
        {"timestamp": pd.date_range(end=NOW, periods=5, freq="1min"), "p95_latency_ms": 170.0}
    )
    workloads = {s: WorkloadState("shop", s, s, 3, 3, 1, None, (), None) for s in SERVICES}
    return region_snapshot(
        NOW, workloads, dict.fromkeys(SERVICES, history), orientation=orientation
    )


def _orientation(cause: RootCause, symptoms: tuple[str, ...] = SERVICES) -> dict[str, Orientation]:
    return {
        s: Orientation(s, "p95 170 ms", NOW - timedelta(minutes=10), (cause,)) for s in symptoms
    }


def _actor(follow: bool = True, users: tuple[str, ...] = ("payments",)) -> Actor:
    settings = OodaSettings()
    settings = replace(settings, loop=replace(settings.loop, follow_root_cause=follow))
    database = FailOverDatabase(settings)
    database.users = users
    return Actor(
        settings,
        [ScaleWhenSlow(settings), database],
        Guard(),
        ErrorBudget(settings.autonomy),
        Journal(AuditLog(":memory:")),
        ActionContext(KubeClients(None, None, None), sleep=lambda _s: None),
    )


DATABASE_OF_PAYMENTS = _cause("payments-db", ComponentKind.DATABASE, ("payments",))


def test_a_symptom_whose_cause_another_service_heals_is_left_to_it() -> None:
    actor = _actor()
    snapshot = _snapshot(_orientation(DATABASE_OF_PAYMENTS))
    assert actor.decide(snapshot, "checkout") is None
    deferred = [e for e in actor.journal.events if e.kind == "deferred"]
    assert [e.service for e in deferred] == ["checkout"]
    assert "left to payments" in deferred[0].detail and "payments-db" in deferred[0].detail


def test_the_runbook_of_the_root_cause_is_tried_first() -> None:
    plan = _actor().decide(_snapshot(_orientation(DATABASE_OF_PAYMENTS)), "payments")
    assert plan is not None and isinstance(plan.action, SwitchDatabase)
    assert plan.diagnosis.evidence["root_causes"][0] == {
        "component": "payments-db",
        "kind": "database",
        "score": 6.5,
    }
    assert plan.diagnosis.evidence["symptom"] == "p95 170 ms"


def test_off_each_service_is_decided_on_its_own_symptoms() -> None:
    actor = _actor(follow=False)
    snapshot = _snapshot(_orientation(DATABASE_OF_PAYMENTS))
    for service in SERVICES:
        plan = actor.decide(snapshot, service)
        assert plan is not None and isinstance(plan.action, ScaleDeployment), service


def test_with_nothing_to_heal_at_the_cause_the_symptom_is_healed_where_it_shows() -> None:
    """payments is slow too, but nothing of its diagnosis heals its database."""
    actor = _actor(users=())
    plan = actor.decide(_snapshot(_orientation(DATABASE_OF_PAYMENTS)), "checkout")
    assert plan is not None and isinstance(plan.action, ScaleDeployment)
    assert not [e for e in actor.journal.events if e.kind == "deferred"]


def test_a_runbook_of_the_services_own_load_never_defers() -> None:
    actor = _actor()
    actor.runbooks[0].follows_root_cause = False  # type: ignore[misc]
    plan = actor.decide(_snapshot(_orientation(DATABASE_OF_PAYMENTS)), "checkout")
    assert plan is not None and isinstance(plan.action, ScaleDeployment)


@pytest.mark.parametrize(
    "cause",
    [
        _cause("checkout", ComponentKind.SERVICE, ("checkout",)),
        _cause("ip-10-0-1-10", ComponentKind.NODE, ("checkout", "payments")),
    ],
    ids=["itself", "a-node-it-runs-on"],
)
def test_a_cause_the_service_owns_is_its_own_to_heal(cause: RootCause) -> None:
    plan = _actor().decide(_snapshot(_orientation(cause, ("checkout",))), "checkout")
    assert plan is not None and plan.diagnosis.service == "checkout"


START = datetime(2025, 1, 8, 8, tzinfo=UTC)


def test_the_loop_names_a_slow_database_three_calls_down_for_every_caller() -> None:
    """Dry-run, so the database stays slow and the symptom climbs the call graph."""
    lab = Lab(LabSettings(seed=4), SimClock(START))
    lab.step(timedelta(minutes=90))
    audit = AuditLog(":memory:")
    loop = make_loop(lab, OodaSettings(dry_run=True), audit=audit)
    run(lab, loop, 2)
    record = lab.inject(scenario(ScenarioId.DB_READ_LATENCY).draw(np.random.default_rng(4), lab))
    run(lab, loop, 10)
    named = {e.service: e.detail for e in loop.events if e.kind == "root cause"}
    assert set(record.felt_by) <= set(named), named
    for service in record.felt_by:
        assert f": {record.root_cause} (database," in named[service], named[service]
    assert "frontend > checkout > payments > payments-db" in named["frontend"]
    assert not [e for e in loop.events if e.kind == "diagnosis" and e.service != "payments"]
    heals = [e for e in audit.entries("action") if e.evidence.get("root_causes")]
    assert heals and all(e.action == "switch_database" for e in heals)
    assert heals[-1].evidence["root_causes"][0]["component"] == record.root_cause
