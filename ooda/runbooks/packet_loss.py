"""Packet loss on a node's path: move the service's pods off that node.

node-exporter's ``node_netstat_TcpExt_TCPRetransSegs`` over ``node_netstat_Tcp_OutSegs`` of a
node the service runs on has stayed above ``retransmit_share`` for ``spike_minutes`` in a row
(a healthy path retransmits a few in ten thousand). The node is still Ready, so nothing in
Kubernetes will move the pods; a drain does (cordon first, so that none is recreated there,
then the Eviction API under the PodDisruptionBudgets).
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import numpy as np

from actuators import Action, DrainNode
from contracts import MetricFamily, ScenarioId
from ooda._records import ComponentKind, Diagnosis, Finding, Snapshot
from ooda.runbooks._base import Runbook, drained, register_runbook, running_nodes


@register_runbook
class PacketLoss(Runbook):
    """Drain a node whose network path keeps retransmitting."""

    name = "packet_loss"
    scenarios = (ScenarioId.PACKET_LOSS,)
    priority = 7
    heals = ComponentKind.NODE
    deadline = timedelta(minutes=12)
    families = (MetricFamily.NODE,)

    def matches(self, snapshot: Snapshot, service: str) -> Diagnosis | None:
        frame = snapshot.families.get(MetricFamily.NODE)
        if frame is None or not len(frame):
            return None
        workload = snapshot.workloads[service]
        policy = self.settings.policy
        for node in running_nodes(snapshot, service):
            share = snapshot.once(("retransmit_share", node), partial(self._share, snapshot, node))
            if len(share) < policy.spike_minutes or not (share > policy.retransmit_share).all():
                continue
            return self.diagnose(
                snapshot,
                service,
                0.85,
                {
                    "node": node,
                    "retransmit_share": round(float(share[-1]), 4),
                    "pods": [p.name for p in workload.pods if p.node == node],
                },
                target=f"node/{node}",
            )
        return None

    def _share(self, snapshot: Snapshot, node: str) -> np.ndarray:
        """The node's retransmitted share of its segments, its last ``spike_minutes``."""
        rows = snapshot.rows_of(MetricFamily.NODE, "node", node)
        rows = rows.tail(self.settings.policy.spike_minutes)
        out = rows["node_netstat_Tcp_OutSegs_rate"].to_numpy(dtype=float)
        retrans = rows["node_netstat_TcpExt_TCPRetransSegs_rate"].to_numpy(dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(retrans / out, dtype=float)

    def follow_up(self, diagnosis: Diagnosis, action: Action, snapshot: Snapshot) -> Finding:
        share = diagnosis.evidence["retransmit_share"]
        lost = f" retransmitted {share:.1%} of its TCP segments"
        return drained(
            diagnosis.evidence["node"], lost, "check its network path (NIC, switch port, CNI)"
        )

    def propose(self, diagnosis: Diagnosis, snapshot: Snapshot) -> Action | None:
        evidence = diagnosis.evidence
        return DrainNode(
            snapshot.namespace,
            diagnosis.service,
            reason=f"node {evidence['node']} retransmits {evidence['retransmit_share']:.1%} of"
            f" its TCP segments; moving {len(evidence['pods'])} pod(s) of {diagnosis.service}",
            node=str(evidence["node"]),
            room_on_demand=self.settings.nodes_on_demand,
        )
