"""The fake Kubernetes API returns the official client models and behaves like a cluster."""

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


@pytest.fixture
def lab() -> Lab:
    return Lab(LabSettings(), SimClock(datetime(2025, 1, 8, 12, tzinfo=UTC)))


def test_objects_are_official_models(lab: Lab) -> None:
    pods = lab.kube.core_v1.list_namespaced_pod(NS)
    assert isinstance(pods, client.V1PodList)
    assert pods.items and all(isinstance(p, client.V1Pod) for p in pods.items)
    pod = pods.items[0]
    assert pod.metadata is not None and pod.spec is not None and pod.status is not None
    labels = some(pod.metadata.labels)
    assert labels["app"] in {"frontend", "checkout", "payments"}
    assert "pod-template-hash" in labels
    assert pod.spec.node_name is not None
    assert pod.status.phase == "Running"
    ready = {c.type: c.status for c in some(pod.status.conditions)}["Ready"]
    assert ready == "True"
    assert some(pod.status.container_statuses)[0].restart_count == 0

    nodes = lab.kube.core_v1.list_node()
    assert isinstance(nodes, client.V1NodeList) and len(nodes.items) == 3
    assert {
        some(some(n.metadata).labels)["topology.kubernetes.io/region"] for n in nodes.items
    } == {"eu-west-1"}

    dep = lab.kube.apps_v1.read_namespaced_deployment("checkout", NS)
    assert isinstance(dep, client.V1Deployment)
    checkout_pods = lab.kube.core_v1.list_namespaced_pod(NS, label_selector="app=checkout")
    assert dep.spec.replicas == len(checkout_pods.items) == some(dep.status).ready_replicas

    scale = lab.kube.apps_v1.read_namespaced_deployment_scale("checkout", NS)
    assert isinstance(scale, client.V1Scale)
    assert scale.spec is not None and scale.status is not None
    assert scale.spec.replicas == dep.spec.replicas and scale.status.selector == "app=checkout"

    hpa = lab.kube.autoscaling_v2.read_namespaced_horizontal_pod_autoscaler("checkout", NS)
    assert isinstance(hpa, client.V2HorizontalPodAutoscaler)
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (3, 30)
    assert some(some(hpa.spec.metrics)[0].resource).target.average_utilization == 60
    assert hpa.spec.scale_target_ref.name == "checkout"


def test_unknown_objects_are_404(lab: Lab) -> None:
    with pytest.raises(ApiException) as err:
        lab.kube.core_v1.read_namespaced_pod("checkout-nope", NS)
    assert err.value.status == 404
    assert json.loads(some(err.value.body))["reason"] == "NotFound"
    with pytest.raises(ApiException) as err:
        lab.kube.core_v1.delete_namespaced_pod("checkout-nope", NS)
    assert err.value.status == 404
    pod = lab.kube.core_v1.list_namespaced_pod(NS).items[0]
    with pytest.raises(ApiException) as err:
        lab.kube.core_v1.read_namespaced_pod(name_of(pod), "default")
    assert err.value.status == 404
    with pytest.raises(ApiException) as err:
        lab.kube.apps_v1.read_namespaced_deployment_scale("cart", NS)
    assert err.value.status == 404
    assert lab.kube.core_v1.list_namespaced_pod("default").items == []


def test_label_selectors(lab: Lab) -> None:
    core = lab.kube.core_v1
    every = core.list_namespaced_pod(NS).items
    checkout = core.list_namespaced_pod(NS, label_selector="app=checkout").items
    others = core.list_namespaced_pod(NS, label_selector="app!=checkout").items
    assert checkout and {some(some(p.metadata).labels)["app"] for p in checkout} == {"checkout"}
    assert len(checkout) + len(others) == len(every)
    hash_ = some(some(checkout[0].metadata).labels)["pod-template-hash"]
    both = core.list_namespaced_pod(NS, label_selector=f"app==checkout, pod-template-hash={hash_}")
    assert len(both.items) == len(checkout)
    assert core.list_namespaced_pod(NS, label_selector="app=checkout,app=frontend").items == []
    assert len(core.list_namespaced_pod(NS, label_selector="app").items) == len(every)
    with pytest.raises(ApiException) as err:
        core.list_namespaced_pod(NS, label_selector="app in (checkout)")
    assert err.value.status == 400


def test_field_selectors_on_node_and_phase(lab: Lab) -> None:
    core = lab.kube.core_v1
    every = core.list_pod_for_all_namespaces().items
    node = some(every[0].spec).node_name
    here = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items
    there = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName!={node}").items
    assert here and there and len(here) + len(there) == len(every)
    live = "status.phase!=Succeeded,status.phase!=Failed"
    assert len(core.list_pod_for_all_namespaces(field_selector=live).items) == len(every)
    assert core.list_pod_for_all_namespaces(field_selector="status.phase==Failed").items == []
    with pytest.raises(ApiException) as err:
        core.list_pod_for_all_namespaces(field_selector="metadata.name=x")
    assert err.value.status == 400


def test_deleted_pod_is_replaced_and_becomes_ready_after_startup(lab: Lab) -> None:
    core = lab.kube.core_v1
    before = {name_of(p) for p in core.list_namespaced_pod(NS, label_selector="app=payments").items}
    victim = sorted(before)[0]
    deleted = core.delete_namespaced_pod(victim, NS)
    assert some(deleted.metadata).deletion_timestamp == lab.clock.now()

    after = core.list_namespaced_pod(NS, label_selector="app=payments").items
    names = {name_of(p) for p in after}
    assert len(names) == len(before) and victim not in names
    (new_name,) = names - before
    assert new_name.startswith("payments-") and len(new_name.split("-")[-1]) == 5

    def status() -> tuple[str, str, int]:
        pod_status = some(core.read_namespaced_pod(new_name, NS).status)
        ready = {c.type: c.status for c in some(pod_status.conditions)}["Ready"]
        restarts = some(pod_status.container_statuses)[0].restart_count
        return some(pod_status.phase), ready, restarts

    assert status() == ("Pending", "False", 0)
    lab.step(timedelta(seconds=30))
    assert status() == ("Running", "False", 0)
    lab.step(timedelta(seconds=30))
    assert status() == ("Running", "False", 0)  # still warming up
    lab.step(timedelta(seconds=15))  # pending 10 s + start-up 60 s have passed
    assert status() == ("Running", "True", 0)


def test_scale_patch_dict_and_model(lab: Lab) -> None:
    apps = lab.kube.apps_v1
    scale = apps.patch_namespaced_deployment_scale(
        "payments", NS, {"spec": {"replicas": 7}}, _content_type=MERGE
    )
    assert some(scale.spec).replicas == 7
    pods = lab.kube.core_v1.list_namespaced_pod(NS, label_selector="app=payments").items
    assert len(pods) == 7
    model = client.V1Scale(spec=client.V1ScaleSpec(replicas=5))
    patched = apps.patch_namespaced_deployment_scale("payments", NS, model, _content_type=MERGE)
    assert some(patched.spec).replicas == 5
    assert apps.read_namespaced_deployment("payments", NS).spec.replicas == 5
    with pytest.raises(ApiException) as err:
        apps.patch_namespaced_deployment_scale(
            "payments", NS, {"spec": {"replicas": -1}}, _content_type=MERGE
        )
    assert err.value.status == 422


def test_hpa_patch_validation(lab: Lab) -> None:
    hpas = lab.kube.autoscaling_v2
    patched = hpas.patch_namespaced_horizontal_pod_autoscaler(
        "frontend",
        NS,
        {
            "spec": {
                "maxReplicas": 40,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 50},
                        },
                    }
                ],
            }
        },
        _content_type=MERGE,
    )
    assert patched.spec.max_replicas == 40
    assert some(some(patched.spec.metrics)[0].resource).target.average_utilization == 50
    model = client.V2HorizontalPodAutoscaler(
        spec=client.V2HorizontalPodAutoscalerSpec(
            min_replicas=4,
            max_replicas=40,
            scale_target_ref=client.V2CrossVersionObjectReference(
                kind="Deployment", name="frontend"
            ),
        )
    )
    assert (
        hpas.patch_namespaced_horizontal_pod_autoscaler(
            "frontend", NS, model, _content_type=MERGE
        ).spec.min_replicas
        == 4
    )
    bad: dict[str, Any]
    for bad in (
        {"spec": {"minReplicas": 50}},
        {"spec": {"minReplicas": 0}},
        {"spec": {"behavior": {}}},
        {"spec": {"metrics": [{"type": "Pods"}]}},
    ):
        with pytest.raises(ApiException) as err:
            hpas.patch_namespaced_horizontal_pod_autoscaler(
                "frontend", NS, bad, _content_type=MERGE
            )
        assert err.value.status == 422, bad
    assert hpas.read_namespaced_horizontal_pod_autoscaler("frontend", NS).spec.min_replicas == 4
