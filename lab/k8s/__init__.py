"""lab.k8s -- a real Kubernetes control plane on this machine, for tests and benchmarks.

``build.sh`` builds kube-apiserver, kube-controller-manager, kube-scheduler, etcd and KWOK
from the Go module proxy into a cache outside the repository; :class:`KubeCluster` starts
them on 127.0.0.1 with N KWOK-managed nodes and stops them again. Several clusters (regions)
can run at once, each with its own kubeconfig. Faults are KWOK Stages switched on by a label
(``FAULT_LABELS``): a crash-looping pod, a NotReady node, a node under DiskPressure.
``render_chart`` and ``apply_manifests`` put ooda's own Helm chart onto it, and
``KubeCluster.service_account_kubeconfig`` acts as the chart's ServiceAccount.

Exceptions::

    LabError (lab)
    +-- K8sError
        +-- BinariesMissingError
        +-- ClusterStartError
        +-- ClusterStoppedError
        +-- ChartError
"""

from __future__ import annotations

from lab.k8s._binaries import BINARIES, KUBE_VERSION, cache_dir, ensure_binaries, missing_binaries
from lab.k8s._chart import (
    CHART,
    apply_manifests,
    crd_path,
    helm_binary,
    load_crd,
    rbac_violations,
    render_chart,
)
from lab.k8s._cluster import (
    FAULT_LABELS,
    ClusterClients,
    ClusterSettings,
    KubeCluster,
    NodeShape,
    clients_from,
    node_ready,
)
from lab.k8s._errors import (
    BinariesMissingError,
    ChartError,
    ClusterStartError,
    ClusterStoppedError,
    K8sError,
)

__all__ = [
    "BINARIES",
    "CHART",
    "FAULT_LABELS",
    "KUBE_VERSION",
    "BinariesMissingError",
    "ChartError",
    "ClusterClients",
    "ClusterSettings",
    "ClusterStartError",
    "ClusterStoppedError",
    "K8sError",
    "KubeCluster",
    "NodeShape",
    "apply_manifests",
    "cache_dir",
    "clients_from",
    "crd_path",
    "ensure_binaries",
    "helm_binary",
    "load_crd",
    "missing_binaries",
    "node_ready",
    "rbac_violations",
    "render_chart",
]
