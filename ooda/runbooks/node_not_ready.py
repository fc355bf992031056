"""Node NotReady: drain the node a service's pods are stranded on.

The node's ``Ready`` condition turning ``False`` or ``Unknown`` is hard evidence from the
cluster (``kube_node_status_condition{condition="Ready"}`` in kube-state-metrics' terms);
the pods bound there have stopped serving, and Kubernetes itself only evicts them after the
five-minute default toleration. Draining (cordon, then the Eviction API, so every
PodDisruptionBudget holds) lets the ReplicaSets recreate them elsewhere at once. The drain
refuses what ``kubectl drain`` refuses and, through the guard, what would take too much of
the node pool out; one node at a time per cluster.

The condition waits out the node controller's 40 s grace period, during which the dead
node's pods still look Ready, take their share of the requests and fail them. The kubelet's
heartbeat Lease says it sooner: a node whose last renewal trails the other nodes' by
``node_silent_after`` (two missed renewals) while the service's pods fail requests is drained
then. Either signal alone could be something else -- a kubelet restarting, errors of the
service's own -- so the early drain wants both, and none while most nodes trail together
(the control plane stalling, not the nodes dying). The drain is told the node is lost, so
it moves the pods even when some have nowhere to go: they serve nothing where they are.
"""

from __future__ import annotations

from datetime import timedelta

from actuators import Action, DrainNode
from contracts import NodeState, ScenarioId
from ooda._records import ComponentKind, Diagnosis, Finding, Snapshot
from ooda.runbooks._base import Runbook, drained, register_runbook


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
        silent: dict[str, str | None] = {}
        stranded: dict[str, list[str]] = {}
        for pod in workload.pods:
            node = snapshot.nodes.get(pod.node or "")
            if node is None:
                continue
            if node.name not in silent:
                silent[node.name] = self._silent(snapshot, service, node)
            if silent[node.name] is not None:
                stranded.setdefault(node.name, []).append(pod.name)
        if not stranded:
            return None
        # The node holding most of the service's pods first; the others on later ticks.
        node_name = max(stranded, key=lambda name: (len(stranded[name]), name))
        node = snapshot.nodes[node_name]
        return self.diagnose(
            snapshot,
            service,
            0.95 if node.not_ready else 0.85,
            {
                "node": node_name,
                "ready": node.ready,
                "silent": silent[node_name],
                "cordoned": node.unschedulable,
                "pods": stranded[node_name],
                "ready_pods": f"{workload.ready_replicas}/{workload.replicas}",
            },
            target=f"node/{node_name}",
        )

    def _silent(self, snapshot: Snapshot, service: str, node: NodeState) -> str | None:
        """Why ``node`` has stopped serving ``service``'s pods (None: it has not)."""
        if node.not_ready:
            return f"Ready={node.ready}"
        policy = self.settings.policy
        after = policy.node_silent_after.total_seconds()
        lag = node.heartbeat_lag_s
        if lag is None or lag < after:
            return None
        trailing = sum(1 for n in snapshot.nodes.values() if (n.heartbeat_lag_s or 0.0) >= after)
        if trailing >= policy.node_silent_max_share * len(snapshot.nodes):
            return None
        view = snapshot.views[service]
        if view.idle or not view.usable:
            return None
        errors = float(view.latest["error_rate"])
        if not errors > self.settings.slo_for(service).max_error_rate:
            return None
        return f"kubelet heartbeat {lag:.0f} s behind, {errors:.1%} of requests failing"

    def follow_up(self, diagnosis: Diagnosis, action: Action, snapshot: Snapshot) -> Finding:
        stopped = f" stopped ({diagnosis.evidence['silent']})"
        return drained(diagnosis.evidence["node"], stopped, "repair or replace it")

    def propose(self, diagnosis: Diagnosis, snapshot: Snapshot) -> Action | None:
        node = diagnosis.evidence["node"]
        return DrainNode(
            snapshot.namespace,
            diagnosis.service,
            reason=f"node {node} has stopped ({diagnosis.evidence['silent']}) and holds"
            f" {len(diagnosis.evidence['pods'])} pod(s) of {diagnosis.service}",
            node=node,
            node_lost=True,
            room_on_demand=self.settings.nodes_on_demand,
        )
