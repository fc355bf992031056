"""The lab's Services and Ingresses: created, read, listed and merge-patched as on an API server
(uid, resourceVersion, generation, 404/409/422), one Ingress per entry service at start, and the
rate limit the traffic model reads off them without an API call."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lab import Lab, LabSettings, SimClock, TopologySettings, call_forest
from lab._kube_net import LIMIT_RPS
from tests._narrow import some
from tests.k8s._backends import HTTPROUTE_CRD

NS = "shop"
MERGE = "application/merge-patch+json"


@pytest.fixture
def lab() -> Lab:
    return Lab(LabSettings(), SimClock(datetime(2025, 1, 8, 12, tzinfo=UTC)))


def _net(lab: Lab) -> Any:
    return lab.kube.networking_v1


def _core(lab: Lab) -> Any:
    return lab.kube.core_v1


def _ext(lab: Lab) -> Any:
    return lab.kube.apiextensions_v1


def _limit(lab: Lab, name: str, value: Any) -> Any:
    body = {"metadata": {"annotations": {LIMIT_RPS: value}}}
    return _net(lab).patch_namespaced_ingress(name, NS, body, _content_type=MERGE)


def _ingress(name: str, *services: str) -> dict[str, Any]:
    paths = [
        {
            "path": f"/{s}",
            "pathType": "Prefix",
            "backend": {"service": {"name": s, "port": {"number": 80}}},
        }
        for s in services
    ]
    return {"metadata": {"name": name}, "spec": {"rules": [{"http": {"paths": paths}}]}}


def _status(call: Any) -> int:
    with pytest.raises(ApiException) as info:
        call()
    return int(info.value.status)


def test_one_annotation_free_ingress_per_entry_service_at_start() -> None:
    """The default estate has one entry service; a forest has one per tree."""
    lab = Lab(LabSettings(), SimClock(datetime(2025, 1, 8, 12, tzinfo=UTC)))
    (only,) = _net(lab).list_namespaced_ingress(NS).items
    assert only.metadata.name == "frontend" and only.metadata.annotations is None
    path = only.spec.rules[0].http.paths[0]
    assert path.backend.service.name == "frontend" and only.metadata.generation == 1

    forest: TopologySettings = call_forest(12, 3)
    big = Lab(LabSettings(topology=forest), SimClock(datetime(2025, 1, 8, 12, tzinfo=UTC)))
    names = {i.metadata.name for i in _net(big).list_namespaced_ingress(NS).items}
    assert names == {s.name for s in forest.services if s.external_share > 0}
    assert len(names) == 3


def test_patching_an_ingress_keeps_the_server_bookkeeping(lab: Lab) -> None:
    net = _net(lab)
    first = net.read_namespaced_ingress("frontend", NS)
    patched = _limit(lab, "frontend", "100")
    assert patched.metadata.annotations == {LIMIT_RPS: "100"}
    assert int(patched.metadata.resource_version) > int(first.metadata.resource_version)
    assert patched.metadata.generation == 1, "an annotation is no change of spec"
    assert patched.metadata.uid == first.metadata.uid
    assert _limit(lab, "frontend", "100").metadata.resource_version == (
        patched.metadata.resource_version
    ), "a patch that changes nothing writes nothing"
    respec = {"spec": {"ingressClassName": "internal"}}
    moved = net.patch_namespaced_ingress("frontend", NS, respec, _content_type=MERGE)
    assert moved.metadata.generation == 2 and moved.spec.rules == first.spec.rules
    assert _limit(lab, "frontend", None).metadata.annotations is None


def test_ingress_errors_are_the_api_servers(lab: Lab) -> None:
    net = _net(lab)
    assert _status(lambda: net.read_namespaced_ingress("nope", NS)) == 404
    assert _status(lambda: net.read_namespaced_ingress("frontend", "other")) == 404
    assert _status(lambda: net.create_namespaced_ingress(NS, _ingress("frontend", "x"))) == 409
    empty = {"metadata": {"name": "empty"}, "spec": {}}
    assert _status(lambda: net.create_namespaced_ingress(NS, empty)) == 422
    assert _status(lambda: _limit(lab, "frontend", 100)) == 422, "annotation values are strings"
    stale = {"metadata": {"resourceVersion": "1", "annotations": {"a": "b"}}}
    _limit(lab, "frontend", "5")
    assert (
        _status(lambda: net.patch_namespaced_ingress("frontend", NS, stale, _content_type=MERGE))
        == 409
    )


def test_created_ingresses_are_listed_by_label(lab: Lab) -> None:
    net = _net(lab)
    body = _ingress("api", "checkout")
    body["metadata"]["labels"] = {"team": "shop"}
    made = net.create_namespaced_ingress(NS, body)
    assert isinstance(made, client.V1Ingress)
    assert made.metadata is not None and made.metadata.namespace == NS
    listed = net.list_namespaced_ingress(NS, label_selector="team=shop").items
    assert [i.metadata.name for i in listed] == ["api"]
    assert net.list_namespaced_ingress("other").items == []


def test_limit_rps_is_the_tightest_limit_in_front_of_a_service(lab: Lab) -> None:
    net = _net(lab)
    net.create_namespaced_ingress(NS, _ingress("both", "frontend", "checkout"))
    calls = lab.kube.calls()
    assert net.limit_rps("frontend") is None
    _limit(lab, "frontend", "200")
    _limit(lab, "both", "50")
    assert (net.limit_rps("frontend"), net.limit_rps("checkout")) == (50.0, 50.0)
    _limit(lab, "both", "not-a-number")  # ingress-nginx ignores what it cannot parse
    assert (net.limit_rps("frontend"), net.limit_rps("checkout")) == (200.0, None)
    assert net.limit_rps("payments") is None
    assert lab.kube.calls() == calls + 3, "reading the limit is no API call"


def test_external_name_services(lab: Lab) -> None:
    core = _core(lab)
    body = {
        "metadata": {"name": "orders-db"},
        "spec": {"type": "ExternalName", "externalName": "orders.primary.example.com"},
    }
    made = core.create_namespaced_service(NS, body)
    assert made.spec.cluster_ip is None and made.metadata.resource_version
    patch = {"spec": {"externalName": "orders.secondary.example.com"}}
    moved = core.patch_namespaced_service("orders-db", NS, patch, _content_type=MERGE)
    assert moved.spec.external_name == "orders.secondary.example.com"
    assert int(moved.metadata.resource_version) > int(made.metadata.resource_version)
    assert core.read_namespaced_service("orders-db", NS).spec.type == "ExternalName"
    bad = {"spec": {"externalName": "Not A Name"}}
    assert _status(lambda: core.patch_namespaced_service("orders-db", NS, bad)) == 422
    missing = {"metadata": {"name": "x"}, "spec": {"type": "ExternalName"}}
    assert _status(lambda: core.create_namespaced_service(NS, missing)) == 422


def test_cluster_ip_services_get_an_address(lab: Lab) -> None:
    core = _core(lab)
    made = core.create_namespaced_service(
        NS,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="checkout", labels={"app": "checkout"}),
            spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)]),
        ),
    )
    assert made.spec.type == "ClusterIP" and made.spec.cluster_ip.startswith("10.96.")
    listed = core.list_namespaced_service(NS, label_selector="app=checkout").items
    assert [s.metadata.name for s in listed] == ["checkout"]
    no_ports = {"metadata": {"name": "y"}, "spec": {}}
    assert _status(lambda: core.create_namespaced_service(NS, no_ports)) == 422


def test_a_deep_copy_keeps_its_own_services_and_ingresses(lab: Lab) -> None:
    twin = copy.deepcopy(lab)
    _limit(twin, "frontend", "10")
    assert _net(twin).limit_rps("frontend") == 10.0
    assert _net(lab).limit_rps("frontend") is None
    assert _net(lab).read_namespaced_ingress("frontend", NS).metadata.annotations is None


def test_calls_take_and_count_timeouts(lab: Lab) -> None:
    net = _net(lab)
    before = lab.kube.calls_without_timeout()
    net.read_namespaced_ingress("frontend", NS, _request_timeout=5)
    assert lab.kube.calls_without_timeout() == before
    net.read_namespaced_ingress("frontend", NS)
    assert lab.kube.calls_without_timeout() == before + 1


def test_a_crd_in_a_kubernetes_group_needs_its_api_approval() -> None:
    """As on the API server: Gateway API's CRDs carry ``api-approved.kubernetes.io``."""
    # An estate with no upstream API, whose lab installs no HTTPRoute CRD of its own.
    topology = TopologySettings(upstreams=())
    lab = Lab(LabSettings(topology=topology), SimClock(datetime(2025, 1, 8, 12, tzinfo=UTC)))
    unapproved = copy.deepcopy(HTTPROUTE_CRD)
    del unapproved["metadata"]["annotations"]
    ext = _ext(lab)
    assert _status(lambda: ext.create_custom_resource_definition(unapproved)) == 422
    ext.create_custom_resource_definition(HTTPROUTE_CRD)


def test_each_service_reads_a_config_map_whose_writes_say_who_and_when(lab: Lab) -> None:
    """Pods read ``<service>-config`` through ``envFrom``; the install is helm's write, an edit
    adds the editor's ``managedFields`` entry with the time, and a write that changes nothing
    records nothing."""
    core = _core(lab)
    names = {cm.metadata.name for cm in core.list_namespaced_config_map(NS).items}
    assert names == {f"{s}-config" for s in lab.services}
    dep = lab.kube.apps_v1.read_namespaced_deployment("checkout", NS)
    [source] = some(some(dep.spec.template.spec).containers[0].env_from)
    assert some(source.config_map_ref).name == "checkout-config"
    cm = core.read_namespaced_config_map("checkout-config", NS)
    assert [m.manager for m in cm.metadata.managed_fields] == ["helm"]
    assert cm.metadata.managed_fields[0].time == cm.metadata.creation_timestamp
    lab.step(timedelta(minutes=2))
    edited = core.patch_namespaced_config_map(
        "checkout-config", NS, {"data": {"DB_POOL_SIZE": None}}, field_manager="kubectl-edit"
    )
    assert "DB_POOL_SIZE" not in edited.data
    fields = {m.manager: m.time for m in edited.metadata.managed_fields}
    assert fields["kubectl-edit"] == lab.clock.now().replace(microsecond=0)
    assert fields["helm"] == cm.metadata.creation_timestamp
    lab.step(timedelta(minutes=1))
    same = core.patch_namespaced_config_map(
        "checkout-config", NS, {"data": {"DB_POOL_SIZE": None}}, field_manager="kubectl-edit"
    )
    assert same.metadata.resource_version == edited.metadata.resource_version
    assert same.metadata.managed_fields == edited.metadata.managed_fields
    bad = {"data": {"DB_POOL_SIZE": 20}}
    assert _status(lambda: core.patch_namespaced_config_map("checkout-config", NS, bad)) == 422
    assert _status(lambda: core.read_namespaced_config_map("nope", NS)) == 404
