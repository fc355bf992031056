"""The fake Kubernetes API's patch types, cordons, budgets, rollouts and custom objects."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lab import Lab, LabSettings, SimClock
from tests._narrow import name_of, some

NS = "shop"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "applications"


@pytest.fixture
def lab() -> Lab:
    return Lab(LabSettings(), SimClock(datetime(2025, 1, 8, 12, tzinfo=UTC)))


@pytest.fixture
def still(lab: Lab) -> Lab:
    """The lab without its HPAs, so that replica counts stay where the tests put them."""
    for hpa in lab.kube.autoscaling_v2.list_namespaced_horizontal_pod_autoscaler(NS).items:
        lab.kube.autoscaling_v2.delete_namespaced_horizontal_pod_autoscaler(name_of(hpa), NS)
    return lab


def status_of(err: pytest.ExceptionInfo[ApiException]) -> tuple[int, str]:
    return err.value.status, json.loads(some(err.value.body))["reason"]


def pods(lab: Lab, app: str) -> list[Any]:
    return lab.kube.core_v1.list_namespaced_pod(NS, label_selector=f"app={app}").items


def ready(pod: Any) -> bool:
    return {c.type: c.status for c in pod.status.conditions}.get("Ready") == "True"


def test_a_dict_patch_is_a_strategic_merge_unless_a_merge_type_is_named(lab: Lab) -> None:
    """Client v37.0.1 sends a non-list body given as a JSON patch (its default) as a strategic
    merge patch; a list is a JSON patch, which a merge patch type cannot carry."""
    kube = lab.kube
    node = name_of(kube.core_v1.list_node().items[0])
    kube.core_v1.patch_node(node, {"spec": {"unschedulable": True}})
    assert some(kube.core_v1.read_node(node).spec).unschedulable is True
    kube.apps_v1.patch_namespaced_deployment("payments", NS, {"spec": {"replicas": 4}})
    assert kube.apps_v1.read_namespaced_deployment("payments", NS).spec.replicas == 4
    kube.apps_v1.patch_namespaced_deployment_scale(
        "payments", NS, {"spec": {"replicas": 6}}, _content_type=JSON_PATCH
    )
    assert kube.apps_v1.read_namespaced_deployment("payments", NS).spec.replicas == 6
    hpa = kube.autoscaling_v2.patch_namespaced_horizontal_pod_autoscaler(
        "payments", NS, {"spec": {"minReplicas": 4}}, _content_type=MERGE
    )
    assert hpa.spec.min_replicas == 4

    ops = [{"op": "replace", "path": "/spec/replicas", "value": 3}]
    with pytest.raises(ApiException) as err:
        kube.apps_v1.patch_namespaced_deployment_scale("payments", NS, ops, _content_type=MERGE)
    assert status_of(err) == (400, "BadRequest")
    with pytest.raises(ApiException) as err:
        kube.apps_v1.patch_namespaced_deployment_scale("payments", NS, ops)
    assert err.value.status == 422  # a real JSON patch, which the lab takes for templates only
    with pytest.raises(ApiException) as err:
        kube.core_v1.patch_node(node, {"spec": {}}, _content_type="application/apply-patch+yaml")
    assert status_of(err) == (415, "UnsupportedMediaType")
    assert kube.apps_v1.read_namespaced_deployment("payments", NS).spec.replicas == 6


def test_cordon_taints_the_node_and_the_scheduler_avoids_it(still: Lab) -> None:
    lab, core = still, still.kube.core_v1
    node = name_of(core.list_node().items[0])
    patched = core.patch_node(
        node,
        {"spec": {"unschedulable": True}, "metadata": {"labels": {"ooda.io/drain": "yes"}}},
        _content_type=MERGE,
    )
    assert patched.spec is not None and patched.spec.unschedulable is True
    assert [(t.key, t.effect) for t in some(patched.spec.taints)] == [
        ("node.kubernetes.io/unschedulable", "NoSchedule")
    ]
    assert some(some(core.read_node(node).metadata).labels)["ooda.io/drain"] == "yes"
    others = [n for n in core.list_node().items if name_of(n) != node]
    assert others and all(
        some(n.spec).unschedulable is None and not some(n.spec).taints for n in others
    )
    assert [name_of(n) for n in core.list_node(label_selector="ooda.io/drain=yes").items] == [node]

    before = {p.metadata.name for p in pods(lab, "checkout")}
    lab.kube.apps_v1.patch_namespaced_deployment_scale(
        "checkout", NS, {"spec": {"replicas": 20}}, _content_type=MERGE
    )
    new = [p for p in pods(lab, "checkout") if p.metadata.name not in before]
    assert len(new) == 15 and all(p.spec.node_name not in (None, node) for p in new)

    uncordoned = core.patch_node(
        node,
        {"spec": {"unschedulable": None}, "metadata": {"labels": {"ooda.io/drain": None}}},
        _content_type=MERGE,
    )
    assert uncordoned.spec is not None
    assert uncordoned.spec.unschedulable is None and uncordoned.spec.taints is None
    assert "ooda.io/drain" not in some(some(uncordoned.metadata).labels)
    bad: dict[str, Any]
    for bad in ({"spec": {"taints": []}}, {"spec": {"unschedulable": "yes"}}):
        with pytest.raises(ApiException) as err:
            core.patch_node(node, bad, _content_type=MERGE)
        assert err.value.status == 422, bad


def test_eviction_respects_the_budget_until_the_replacement_is_ready(still: Lab) -> None:
    lab, policy, core = still, still.kube.policy_v1, still.kube.core_v1
    body = client.V1PodDisruptionBudget(
        metadata=client.V1ObjectMeta(name="payments"),
        spec=client.V1PodDisruptionBudgetSpec(
            max_unavailable=1, selector=client.V1LabelSelector(match_labels={"app": "payments"})
        ),
    )
    pdb = policy.create_namespaced_pod_disruption_budget(NS, body)
    assert isinstance(pdb, client.V1PodDisruptionBudget)
    status = some(pdb.status)
    assert (status.current_healthy, status.desired_healthy, status.expected_pods) == (5, 4, 5)
    assert status.disruptions_allowed == 1
    with pytest.raises(ApiException) as err:
        policy.create_namespaced_pod_disruption_budget(NS, body)
    assert status_of(err) == (409, "AlreadyExists")

    first, second = sorted(p.metadata.name for p in pods(lab, "payments"))[:2]
    core.create_namespaced_pod_eviction(first, NS, client.V1Eviction())
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod_eviction(second, NS, client.V1Eviction())
    assert status_of(err) == (429, "TooManyRequests")
    assert "disruption budget" in json.loads(some(err.value.body))["message"]
    assert name_of(core.read_namespaced_pod(second, NS)) == second
    status = some(policy.read_namespaced_pod_disruption_budget("payments", NS).status)
    assert (status.current_healthy, status.disruptions_allowed) == (4, 0)

    # The replacement is not Ready yet: it may go (a pod that is not Ready always may).
    (replacement,) = [p for p in pods(lab, "payments") if not ready(p)]
    core.create_namespaced_pod_eviction(replacement.metadata.name, NS, client.V1Eviction())
    lab.step(timedelta(seconds=90))  # pending 10 s + start-up 60 s
    assert some(
        policy.read_namespaced_pod_disruption_budget("payments", NS).status
    ).disruptions_allowed
    core.create_namespaced_pod_eviction(second, NS, client.V1Eviction())
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod(second, NS)
    assert err.value.status == 404

    policy.delete_namespaced_pod_disruption_budget("payments", NS)
    assert policy.list_namespaced_pod_disruption_budget(NS).items == []
    with pytest.raises(ApiException) as err:
        policy.read_namespaced_pod_disruption_budget("payments", NS)
    assert err.value.status == 404


def test_budget_percentages_round_up_and_need_exactly_one_bound(lab: Lab) -> None:
    policy = lab.kube.policy_v1
    selector = {"matchLabels": {"app": "checkout"}}
    created = policy.create_namespaced_pod_disruption_budget(
        NS, {"metadata": {"name": "half"}, "spec": {"minAvailable": "50%", "selector": selector}}
    )
    assert created.status is not None
    assert (created.status.desired_healthy, created.status.disruptions_allowed) == (3, 2)
    created = policy.create_namespaced_pod_disruption_budget(
        NS, {"metadata": {"name": "some"}, "spec": {"maxUnavailable": "30%", "selector": selector}}
    )
    assert created.status is not None
    assert (created.status.desired_healthy, created.status.disruptions_allowed) == (3, 2)
    for spec in ({"selector": selector}, {"minAvailable": 1, "maxUnavailable": 1}):
        with pytest.raises(ApiException) as err:
            policy.create_namespaced_pod_disruption_budget(
                NS, {"metadata": {"name": "bad"}, "spec": spec}
            )
        assert err.value.status == 422, spec
    assert len(policy.list_namespaced_pod_disruption_budget(NS).items) == 2


def test_a_new_image_rolls_out_revision_2_and_replaces_every_pod(still: Lab) -> None:
    lab, apps = still, still.kube.apps_v1
    old_pods = {p.metadata.name for p in pods(lab, "payments")}
    (old_rs,) = apps.list_namespaced_replica_set(NS, label_selector="app=payments").items
    image = "registry.example.com/shop/payments:1.5.0"
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "payments", "image": image}]}}}}
    dep = apps.patch_namespaced_deployment("payments", NS, patch, _content_type=MERGE)
    assert dep.metadata is not None and dep.status is not None
    assert some(dep.metadata.annotations)["deployment.kubernetes.io/revision"] == "2"
    assert dep.metadata.generation == dep.status.observed_generation == 2
    assert some(dep.spec.template.spec).containers[0].image == image
    assert dep.status.updated_replicas == 5 and dep.status.replicas == 10  # surge

    sets = apps.list_namespaced_replica_set(NS, label_selector="app=payments").items
    (new_rs,) = [rs for rs in sets if name_of(rs) != name_of(old_rs)]
    new_meta = some(new_rs.metadata)
    new_hash = some(new_meta.labels)["pod-template-hash"]
    assert some(new_meta.annotations)["deployment.kubernetes.io/revision"] == "2"
    assert some(new_meta.owner_references)[0].uid == dep.metadata.uid
    assert some(some(some(new_rs.spec).template).spec).containers[0].image == image

    lab.step(timedelta(seconds=30))
    assert old_pods <= {p.metadata.name for p in pods(lab, "payments")}  # not Ready yet
    lab.step(timedelta(seconds=60))
    now = pods(lab, "payments")
    assert len(now) == 5 and not old_pods & {p.metadata.name for p in now}
    for pod in now:
        assert pod.metadata.name.startswith(f"payments-{new_hash}-")
        assert pod.metadata.labels["pod-template-hash"] == new_hash
        assert pod.metadata.owner_references[0].name == new_meta.name
        assert pod.spec.containers[0].image == image
    old = apps.read_namespaced_replica_set(name_of(old_rs), NS)
    assert (some(old.spec).replicas, some(old.status).replicas) == (0, 0)
    dep = apps.read_namespaced_deployment("payments", NS)
    assert dep.status is not None
    assert (dep.status.updated_replicas, dep.status.ready_replicas) == (5, 5)


def test_replacing_the_template_with_an_old_one_reuses_its_replica_set(still: Lab) -> None:
    lab, apps = still, still.kube.apps_v1
    (first,) = apps.list_namespaced_replica_set(NS, label_selector="app=frontend").items
    image = "registry.example.com/shop/frontend:2.0.0"
    apps.patch_namespaced_deployment(
        "frontend",
        NS,
        {"spec": {"template": {"spec": {"containers": [{"name": "frontend", "image": image}]}}}},
        _content_type=MERGE,
    )
    lab.step(timedelta(seconds=90))
    assert first.spec is not None and first.spec.template is not None
    template = client.ApiClient().sanitize_for_serialization(first.spec.template)
    undo = [
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": {"team": "web"}},
    ]
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment("frontend", NS, undo, _content_type=MERGE)
    assert err.value.status == 400
    dep = apps.patch_namespaced_deployment("frontend", NS, undo)  # the client's default
    assert some(dep.metadata).annotations == {
        "team": "web",
        "deployment.kubernetes.io/revision": "3",
    }
    assert (
        some(dep.spec.template.spec).containers[0].image
        == some(first.spec.template.spec).containers[0].image
    )

    sets = apps.list_namespaced_replica_set(NS, label_selector="app=frontend").items
    revisions = {
        some(some(rs.metadata).labels)["pod-template-hash"]: some(some(rs.metadata).annotations)[
            "deployment.kubernetes.io/revision"
        ]
        for rs in sets
    }
    first_hash = some(some(first.metadata).labels)["pod-template-hash"]
    assert len(revisions) == 2 and revisions[first_hash] == "3"
    lab.step(timedelta(seconds=90))
    assert {p.metadata.labels["pod-template-hash"] for p in pods(lab, "frontend")} == {first_hash}
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment(
            "frontend", NS, [{"op": "remove", "path": "/spec/replicas"}]
        )
    assert err.value.status == 422


def test_deleting_the_hpa_leaves_the_replicas_alone(lab: Lab) -> None:
    apps, hpas = lab.kube.apps_v1, lab.kube.autoscaling_v2
    apps.patch_namespaced_deployment_scale(
        "checkout", NS, {"spec": {"replicas": 1}}, _content_type=MERGE
    )
    lab.step(timedelta(seconds=30))
    scale = apps.read_namespaced_deployment_scale("checkout", NS)
    assert some(scale.spec).replicas == 3  # minReplicas
    hpas.delete_namespaced_horizontal_pod_autoscaler("checkout", NS)
    with pytest.raises(ApiException) as err:
        hpas.read_namespaced_horizontal_pod_autoscaler("checkout", NS)
    assert err.value.status == 404
    apps.patch_namespaced_deployment_scale(
        "checkout", NS, {"spec": {"replicas": 1}}, _content_type=MERGE
    )
    lab.step(timedelta(minutes=2))
    assert some(apps.read_namespaced_deployment_scale("checkout", NS).spec).replicas == 1


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "names": {"kind": "Application", "plural": PLURAL, "singular": "application"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


def test_custom_objects_need_their_crd_and_take_json_merge_patches(lab: Lab) -> None:
    crds, objects = lab.kube.apiextensions_v1, lab.kube.custom_objects
    app = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Application",
        "metadata": {"name": "shop", "labels": {"team": "web"}},
        "spec": {
            "source": {"repoURL": "https://git.example.com/shop", "targetRevision": "v1"},
            "syncPolicy": {"automated": {"prune": True}, "syncOptions": ["A=1", "B=2"]},
        },
    }
    with pytest.raises(ApiException) as err:
        objects.create_namespaced_custom_object(GROUP, VERSION, "argocd", PLURAL, app)
    assert status_of(err) == (404, "NotFound")
    assert (
        json.loads(some(err.value.body))["message"]
        == "the server could not find the requested resource"
    )

    crd = crds.create_custom_resource_definition(CRD)
    assert crd.spec.names.kind == "Application"
    crd_status = some(crds.read_custom_resource_definition(f"{PLURAL}.{GROUP}").status)
    assert {c.type: c.status for c in some(crd_status.conditions)}["Established"] == "True"
    with pytest.raises(ApiException) as err:
        crds.create_custom_resource_definition(CRD)
    assert err.value.status == 409

    created = objects.create_namespaced_custom_object(GROUP, VERSION, "argocd", PLURAL, app)
    meta = created["metadata"]
    assert (meta["namespace"], meta["generation"]) == ("argocd", 1)
    assert meta["uid"] and meta["creationTimestamp"] == "2025-01-08T12:00:00Z"
    with pytest.raises(ApiException) as err:
        objects.create_namespaced_custom_object(GROUP, VERSION, "argocd", PLURAL, app)
    assert status_of(err) == (409, "AlreadyExists")

    with pytest.raises(ApiException) as err:  # sent as a strategic merge patch
        objects.patch_namespaced_custom_object(
            GROUP, VERSION, "argocd", PLURAL, "shop", {"spec": {}}, _content_type=JSON_PATCH
        )
    assert status_of(err) == (415, "UnsupportedMediaType")
    patched = objects.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "argocd",
        PLURAL,
        "shop",
        {
            "spec": {
                "source": {"targetRevision": "v0"},
                "syncPolicy": {"automated": None, "syncOptions": ["C=3"]},
            }
        },
    )
    assert patched["spec"] == {
        "source": {"repoURL": "https://git.example.com/shop", "targetRevision": "v0"},
        "syncPolicy": {"syncOptions": ["C=3"]},
    }
    assert patched["metadata"]["generation"] == 2
    assert int(patched["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    relabelled = objects.patch_namespaced_custom_object(
        GROUP, VERSION, "argocd", PLURAL, "shop", {"metadata": {"labels": {"team": None}}}
    )
    assert relabelled["metadata"]["generation"] == 2
    assert "labels" not in relabelled["metadata"]  # an emptied map is dropped, as by the server
    got = objects.get_namespaced_custom_object(GROUP, VERSION, "argocd", PLURAL, "shop")
    assert got == relabelled
    listed = objects.list_namespaced_custom_object(GROUP, VERSION, "argocd", PLURAL)
    assert [o["metadata"]["name"] for o in listed["items"]] == ["shop"]

    objects.delete_namespaced_custom_object(GROUP, VERSION, "argocd", PLURAL, "shop")
    for call in (
        objects.get_namespaced_custom_object,
        objects.delete_namespaced_custom_object,
    ):
        with pytest.raises(ApiException) as err:
            call(GROUP, VERSION, "argocd", PLURAL, "shop")
        assert err.value.status == 404
    with pytest.raises(ApiException) as err:
        objects.get_namespaced_custom_object(GROUP, "v1", "argocd", PLURAL, "shop")
    assert err.value.status == 404
