"""The fake Kubernetes API's object metadata (annotations, resourceVersion, generation) and the
client's per-call options, which code under test must be able to pass and tests to count."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lab import Lab, LabSettings, SimClock
from tests._narrow import name_of, some

NS = "shop"
MERGE = "application/merge-patch+json"
REVISION = "deployment.kubernetes.io/revision"
GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "applications"


@pytest.fixture
def lab() -> Lab:
    return Lab(LabSettings(), SimClock(datetime(2025, 1, 8, 12, tzinfo=UTC)))


@pytest.fixture
def still(lab: Lab) -> Lab:
    """The lab without its HPAs, so that only the tests change the Deployments."""
    for hpa in lab.kube.autoscaling_v2.list_namespaced_horizontal_pod_autoscaler(NS).items:
        lab.kube.autoscaling_v2.delete_namespaced_horizontal_pod_autoscaler(name_of(hpa), NS)
    return lab


def node_name(lab: Lab) -> str:
    return name_of(lab.kube.core_v1.list_node().items[0])


def rv(obj: Any) -> int:
    return int(obj.metadata.resource_version)


# Each kind as (read, merge-patch): the patch takes the body, the read takes nothing.
Kind = tuple[Callable[[], Any], Callable[[dict[str, Any]], Any]]


def kinds(lab: Lab) -> dict[str, Kind]:
    core, apps, hpas = lab.kube.core_v1, lab.kube.apps_v1, lab.kube.autoscaling_v2
    node = node_name(lab)
    return {
        "node": (
            lambda: core.read_node(node),
            lambda body: core.patch_node(node, body, _content_type=MERGE),
        ),
        "deployment": (
            lambda: apps.read_namespaced_deployment("checkout", NS),
            lambda body: apps.patch_namespaced_deployment(
                "checkout", NS, body, _content_type=MERGE
            ),
        ),
        "hpa": (
            lambda: hpas.read_namespaced_horizontal_pod_autoscaler("checkout", NS),
            lambda body: hpas.patch_namespaced_horizontal_pod_autoscaler(
                "checkout", NS, body, _content_type=MERGE
            ),
        ),
    }


def user_annotations(obj: Any) -> dict[str, str]:
    return {k: v for k, v in (obj.metadata.annotations or {}).items() if k != REVISION}


@pytest.mark.parametrize("kind", ["node", "deployment", "hpa"])
def test_annotations_are_set_read_back_and_deleted(lab: Lab, kind: str) -> None:
    read, patch = kinds(lab)[kind]
    assert user_annotations(read()) == {}
    owner = {"ooda.example.com/owner": "loop", "Note": 'any value: {"x": 1}'}
    assert user_annotations(patch({"metadata": {"annotations": owner}})) == owner
    assert user_annotations(read()) == owner
    patch({"metadata": {"annotations": {"Note": None, "ooda.example.com/since": "t0"}}})
    assert user_annotations(read()) == {
        "ooda.example.com/owner": "loop",
        "ooda.example.com/since": "t0",
    }
    patch({"metadata": {"annotations": None}})  # merge patch: null deletes the whole map
    assert user_annotations(read()) == {}


def test_annotations_are_listed(lab: Lab) -> None:
    core, apps, hpas = lab.kube.core_v1, lab.kube.apps_v1, lab.kube.autoscaling_v2
    for read, patch in kinds(lab).values():
        patch({"metadata": {"annotations": {"team": "shop"}}})
        assert user_annotations(read()) == {"team": "shop"}
    listed: list[client.V1Node | client.V1Deployment | client.V2HorizontalPodAutoscaler] = [
        *core.list_node().items,
        *apps.list_namespaced_deployment(NS).items,
        *hpas.list_namespaced_horizontal_pod_autoscaler(NS).items,
    ]
    tagged = {(o.kind, name_of(o)) for o in listed if user_annotations(o) == {"team": "shop"}}
    assert tagged == {
        ("Node", node_name(lab)),
        ("Deployment", "checkout"),
        ("HorizontalPodAutoscaler", "checkout"),
    }


@pytest.mark.parametrize("kind", ["node", "deployment", "hpa"])
@pytest.mark.parametrize(
    "annotations",
    [
        {"bad key": "x"},
        {"-team": "x"},
        {"a/b/c": "x"},
        {"example_com/team": "x"},
        {"/team": "x"},
        {"team/": "x"},
        {"t" * 64: "x"},
        {"team": 3},
        {"team": "x" * 2**18},
    ],
)
def test_invalid_annotations_are_422_and_change_nothing(
    lab: Lab, kind: str, annotations: dict[str, Any]
) -> None:
    read, patch = kinds(lab)[kind]
    before = read()
    with pytest.raises(ApiException) as err:
        patch({"metadata": {"annotations": annotations}})
    assert err.value.status == 422
    assert json.loads(some(err.value.body))["reason"] == "Invalid"
    after = read()
    assert user_annotations(after) == {} and rv(after) == rv(before)


@pytest.mark.parametrize("kind", ["node", "deployment", "hpa"])
def test_annotation_keys_are_checked_lower_cased_like_the_api_server(lab: Lab, kind: str) -> None:
    read, patch = kinds(lab)[kind]
    keys = {"Example.COM/Team": "a", "a.b-c_d": "b", f"{'p' * 253}/{'n' * 63}": "c"}
    patch({"metadata": {"annotations": keys}})
    assert user_annotations(read()) == keys


def test_json_patch_adds_replaces_and_removes_single_annotations(still: Lab) -> None:
    apps = still.kube.apps_v1
    key = "/metadata/annotations/ooda.example.com~1owner"
    dep = apps.patch_namespaced_deployment(
        "checkout",
        NS,
        [
            {"op": "add", "path": key, "value": "loop"},
            {"op": "add", "path": "/metadata/annotations/team", "value": "shop"},
        ],
    )
    assert user_annotations(dep) == {"ooda.example.com/owner": "loop", "team": "shop"}
    assert dep.metadata is not None
    assert some(dep.metadata.annotations)[REVISION] == "1" and dep.metadata.generation == 1
    apps.patch_namespaced_deployment("checkout", NS, [{"op": "replace", "path": key, "value": "x"}])
    apps.patch_namespaced_deployment(
        "checkout", NS, [{"op": "remove", "path": "/metadata/annotations/team"}]
    )
    dep = apps.read_namespaced_deployment("checkout", NS)
    assert user_annotations(dep) == {"ooda.example.com/owner": "x"}
    assert some(some(dep.metadata).annotations)[REVISION] == "1"  # the controller's, not removable

    for ops in (
        [{"op": "remove", "path": "/metadata/annotations/missing"}],
        [{"op": "replace", "path": "/metadata/annotations/missing", "value": "x"}],
        [{"op": "add", "path": key}],
        [{"op": "add", "path": "/metadata/annotations/Bad Key", "value": "x"}],
        [{"op": "add", "path": f"{key}/deeper", "value": "x"}],
        [{"op": "move", "from": key, "path": "/metadata/annotations/b"}],
        [{"op": "add", "path": "/metadata/labels/x", "value": "x"}],
        # All or nothing: the second operation fails, so the first is not applied either.
        [
            {"op": "remove", "path": key},
            {"op": "remove", "path": "/metadata/annotations/missing"},
        ],
    ):
        with pytest.raises(ApiException) as err:
            apps.patch_namespaced_deployment("checkout", NS, ops)
        assert err.value.status == 422, ops
    assert user_annotations(apps.read_namespaced_deployment("checkout", NS)) == {
        "ooda.example.com/owner": "x"
    }
    dep = apps.patch_namespaced_deployment(
        "checkout", NS, [{"op": "remove", "path": "/metadata/annotations"}]
    )
    assert some(dep.metadata).annotations == {REVISION: "1"}


def test_a_patch_that_changes_an_object_moves_its_resource_version_on(lab: Lab) -> None:
    reads = kinds(lab)
    versions = {kind: rv(read()) for kind, (read, _) in reads.items()}
    for kind, (read, patch) in reads.items():
        patched = patch({"metadata": {"annotations": {"team": kind}}})
        assert rv(patched) > versions[kind]
        assert rv(read()) == rv(patched)
        versions[kind] = rv(patched)
    # A later write to any object is a higher revision: one counter for the cluster.
    assert versions["node"] < versions["deployment"] < versions["hpa"]
    node = node_name(lab)
    cordoned = lab.kube.core_v1.patch_node(node, {"spec": {"unschedulable": True}})
    assert rv(cordoned) > versions["hpa"]


def test_unchanged_objects_keep_their_resource_version(still: Lab) -> None:
    lab, core, apps = still, still.kube.core_v1, still.kube.apps_v1
    node = node_name(lab)
    first = rv(core.read_node(node))
    dep = rv(apps.read_namespaced_deployment("checkout", NS))
    pod = core.list_namespaced_pod(NS, label_selector="app=checkout").items[0]
    lab.step(timedelta(seconds=45))
    assert rv(core.read_node(node)) == first
    assert {name_of(n): rv(n) for n in core.list_node().items}[node] == first
    assert rv(apps.read_namespaced_deployment("checkout", NS)) == dep
    assert rv(core.read_namespaced_pod(name_of(pod), NS)) == rv(pod)
    # A patch that changes nothing writes nothing.
    assert rv(core.patch_node(node, {"spec": {"unschedulable": None}})) == first
    scale = apps.read_namespaced_deployment_scale("checkout", NS)
    same = apps.patch_namespaced_deployment_scale(
        "checkout", NS, {"spec": {"replicas": some(scale.spec).replicas}}, _content_type=MERGE
    )
    assert rv(same) == rv(scale) == dep
    assert some(apps.read_namespaced_deployment("checkout", NS).metadata).generation == 1
    # A list is read at the cluster's revision, at least that of each item.
    listed = core.list_node()
    assert int(some(some(listed.metadata).resource_version)) >= max(rv(n) for n in listed.items)


def test_the_hpa_controller_moves_the_hpa_and_deployment_resource_versions_on(lab: Lab) -> None:
    apps, hpas = lab.kube.apps_v1, lab.kube.autoscaling_v2
    hpas.patch_namespaced_horizontal_pod_autoscaler(
        "checkout", NS, {"spec": {"minReplicas": 8}}, _content_type=MERGE
    )
    hpa = hpas.read_namespaced_horizontal_pod_autoscaler("checkout", NS)
    dep = apps.read_namespaced_deployment("checkout", NS)
    assert some(dep.spec.replicas) < 8 and some(hpa.status).desired_replicas < 8
    lab.step(timedelta(seconds=15))  # one HPA sync
    hpa_after = hpas.read_namespaced_horizontal_pod_autoscaler("checkout", NS)
    dep_after = apps.read_namespaced_deployment("checkout", NS)
    assert some(hpa_after.status).desired_replicas == dep_after.spec.replicas == 8
    assert rv(hpa_after) > rv(hpa)
    assert rv(dep_after) > rv(dep)
    assert dep_after.metadata is not None and dep.metadata is not None
    assert dep_after.metadata.generation == some(dep.metadata.generation) + 1
    scale = apps.read_namespaced_deployment_scale("checkout", NS)
    assert some(scale.metadata).resource_version == dep_after.metadata.resource_version


def test_a_pod_gets_a_new_resource_version_as_it_starts(still: Lab) -> None:
    core = still.kube.core_v1
    victim = core.list_namespaced_pod(NS, label_selector="app=payments").items[0]
    deleted = core.delete_namespaced_pod(name_of(victim), NS)
    assert rv(deleted) > rv(victim)
    (new,) = [
        p
        for p in core.list_namespaced_pod(NS, label_selector="app=payments").items
        if some(p.status).phase == "Pending"
    ]
    assert rv(new) > rv(deleted)
    still.step(timedelta(seconds=30))
    running = core.read_namespaced_pod(name_of(new), NS)
    assert some(running.status).phase == "Running" and rv(running) > rv(new)


def test_a_deep_copy_of_the_lab_keeps_its_own_revisions(still: Lab) -> None:
    pod = still.kube.core_v1.list_namespaced_pod(NS).items[0]
    twin = copy.deepcopy(still)
    twin.kube.core_v1.delete_namespaced_pod(name_of(pod), NS)
    assert rv(still.kube.core_v1.read_namespaced_pod(name_of(pod), NS)) == rv(pod)


@pytest.mark.parametrize("kind", ["node", "deployment", "hpa"])
def test_a_stale_resource_version_in_a_patch_is_a_conflict(lab: Lab, kind: str) -> None:
    read, patch = kinds(lab)[kind]
    seen = read().metadata.resource_version
    patch({"metadata": {"annotations": {"lock": "a"}}})
    with pytest.raises(ApiException) as err:
        patch({"metadata": {"resourceVersion": seen, "annotations": {"lock": "b"}}})
    assert err.value.status == 409
    assert json.loads(some(err.value.body))["reason"] == "Conflict"
    current = read().metadata.resource_version
    patched = patch({"metadata": {"resourceVersion": current, "annotations": {"lock": "b"}}})
    assert user_annotations(patched) == {"lock": "b"}


def test_every_call_takes_the_clients_options_and_is_counted(lab: Lab) -> None:
    kube = lab.kube
    core, apps, hpas = kube.core_v1, kube.apps_v1, kube.autoscaling_v2
    node = node_name(lab)
    assert (kube.calls(), kube.calls_without_timeout()) == (1, 1)  # node_name's list_node
    options: dict[str, Any] = {
        "_request_timeout": (3.05, 27),
        "_preload_content": True,
        "_return_http_data_only": True,
        "_headers": {"X-Request-Id": "1"},
        "async_req": False,
        "_request_auth": None,
        "_host_index": 0,
    }
    # _Counted (lab/_kube.py) wraps every method to take these options at run time, but the
    # methods' own signatures, which mypy reads, do not declare them: hence the call-arg ignores.
    core.read_node(node, **options)
    core.list_namespaced_pod(NS, label_selector="app=checkout", **options)
    apps.read_namespaced_deployment(
        "checkout",
        NS,
        _content_type="application/json",  # type: ignore[call-arg]  # see _Counted
        **options,
    )
    hpas.list_namespaced_horizontal_pod_autoscaler(NS, _request_timeout=5)  # type: ignore[call-arg]
    pod = name_of(core.list_namespaced_pod(NS, _request_timeout=5).items[0])  # type: ignore[call-arg]
    # One call, although the eviction deletes the pod through the API's own method.
    core.create_namespaced_pod_eviction(pod, NS, {}, _request_timeout=5)  # type: ignore[call-arg]
    ops = [{"op": "replace", "path": "/spec/replicas", "value": 3}]
    with pytest.raises(ApiException) as err:  # _content_type still reaches the patch
        apps.patch_namespaced_deployment_scale(  # type: ignore[call-arg]  # see _Counted
            "checkout", NS, ops, _content_type=MERGE, _request_timeout=5
        )
    assert err.value.status == 400
    assert (core.calls, core.calls_without_timeout) == (5, 1)
    assert (apps.calls, apps.calls_without_timeout) == (2, 0)
    assert (hpas.calls, hpas.calls_without_timeout) == (1, 0)

    with pytest.raises(ApiException):  # a failed call is a call
        kube.custom_objects.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "x")
    kube.policy_v1.list_namespaced_pod_disruption_budget(NS)
    kube.apiextensions_v1.create_custom_resource_definition(
        CRD,
        _request_timeout=10,  # type: ignore[call-arg]  # see _Counted
    )
    assert (kube.calls(), kube.calls_without_timeout()) == (11, 3)

    for timeout in (0, -1, "5", (1,), (1, 0), True):
        with pytest.raises(ValueError, match="_request_timeout"):
            core.read_node(node, _request_timeout=timeout)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        core.read_node(node, _not_an_option=1)  # type: ignore[call-arg]  # deliberately unknown


def test_custom_objects_share_the_clusters_revision_counter(lab: Lab) -> None:
    kube = lab.kube
    node = rv(kube.core_v1.read_node(node_name(lab)))
    crd = kube.apiextensions_v1.create_custom_resource_definition(CRD)
    assert int(some(some(crd.metadata).resource_version)) > node
    patched = kube.core_v1.patch_node(node_name(lab), {"metadata": {"annotations": {"a": "b"}}})
    assert rv(patched) > int(some(some(crd.metadata).resource_version))


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "names": {"kind": "Application", "plural": PLURAL, "singular": "application"},
        "scope": "Namespaced",
        "versions": [{"name": VERSION, "served": True, "storage": True}],
    },
}
