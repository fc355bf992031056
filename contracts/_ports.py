"""The ports: what the loop needs from the world, as Protocols, so the lab and a real estate
plug into one code path.

The Kubernetes Protocols list exactly the calls ooda makes, with the official client's
method names and object shapes (``kubernetes.client.CoreV1Api`` and friends satisfy them, and
so do the lab's in-memory twins). Every call may carry the client's ``_request_timeout``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas as pd

    from contracts._families import MetricFamily


class MetricSource(Protocol):
    """Returns the tidy metrics frame (``METRIC_COLUMNS``) for ``[start, end]`` at ``step``,
    and the frame of each other metric family (``FAMILIES[family].columns``; empty where the
    estate has none of that family)."""

    def query_range(self, start: datetime, end: datetime, step: timedelta) -> pd.DataFrame: ...

    def query_family(
        self, family: MetricFamily, start: datetime, end: datetime, step: timedelta
    ) -> pd.DataFrame: ...


class CoreV1(Protocol):
    """The ``CoreV1Api`` calls ooda makes."""

    def list_namespaced_pod(self, namespace: str, **kwargs: Any) -> Any: ...
    def list_pod_for_all_namespaces(self, **kwargs: Any) -> Any: ...
    def read_namespaced_pod(self, name: str, namespace: str, **kwargs: Any) -> Any: ...
    def delete_namespaced_pod(self, name: str, namespace: str, **kwargs: Any) -> Any: ...
    def create_namespaced_pod_eviction(
        self, name: str, namespace: str, body: Any, **kwargs: Any
    ) -> Any: ...
    def list_node(self, **kwargs: Any) -> Any: ...
    def read_node(self, name: str, **kwargs: Any) -> Any: ...
    def patch_node(self, name: str, body: Any, **kwargs: Any) -> Any: ...
    def list_namespaced_service(self, namespace: str, **kwargs: Any) -> Any: ...
    def list_namespaced_config_map(self, namespace: str, **kwargs: Any) -> Any: ...
    def read_namespaced_service(self, name: str, namespace: str, **kwargs: Any) -> Any: ...
    def create_namespaced_service(self, namespace: str, body: Any, **kwargs: Any) -> Any: ...
    def patch_namespaced_service(
        self, name: str, namespace: str, body: Any, **kwargs: Any
    ) -> Any: ...
    def connect_get_namespaced_pod_exec(self, name: str, namespace: str, **kwargs: Any) -> Any:
        """``kubectl exec``: through ``kubernetes.stream.stream`` on a real client; optional
        (an API object without it has no exec, and actions fall back)."""
        ...


class AppsV1(Protocol):
    """The ``AppsV1Api`` calls ooda makes."""

    def list_namespaced_deployment(self, namespace: str, **kwargs: Any) -> Any: ...
    def read_namespaced_deployment(self, name: str, namespace: str, **kwargs: Any) -> Any: ...
    def patch_namespaced_deployment(
        self, name: str, namespace: str, body: Any, **kwargs: Any
    ) -> Any: ...
    def read_namespaced_deployment_scale(self, name: str, namespace: str, **kwargs: Any) -> Any: ...
    def patch_namespaced_deployment_scale(
        self, name: str, namespace: str, body: Any, **kwargs: Any
    ) -> Any: ...
    def list_namespaced_replica_set(self, namespace: str, **kwargs: Any) -> Any: ...


class AutoscalingV2(Protocol):
    """The ``AutoscalingV2Api`` calls ooda makes."""

    def list_namespaced_horizontal_pod_autoscaler(self, namespace: str, **kwargs: Any) -> Any: ...
    def read_namespaced_horizontal_pod_autoscaler(
        self, name: str, namespace: str, **kwargs: Any
    ) -> Any: ...
    def patch_namespaced_horizontal_pod_autoscaler(
        self, name: str, namespace: str, body: Any, **kwargs: Any
    ) -> Any: ...


class PolicyV1(Protocol):
    """The ``PolicyV1Api`` calls ooda makes (PodDisruptionBudgets)."""

    def list_namespaced_pod_disruption_budget(self, namespace: str, **kwargs: Any) -> Any: ...


class CustomObjects(Protocol):
    """The ``CustomObjectsApi`` calls ooda makes (Argo CD Applications, Gateway API HTTPRoutes)."""

    def get_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str, **kwargs: Any
    ) -> Any: ...
    def patch_namespaced_custom_object(
        self,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        name: str,
        body: Any,
        **kwargs: Any,
    ) -> Any: ...


class NetworkingV1(Protocol):
    """The ``NetworkingV1Api`` calls ooda makes (Ingresses)."""

    def list_namespaced_ingress(self, namespace: str, **kwargs: Any) -> Any: ...
    def read_namespaced_ingress(self, name: str, namespace: str, **kwargs: Any) -> Any: ...
    def create_namespaced_ingress(self, namespace: str, body: Any, **kwargs: Any) -> Any: ...
    def patch_namespaced_ingress(
        self, name: str, namespace: str, body: Any, **kwargs: Any
    ) -> Any: ...


#: Where the kubelets keep their heartbeat Leases, one per node, named for it.
NODE_LEASE_NAMESPACE = "kube-node-lease"


@dataclass(frozen=True)
class KubeClients:
    """The Kubernetes API objects of one cluster (official client objects or the lab's twins)."""

    core_v1: Any
    """:class:`CoreV1`: ``kubernetes.client.CoreV1Api`` or an object with the same methods."""
    apps_v1: Any
    """:class:`AppsV1`: ``kubernetes.client.AppsV1Api`` or the same methods."""
    autoscaling_v2: Any
    """:class:`AutoscalingV2`: ``kubernetes.client.AutoscalingV2Api`` or the same methods."""
    policy_v1: Any = None
    """:class:`PolicyV1`, where PodDisruptionBudgets are read."""
    custom_objects: Any = None
    """:class:`CustomObjects` (Argo CD Applications, Gateway API HTTPRoutes)."""
    networking_v1: Any = None
    """:class:`NetworkingV1` (Ingresses)."""
    coordination_v1: Any = None
    """``CoordinationV1Api`` (the leader election's Lease, the kubelets' heartbeat Leases in
    :data:`NODE_LEASE_NAMESPACE`). Last, so positional construction keeps working."""
