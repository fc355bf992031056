"""Node NotReady: drain the node a service's pods are stranded on.

The node's ``Ready`` condition turning ``False`` or ``Unknown`` is hard evidence from the
cluster (``kube_node_status_condition{condition="Ready"}`` in kube-state-metrics' terms);
the pods bound there have stopped serving, and Kubernetes itself only evicts them after the
five-minute default toleration. Draining (cordon, then the Eviction API, so every
PodDisruptionBudget holds) lets the ReplicaSets recreate them elsewhere at once. The drain
refuses what ``kubectl drain`` refuses and, through the guard, what would take too much of
the node pool out; one node at a time per cluster.
"""

from __future__ import annotations

from datetime import timedelta

from actuators import Action, DrainNode
from contracts import ScenarioId
from ooda._records import ComponentKind, Diagnosis, Snapshot
from ooda.runbooks._base import Runbook, register_runbook


@register_runbook
class NodeNotReady(Runbook):
    """Drain a NotReady node that still holds pods of the service."""

    name = "node_not_ready"
    scenarios = (ScenarioId.NODE_NOT_READY,)
    priority = 5
    heals = ComponentKind.NODE
    deadline = timedelta(minutes=12)
    acts_when_idle = True

    def matches(self, snapshot: Snapshot, service: str) -> Diagnosis | None:
        workload = snapshot.workloads[service]
        stranded: dict[str, list[str]] = {}
        for pod in workload.pods:
            node = snapshot.nodes.get(pod.node or "")
            if node is not None and node.not_ready:
                stranded.setdefault(node.name, []).append(pod.name)
        if not stranded:
            return None
        # The node holding most of the service's pods first; the others on later ticks.
        node_name = max(stranded, key=lambda name: (len(stranded[name]), name))
        node = snapshot.nodes[node_name]
        return self.diagnose(
            snapshot,
            service,
            0.95,
            {
                "node": node_name,
                "ready": node.ready,
                "cordoned": node.unschedulable,
                "pods": stranded[node_name],
                "ready_pods": f"{workload.ready_replicas}/{workload.replicas}",
            },
            target=f"node/{node_name}",
        )

    def propose(self, diagnosis: Diagnosis, snapshot: Snapshot) -> Action | None:
        node = diagnosis.evidence["node"]
        return DrainNode(
            snapshot.namespace,
            diagnosis.service,
            reason=f"node {node} is NotReady (Ready={diagnosis.evidence['ready']}) and holds"
            f" {len(diagnosis.evidence['pods'])} pod(s) of {diagnosis.service}",
            node=node,
        )
