"""The lab's CoordinationV1Api: each node's heartbeat Lease in ``kube-node-lease``.

A kubelet renews its node's Lease every ``leaseDurationSeconds / 4`` (10 s of the default
40 s), each on its own phase; a dead one stops renewing, so its ``renewTime`` stays where the
node died while the others move on. That is what the node lifecycle controller watches, and
what the loop may read before the controller's grace period turns the node's Ready condition.
Only the node Leases are served: the lab runs no leader election.
"""

from __future__ import annotations

import math
import zlib

from kubernetes import client

from contracts import NODE_LEASE_NAMESPACE, SimClock
from lab._cluster import Cluster, Node
from lab._kube import _Counted, _error, _utc

#: The kubelet's ``nodeLeaseDurationSeconds`` default.
NODE_LEASE_DURATION_S = 40
#: The kubelet renews a quarter of the way through the lease.
NODE_LEASE_RENEW_S = NODE_LEASE_DURATION_S / 4


def last_renewal(node: Node, now: float) -> float:
    """When ``node``'s kubelet last renewed its Lease, as of ``now`` (epoch seconds)."""
    phase = zlib.crc32(node.name.encode()) % 1000 / 1000 * NODE_LEASE_RENEW_S
    until = now if node.down_since is None else min(now, node.down_since)
    return math.floor((until - phase) / NODE_LEASE_RENEW_S) * NODE_LEASE_RENEW_S + phase


class FakeCoordinationV1Api(_Counted):
    """The node Leases, read-only, rendered from the nodes at the time of the call."""

    def __init__(self, cluster: Cluster, clock: SimClock) -> None:
        super().__init__()
        self._cluster = cluster
        self._clock = clock

    def _lease(self, node: Node, now: float) -> client.V1Lease:
        return client.V1Lease(
            api_version="coordination.k8s.io/v1",
            kind="Lease",
            metadata=client.V1ObjectMeta(
                name=node.name,
                namespace=NODE_LEASE_NAMESPACE,
                owner_references=[
                    client.V1OwnerReference(
                        api_version="v1", kind="Node", name=node.name, uid=node.uid
                    )
                ],
            ),
            spec=client.V1LeaseSpec(
                holder_identity=node.name,
                lease_duration_seconds=NODE_LEASE_DURATION_S,
                renew_time=_utc(last_renewal(node, now)),
            ),
        )

    def list_namespaced_lease(self, namespace: str) -> client.V1LeaseList:
        now = self._clock.now().timestamp()
        nodes = self._cluster.nodes if namespace == NODE_LEASE_NAMESPACE else []
        return client.V1LeaseList(items=[self._lease(node, now) for node in nodes])

    def read_namespaced_lease(self, name: str, namespace: str) -> client.V1Lease:
        node = next((n for n in self._cluster.nodes if n.name == name), None)
        if node is None or namespace != NODE_LEASE_NAMESPACE:
            raise _error(404, f'leases.coordination.k8s.io "{name}" not found', "leases", name)
        return self._lease(node, self._clock.now().timestamp())
