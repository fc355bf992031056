"""``pod_crashloop``: one running pod of a service starts crash-looping.

The container dies and is restarted with a growing CrashLoopBackOff; while it runs it takes
its share of the requests and fails them, which the callers feel too. Nothing else is wrong,
so replacing the pod (delete, evict, recreate elsewhere) heals it: the ReplicaSet's new pod is
healthy. ``Lab.clear`` is the operator deleting it by hand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from contracts import ActionKind, ScenarioId
from lab._faults import ActiveFault, FaultRecord, ScenarioInstance
from lab.scenarios._registry import Scenario, pick_healthy_pod, register_scenario

if TYPE_CHECKING:
    from lab._estate import Lab
    from lab._pods import Pod


@register_scenario
class PodCrashLoop(Scenario):
    """One pod of the service crash-loops until it is replaced."""

    id = ScenarioId.POD_CRASHLOOP
    title = "pod CrashLoopBackOff"
    heals = (ActionKind.RESTART_POD, ActionKind.RECREATE_POD_ELSEWHERE)

    def draw(self, rng: np.random.Generator, lab: Lab) -> ScenarioInstance:
        service = lab.services[int(rng.integers(len(lab.services)))]
        return ScenarioInstance(self.id, service, params={"pick": float(rng.random())})

    def inject(self, lab: Lab, instance: ScenarioInstance) -> FaultRecord:
        pod = pick_healthy_pod(lab, instance)
        lab.cluster.start_crash_loop(pod, lab.clock_s)
        return lab.begin_fault(instance, target=pod.name, pods=[pod.name])

    def pod_removed(self, lab: Lab, fault: ActiveFault, pod: Pod, t: float) -> bool:
        return pod.name in fault.pods

    def clear(self, lab: Lab, fault: ActiveFault, t: float) -> None:
        for name in fault.pods:
            if name in lab.cluster.pods:
                lab.cluster.remove_pod(name, t)
        lab.cluster.reconcile(t)
