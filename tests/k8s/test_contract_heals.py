"""The contract of the traffic, database, consumer and container heals, on the lab and on a real
control plane: the objects they change (an Ingress's annotations, an ExternalName Service, a
Gateway API HTTPRoute's weights, a Deployment's scale or its HPA's floor, a pod through exec or
eviction), how they step back, and that a refusal or a dry run leaves them as they were.
"""

from __future__ import annotations

from typing import Any

import pytest

from actuators import (
    ACTION,
    FLOOR_BELOW,
    FLOOR_FOR,
    GATEWAY_GROUP,
    GATEWAY_VERSION,
    HTTPROUTES,
    LIMIT_RPS,
    MERGE_PATCH,
    MIN_SET,
    RESTORED_KEY,
    ActionContext,
    ConflictError,
    GuardRejectedError,
    KillContainer,
    KubeClients,
    RateLimit,
    Reroute,
    RestoreConfigKey,
    ScaleConsumers,
    SetHpaMinReplicas,
    SwitchDatabase,
)
from tests.k8s._backends import (
    HTTPROUTE_CRD,
    SERVICE,
    Backend,
    external_name_service,
    http_route,
    ingress,
    ready_pods,
)

PRIMARY = "orders.primary.db.example.com"
SECONDARY = "orders.secondary.db.example.com"


def _ctx(b: Backend, **kwargs: Any) -> ActionContext:
    return ActionContext(b.actor, sleep=b.sleep, **kwargs)


def _annotations(obj: Any) -> dict[str, str]:
    return dict(obj.metadata.annotations or {})


def test_rate_limit_annotates_the_ingress_and_undo_removes_it(backend: Backend) -> None:
    b = backend
    net = b.kube.networking_v1
    net.create_namespaced_ingress(b.namespace, ingress(SERVICE))
    action = RateLimit(b.namespace, SERVICE, "surge past capacity", rps=120, min_rps=20)

    action.apply(_ctx(b, dry_run=True))
    assert LIMIT_RPS not in _annotations(net.read_namespaced_ingress(SERVICE, b.namespace))
    with pytest.raises(GuardRejectedError, match="below the floor"):
        RateLimit(b.namespace, SERVICE, rps=10, min_rps=20).apply(_ctx(b))
    assert LIMIT_RPS not in _annotations(net.read_namespaced_ingress(SERVICE, b.namespace))

    result = action.apply(_ctx(b))
    notes = _annotations(net.read_namespaced_ingress(SERVICE, b.namespace))
    assert notes[LIMIT_RPS] == "120" and notes[ACTION] == "rate_limit"
    action.undo(_ctx(b), result)
    assert LIMIT_RPS not in _annotations(net.read_namespaced_ingress(SERVICE, b.namespace))

    result = action.apply(_ctx(b))
    human = {"metadata": {"annotations": {LIMIT_RPS: "300"}}}
    net.patch_namespaced_ingress(SERVICE, b.namespace, human, _content_type=MERGE_PATCH)
    with pytest.raises(ConflictError, match="'300'"):
        action.undo(_ctx(b), result)
    assert _annotations(net.read_namespaced_ingress(SERVICE, b.namespace))[LIMIT_RPS] == "300"


def test_switch_database_repoints_the_external_name_service(backend: Backend) -> None:
    b = backend
    core = b.kube.core_v1
    core.create_namespaced_service(b.namespace, external_name_service("orders-db", PRIMARY))
    fields: dict[str, Any] = {
        "db_service": "orders-db",
        "secondary": SECONDARY,
        "replica_lag_s": 1.5,
        "secondary_healthy": True,
    }
    with pytest.raises(GuardRejectedError, match=r"lags 90\.0 s"):
        SwitchDatabase(b.namespace, SERVICE, **{**fields, "replica_lag_s": 90.0}).apply(_ctx(b))
    assert core.read_namespaced_service("orders-db", b.namespace).spec.external_name == PRIMARY

    action = SwitchDatabase(b.namespace, SERVICE, "db read latency", **fields)
    result = action.apply(_ctx(b))
    svc = core.read_namespaced_service("orders-db", b.namespace)
    assert svc.spec.external_name == SECONDARY and svc.spec.type == "ExternalName"
    assert _annotations(svc)[ACTION] == "switch_database"
    action.undo(_ctx(b), result)
    assert core.read_namespaced_service("orders-db", b.namespace).spec.external_name == PRIMARY

    result = action.apply(_ctx(b))
    moved = {"spec": {"externalName": "orders.dr.db.example.com"}}
    core.patch_namespaced_service("orders-db", b.namespace, moved, _content_type=MERGE_PATCH)
    with pytest.raises(ConflictError, match=r"orders\.dr\.db\.example\.com"):
        action.undo(_ctx(b), result)


def test_restore_config_key_puts_a_removed_key_back_and_undo_removes_it(
    backend: Backend,
) -> None:
    b = backend
    core = b.kube.core_v1
    body = {"metadata": {"name": "orders-config"}, "data": {"DB_POOL_SIZE": "20"}}
    core.create_namespaced_config_map(b.namespace, body)
    action = RestoreConfigKey(
        b.namespace, SERVICE, config_map="orders-config", key="TLS_CA_BUNDLE", value="/etc/ca.pem"
    )

    preview = action.apply(_ctx(b, dry_run=True))
    assert preview.after == {"key": "TLS_CA_BUNDLE", "present": True, "value": "/etc/ca.pem"}
    assert "TLS_CA_BUNDLE" not in core.read_namespaced_config_map("orders-config", b.namespace).data

    result = action.apply(_ctx(b))
    cm = core.read_namespaced_config_map("orders-config", b.namespace)
    assert cm.data == {"DB_POOL_SIZE": "20", "TLS_CA_BUNDLE": "/etc/ca.pem"}
    assert _annotations(cm)[ACTION] == "restore_config_key"
    assert _annotations(cm)[RESTORED_KEY] == "TLS_CA_BUNDLE"
    with pytest.raises(GuardRejectedError, match="back already"):
        action.apply(_ctx(b))
    action.undo(_ctx(b), result)
    cm = core.read_namespaced_config_map("orders-config", b.namespace)
    assert cm.data == {"DB_POOL_SIZE": "20"} and RESTORED_KEY not in _annotations(cm)

    result = action.apply(_ctx(b))
    theirs = {"data": {"TLS_CA_BUNDLE": "/etc/their-ca.pem"}}
    core.patch_namespaced_config_map("orders-config", b.namespace, theirs)
    with pytest.raises(ConflictError, match="their-ca"):
        action.undo(_ctx(b), result)
    cm = core.read_namespaced_config_map("orders-config", b.namespace)
    assert cm.data["TLS_CA_BUNDLE"] == "/etc/their-ca.pem"


def _weights(b: Backend, name: str) -> dict[str, int]:
    route = b.kube.custom_objects.get_namespaced_custom_object(
        GATEWAY_GROUP, GATEWAY_VERSION, b.namespace, HTTPROUTES, name
    )
    return {r["name"]: r["weight"] for r in route["spec"]["rules"][0]["backendRefs"]}


def test_reroute_moves_httproute_weights_and_back(backend: Backend) -> None:
    b = backend
    b.install_crd(HTTPROUTE_CRD)
    route = http_route("payments", {"payments-eu": 100, "payments-us": 0})
    b.kube.custom_objects.create_namespaced_custom_object(
        GATEWAY_GROUP, GATEWAY_VERSION, b.namespace, HTTPROUTES, route
    )
    sick = Reroute(
        b.namespace,
        SERVICE,
        route="payments",
        weights=(("payments-us", 100),),
        unhealthy=("payments-us",),
    )
    with pytest.raises(GuardRejectedError, match="unhealthy"):
        sick.apply(_ctx(b))
    assert _weights(b, "payments") == {"payments-eu": 100, "payments-us": 0}

    action = Reroute(
        b.namespace,
        SERVICE,
        "upstream throttling",
        route="payments",
        weights=(("payments-eu", 25), ("payments-us", 75)),
    )
    result = action.apply(_ctx(b))
    assert _weights(b, "payments") == {"payments-eu": 25, "payments-us": 75}
    action.undo(_ctx(b), result)
    assert _weights(b, "payments") == {"payments-eu": 100, "payments-us": 0}


def _hpa_min(b: Backend) -> int:
    hpa = b.kube.autoscaling_v2.read_namespaced_horizontal_pod_autoscaler(SERVICE, b.namespace)
    return int(hpa.spec.min_replicas)


def _scale(b: Backend) -> int:
    scale = b.kube.apps_v1.read_namespaced_deployment_scale(SERVICE, b.namespace)
    return int(scale.spec.replicas)


def test_scale_consumers_through_the_hpa_then_the_deployment(backend: Backend) -> None:
    b = backend
    action = ScaleConsumers(b.namespace, SERVICE, deployment=SERVICE, replicas=5, partitions=6)
    result = action.apply(_ctx(b))
    hpa = b.kube.autoscaling_v2.read_namespaced_horizontal_pod_autoscaler(SERVICE, b.namespace)
    assert hpa.spec.min_replicas == 5 and _annotations(hpa)[MIN_SET] == "5"
    action.undo(_ctx(b), result)
    assert _hpa_min(b) == 3

    b.kube.autoscaling_v2.delete_namespaced_horizontal_pod_autoscaler(SERVICE, b.namespace)
    now = _scale(b)  # 3, or 5 if the HPA controller acted on the raised floor meanwhile
    at_most = ScaleConsumers(
        b.namespace, SERVICE, deployment=SERVICE, replicas=now + 1, partitions=now
    )
    with pytest.raises(GuardRejectedError, match="partitions"):
        at_most.apply(_ctx(b))
    action = ScaleConsumers(
        b.namespace, SERVICE, deployment=SERVICE, replicas=now + 3, partitions=now + 1
    )
    result = action.apply(_ctx(b))
    assert _scale(b) == now + 1 and result.after["capped_at_partitions"]
    b.wait_for(lambda: len(ready_pods(b.kube, b.namespace)) == now + 1, "one more consumer", 120)
    action.undo(_ctx(b), result)
    assert _scale(b) == now


def test_floors_for_two_purposes_stack_and_unstack(backend: Backend) -> None:
    """A surge's floor over a regional failover's keeps the failover's in the HPA's
    annotations, releases back to it, and the failover's undo then sets back the first floor
    (merge-patch nulls remove the annotations on the real API server too)."""
    b = backend
    failover = SetHpaMinReplicas(
        b.namespace, SERVICE, hpa=SERVICE, min_replicas=5, purpose="region_failover"
    )
    held = failover.apply(_ctx(b))
    SetHpaMinReplicas(
        b.namespace, SERVICE, hpa=SERVICE, min_replicas=8, purpose="traffic_surge"
    ).apply(_ctx(b))
    hpa = b.kube.autoscaling_v2.read_namespaced_horizontal_pod_autoscaler(SERVICE, b.namespace)
    assert hpa.spec.min_replicas == 8 and FLOOR_BELOW in _annotations(hpa)
    SetHpaMinReplicas(
        b.namespace, SERVICE, hpa=SERVICE, min_replicas=5, purpose="traffic_surge"
    ).apply(_ctx(b))
    hpa = b.kube.autoscaling_v2.read_namespaced_horizontal_pod_autoscaler(SERVICE, b.namespace)
    notes = _annotations(hpa)
    assert hpa.spec.min_replicas == 5 and notes[FLOOR_FOR] == "region_failover"
    assert FLOOR_BELOW not in notes
    failover.undo(_ctx(b), held)
    hpa = b.kube.autoscaling_v2.read_namespaced_horizontal_pod_autoscaler(SERVICE, b.namespace)
    assert hpa.spec.min_replicas == 3 and MIN_SET not in _annotations(hpa)


class _NoExec:
    """The CoreV1 API with pods/exec taken away: a test must never make the API server dial a
    node (KWOK's nodes have addresses nothing listens on); records what else is called."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls: list[str] = []
        self.exec_tried = False

    def __getattr__(self, name: str) -> Any:
        if name == "connect_get_namespaced_pod_exec":
            self.exec_tried = True
            raise AttributeError(name)
        attr = getattr(self._inner, name)
        if callable(attr):
            self.calls.append(name)
        return attr


def test_kill_container_falls_back_to_an_eviction_where_exec_cannot_run(
    backend: Backend,
) -> None:
    """The real cluster's nodes are KWOK's (no kubelet): exec is not even tried there. The
    lab's API has no exec: it is tried and found missing. Either way the pod is evicted."""
    b = backend
    victim = ready_pods(b.kube, b.namespace)[0].metadata.name
    core = _NoExec(b.actor.core_v1)
    kube = KubeClients(core, b.actor.apps_v1, b.actor.autoscaling_v2, b.actor.policy_v1)
    result = KillContainer(b.namespace, SERVICE, "stuck worker", pod=victim).apply(
        ActionContext(kube, sleep=b.sleep)
    )
    assert result.after["method"] == "eviction" and result.after["evicted"]
    assert core.exec_tried == (b.name == "lab")
    assert "create_namespaced_pod_eviction" in core.calls
    assert "delete_namespaced_pod" not in core.calls

    def replaced() -> bool:
        names = {p.metadata.name for p in ready_pods(b.kube, b.namespace)}
        return victim not in names and len(names) == 3

    b.wait_for(replaced, "the evicted pod to be replaced by a Ready one", 120)
