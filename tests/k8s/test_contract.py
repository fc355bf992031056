"""One contract for the actuators' Kubernetes operations, run on the lab and on a real cluster.

Each test drives an action through the injected clients and checks what the cluster did, so a
wrong API path, patch type or eviction semantics fails on the real control plane, and a lab
that behaves differently fails on the lab.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from kubernetes import client

from actuators import (
    CHANGED_BY,
    FIELD_MANAGER,
    MERGE_PATCH,
    POOL_LABELS,
    RESTARTED_AT,
    ActionContext,
    ArgoRollback,
    BudgetRefusedError,
    CordonNode,
    DrainNode,
    GuardRejectedError,
    KubeClients,
    NoRoomError,
    PatchHpa,
    PermanentActuatorError,
    RecreatePodElsewhere,
    RestartPod,
    RetryPolicy,
    RollbackDeployment,
    RolloutRestart,
    ScaleDeployment,
    TemporaryActuatorError,
)
from ooda import read_workloads
from ooda._cluster_state import read_nodes
from tests.k8s._backends import IMAGE, NEW_IMAGE, SERVICE, Backend, ready_pods

STRATEGIC = "application/strategic-merge-patch+json"


class _Spy:
    """Wraps an API object and records the names of the methods called on it."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if callable(attr):
            self.calls.append(name)
        return attr


def _spied(kube: KubeClients) -> tuple[KubeClients, _Spy]:
    spy = _Spy(kube.core_v1)
    return (
        KubeClients(spy, kube.apps_v1, kube.autoscaling_v2, kube.policy_v1, kube.custom_objects),
        spy,
    )


def _hpa_spec(b: Backend) -> tuple[int, int, int]:
    hpa = b.kube.autoscaling_v2.read_namespaced_horizontal_pod_autoscaler(SERVICE, b.namespace)
    cpu = hpa.spec.metrics[0].resource.target.average_utilization
    return hpa.spec.min_replicas, hpa.spec.max_replicas, cpu


def _replicas(b: Backend) -> int:
    return int(b.kube.apps_v1.read_namespaced_deployment(SERVICE, b.namespace).spec.replicas)


def _node_unschedulable(b: Backend, name: str) -> bool:
    return bool(b.kube.core_v1.read_node(name).spec.unschedulable)


def _pdb(b: Backend, **budget: Any) -> None:
    b.kube.policy_v1.create_namespaced_pod_disruption_budget(
        b.namespace,
        client.V1PodDisruptionBudget(
            metadata=client.V1ObjectMeta(name=SERVICE),
            spec=client.V1PodDisruptionBudgetSpec(
                selector=client.V1LabelSelector(match_labels={"app": SERVICE}), **budget
            ),
        ),
    )


def _pdb_allows(b: Backend, n: int) -> bool:
    pdb = b.kube.policy_v1.read_namespaced_pod_disruption_budget(SERVICE, b.namespace)
    return pdb.status is not None and pdb.status.disruptions_allowed == n


def test_a_dict_patch_without_a_content_type_is_a_strategic_merge(backend: Backend) -> None:
    """The client turns a dict body into a strategic merge patch: lists merge by key."""
    b = backend
    b.kube.apps_v1.patch_namespaced_deployment(
        SERVICE,
        b.namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": SERVICE, "image": NEW_IMAGE}]}}}},
    )
    container = b.kube.apps_v1.read_namespaced_deployment(
        SERVICE, b.namespace
    ).spec.template.spec.containers[0]
    assert container.image == NEW_IMAGE
    assert container.resources.requests["cpu"], "the container kept its other fields"
    assert container.ports[0].container_port == 8080


def test_restart_pod_is_replaced(backend: Backend) -> None:
    b = backend
    victim = ready_pods(b.kube, b.namespace)[0].metadata.name
    kube, spy = _spied(b.actor)
    result = RestartPod(b.namespace, SERVICE, pod=victim).apply(
        ActionContext(kube, dry_run=False, sleep=b.sleep)
    )
    assert result.after == {"evicted": True, "pdb_refusals": 0}
    assert "delete_namespaced_pod" not in spy.calls

    def replaced() -> bool:
        names = {p.metadata.name for p in ready_pods(b.kube, b.namespace)}
        return victim not in names and len(names) == 3

    b.wait_for(replaced, "the restarted pod to be replaced by a Ready one", 120)


def test_scale_refuses_an_hpa_target_and_scales_without_one(backend: Backend) -> None:
    b = backend
    action = ScaleDeployment(b.namespace, SERVICE, deployment=SERVICE, replicas=5)
    with pytest.raises(PermanentActuatorError, match="HPA"):
        action.apply(ActionContext(b.actor, dry_run=False, sleep=b.sleep))
    assert _replicas(b) == 3

    b.kube.autoscaling_v2.delete_namespaced_horizontal_pod_autoscaler(SERVICE, b.namespace)
    result = action.apply(ActionContext(b.actor, dry_run=False, sleep=b.sleep))
    assert (result.before, result.after) == ({"replicas": 3}, {"replicas": 5})
    b.wait_for(lambda: len(ready_pods(b.kube, b.namespace)) == 5, "5 Ready pods", 120)

    action.undo(ActionContext(b.actor, sleep=b.sleep), result)
    assert _replicas(b) == 3
    b.wait_for(lambda: len(ready_pods(b.kube, b.namespace)) == 3, "3 pods again", 120)


def test_patch_hpa_min_max_target_and_undo(backend: Backend) -> None:
    b = backend
    action = PatchHpa(
        b.namespace,
        SERVICE,
        hpa=SERVICE,
        min_replicas=5,
        max_replicas=12,
        target_cpu_utilization=70,
    )
    result = action.apply(ActionContext(b.actor, dry_run=False, sleep=b.sleep))
    assert result.before == {"min_replicas": 3, "max_replicas": 30, "target_cpu_utilization": 60}
    assert _hpa_spec(b) == (5, 12, 70)
    hpa = b.kube.autoscaling_v2.read_namespaced_horizontal_pod_autoscaler(SERVICE, b.namespace)
    managers = {m.manager for m in hpa.metadata.managed_fields or []}
    assert FIELD_MANAGER in managers, f"ooda's write is not ooda's in managedFields: {managers}"
    # The HPA controller enforces the new minimum on the Deployment.
    b.wait_for(lambda: _replicas(b) == 5, "the HPA to raise replicas to its new minimum", 90)

    bad = PatchHpa(b.namespace, SERVICE, hpa=SERVICE, min_replicas=20)
    with pytest.raises(PermanentActuatorError, match="minReplicas"):
        bad.apply(ActionContext(b.actor, dry_run=False, sleep=b.sleep))
    assert _hpa_spec(b) == (5, 12, 70)

    action.undo(ActionContext(b.actor, sleep=b.sleep), result)
    assert _hpa_spec(b) == (3, 30, 60)


def test_drain_evicts_through_the_pdb_and_never_deletes(backend: Backend) -> None:
    b = backend
    PatchHpa(b.namespace, SERVICE, hpa=SERVICE, min_replicas=6).apply(
        ActionContext(b.actor, dry_run=False, sleep=b.sleep)
    )
    b.wait_for(lambda: len(ready_pods(b.kube, b.namespace)) == 6, "6 Ready pods", 120)
    # The budget first allows nothing, so the first eviction is refused; while the drain backs
    # off, the budget is relaxed to one pod at a time and the drain must get through.
    _pdb(b, min_available=6)
    b.wait_for(lambda: _pdb_allows(b, 0), "the PDB to allow no disruption", 30)
    per_node = Counter(p.spec.node_name for p in ready_pods(b.kube, b.namespace))
    node, count = per_node.most_common(1)[0]
    assert count >= 2, f"expected two checkout pods on one node, got {dict(per_node)}"
    relaxed: list[float] = []

    def sleep(seconds: float) -> None:
        if not relaxed:
            b.kube.policy_v1.delete_namespaced_pod_disruption_budget(SERVICE, b.namespace)
            _pdb(b, max_unavailable=1)
        relaxed.append(seconds)
        b.sleep(seconds)

    kube, spy = _spied(b.actor)
    result = DrainNode(b.namespace, SERVICE, node=node).apply(
        ActionContext(kube, dry_run=False, sleep=sleep)
    )

    assert "delete_namespaced_pod" not in spy.calls
    assert result.after["pdb_refusals"] >= 1 and relaxed
    # Each eviction call either went through or was refused; a round asks every pod left.
    evictions = spy.calls.count("create_namespaced_pod_eviction")
    assert evictions == len(result.after["evicted"]) + result.after["pdb_refusals"]
    assert len(relaxed) <= result.after["pdb_refusals"]
    assert len(result.after["evicted"]) >= count
    assert _node_unschedulable(b, node)
    b.wait_for(
        lambda: (
            len(ready_pods(b.kube, b.namespace)) == 6
            and all(p.spec.node_name != node for p in ready_pods(b.kube, b.namespace))
        ),
        "6 Ready pods, none on the drained node",
        180,
    )
    DrainNode(b.namespace, SERVICE, node=node).undo(ActionContext(b.actor, sleep=b.sleep), result)
    assert not _node_unschedulable(b, node)


def test_eviction_the_pdb_refuses_is_retried_never_forced(backend: Backend) -> None:
    b = backend
    _pdb(b, min_available=3)
    b.wait_for(lambda: _pdb_allows(b, 0), "the PDB status", 30)
    pod = ready_pods(b.kube, b.namespace)[0]
    kube, spy = _spied(b.actor)
    action = RecreatePodElsewhere(
        b.namespace,
        SERVICE,
        pod=pod.metadata.name,
    )
    patience = RetryPolicy(attempts=3, initial_backoff_s=0.2, max_backoff_s=0.5)
    with pytest.raises(BudgetRefusedError, match="PodDisruptionBudget"):
        action.apply(ActionContext(kube, sleep=b.sleep, pdb_retry=patience))
    assert spy.calls.count("create_namespaced_pod_eviction") == 3
    assert "delete_namespaced_pod" not in spy.calls
    still = b.kube.core_v1.read_namespaced_pod(pod.metadata.name, b.namespace)
    assert still.metadata.deletion_timestamp is None
    assert not _node_unschedulable(b, pod.spec.node_name), "a failed move must uncordon"


def test_recreate_pod_on_another_node(backend: Backend) -> None:
    b = backend
    pod = ready_pods(b.kube, b.namespace)[0]
    node = pod.spec.node_name
    action = RecreatePodElsewhere(b.namespace, SERVICE, pod=pod.metadata.name)
    result = action.apply(ActionContext(b.actor, dry_run=False, sleep=b.sleep))
    assert result.before["node"] == node and _node_unschedulable(b, node)

    def moved() -> bool:
        pods = ready_pods(b.kube, b.namespace)
        names = {p.metadata.name for p in pods}
        return (
            len(pods) == 3
            and pod.metadata.name not in names
            and all(
                p.spec.node_name != node
                for p in pods
                if p.metadata.name not in {pod.metadata.name}
                and p.metadata.creation_timestamp > pod.metadata.creation_timestamp
            )
        )

    b.wait_for(moved, "the pod to be recreated on another node", 120)
    newest = max(ready_pods(b.kube, b.namespace), key=lambda p: p.metadata.creation_timestamp)
    assert newest.spec.node_name != node
    action.undo(ActionContext(b.actor, sleep=b.sleep), result)
    assert not _node_unschedulable(b, node)


def _rolled_out(b: Backend, image: str, revision: str) -> bool:
    dep = b.kube.apps_v1.read_namespaced_deployment(SERVICE, b.namespace)
    pods = ready_pods(b.kube, b.namespace)
    return (
        (dep.metadata.annotations or {}).get("deployment.kubernetes.io/revision") == revision
        and dep.spec.template.spec.containers[0].image == image
        and len(pods) == 3
        and {p.spec.containers[0].image for p in pods} == {image}
    )


def _bad_rollout(b: Backend) -> None:
    """Roll ``NEW_IMAGE`` out as revision 2 and wait for every pod to run it."""
    b.kube.apps_v1.patch_namespaced_deployment(
        SERVICE,
        b.namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": SERVICE, "image": NEW_IMAGE}]}}}},
        _content_type=STRATEGIC,
    )
    b.wait_for(lambda: _rolled_out(b, NEW_IMAGE, "2"), "the bad rollout (revision 2)", 180)


def test_rollback_deployment_to_previous_revision(backend: Backend) -> None:
    b = backend
    _bad_rollout(b)

    action = RollbackDeployment(b.namespace, SERVICE, deployment=SERVICE)
    result = action.apply(ActionContext(b.actor, dry_run=False, sleep=b.sleep))
    assert result.before["revision"] == 2
    assert result.after == {"revision": 1, "images": [IMAGE]}
    # The old ReplicaSet comes back as revision 3, as after `kubectl rollout undo`.
    b.wait_for(lambda: _rolled_out(b, IMAGE, "3"), "the rollback to revision 1 as 3", 180)

    action.undo(ActionContext(b.actor, sleep=b.sleep), result)
    b.wait_for(lambda: _rolled_out(b, NEW_IMAGE, "4"), "the undo (revision 4)", 180)


def test_rollout_restart_replaces_every_pod_and_is_no_rollout(backend: Backend) -> None:
    """``kubectl rollout restart``: a new revision of the same template stamped
    ``restartedAt``, every pod replaced by a Ready one. The snapshot still dates the rollout
    to revision 1 (a restart changes nothing that runs), and no rollback goes back to it."""
    b = backend
    before = {p.metadata.name for p in ready_pods(b.kube, b.namespace)}
    action = RolloutRestart(b.namespace, SERVICE, deployment=SERVICE)
    preview = action.apply(ActionContext(b.actor, dry_run=True, sleep=b.sleep))
    assert preview.after["would_replace"] == 3 and set(preview.before["pods"]) == before
    dep = b.kube.apps_v1.read_namespaced_deployment(SERVICE, b.namespace)
    assert (dep.metadata.annotations or {}).get("deployment.kubernetes.io/revision") == "1"
    created = read_workloads(b.kube, b.namespace, [SERVICE])[SERVICE].revision_at

    result = action.apply(ActionContext(b.actor, sleep=b.sleep))
    assert not result.undoable and set(result.before["pods"]) == before

    def replaced() -> bool:
        names = {p.metadata.name for p in ready_pods(b.kube, b.namespace)}
        return _rolled_out(b, IMAGE, "2") and not names & before

    b.wait_for(replaced, "every pod replaced by the restart (revision 2)", 180)
    template = b.kube.apps_v1.read_namespaced_deployment(SERVICE, b.namespace).spec.template
    assert RESTARTED_AT in (template.metadata.annotations or {})
    state = read_workloads(b.kube, b.namespace, [SERVICE])[SERVICE]
    assert (state.revision, state.revision_at) == (1, created), "a restart is no rollout"
    assert state.restarted_at is not None and created is not None
    assert state.restarted_at >= created
    with pytest.raises(PermanentActuatorError, match="no revision before 2"):
        RollbackDeployment(b.namespace, SERVICE, deployment=SERVICE).apply(
            ActionContext(b.actor, dry_run=True, sleep=b.sleep)
        )


def test_a_rollback_after_a_restart_returns_to_the_build_before(backend: Backend) -> None:
    """A bad build, then a restart of it: the rollback goes to the build before the bad one
    (revision 1), not to the bad build without its stamp (revision 2)."""
    b = backend
    _bad_rollout(b)
    RolloutRestart(b.namespace, SERVICE, deployment=SERVICE).apply(
        ActionContext(b.actor, sleep=b.sleep)
    )
    b.wait_for(lambda: _rolled_out(b, NEW_IMAGE, "3"), "the restart (revision 3)", 180)
    assert read_workloads(b.kube, b.namespace, [SERVICE])[SERVICE].revision == 2

    result = RollbackDeployment(b.namespace, SERVICE, deployment=SERVICE).apply(
        ActionContext(b.actor, sleep=b.sleep)
    )
    assert result.after == {"revision": 1, "images": [IMAGE]}
    b.wait_for(lambda: _rolled_out(b, IMAGE, "4"), "the rollback to revision 1 as 4", 180)


def test_rollback_without_history_is_refused(backend: Backend) -> None:
    b = backend
    with pytest.raises(PermanentActuatorError, match="no revision before"):
        RollbackDeployment(b.namespace, SERVICE, deployment=SERVICE).apply(
            ActionContext(b.actor, dry_run=False, sleep=b.sleep)
        )


def _argo_app(name: str, namespace: str = "shop") -> dict[str, Any]:
    def source(revision: str) -> dict[str, Any]:
        return {
            "repoURL": "https://git.example.com/shop/deploy.git",
            "path": "checkout",
            "targetRevision": revision,
        }

    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name},
        "spec": {
            "project": "default",
            "source": source("main"),
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "shop"},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
        },
        "status": {
            "sync": {"status": "Synced", "revision": "b2c3d4e"},
            "resources": [
                {
                    "group": "apps",
                    "version": "v1",
                    "kind": "Deployment",
                    "namespace": namespace,
                    "name": SERVICE,
                },
            ],
            "history": [
                {
                    "id": 1,
                    "revision": "a1b2c3d",
                    "deployedAt": "2025-01-07T10:00:00Z",
                    "source": source("main"),
                },
                {
                    "id": 2,
                    "revision": "b2c3d4e",
                    "deployedAt": "2025-01-08T11:00:00Z",
                    "source": source("main"),
                },
            ],
        },
    }


def test_argo_application_rollback_and_undo(backend: Backend) -> None:
    b = backend
    b.install_argo_crd()
    b.ensure_namespace("argocd")
    name = f"checkout-{b.namespace}"
    group = ("argoproj.io", "v1alpha1", "argocd", "applications")
    b.kube.custom_objects.create_namespaced_custom_object(*group, _argo_app(name, b.namespace))
    # The loop's read finds the Application that deploys the service, and its history.
    found = read_workloads(b.kube, b.namespace, [SERVICE])[SERVICE].argo
    assert found is not None and (found.name, found.revision, found.previous_revision) == (
        name,
        "b2c3d4e",
        "a1b2c3d",
    )

    action = ArgoRollback(b.namespace, SERVICE, "bad deploy", application=name)
    result = action.apply(ActionContext(b.actor, dry_run=False, sleep=b.sleep))
    app = b.kube.custom_objects.get_namespaced_custom_object(*group, name)
    assert app["operation"]["sync"]["revision"] == "a1b2c3d"
    assert app["operation"]["initiatedBy"]["username"] == "ooda"
    assert "automated" not in app["spec"]["syncPolicy"], "auto-sync would undo the rollback"
    assert result.before["revision"] == "b2c3d4e"

    with pytest.raises(TemporaryActuatorError, match="in progress"):
        action.apply(ActionContext(b.actor, dry_run=False, sleep=b.sleep))

    action.undo(ActionContext(b.actor, sleep=b.sleep), result)
    app = b.kube.custom_objects.get_namespaced_custom_object(*group, name)
    assert app["operation"]["sync"]["revision"] == "b2c3d4e"
    assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    b.kube.custom_objects.delete_namespaced_custom_object(*group, name)


def test_dry_run_changes_nothing(backend: Backend) -> None:
    b = backend
    node = ready_pods(b.kube, b.namespace)[0].spec.node_name
    kube, spy = _spied(b.actor)
    result = DrainNode(b.namespace, SERVICE, node=node).apply(
        ActionContext(kube, dry_run=True, sleep=b.sleep)
    )
    assert result.dry_run and result.after["would_evict"]
    assert not {"patch_node", "create_namespaced_pod_eviction"} & set(spy.calls)
    assert not _node_unschedulable(b, node)
    PatchHpa(b.namespace, SERVICE, hpa=SERVICE, min_replicas=9).apply(
        ActionContext(b.actor, dry_run=True, sleep=b.sleep)
    )
    assert _hpa_spec(b)[0] == 3
    b.kube.core_v1.patch_node(node, {"spec": {"unschedulable": None}}, _content_type=MERGE_PATCH)


def test_a_cordon_is_oodas_until_a_human_sets_it_again(backend: Backend) -> None:
    """The API server's field ownership says whose a cordon is: ooda's after its cordon; a
    human's once they uncordon and cordon the node again, though ooda's annotations stay."""
    b = backend
    node = ready_pods(b.kube, b.namespace)[0].spec.node_name
    CordonNode(b.namespace, SERVICE, node=node).apply(ActionContext(b.actor, sleep=b.sleep))
    try:
        assert read_nodes(b.kube)[node].cordoned_by_ooda
        for value in (None, True):
            b.kube.core_v1.patch_node(
                node,
                {"spec": {"unschedulable": value}},
                field_manager="kubectl-cordon",
                _content_type=MERGE_PATCH,
            )
        state = read_nodes(b.kube)[node]
        assert state.unschedulable and not state.cordoned_by_ooda
        assert b.kube.core_v1.read_node(node).metadata.annotations[CHANGED_BY] == "ooda"
    finally:
        b.kube.core_v1.patch_node(
            node, {"spec": {"unschedulable": None}}, _content_type=MERGE_PATCH
        )


def test_no_node_action_when_40_percent_of_the_pool_is_out(backend: Backend) -> None:
    b = backend
    first, second, third = (n.metadata.name for n in b.kube.core_v1.list_node().items[:3])
    ctx = ActionContext(b.actor, sleep=b.sleep)
    done = []
    for node in (first, second):  # 0 of 3, then 1 of 3 (33 %) already out: allowed
        action = CordonNode(b.namespace, SERVICE, node=node)
        done.append((action, action.apply(ctx)))
        assert _node_unschedulable(b, node) and done[-1][1].undoable
    kube, spy = _spied(b.actor)
    with pytest.raises(GuardRejectedError, match=r"2 of 3 nodes .* already out \(67%\)"):
        DrainNode(b.namespace, SERVICE, node=third).apply(ActionContext(kube, sleep=b.sleep))
    assert "create_namespaced_pod_eviction" not in spy.calls
    assert not _node_unschedulable(b, third)
    for action, result in done:
        action.undo(ctx, result)
    assert not _node_unschedulable(b, first) and not _node_unschedulable(b, second)


def test_argo_rollback_refuses_what_it_cannot_roll_back(backend: Backend) -> None:
    b = backend
    b.install_argo_crd()
    b.ensure_namespace("argocd")
    group = ("argoproj.io", "v1alpha1", "argocd", "applications")
    young, multi = f"young-{b.namespace}", f"multi-{b.namespace}"
    app = _argo_app(young)
    app["status"]["history"] = app["status"]["history"][1:]
    b.kube.custom_objects.create_namespaced_custom_object(*group, app)
    app = _argo_app(multi)
    app["spec"]["sources"] = [app["spec"].pop("source")]
    b.kube.custom_objects.create_namespaced_custom_object(*group, app)

    with pytest.raises(PermanentActuatorError, match="1 history entries"):
        ArgoRollback(b.namespace, SERVICE, application=young).apply(
            ActionContext(b.actor, dry_run=False)
        )
    with pytest.raises(PermanentActuatorError, match="several sources"):
        ArgoRollback(b.namespace, SERVICE, application=multi).apply(
            ActionContext(b.actor, dry_run=False)
        )
    with pytest.raises(PermanentActuatorError, match="404"):
        ArgoRollback(b.namespace, SERVICE, application="absent").apply(
            ActionContext(b.actor, dry_run=False)
        )
    for name in (young, multi):
        assert "operation" not in b.kube.custom_objects.get_namespaced_custom_object(*group, name)
        b.kube.custom_objects.delete_namespaced_custom_object(*group, name)


def test_drain_refuses_when_the_pods_have_no_node_to_go_to(backend: Backend) -> None:
    """Every other node cordoned (the node in a pool of its own, so the pool limit allows
    the drain): the drain's placement finds no node for checkout's serving pods and refuses
    before it cordons or evicts anything; one node opened again, the dry run places them."""
    b = backend
    b.wait_for(lambda: len(ready_pods(b.kube, b.namespace)) == 3, "3 Ready pods", 120)
    node = ready_pods(b.kube, b.namespace)[0].spec.node_name
    others = [n.metadata.name for n in b.kube.core_v1.list_node().items]
    others = [n for n in others if n != node and not _node_unschedulable(b, n)]
    pool = {"metadata": {"labels": {POOL_LABELS[0]: "room-test"}}}
    b.kube.core_v1.patch_node(node, pool, _content_type=MERGE_PATCH)
    try:
        for name in others:
            b.kube.core_v1.patch_node(
                name, {"spec": {"unschedulable": True}}, _content_type=MERGE_PATCH
            )
        kube, spy = _spied(b.actor)
        with pytest.raises(NoRoomError, match="node\\(s\\) were unschedulable"):
            DrainNode(b.namespace, SERVICE, node=node).apply(
                ActionContext(kube, dry_run=False, sleep=b.sleep)
            )
        assert not [c for c in spy.calls if c.startswith(("patch_", "create_", "delete_"))]
        assert not _node_unschedulable(b, node)
        b.kube.core_v1.patch_node(
            others[0], {"spec": {"unschedulable": None}}, _content_type=MERGE_PATCH
        )
        result = DrainNode(b.namespace, SERVICE, node=node).apply(
            ActionContext(b.actor, dry_run=True, sleep=b.sleep)
        )
        assert result.dry_run and set(result.before["placement"].values()) == {others[0]}
    finally:
        for name in others:
            b.kube.core_v1.patch_node(
                name, {"spec": {"unschedulable": None}}, _content_type=MERGE_PATCH
            )
        b.kube.core_v1.patch_node(
            node, {"metadata": {"labels": {POOL_LABELS[0]: None}}}, _content_type=MERGE_PATCH
        )
