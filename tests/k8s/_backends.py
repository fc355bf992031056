"""The two Kubernetes backends the actuator contract suite runs on.

Both offer the same ``KubeClients`` and the same workload: a ``checkout`` Deployment (3
replicas, ``app=checkout``, image ``registry.example.com/shop/checkout:1.4.2``) scaled by a
CPU HPA (3..30, 60 %), on three nodes. Time differs: the lab's moves only when the test
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
from lab.k8s import KubeCluster

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

    def wait_for(self, predicate: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
        """Let time pass until ``predicate`` holds; fail naming ``what`` if it never does."""
        if not self._advance_until(predicate, timeout_s):
            raise AssertionError(
                f"{self.name}: timed out after {timeout_s:.0f} s waiting for {what}"
            )

    def install_argo_crd(self) -> None:
        try:
            self.apiextensions_v1.create_custom_resource_definition(ARGO_CRD)
        except ApiException as exc:
            if exc.status != 409:
                raise

        def established() -> bool:
            crd = self.apiextensions_v1.read_custom_resource_definition(
                ARGO_CRD["metadata"]["name"]
            )
            conditions = crd.status.conditions or [] if crd.status else []
            return any(c.type == "Established" and c.status == "True" for c in conditions)

        self.wait_for(established, "the Application CRD to be established", 30)


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


def real_backend(cluster: KubeCluster) -> Backend:
    """A fresh namespace on ``cluster`` with the contract workload, Ready."""
    c = cluster.clients()
    namespace = f"shop-{uuid.uuid4().hex[:6]}"
    c.core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    labels = {"app": SERVICE}
    c.apps_v1.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name=SERVICE, labels=labels),
            spec=client.V1DeploymentSpec(
                replicas=3,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(
                        containers=[
                            client.V1Container(
                                name=SERVICE,
                                image=IMAGE,
                                ports=[client.V1ContainerPort(container_port=8080, name="http")],
                                resources=client.V1ResourceRequirements(
                                    requests={"cpu": "500m", "memory": "512Mi"},
                                    limits={"memory": "512Mi"},
                                ),
                            )
                        ],
                        termination_grace_period_seconds=5,
                    ),
                ),
            ),
        ),
    )
    c.autoscaling_v2.create_namespaced_horizontal_pod_autoscaler(
        namespace,
        client.V2HorizontalPodAutoscaler(
            metadata=client.V1ObjectMeta(name=SERVICE, labels=labels),
            spec=client.V2HorizontalPodAutoscalerSpec(
                scale_target_ref=client.V2CrossVersionObjectReference(
                    api_version="apps/v1", kind="Deployment", name=SERVICE
                ),
                min_replicas=3,
                max_replicas=30,
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
    kube = KubeClients(
        c.core_v1,
        c.apps_v1,
        c.autoscaling_v2,
        policy_v1=c.policy_v1,
        custom_objects=c.custom_objects,
    )
    backend = Backend("real", kube, namespace, time.sleep, _wall_advance_until, c.apiextensions_v1)

    def ensure_namespace(name: str) -> None:
        try:
            c.core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        except ApiException as exc:
            if exc.status != 409:
                raise

    backend.ensure_namespace = ensure_namespace

    def cleanup() -> None:
        for node in c.core_v1.list_node().items:
            if node.spec.unschedulable:
                c.core_v1.patch_node(
                    node.metadata.name,
                    {"spec": {"unschedulable": None}},
                    _content_type="application/merge-patch+json",
                )
        c.core_v1.delete_namespace(namespace)

    backend.cleanups.append(cleanup)
    backend.wait_for(lambda: len(ready_pods(kube, namespace)) == 3, "3 checkout pods Ready", 60)
    return backend
