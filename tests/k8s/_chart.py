"""ooda's Helm chart on the session's control plane: installed once, as a user would, and the
identity of its ServiceAccount for the tests that act as the chart."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client as k8s_client
from kubernetes.client.rest import ApiException

from lab.k8s import (
    ClusterClients,
    KubeCluster,
    apply_manifests,
    clients_from,
    crd_path,
    load_crd,
    render_chart,
)

#: Where the session installs ooda's chart, and the values it installs it with.
CHART_NAMESPACE = "ooda"
CHART_VALUES: dict[str, Any] = {
    "config": {"namespace": "shop"},
    "rbac": {"argoCD": {"enabled": True}, "restoreConfig": True},
    "audit": {"urlSecret": {"name": "ooda-audit"}},
}


@dataclass
class ChartRelease:
    """ooda's Helm chart applied to the session's control plane, and its ServiceAccount."""

    namespace: str
    docs: list[dict[str, Any]]
    kubeconfig: Path
    """Authenticates as the chart's ServiceAccount (a TokenRequest token)."""
    clients: ClusterClients
    """The official client's APIs as that ServiceAccount."""

    def grant(self, cluster: KubeCluster, namespace: str) -> None:
        """Bind the chart's actuator role in ``namespace`` too, as ``rbac.extraNamespaces``
        would: the chart's own RoleBinding rendered for it."""
        values = {**CHART_VALUES, "rbac": {**CHART_VALUES["rbac"], "extraNamespaces": [namespace]}}
        docs = render_chart("ooda", self.namespace, values, show_only=["templates/rbac.yaml"])
        bindings = [
            d
            for d in docs
            if d["kind"] == "RoleBinding" and d["metadata"]["namespace"] == namespace
        ]
        apply_manifests(cluster.clients().api_client, bindings)


def install_chart(cluster: KubeCluster) -> ChartRelease:
    """The chart rendered by helm and applied (KubeRay's RayService CRD first), with a
    kubeconfig for its ServiceAccount."""
    admin = cluster.clients()
    for name in (CHART_NAMESPACE, "argocd", "shop"):
        _unless_exists(
            admin.core_v1.create_namespace,
            k8s_client.V1Namespace(metadata=k8s_client.V1ObjectMeta(name=name)),
        )
    # The Secret a user creates before installing: where the replicas' shared audit log is.
    _unless_exists(
        lambda body: admin.core_v1.create_namespaced_secret(CHART_NAMESPACE, body),
        k8s_client.V1Secret(
            metadata=k8s_client.V1ObjectMeta(name="ooda-audit"),
            string_data={"url": "postgresql://ooda@postgres.ooda.svc:5432/ooda"},
        ),
    )
    crd = load_crd(crd_path("ray.io_rayservices.yaml"))
    _unless_exists(admin.apiextensions_v1.create_custom_resource_definition, crd)
    _wait_established(admin, crd["metadata"]["name"])
    docs = render_chart("ooda", CHART_NAMESPACE, CHART_VALUES)
    apply_manifests(admin.api_client, docs)
    kubeconfig = cluster.service_account_kubeconfig(CHART_NAMESPACE, "ooda")
    return ChartRelease(CHART_NAMESPACE, docs, kubeconfig, clients_from(kubeconfig))


def _unless_exists(create: Callable[[Any], Any], body: Any) -> None:
    try:
        create(body)
    except ApiException as exc:
        if exc.status != 409:
            raise


def _wait_established(admin: ClusterClients, name: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = admin.apiextensions_v1.read_custom_resource_definition(name).status
        conditions = (status.conditions if status else None) or []
        if any(c.type == "Established" and c.status == "True" for c in conditions):
            return
        time.sleep(0.2)
    raise AssertionError(f"CRD {name} not Established after {timeout_s:.0f} s")
