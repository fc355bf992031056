"""What Kubernetes itself does when a node goes bad, with the upstream defaults.

A node whose kubelet stops posting is marked NotReady by the node lifecycle controller after
the node-monitor grace period; its pods are then marked not Ready (the endpoints drop them),
and after the default ``tolerationSeconds`` of the ``not-ready`` NoExecute taint they are
evicted and recreated elsewhere. Until the grace period is over the pods still receive
traffic, and it fails. A kubelet whose root filesystem falls under its hard eviction
threshold sets DiskPressure, taints the node NoSchedule and evicts pods one at a time, with
no grace: what ooda's drain is meant to get ahead of. The node's network counters are kept
here too, so that a lossy path shows in ``node_netstat`` the way node-exporter shows it.
"""

from __future__ import annotations

import math

import numpy as np

from lab._cluster import Cluster, Node

#: kube-controller-manager ``--node-monitor-grace-period``.
NODE_MONITOR_GRACE_S = 40.0
#: The DefaultTolerationSeconds admission plugin's ``not-ready`` / ``unreachable`` tolerations.
NOT_READY_TOLERATION_S = 300.0
#: kubelet ``evictionHard: nodefs.available<10%``.
DISK_EVICTION_THRESHOLD = 0.10
#: kubelet housekeeping: at most one eviction per interval while under pressure.
KUBELET_EVICTION_INTERVAL_S = 10.0
#: Seconds of a pod's traffic lost when it is killed without grace: what it had in flight,
#: and what was still sent to it until the endpoints dropped it.
HARD_KILL_LOSS_S = 5.0
#: TCP segments a pod sends per request it serves (both directions of a small RPC).
SEGMENTS_PER_REQUEST = 6.0
#: Retransmitted share of segments on a healthy path.
BASE_RETRANSMIT = 0.0005
#: Latency multiplier per unit of packet loss on a service's path (retransmission timeouts).
LOSS_LATENCY = 40.0
#: Failed share of requests per unit of packet loss (retries exhausted, connect failures).
LOSS_FAILURES = 2.0


def pods_on(cluster: Cluster, node: Node) -> list[int]:
    """Rows of the pod table of the pods bound to ``node``."""
    table = cluster.pod_table
    n = table.compact()
    index = cluster.nodes.index(node)
    return (table.node[:n] == index).nonzero()[0].tolist()


def _names(cluster: Cluster, node: Node) -> list[str]:
    return [cluster.pod_table.pod(row).name for row in pods_on(cluster, node)]


def kill_node(node: Node, t: float) -> None:
    """The kubelet stops posting (the machine died or lost the control plane)."""
    node.ready = False
    node.down_since = t


def revive_node(cluster: Cluster, node: Node, t: float) -> None:
    """The kubelet posts again: the pods still bound there start over."""
    node.ready = True
    node.down_since = None
    startup = cluster.settings.model.startup_s
    for row in pods_on(cluster, node):
        pod = cluster.pod_table.pod(row)
        if math.isinf(pod.ready_at):
            pod.ready_at = t + startup


def node_lifecycle(cluster: Cluster, t: float, h: float) -> np.ndarray:
    """One sub-step ``[t, t + h)`` of the node lifecycle controller and the kubelets.

    Returns, per service, the share of the sub-step's requests that failed because a kubelet
    killed one of its pods outright (no grace: in-flight requests and those sent before the
    endpoints caught up), or because a dead node's pods looked Ready for the part of the
    sub-step before the grace period ended.
    """
    failed = np.zeros(len(cluster.services))
    for node in cluster.nodes:
        node.disk_used_bytes = min(
            node.disk_size_bytes, node.disk_used_bytes + node.disk_fill_bps * h
        )
        node.disk_pressure = node.ready and node.disk_available_ratio < DISK_EVICTION_THRESHOLD
        if node.disk_pressure and t - node.last_eviction >= KUBELET_EVICTION_INTERVAL_S:
            names = _names(cluster, node)
            if names:
                pod = cluster.remove_pod(names[0], t)
                node.last_eviction = t
                peers = len(cluster.service_pods[pod.service]) + 1
                lost = min(1.0, HARD_KILL_LOSS_S / h) / peers
                failed[pod.service] = 1.0 - (1.0 - failed[pod.service]) * (1.0 - lost)
        if node.ready or node.down_since is None:
            continue
        down_for = t + h - node.down_since  # as of the end of the sub-step
        if down_for >= NOT_READY_TOLERATION_S:
            for name in _names(cluster, node):
                cluster.remove_pod(name, t)
        elif down_for >= NODE_MONITOR_GRACE_S:
            rows = pods_on(cluster, node)
            # The part of the sub-step before the grace period ended, the pods still took
            # their share of the requests and failed it.
            still = min(1.0, max(0.0, (node.down_since + NODE_MONITOR_GRACE_S - t) / h))
            if still > 0 and rows:
                share = _ready_share(cluster, rows, t) * still
                failed = 1.0 - (1.0 - failed) * (1.0 - share)
            for row in rows:
                cluster.pod_table.pod(row).ready_at = math.inf
    return failed


def _ready_share(cluster: Cluster, rows: list[int], t: float) -> np.ndarray:
    """Per service, the share of its Ready pods (at ``t``) that ``rows`` hold."""
    table = cluster.pod_table
    n = table.compact()
    services = len(cluster.services)
    ready = table.ready_at[:n] <= t
    total = np.bincount(table.service[:n][ready], minlength=services)
    picked = np.zeros(n, dtype=bool)
    picked[rows] = True
    held = np.bincount(table.service[:n][ready & picked], minlength=services)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(held / total)


def count_segments(cluster: Cluster, served_per_pod: np.ndarray, h: float) -> None:
    """Add one sub-step's TCP segments to each node's counters; ``served_per_pod`` is the
    requests per second each live pod (pod table row) served."""
    table = cluster.pod_table
    n = table.compact()
    node = table.node[:n]
    on = node >= 0
    per_node = np.bincount(node[on], served_per_pod[:n][on], minlength=len(cluster.nodes))
    for i, item in enumerate(cluster.nodes):
        out = SEGMENTS_PER_REQUEST * float(per_node[i]) * h
        item.tcp_out_segs += out
        item.tcp_retrans_segs += out * min(1.0, BASE_RETRANSMIT + item.packet_loss)


def node_effects(
    cluster: Cluster, ready: np.ndarray, services: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per service, from the nodes its Ready pods run on: the share of its requests that
    fail, a multiplier of its capacity, and one of its latency.

    A dead node's pods that still look Ready (inside the grace period) take their share of
    the traffic and fail it. A lossy path retransmits: the pods there answer slower, and
    some requests exhaust their retries and fail.
    """
    table = cluster.pod_table
    n = table.compact()
    node = table.node[:n]
    service = table.service[:n]
    down = np.array([not item.ready for item in cluster.nodes] + [False])
    loss = np.array([item.packet_loss for item in cluster.nodes] + [0.0])
    errors, capacity, latency = np.zeros(services), np.ones(services), np.ones(services)
    if not (down.any() or loss.any()):
        return errors, capacity, latency
    at = np.where(node >= 0, node, len(cluster.nodes))
    weight = np.bincount(service, ready[:n], minlength=services)
    with np.errstate(invalid="ignore", divide="ignore"):
        dead = np.bincount(service, ready[:n] * down[at], minlength=services) / weight
        lossy = np.bincount(service, ready[:n] * loss[at], minlength=services) / weight
    dead, lossy = np.nan_to_num(dead), np.nan_to_num(lossy)
    # A lost segment waits for the retransmission timeout (200 ms at least, against a few
    # ms of service time); three tries lost in a row fail the call.
    latency += LOSS_LATENCY * lossy
    fail_lossy = np.minimum(1.0, LOSS_FAILURES * lossy)
    errors = 1.0 - (1.0 - dead) * (1.0 - fail_lossy)
    return errors, capacity * (1.0 - dead), latency
