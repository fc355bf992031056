"""``node_not_ready``: a worker node dies and its kubelet stops posting status.

The pods there stop at once, but for the node-monitor grace period they still look Ready and
take their share of the traffic, which fails; then the node turns NotReady (``Unknown``), the
pods are marked not Ready and the services run short of capacity until the taint manager
evicts them, five minutes later, and the ReplicaSets recreate them elsewhere. Draining the
node (cordon, Eviction API) moves them as soon as the condition shows. The fault's effect is
over when no pod is left on the node; the node itself stays dead until ``Lab.clear`` (a human
replacing it) brings its kubelet back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from contracts import ActionKind, ScenarioId
from lab._faults import ActiveFault, FaultRecord, ScenarioInstance
from lab._kubelet import kill_node, pods_on, revive_node
from lab.scenarios._nodes import fault_node, felt_on_node, node_of
from lab.scenarios._registry import Scenario, register_scenario

if TYPE_CHECKING:
    from lab._estate import Lab


@register_scenario
class NodeNotReady(Scenario):
    """A node's kubelet goes silent; its pods are lost until moved."""

    id = ScenarioId.NODE_NOT_READY
    title = "node NotReady"
    heals = (ActionKind.DRAIN_NODE,)
    cause_outlives_effect = True

    def draw(self, rng: np.random.Generator, lab: Lab) -> ScenarioInstance:
        service = lab.services[int(rng.integers(len(lab.services)))]
        return ScenarioInstance(self.id, service, params={"pick": float(rng.random())})

    def felt_by(self, lab: Lab, instance: ScenarioInstance) -> tuple[str, ...]:
        return felt_on_node(lab, instance)

    def inject(self, lab: Lab, instance: ScenarioInstance) -> FaultRecord:
        node = node_of(lab, instance)
        record = lab.begin_fault(instance, target=node.name, root_cause=node.name)
        kill_node(node, lab.clock_s)
        return record

    def is_over(self, lab: Lab, fault: ActiveFault, t: float) -> bool:
        return not pods_on(lab.cluster, fault_node(lab, fault))

    def clear(self, lab: Lab, fault: ActiveFault, t: float) -> None:
        revive_node(lab.cluster, fault_node(lab, fault), t)
