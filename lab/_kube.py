"""An in-memory Kubernetes API with the official client's method names and object shapes.

Actuators are written against ``kubernetes.client`` (CoreV1Api, AppsV1Api, AutoscalingV2Api);
this facade lets the same code act on the lab: it returns the official model classes, takes
camelCase JSON-merge-style patch bodies (or model objects) and raises ``ApiException``
subclasses with the status codes a real API server uses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import (
    ApiException,
    BadRequestException,
    NotFoundException,
    UnprocessableEntityException,
)

from lab._clock import SimClock
from lab._cluster import Cluster, Deployment, Hpa, Node, Pod
from lab._settings import LabSettings

_IMAGE_REGISTRY = "registry.example.com/shop"
_IMAGE_TAG = "1.4.2"
_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?$")


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _error(status: int, message: str, kind: str, name: str) -> ApiException:
    """An ApiException carrying a Status body like the API server's."""
    reason, cls = {
        400: ("BadRequest", BadRequestException),
        404: ("NotFound", NotFoundException),
        422: ("Invalid", UnprocessableEntityException),
    }[status]
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": {"name": name, "kind": kind},
        "code": status,
    }
    http_reason = {400: "Bad Request", 404: "Not Found", 422: "Unprocessable Entity"}[status]
    return cls(status=status, reason=http_reason, body=json.dumps(body))


def _cpu_quantity(cores: float) -> str:
    return f"{round(cores * 1000)}m"


def _memory_quantity(value: int) -> str:
    return f"{value // 2**20}Mi" if value % 2**20 == 0 else str(value)


def parse_label_selector(selector: str) -> list[tuple[str, str, str]]:
    """Equality-based selector terms as (key, op, value); op is "=", "!=", "exists", "!exists"."""
    terms: list[tuple[str, str, str]] = []
    for raw in selector.split(","):
        term = raw.strip()
        if not term:
            continue
        if "!=" in term:
            op, (key, value) = "!=", term.split("!=", 1)
        elif "=" in term:
            op, (key, value) = "=", term.replace("==", "=", 1).split("=", 1)
        elif term.startswith("!"):
            op, key, value = "!exists", term[1:], ""
        else:
            op, key, value = "exists", term, ""
        key, value = key.strip(), value.strip()
        if not _KEY.match(key) or (value and not _KEY.match(value)):
            raise _error(400, f"unable to parse requirement: {term!r}", "selector", selector)
        terms.append((key, op, value))
    return terms


def _matches(labels: Mapping[str, str], terms: list[tuple[str, str, str]]) -> bool:
    for key, op, value in terms:
        present = key in labels
        if op == "=" and labels.get(key) != value:
            return False
        if op == "!=" and labels.get(key) == value:
            return False
        if (op == "exists") != present and op in ("exists", "!exists"):
            return False
    return True


def _body_dict(body: Any) -> dict[str, Any]:
    """Patch bodies: dicts as given, model objects as the camelCase JSON the client would send."""
    if isinstance(body, dict):
        return body
    if hasattr(body, "to_dict"):
        result = client.ApiClient().sanitize_for_serialization(body)
        if isinstance(result, dict):
            return result
    raise _error(400, f"patch body must be a dict or a model object, got {body!r}", "body", "")


def _cpu_utilisation_target(metrics: Any, name: str) -> Any:
    """averageUtilization of the single CPU Utilization metric the lab's HPAs support."""
    if isinstance(metrics, list) and len(metrics) == 1 and isinstance(metrics[0], dict):
        resource = metrics[0].get("resource") or {}
        target = resource.get("target") or {}
        if (metrics[0].get("type"), resource.get("name"), target.get("type")) == (
            "Resource",
            "cpu",
            "Utilization",
        ):
            return target.get("averageUtilization")
    raise _error(
        422,
        f"only one Resource cpu Utilization metric is supported, got {metrics!r}",
        "HorizontalPodAutoscaler",
        name,
    )


def _int_field(value: Any, path: str, minimum: int, kind: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _error(
            422, f"{kind} {name!r} is invalid: {path}: Invalid value: {value!r}", kind, name
        )
    return value


class _Api:
    def __init__(self, cluster: Cluster, clock: SimClock, settings: LabSettings) -> None:
        self._cluster = cluster
        self._clock = clock
        self._namespace = settings.topology.namespace
        self._region = settings.topology.region

    def _now(self) -> float:
        return self._clock.now().timestamp()

    def _check_namespace(self, namespace: str, kind: str, name: str) -> None:
        if namespace != self._namespace:
            raise _error(404, f'{kind} "{name}" not found', kind, name)

    def _deployment(self, name: str, namespace: str) -> Deployment:
        self._check_namespace(namespace, "deployments.apps", name)
        dep = self._cluster.deployments.get(name)
        if dep is None:
            raise _error(404, f'deployments.apps "{name}" not found', "deployments", name)
        return dep

    def _meta(
        self, name: str, uid: str, created: float, labels: dict[str, str]
    ) -> client.V1ObjectMeta:
        return client.V1ObjectMeta(
            name=name,
            namespace=self._namespace,
            uid=uid,
            labels=labels,
            creation_timestamp=_utc(created),
        )

    def _container(self, service: int) -> client.V1Container:
        svc = self._cluster.services[service]
        return client.V1Container(
            name=svc.name,
            image=f"{_IMAGE_REGISTRY}/{svc.name}:{_IMAGE_TAG}",
            ports=[client.V1ContainerPort(container_port=8080, name="http")],
            resources=client.V1ResourceRequirements(
                requests={
                    "cpu": _cpu_quantity(svc.cpu_request_cores),
                    "memory": _memory_quantity(svc.memory_limit_bytes),
                },
                limits={"memory": _memory_quantity(svc.memory_limit_bytes)},
            ),
        )

    def _pod_labels(self, pod: Pod) -> dict[str, str]:
        svc = self._cluster.services[pod.service]
        dep = self._cluster.deployments[svc.name]
        return {"app": svc.name, "pod-template-hash": dep.template_hash}


class FakeCoreV1Api(_Api):
    """The subset of ``kubernetes.client.CoreV1Api`` the loop and actuators use."""

    def _pod(self, name: str, namespace: str) -> Pod:
        self._check_namespace(namespace, "pods", name)
        pod = self._cluster.pods.get(name)
        if pod is None:
            raise _error(404, f'pods "{name}" not found', "pods", name)
        return pod

    def _to_v1_pod(self, pod: Pod, t: float) -> client.V1Pod:
        svc = self._cluster.services[pod.service]
        dep = self._cluster.deployments[svc.name]
        meta = self._meta(pod.name, pod.uid, pod.created_at, self._pod_labels(pod))
        meta.generate_name = f"{dep.name}-{dep.template_hash}-"
        meta.owner_references = [
            client.V1OwnerReference(
                api_version="apps/v1",
                kind="ReplicaSet",
                name=f"{dep.name}-{dep.template_hash}",
                uid=dep.replicaset_uid,
                controller=True,
                block_owner_deletion=True,
            )
        ]
        ready = pod.ready(t)
        running = pod.running(t)
        status = "True" if ready else "False"
        conditions = [
            client.V1PodCondition(
                type="PodScheduled",
                status="True" if pod.node else "False",
                reason=None if pod.node else "Unschedulable",
            )
        ]
        container_statuses = None
        if pod.node is not None:
            conditions += [
                client.V1PodCondition(type="Initialized", status="True"),
                client.V1PodCondition(type="ContainersReady", status=status),
                client.V1PodCondition(type="Ready", status=status),
            ]
            image = f"{_IMAGE_REGISTRY}/{svc.name}:{_IMAGE_TAG}"
            last_state = None
            if pod.crash is not None:
                last_state = client.V1ContainerState(
                    terminated=client.V1ContainerStateTerminated(exit_code=1, reason="Error")
                )
                state = (
                    client.V1ContainerState(
                        running=client.V1ContainerStateRunning(started_at=_utc(pod.crash.run_start))
                    )
                    if ready
                    else client.V1ContainerState(
                        waiting=client.V1ContainerStateWaiting(
                            reason="CrashLoopBackOff",
                            message=f"back-off restarting failed container={svc.name}"
                            f" pod={pod.name}",
                        )
                    )
                )
            elif running:
                state = client.V1ContainerState(
                    running=client.V1ContainerStateRunning(started_at=_utc(pod.started_at))
                )
            else:
                state = client.V1ContainerState(
                    waiting=client.V1ContainerStateWaiting(reason="ContainerCreating")
                )
            container_statuses = [
                client.V1ContainerStatus(
                    name=svc.name,
                    image=image,
                    image_id=f"{image}@sha256:{dep.template_hash * 6}"[:120],
                    ready=ready,
                    started=running and (pod.crash is None or ready),
                    restart_count=pod.restarts,
                    state=state,
                    last_state=last_state,
                )
            ]
        return client.V1Pod(
            api_version="v1",
            kind="Pod",
            metadata=meta,
            spec=client.V1PodSpec(
                containers=[self._container(pod.service)],
                node_name=pod.node,
                restart_policy="Always",
            ),
            status=client.V1PodStatus(
                phase="Running" if running else "Pending",
                conditions=conditions,
                container_statuses=container_statuses,
                start_time=_utc(pod.created_at) if pod.node else None,
            ),
        )

    def list_namespaced_pod(
        self, namespace: str, label_selector: str | None = None
    ) -> client.V1PodList:
        terms = parse_label_selector(label_selector or "")
        t = self._now()
        items = []
        if namespace == self._namespace:
            items = [
                self._to_v1_pod(p, t)
                for p in self._cluster.pods.values()
                if _matches(self._pod_labels(p), terms)
            ]
        return client.V1PodList(api_version="v1", kind="PodList", items=items)

    def read_namespaced_pod(self, name: str, namespace: str) -> client.V1Pod:
        return self._to_v1_pod(self._pod(name, namespace), self._now())

    def delete_namespaced_pod(
        self,
        name: str,
        namespace: str,
        body: client.V1DeleteOptions | None = None,
        grace_period_seconds: int | None = None,
    ) -> client.V1Pod:
        """Delete at once (the lab has no graceful termination); the ReplicaSet replaces it."""
        pod = self._pod(name, namespace)
        t = self._now()
        deleted = self._to_v1_pod(pod, t)
        meta = self._meta(pod.name, pod.uid, pod.created_at, self._pod_labels(pod))
        meta.deletion_timestamp = _utc(t)
        meta.deletion_grace_period_seconds = grace_period_seconds
        deleted.metadata = meta
        self._cluster.remove_pod(name, t)
        self._cluster.reconcile(t)
        return deleted

    def create_namespaced_pod_eviction(
        self, name: str, namespace: str, body: client.V1Eviction
    ) -> client.V1Eviction:
        """Eviction API: the lab has no PodDisruptionBudgets, so every eviction is allowed."""
        self.delete_namespaced_pod(name, namespace)
        return body

    def list_node(self, label_selector: str | None = None) -> client.V1NodeList:
        terms = parse_label_selector(label_selector or "")
        return client.V1NodeList(
            api_version="v1",
            kind="NodeList",
            items=[
                self._to_v1_node(n)
                for n in self._cluster.nodes
                if _matches(self._node_labels(n), terms)
            ],
        )

    def read_node(self, name: str) -> client.V1Node:
        for node in self._cluster.nodes:
            if node.name == name:
                return self._to_v1_node(node)
        raise _error(404, f'nodes "{name}" not found', "nodes", name)

    def _node_labels(self, node: Node) -> dict[str, str]:
        return {
            "kubernetes.io/hostname": node.name,
            "kubernetes.io/os": "linux",
            "node.kubernetes.io/instance-type": "m6i.4xlarge",
            "topology.kubernetes.io/region": self._region,
            "topology.kubernetes.io/zone": node.zone,
        }

    def _to_v1_node(self, node: Node) -> client.V1Node:
        resources = {
            "cpu": _cpu_quantity(node.cpu_cores),
            "memory": f"{node.memory_bytes // 2**10}Ki",
            "pods": "110",
        }
        ok = client.V1NodeCondition(type="Ready", status="True", reason="KubeletReady")
        pressures = [
            client.V1NodeCondition(type=kind, status="False")
            for kind in ("MemoryPressure", "DiskPressure", "PIDPressure")
        ]
        return client.V1Node(
            api_version="v1",
            kind="Node",
            metadata=client.V1ObjectMeta(
                name=node.name,
                uid=node.uid,
                creation_timestamp=_utc(node.created_at),
                labels=self._node_labels(node),
            ),
            spec=client.V1NodeSpec(unschedulable=None),
            status=client.V1NodeStatus(
                capacity=resources, allocatable=resources, conditions=[*pressures, ok]
            ),
        )


class FakeAppsV1Api(_Api):
    """The subset of ``kubernetes.client.AppsV1Api`` the loop and actuators use."""

    def _to_v1_deployment(self, dep: Deployment) -> client.V1Deployment:
        t = self._now()
        pods = self._cluster.service_pods[dep.service]
        ready = sum(p.ready(t) for p in pods)
        labels = {"app": dep.name}
        return client.V1Deployment(
            api_version="apps/v1",
            kind="Deployment",
            metadata=self._meta(dep.name, dep.uid, dep.created_at, labels),
            spec=client.V1DeploymentSpec(
                replicas=dep.replicas,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[self._container(dep.service)]),
                ),
            ),
            status=client.V1DeploymentStatus(
                observed_generation=dep.generation,
                replicas=len(pods),
                updated_replicas=len(pods),
                ready_replicas=ready,
                available_replicas=ready,
                unavailable_replicas=max(0, dep.replicas - ready) or None,
            ),
        )

    def list_namespaced_deployment(
        self, namespace: str, label_selector: str | None = None
    ) -> client.V1DeploymentList:
        terms = parse_label_selector(label_selector or "")
        items = []
        if namespace == self._namespace:
            items = [
                self._to_v1_deployment(d)
                for d in self._cluster.deployments.values()
                if _matches({"app": d.name}, terms)
            ]
        return client.V1DeploymentList(api_version="apps/v1", kind="DeploymentList", items=items)

    def read_namespaced_deployment(self, name: str, namespace: str) -> client.V1Deployment:
        return self._to_v1_deployment(self._deployment(name, namespace))

    def _to_v1_scale(self, dep: Deployment) -> client.V1Scale:
        return client.V1Scale(
            api_version="autoscaling/v1",
            kind="Scale",
            metadata=self._meta(dep.name, dep.uid, dep.created_at, {"app": dep.name}),
            spec=client.V1ScaleSpec(replicas=dep.replicas),
            status=client.V1ScaleStatus(
                replicas=len(self._cluster.service_pods[dep.service]), selector=f"app={dep.name}"
            ),
        )

    def read_namespaced_deployment_scale(self, name: str, namespace: str) -> client.V1Scale:
        return self._to_v1_scale(self._deployment(name, namespace))

    def patch_namespaced_deployment_scale(
        self, name: str, namespace: str, body: Any
    ) -> client.V1Scale:
        """``{"spec": {"replicas": n}}``; an HPA on the Deployment may override it later."""
        dep = self._deployment(name, namespace)
        spec = _body_dict(body).get("spec") or {}
        unknown = set(spec) - {"replicas"}
        if unknown:
            raise _error(422, f"unsupported scale field(s) {sorted(unknown)}", "scale", name)
        if "replicas" in spec:
            dep.replicas = _int_field(spec["replicas"], "spec.replicas", 0, "Scale", name)
            dep.generation += 1
            self._cluster.reconcile(self._now())
        return self._to_v1_scale(dep)


class FakeAutoscalingV2Api(_Api):
    """The subset of ``kubernetes.client.AutoscalingV2Api`` the loop and actuators use."""

    def _hpa(self, name: str, namespace: str) -> Hpa:
        self._check_namespace(namespace, "horizontalpodautoscalers.autoscaling", name)
        hpa = self._cluster.hpas.get(name)
        if hpa is None:
            raise _error(
                404,
                f'horizontalpodautoscalers.autoscaling "{name}" not found',
                "horizontalpodautoscalers",
                name,
            )
        return hpa

    def _to_v2_hpa(self, hpa: Hpa) -> client.V2HorizontalPodAutoscaler:
        cfg = self._cluster.settings.hpa
        current = len(self._cluster.service_pods[hpa.service])
        utilisation = hpa.current_utilisation
        return client.V2HorizontalPodAutoscaler(
            api_version="autoscaling/v2",
            kind="HorizontalPodAutoscaler",
            metadata=self._meta(hpa.name, hpa.uid, hpa.created_at, {"app": hpa.name}),
            spec=client.V2HorizontalPodAutoscalerSpec(
                scale_target_ref=client.V2CrossVersionObjectReference(
                    api_version="apps/v1", kind="Deployment", name=hpa.name
                ),
                min_replicas=hpa.min_replicas,
                max_replicas=hpa.max_replicas,
                metrics=[
                    client.V2MetricSpec(
                        type="Resource",
                        resource=client.V2ResourceMetricSource(
                            name="cpu",
                            target=client.V2MetricTarget(
                                type="Utilization", average_utilization=hpa.target_utilisation
                            ),
                        ),
                    )
                ],
                behavior=client.V2HorizontalPodAutoscalerBehavior(
                    scale_up=client.V2HPAScalingRules(
                        stabilization_window_seconds=0,
                        select_policy="Max",
                        policies=[
                            client.V2HPAScalingPolicy(
                                type="Pods",
                                value=cfg.scale_up_pods,
                                period_seconds=round(cfg.scale_up_period_s),
                            ),
                            client.V2HPAScalingPolicy(
                                type="Percent",
                                value=cfg.scale_up_percent,
                                period_seconds=round(cfg.scale_up_period_s),
                            ),
                        ],
                    ),
                    scale_down=client.V2HPAScalingRules(
                        stabilization_window_seconds=round(cfg.scale_down_stabilisation_s),
                        select_policy="Max",
                        policies=[
                            client.V2HPAScalingPolicy(type="Percent", value=100, period_seconds=15)
                        ],
                    ),
                ),
            ),
            status=client.V2HorizontalPodAutoscalerStatus(
                current_replicas=current,
                desired_replicas=hpa.desired_replicas,
                last_scale_time=None if hpa.last_scale_time is None else _utc(hpa.last_scale_time),
                current_metrics=None
                if utilisation is None
                else [
                    client.V2MetricStatus(
                        type="Resource",
                        resource=client.V2ResourceMetricStatus(
                            name="cpu",
                            current=client.V2MetricValueStatus(average_utilization=utilisation),
                        ),
                    )
                ],
            ),
        )

    def list_namespaced_horizontal_pod_autoscaler(
        self, namespace: str
    ) -> client.V2HorizontalPodAutoscalerList:
        items = []
        if namespace == self._namespace:
            items = [self._to_v2_hpa(h) for h in self._cluster.hpas.values()]
        return client.V2HorizontalPodAutoscalerList(
            api_version="autoscaling/v2", kind="HorizontalPodAutoscalerList", items=items
        )

    def read_namespaced_horizontal_pod_autoscaler(
        self, name: str, namespace: str
    ) -> client.V2HorizontalPodAutoscaler:
        return self._to_v2_hpa(self._hpa(name, namespace))

    def patch_namespaced_horizontal_pod_autoscaler(
        self, name: str, namespace: str, body: Any
    ) -> client.V2HorizontalPodAutoscaler:
        """Merge-patch ``spec.minReplicas``, ``spec.maxReplicas`` and the CPU target.

        The HPA controller acts on the new spec at its next sync (within 15 s).
        """
        hpa = self._hpa(name, namespace)
        kind = "HorizontalPodAutoscaler"
        spec = _body_dict(body).get("spec") or {}
        unknown = set(spec) - {"minReplicas", "maxReplicas", "metrics", "scaleTargetRef"}
        if unknown:
            raise _error(422, f"unsupported HPA spec field(s) {sorted(unknown)}", kind, name)
        ref = spec.get("scaleTargetRef")
        if ref is not None and (ref.get("kind"), ref.get("name")) != ("Deployment", name):
            raise _error(422, f"spec.scaleTargetRef cannot change, got {ref!r}", kind, name)
        low = _int_field(
            spec.get("minReplicas", hpa.min_replicas), "spec.minReplicas", 1, kind, name
        )
        high = _int_field(
            spec.get("maxReplicas", hpa.max_replicas), "spec.maxReplicas", 1, kind, name
        )
        if low > high:
            raise _error(
                422,
                f"{kind} {name!r} is invalid: spec.maxReplicas: Invalid value: {high}:"
                f" must be greater than or equal to `minReplicas` ({low})",
                kind,
                name,
            )
        target = hpa.target_utilisation
        if "metrics" in spec:
            target = _int_field(
                _cpu_utilisation_target(spec["metrics"], name),
                "spec.metrics[0].resource.target.averageUtilization",
                1,
                kind,
                name,
            )
        hpa.min_replicas, hpa.max_replicas, hpa.target_utilisation = low, high, target
        return self._to_v2_hpa(hpa)


class FakeKubernetes:
    """The lab's Kubernetes API: ``core_v1``, ``apps_v1`` and ``autoscaling_v2``."""

    def __init__(self, cluster: Cluster, clock: SimClock, settings: LabSettings) -> None:
        self.core_v1 = FakeCoreV1Api(cluster, clock, settings)
        self.apps_v1 = FakeAppsV1Api(cluster, clock, settings)
        self.autoscaling_v2 = FakeAutoscalingV2Api(cluster, clock, settings)
