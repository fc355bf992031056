"""Change events: what changed in each component before a symptom, from the API and the
audit log, newest first; and the loop puts a bad rollout beside the root cause it ranks."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from actuators import FIELD_MANAGER, ActionContext, ArgoRollback, RollbackDeployment
from contracts import ArgoApp, ConfigChange, HpaState, NodeState, ScenarioId, WorkloadState
from lab import Lab, LabSettings, SimClock
from lab.scenarios import scenario
from ooda import AuditEntry, AuditLog, OodaSettings, read_workloads
from ooda._changes import change_events
from ooda._incidents import incidents
from ooda.runbooks._base import rollback
from tests.k8s._backends import ARGO_CRD
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


def test_a_rollout_restart_is_a_change_of_its_own_not_a_rollout() -> None:
    restarted = replace(
        _workload(4, T - timedelta(days=3), ()), restarted_at=T - timedelta(minutes=3)
    )
    got = change_events({"checkout": restarted}, {}, [], T - timedelta(hours=1))
    assert got["checkout"] == ["rollout restart at 09:57"]


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


def test_hpa_edits_secrets_and_argo_syncs_are_changes_but_oodas_own_writes_are_not() -> None:
    hpa = HpaState("checkout", 5, 30, 5, 5, 0.6, changed_at=T - timedelta(minutes=3),
                   changed_by="kubectl-edit")  # fmt: skip
    secret = ConfigChange("Secret", "checkout-db", T - timedelta(minutes=4), "helm")
    mine = ConfigChange("ConfigMap", "checkout-config", T - timedelta(minutes=1), FIELD_MANAGER)
    app = ArgoApp("shop-checkout", "argocd", "9f8e7d6c5b4a39281706", T - timedelta(minutes=6),
                  "1a2b3c4d")  # fmt: skip
    workload = replace(_workload(1, T, (mine, secret)), hpa=hpa, argo=app)
    got = change_events({"checkout": workload}, {}, [], T - timedelta(hours=1))
    assert got["checkout"] == [
        "hpa/checkout changed by kubectl-edit (min 5, max 30) at 09:57",
        "secret/checkout-db changed by helm at 09:56",
        "argo cd sync of shop-checkout to 9f8e7d6c5b4a at 09:54",
    ]
    ours = replace(
        workload, hpa=replace(hpa, changed_by=FIELD_MANAGER), config_changes=(), argo=None
    )
    assert change_events({"checkout": ours}, {}, [], T - timedelta(hours=1)) == {}


def test_the_cluster_read_names_the_hpa_editor_and_the_argo_application() -> None:
    lab = Lab(LabSettings(seed=3), SimClock(datetime(2025, 1, 8, 8, tzinfo=UTC)))
    kube = lab.kube.clients()
    ns = "shop"
    lab.step(timedelta(minutes=2))
    assert read_workloads(kube, ns, ["checkout"])["checkout"].hpa.changed_at is None  # type: ignore[union-attr]
    kube.autoscaling_v2.patch_namespaced_horizontal_pod_autoscaler(
        "checkout", ns, {"spec": {"maxReplicas": 40}}, field_manager="kubectl-edit"
    )
    lab.step(timedelta(minutes=1))
    ActionContext(kube).api.autoscaling_v2.patch_namespaced_horizontal_pod_autoscaler(
        "payments", ns, {"spec": {"maxReplicas": 40}}
    )
    workloads = read_workloads(kube, ns, ["checkout", "payments"])
    edited, ours = workloads["checkout"].hpa, workloads["payments"].hpa
    assert edited is not None and ours is not None
    assert (edited.changed_by, edited.changed_at) == ("kubectl-edit", T_LAB + timedelta(minutes=2))
    assert ours.changed_by == FIELD_MANAGER, "ooda's writes name ooda in managedFields"
    assert workloads["checkout"].argo is None, "no Argo CD installed: no application"

    lab.kube.apiextensions_v1.create_custom_resource_definition(ARGO_CRD)
    kube.custom_objects.create_namespaced_custom_object(
        "argoproj.io", "v1alpha1", "argocd", "applications", _application("shop-checkout", ns)
    )
    workload = read_workloads(kube, ns, ["checkout", "payments"])
    app = workload["checkout"].argo
    assert app == ArgoApp("shop-checkout", "argocd", "b2c3d4e",
                          datetime(2025, 1, 8, 7, 30, tzinfo=UTC), "a1b2c3d")  # fmt: skip
    assert workload["payments"].argo is None
    # A rollback of an Argo-deployed workload goes through its Application.
    action = rollback(workload["checkout"], "bad deploy")
    assert isinstance(action, ArgoRollback) and action.application == "shop-checkout"
    assert isinstance(rollback(workload["payments"], "bad deploy"), RollbackDeployment)
    young = replace(workload["checkout"], argo=replace(app, previous_revision=""))
    assert isinstance(rollback(young, "bad deploy"), RollbackDeployment)


T_LAB = datetime(2025, 1, 8, 8, tzinfo=UTC)


def _application(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name},
        "spec": {"project": "default", "destination": {"namespace": namespace}},
        "status": {
            "history": [
                {"id": 2, "revision": "b2c3d4e", "deployedAt": "2025-01-08T07:30:00Z"},
                {"id": 1, "revision": "a1b2c3d", "deployedAt": "2025-01-07T10:00:00Z"},
            ],
            "resources": [
                {
                    "group": "apps",
                    "version": "v1",
                    "kind": "Deployment",
                    "namespace": namespace,
                    "name": "checkout",
                },
                {"version": "v1", "kind": "Service", "namespace": namespace, "name": "payments"},
            ],
        },
    }
