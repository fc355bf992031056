"""``packet_loss``: the network path of one node drops packets (a bad NIC, a flapping link).

Pods on that node retransmit: their calls wait for retransmission timeouts, so they answer
slower, and some calls exhaust their retries and fail. node-exporter shows it as
``node_netstat_TcpExt_TCPRetransSegs`` climbing against ``node_netstat_Tcp_OutSegs``; the
node stays Ready, so Kubernetes does nothing. Moving the pods to other nodes (a drain: cordon
so that none comes back, then evict) heals the services; the link is a human's to fix. The
fault's effect is over when no pod is left on the node; ``Lab.clear`` repairs the link.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from contracts import ActionKind, ScenarioId
from lab._faults import ActiveFault, FaultRecord, ScenarioInstance
from lab._kubelet import pods_on
from lab.scenarios._nodes import fault_node, felt_on_node, node_of
from lab.scenarios._registry import Scenario, register_scenario

if TYPE_CHECKING:
    from lab._estate import Lab


@register_scenario
class PacketLoss(Scenario):
    """One node's path loses ``magnitude`` of its packets."""

    id = ScenarioId.PACKET_LOSS
    title = "packet loss on a node's path"
    heals = (ActionKind.DRAIN_NODE, ActionKind.RECREATE_POD_ELSEWHERE)
    cause_outlives_effect = True

    def draw(self, rng: np.random.Generator, lab: Lab) -> ScenarioInstance:
        service = lab.services[int(rng.integers(len(lab.services)))]
        return ScenarioInstance(
            self.id,
            service,
            magnitude=float(rng.uniform(0.02, 0.1)),
            params={"pick": float(rng.random())},
        )

    def felt_by(self, lab: Lab, instance: ScenarioInstance) -> tuple[str, ...]:
        return felt_on_node(lab, instance)

    def inject(self, lab: Lab, instance: ScenarioInstance) -> FaultRecord:
        node = node_of(lab, instance)
        record = lab.begin_fault(instance, target=node.name, root_cause=node.name)
        node.packet_loss = instance.magnitude
        return record

    def is_over(self, lab: Lab, fault: ActiveFault, t: float) -> bool:
        return not pods_on(lab.cluster, fault_node(lab, fault))

    def clear(self, lab: Lab, fault: ActiveFault, t: float) -> None:
        fault_node(lab, fault).packet_loss = 0.0
