"""``node_disk_pressure``: a node's root filesystem fills up (logs that are not rotated,
images that are not collected) until the kubelet's hard eviction threshold.

The filesystem fills steadily, so ``node_filesystem_avail_bytes`` announces the pressure
minutes ahead. Once under 10 % free the kubelet sets DiskPressure, taints the node NoSchedule
and evicts pods one at a time with no grace and no regard for PodDisruptionBudgets. Draining
the node before that moves the pods through the Eviction API instead. The fault's effect is
over when no pod is left on the node; ``Lab.clear`` is a human cleaning the disk.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from contracts import ActionKind, ScenarioId
from lab._faults import ActiveFault, FaultRecord, ScenarioInstance
from lab._kubelet import DISK_EVICTION_THRESHOLD, pods_on
from lab.scenarios._nodes import fault_node, felt_on_node, node_of
from lab.scenarios._registry import Scenario, register_scenario

if TYPE_CHECKING:
    from lab._estate import Lab

#: Share of the disk a node normally uses (images, logs); the clean-up brings it back here.
STEADY_USED = 0.35


@register_scenario
class NodeDiskPressure(Scenario):
    """A node's disk fills to the kubelet's eviction threshold in ``lead_s``."""

    id = ScenarioId.NODE_DISK_PRESSURE
    title = "node disk pressure"
    heals = (ActionKind.DRAIN_NODE,)
    cause_outlives_effect = True

    def draw(self, rng: np.random.Generator, lab: Lab) -> ScenarioInstance:
        service = lab.services[int(rng.integers(len(lab.services)))]
        return ScenarioInstance(
            self.id,
            service,
            params={
                "pick": float(rng.random()),
                "lead_s": float(round(rng.uniform(10.0, 18.0) * 60.0)),
            },
        )

    def felt_by(self, lab: Lab, instance: ScenarioInstance) -> tuple[str, ...]:
        return felt_on_node(lab, instance)

    def inject(self, lab: Lab, instance: ScenarioInstance) -> FaultRecord:
        node = node_of(lab, instance)
        record = lab.begin_fault(instance, target=node.name, root_cause=node.name)
        used = node.disk_used_bytes / node.disk_size_bytes
        room = (1.0 - DISK_EVICTION_THRESHOLD - used) * node.disk_size_bytes
        node.disk_fill_bps = max(room, 0.0) / float(instance.params["lead_s"])
        return record

    def is_over(self, lab: Lab, fault: ActiveFault, t: float) -> bool:
        return not pods_on(lab.cluster, fault_node(lab, fault))

    def clear(self, lab: Lab, fault: ActiveFault, t: float) -> None:
        node = fault_node(lab, fault)
        node.disk_fill_bps = 0.0
        node.disk_used_bytes = STEADY_USED * node.disk_size_bytes
        node.disk_pressure = False
