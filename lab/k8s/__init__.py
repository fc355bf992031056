"""lab.k8s -- a real Kubernetes control plane on this machine, for tests and benchmarks.

``build.sh`` builds kube-apiserver, kube-controller-manager, kube-scheduler, etcd and KWOK
from the Go module proxy into a cache outside the repository; :class:`KubeCluster` starts
them on 127.0.0.1 with N KWOK-managed nodes and stops them again. Several clusters (regions)
can run at once, each with its own kubeconfig. Faults are KWOK Stages switched on by a label
(``FAULT_LABELS``): a crash-looping pod, a NotReady node, a node under DiskPressure.

Exceptions::

    LabError (lab)
    +-- K8sError
        +-- BinariesMissingError
        +-- ClusterStartError
        +-- ClusterStoppedError
"""

from __future__ import annotations

from lab.k8s._binaries import BINARIES, KUBE_VERSION, cache_dir, ensure_binaries, missing_binaries
from lab.k8s._cluster import (
    FAULT_LABELS,
    ClusterClients,
    ClusterSettings,
    KubeCluster,
    NodeShape,
    node_ready,
)
from lab.k8s._errors import (
    BinariesMissingError,
    ClusterStartError,
    ClusterStoppedError,
    K8sError,
)

__all__ = [
    "BINARIES",
    "FAULT_LABELS",
    "KUBE_VERSION",
    "BinariesMissingError",
    "ClusterClients",
    "ClusterSettings",
    "ClusterStartError",
    "ClusterStoppedError",
    "K8sError",
    "KubeCluster",
    "NodeShape",
    "cache_dir",
    "ensure_binaries",
    "missing_binaries",
    "node_ready",
]
