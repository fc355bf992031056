"""``http_5xx_spike``: a rollout ships a bad build, and the new pods fail some requests.

The new ReplicaSet's pods start and pass their readiness checks (the bug is in a code path,
not in start-up), so the rollout completes and the service's 5xx rate climbs to the bad
build's failure share as the old pods go. Nothing recovers by itself; rolling the
Deployment back to the previous revision replaces the bad pods. The fault is over when no
pod of the bad template is left; ``Lab.clear`` is the team rolling back by hand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from contracts import ActionKind, ScenarioId
from lab._faults import ActiveFault, FaultRecord, ScenarioInstance, TickEffects
from lab.scenarios._registry import Scenario, register_scenario

if TYPE_CHECKING:
    from lab._estate import Lab


#: Tag suffix of the bad build (the lab's images differ only by tag).
BAD_TAG = "-hotfix"


def _bad_build(image: str) -> str:
    repo, _, tag = image.rpartition(":")
    return f"{repo}:{tag}{BAD_TAG}"


@register_scenario
class Http5xxSpike(Scenario):
    """A bad build rolled out on the service fails ``magnitude`` of its requests."""

    id = ScenarioId.HTTP_5XX_SPIKE
    title = "5xx spike after a rollout"
    heals = (ActionKind.ROLLBACK_DEPLOYMENT, ActionKind.ARGO_ROLLBACK)

    def draw(self, rng: np.random.Generator, lab: Lab) -> ScenarioInstance:
        service = lab.services[int(rng.integers(len(lab.services)))]
        return ScenarioInstance(self.id, service, magnitude=float(rng.uniform(0.05, 0.3)))

    def inject(self, lab: Lab, instance: ScenarioInstance) -> FaultRecord:
        dep = lab.cluster.deployments[instance.service]
        image = _bad_build(dep.current.image)
        lab.cluster.roll_out(dep, image, lab.clock_s)
        return lab.begin_fault(instance, target=instance.service)

    def _bad(self, lab: Lab, fault: ActiveFault) -> str:
        """The template hash of the bad build's ReplicaSet."""
        dep = lab.cluster.deployments[fault.instance.service]
        bad = [rs for rs in dep.replica_sets if rs.image.endswith(BAD_TAG)]
        return max(bad, key=lambda rs: rs.created_at).template_hash

    def effect(self, lab: Lab, fault: ActiveFault, t0: float, h: float, fx: TickEffects) -> None:
        i = lab.service_index(fault.instance.service)
        bad = self._bad(lab, fault)
        ready = [p for p in lab.cluster.service_pods[i] if p.ready(t0)]
        if not ready:
            return
        share = sum(p.template_hash == bad for p in ready) / len(ready)
        failing = share * fault.instance.magnitude
        fx.errors[i] = 1.0 - (1.0 - fx.errors[i]) * (1.0 - failing)

    def is_over(self, lab: Lab, fault: ActiveFault, t: float) -> bool:
        i = lab.service_index(fault.instance.service)
        bad = self._bad(lab, fault)
        return not any(p.template_hash == bad for p in lab.cluster.service_pods[i])

    def clear(self, lab: Lab, fault: ActiveFault, t: float) -> None:
        dep = lab.cluster.deployments[fault.instance.service]
        previous = [rs for rs in dep.replica_sets if rs.template_hash != self._bad(lab, fault)]
        if previous:
            newest = max(previous, key=lambda rs: rs.revision)
            lab.cluster.roll_out(dep, newest.image, t)
        lab.cluster.reconcile(t)
