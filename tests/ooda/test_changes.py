"""Change events: what changed in each component before a symptom, from the API and the
audit log, newest first; and the loop puts a bad rollout beside the root cause it ranks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from contracts import ConfigChange, NodeState, ScenarioId, WorkloadState
from lab import Lab, LabSettings, SimClock
from lab.scenarios import scenario
from ooda import AuditEntry, AuditLog, OodaSettings
from ooda._changes import change_events
from ooda._incidents import incidents
from tests.ooda._harness import make_loop, run

T = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)


def _workload(revision: int, at: datetime, changes: tuple[ConfigChange, ...]) -> WorkloadState:
    return WorkloadState("shop", "checkout", "checkout", 3, 3, revision, at, (), None,
                         config_changes=changes)  # fmt: skip


def test_each_component_gets_its_changes_newest_first_and_old_ones_are_left_out() -> None:
    edit = ConfigChange("ConfigMap", "checkout-config", T - timedelta(minutes=5), "kubectl-edit",
                        removed=(("TLS_CA_BUNDLE", "/etc/ca.pem"),))  # fmt: skip
    stale = ConfigChange("ConfigMap", "old-config", T - timedelta(hours=3), "helm")
    workloads = {"checkout": _workload(7, T - timedelta(minutes=2), (edit, stale))}
    nodes = {
        "n1": NodeState("n1", "True", True, ("DiskPressure",)),
        "n2": NodeState("n2", "True", False),
    }
    action = AuditEntry(T - timedelta(minutes=1), "action", "payments", "cordon_node",
                        "node/n1", False, "applied", {})  # fmt: skip
    refused = AuditEntry(T, "action", "payments", "drain_node", "node/n1", False, "refused: x", {})
    got = change_events(workloads, nodes, [action, refused], T - timedelta(hours=1))
    assert got["checkout"] == [
        "rollout to revision 7 at 09:58",
        "configmap/checkout-config changed by kubectl-edit (removed TLS_CA_BUNDLE) at 09:55",
    ]
    assert got["n1"] == ["now cordoned, DiskPressure", "ooda cordon_node node/n1 at 09:59"]
    assert "n2" not in got and "payments" not in got


def test_a_bad_rollout_is_named_beside_the_root_cause_it_brought() -> None:
    lab = Lab(LabSettings(seed=3), SimClock(datetime(2025, 1, 8, 8, tzinfo=UTC)))
    lab.step(timedelta(minutes=90))
    audit = AuditLog(":memory:")
    loop = make_loop(lab, OodaSettings(dry_run=True), audit=audit)
    run(lab, loop, 2)
    record = lab.inject(scenario(ScenarioId.HTTP_5XX_SPIKE).draw(np.random.default_rng(3), lab))
    run(lab, loop, 12)
    found = [i for i in incidents(audit) if i.service == record.service]
    assert found, [e.detail for e in loop.events]
    top = found[0].context["causes"][0]
    assert top["component"] == record.root_cause
    assert any(c.startswith("rollout to revision") for c in top["changes"]), top
