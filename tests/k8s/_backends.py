"""The two Kubernetes backends the actuator contract suite runs on.

Both offer the same ``KubeClients`` and the same workload: a ``checkout`` Deployment (3
replicas, ``app=checkout``, image ``registry.example.com/shop/checkout:1.4.2``) scaled by a
CPU HPA (3..30, 60 %), on three nodes. The builders below make the other objects the healing
actions change (an Ingress, an ExternalName Service, a Gateway API HTTPRoute) the same way on
both. Time differs: the lab's moves only when the test
advances it, a real cluster's moves on its own, so ``sleep`` and ``wait_for`` hide that.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from actuators import KubeClients
from lab import Lab, LabSettings, SimClock
from lab.k8s import ClusterClients, KubeCluster
from tests._narrow import name_of
from tests.k8s._chart import ChartRelease

SERVICE = "checkout"
IMAGE = "registry.example.com/shop/checkout:1.4.2"
NEW_IMAGE = "registry.example.com/shop/checkout:1.5.0"

ARGO_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "applications.argoproj.io"},
    "spec": {
        "group": "argoproj.io",
        "scope": "Namespaced",
        "names": {
            "kind": "Application",
            "listKind": "ApplicationList",
            "plural": "applications",
            "singular": "application",
            "shortNames": ["app", "apps"],
        },
        "versions": [
            {
                "name": "v1alpha1",
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


#: Gateway API's HTTPRoute, with a schema that keeps whatever it is given (the tests need the
#: API to store and serve routes, not to validate them as the Gateway API's own CRD does).
HTTPROUTE_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {
        "name": "httproutes.gateway.networking.k8s.io",
        # *.k8s.io groups are protected: the API server wants the KEP's approval named.
        "annotations": {
            "api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api/pull/2466"
        },
    },
    "spec": {
        "group": "gateway.networking.k8s.io",
        "scope": "Namespaced",
        "names": {
            "kind": "HTTPRoute",
            "listKind": "HTTPRouteList",
            "plural": "httproutes",
            "singular": "httproute",
        },
        "versions": [
            {
                "name": "v1",
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


def http_route(name: str, weights: dict[str, int]) -> dict[str, Any]:
    """An HTTPRoute whose one rule splits requests over ``weights``' backends."""
    refs = [{"name": backend, "port": 8080, "weight": w} for backend, w in weights.items()]
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"name": "shop-gateway"}],
            "hostnames": [f"{name}.shop.example.com"],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": refs,
                }
            ],
        },
    }


def external_name_service(name: str, endpoint: str = "orders.primary.db.example.com") -> Any:
    """A Service of type ExternalName: the cluster's DNS answers ``name`` with a CNAME."""
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name, labels={"app": SERVICE}),
        spec=client.V1ServiceSpec(type="ExternalName", external_name=endpoint),
    )


def ingress(name: str, service: str = SERVICE) -> Any:
    """An Ingress sending every request for ``name``'s host to ``service``, no annotations."""
    backend = client.V1IngressBackend(
        service=client.V1IngressServiceBackend(
            name=service, port=client.V1ServiceBackendPort(number=8080)
        )
    )
    path = client.V1HTTPIngressPath(path="/", path_type="Prefix", backend=backend)
    return client.V1Ingress(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1IngressSpec(
            ingress_class_name="nginx",
            rules=[
                client.V1IngressRule(
                    host=f"{name}.shop.example.com",
                    http=client.V1HTTPIngressRuleValue(paths=[path]),
                )
            ],
        ),
    )


def ready_pods(kube: KubeClients, namespace: str, app: str = SERVICE) -> list[Any]:
    pods = kube.core_v1.list_namespaced_pod(namespace, label_selector=f"app={app}").items
    return [
        p
        for p in pods
        if p.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    ]


@dataclass
class Backend:
    """One backend: its clients, its namespace, and how time passes on it."""

    name: str
    kube: KubeClients
    namespace: str
    sleep: Callable[[float], None]
    _advance_until: Callable[[Callable[[], bool], float], bool]
    apiextensions_v1: Any
    ensure_namespace: Callable[[str], None] = lambda _name: None
    """Create a namespace where the backend needs one (the lab takes any)."""
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    run_as: KubeClients | None = None
    """The identity the actions run as, if not ``kube`` (see ``actor``)."""

    @property
    def actor(self) -> KubeClients:
        """The identity the actions run as (default ``kube``, the test's own admin identity): on
        the real control plane, the chart's ServiceAccount and nothing more."""
        return self.kube if self.run_as is None else self.run_as

    def wait_for(self, predicate: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
        """Let time pass until ``predicate`` holds; fail naming ``what`` if it never does."""
        if not self._advance_until(predicate, timeout_s):
            raise AssertionError(
                f"{self.name}: timed out after {timeout_s:.0f} s waiting for {what}"
            )

    def install_argo_crd(self) -> None:
        self.install_crd(ARGO_CRD)

    def install_crd(self, body: dict[str, Any]) -> None:
        """Create the CRD ``body`` (if it is not there yet) and wait until it is served."""
        try:
            self.apiextensions_v1.create_custom_resource_definition(body)
        except ApiException as exc:
            if exc.status != 409:
                raise

        def established() -> bool:
            crd = self.apiextensions_v1.read_custom_resource_definition(body["metadata"]["name"])
            conditions = crd.status.conditions or [] if crd.status else []
            return any(c.type == "Established" and c.status == "True" for c in conditions)

        self.wait_for(established, f"the {body['spec']['names']['kind']} CRD to be served", 30)


def lab_backend() -> tuple[Backend, Lab]:
    # 06:00: the estate's quiet hour, when the HPAs hold every service at its minimum of 3.
    lab = Lab(LabSettings(), SimClock(datetime(2025, 1, 8, 6, tzinfo=UTC)))
    k = lab.kube

    def advance_until(predicate: Callable[[], bool], timeout_s: float) -> bool:
        waited = 0.0
        while not predicate():
            if waited >= timeout_s:
                return False
            lab.step(timedelta(seconds=5))
            waited += 5.0
        return True

    def sleep(seconds: float) -> None:
        lab.step(timedelta(seconds=max(seconds, 1.0)))

    kube = KubeClients(
        k.core_v1,
        k.apps_v1,
        k.autoscaling_v2,
        policy_v1=k.policy_v1,
        custom_objects=k.custom_objects,
        networking_v1=k.networking_v1,
    )
    backend = Backend(
        "lab", kube, lab.settings.topology.namespace, sleep, advance_until, k.apiextensions_v1
    )
    return backend, lab


def _wall_advance_until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if predicate():
                return True
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


def create_deployment(
    apps_v1: Any, namespace: str, name: str, image: str, replicas: int = 3, grace_s: int = 1
) -> None:
    """A Deployment of ``replicas`` pods labelled ``app=name``, one container named ``name``
    (500m CPU, 512Mi memory), on the real control plane."""
    labels = {"app": name}
    container = client.V1Container(
        name=name,
        image=image,
        ports=[client.V1ContainerPort(container_port=8080, name="http")],
        resources=client.V1ResourceRequirements(
            requests={"cpu": "500m", "memory": "512Mi"}, limits={"memory": "512Mi"}
        ),
    )
    apps_v1.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name=name, labels=labels),
            spec=client.V1DeploymentSpec(
                replicas=replicas,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(
                        containers=[container], termination_grace_period_seconds=grace_s
                    ),
                ),
            ),
        ),
    )


def _kube_clients(c: ClusterClients) -> KubeClients:
    return KubeClients(
        c.core_v1,
        c.apps_v1,
        c.autoscaling_v2,
        policy_v1=c.policy_v1,
        custom_objects=c.custom_objects,
        networking_v1=client.NetworkingV1Api(c.api_client),
    )


def create_hpa(autoscaling_v2: Any, namespace: str, name: str, low: int, high: int) -> None:
    """An HPA of Deployment ``name``: ``low``-``high`` replicas at 60 % CPU."""
    autoscaling_v2.create_namespaced_horizontal_pod_autoscaler(
        namespace,
        client.V2HorizontalPodAutoscaler(
            metadata=client.V1ObjectMeta(name=name, labels={"app": name}),
            spec=client.V2HorizontalPodAutoscalerSpec(
                scale_target_ref=client.V2CrossVersionObjectReference(
                    api_version="apps/v1", kind="Deployment", name=name
                ),
                min_replicas=low,
                max_replicas=high,
                metrics=[
                    client.V2MetricSpec(
                        type="Resource",
                        resource=client.V2ResourceMetricSource(
                            name="cpu",
                            target=client.V2MetricTarget(
                                type="Utilization", average_utilization=60
                            ),
                        ),
                    )
                ],
            ),
        ),
    )


def real_backend(cluster: KubeCluster, chart: ChartRelease | None = None) -> Backend:
    """A fresh namespace on ``cluster`` with the contract workload, Ready. The test sets it up
    as admin; given ``chart``, its actions run as the chart's ServiceAccount, bound in the
    namespace by the chart's own RoleBinding."""
    c = cluster.clients()
    namespace = f"shop-{uuid.uuid4().hex[:6]}"
    c.core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    if chart is not None:
        chart.grant(cluster, namespace)
    create_deployment(c.apps_v1, namespace, SERVICE, IMAGE, grace_s=5)
    create_hpa(c.autoscaling_v2, namespace, SERVICE, 3, 30)
    kube = _kube_clients(c)
    actor = None if chart is None else _kube_clients(chart.clients)
    backend = Backend(
        "real",
        kube,
        namespace,
        time.sleep,
        _wall_advance_until,
        c.apiextensions_v1,
        run_as=actor,
    )

    def ensure_namespace(name: str) -> None:
        try:
            c.core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        except ApiException as exc:
            if exc.status != 409:
                raise

    backend.ensure_namespace = ensure_namespace

    def cleanup() -> None:
        for node in c.core_v1.list_node().items:
            if node.spec and node.spec.unschedulable:
                c.core_v1.patch_node(
                    name_of(node),
                    {"spec": {"unschedulable": None}},
                    _content_type="application/merge-patch+json",
                )
        c.core_v1.delete_namespace(namespace)

    backend.cleanups.append(cleanup)
    backend.wait_for(lambda: len(ready_pods(kube, namespace)) == 3, "3 checkout pods Ready", 60)
    return backend
