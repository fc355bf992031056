"""Which node a node scenario hits, and who runs there: shared by the node scenarios."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lab._errors import NoTargetError
from lab._kubelet import pods_on

if TYPE_CHECKING:
    from lab._cluster import Node
    from lab._estate import Lab
    from lab._faults import ActiveFault, ScenarioInstance


def node_of(lab: Lab, instance: ScenarioInstance) -> Node:
    """The Ready node hosting a pod of the instance's service that its ``pick`` selects."""
    index = lab.service_index(instance.service)
    table = lab.cluster.pod_table
    n = table.compact()
    hosting = set(table.node[:n][table.service[:n] == index].tolist())
    nodes = [node for i, node in enumerate(lab.cluster.nodes) if i in hosting and node.ready]
    if not nodes:
        raise NoTargetError(f"no Ready node runs a pod of {instance.service!r}")
    pick = float(instance.params.get("pick", 0.0))
    return nodes[min(len(nodes) - 1, int(pick * len(nodes)))]


def services_on(lab: Lab, node: Node) -> list[str]:
    """Services with a pod bound to ``node``, in topological order."""
    table = lab.cluster.pod_table
    there = {int(table.service[row]) for row in pods_on(lab.cluster, node)}
    return [name for i, name in enumerate(lab.services) if i in there]


def fault_node(lab: Lab, fault: ActiveFault) -> Node:
    """The node an active node fault was injected on (its record's target)."""
    target = lab.ground_truth[fault.index].target
    return next(node for node in lab.cluster.nodes if node.name == target)


def felt_on_node(lab: Lab, instance: ScenarioInstance) -> tuple[str, ...]:
    """Services with a pod on the instance's node, and every service calling one of them."""
    hit = set(services_on(lab, node_of(lab, instance)))
    return tuple(s for s in lab.services if hit & set(lab.downstream_of(s)))
