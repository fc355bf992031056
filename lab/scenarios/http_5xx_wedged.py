"""``http_5xx_wedged``: a 5xx spike with no rollout near; the pods' own state is bad.

The service's database blipped (a failover, a network hiccup) and its pods' connection pools
kept the half-open connections: every request that draws one fails with a 503, in the pods that
were running then, and in no pod started since. The build is fine, so there is nothing to roll
back; the config is fine, so nothing to restore; a fresh process opens fresh connections. A
``kubectl rollout restart`` (or each wedged pod deleted) heals it. The fault is over when no
wedged pod is left; ``Lab.clear`` is the team's own rollout restart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from contracts import ActionKind, ScenarioId
from lab._errors import NoTargetError
from lab._faults import ActiveFault, FaultRecord, ScenarioInstance, TickEffects
from lab.scenarios._registry import Scenario, register_scenario

if TYPE_CHECKING:
    from lab._estate import Lab
    from lab._pods import Pod


@register_scenario
class WedgedPods(Scenario):
    """A ``share`` of the service's pods fail ``magnitude`` of their requests until replaced."""

    id = ScenarioId.HTTP_5XX_WEDGED
    title = "5xx spike with no rollout (wedged connection pools)"
    heals = (ActionKind.ROLLOUT_RESTART,)

    def draw(self, rng: np.random.Generator, lab: Lab) -> ScenarioInstance:
        service = lab.services[int(rng.integers(len(lab.services)))]
        return ScenarioInstance(
            self.id,
            service,
            magnitude=float(rng.uniform(0.1, 0.5)),
            params={"share": float(rng.uniform(0.5, 1.0)), "pick": float(rng.random())},
        )

    def inject(self, lab: Lab, instance: ScenarioInstance) -> FaultRecord:
        healthy = lab.healthy_pods(instance.service)
        if not healthy:
            raise NoTargetError(f"service {instance.service!r} has no ready pod to wedge")
        share = float(instance.params.get("share", 1.0))
        count = max(1, round(share * len(healthy)))
        first = int(float(instance.params.get("pick", 0.0)) * len(healthy))
        wedged = [healthy[(first + k) % len(healthy)].name for k in range(count)]
        return lab.begin_fault(instance, target=instance.service, pods=wedged)

    def effect(self, lab: Lab, fault: ActiveFault, t0: float, h: float, fx: TickEffects) -> None:
        i = lab.service_index(fault.instance.service)
        ready = [p for p in lab.cluster.service_pods[i] if p.ready(t0)]
        if not ready:
            return
        wedged = set(fault.pods)
        share = sum(p.name in wedged for p in ready) / len(ready)
        failing = share * fault.instance.magnitude
        fx.errors[i] = 1.0 - (1.0 - fx.errors[i]) * (1.0 - failing)

    def is_over(self, lab: Lab, fault: ActiveFault, t: float) -> bool:
        return not fault.pods

    def pod_removed(self, lab: Lab, fault: ActiveFault, pod: Pod, t: float) -> bool:
        if pod.name in fault.pods:
            fault.pods.remove(pod.name)
        return not fault.pods

    def clear(self, lab: Lab, fault: ActiveFault, t: float) -> None:
        dep = lab.cluster.deployments[fault.instance.service]
        lab.cluster.roll_out(dep, dep.current.image, t, restarted_at=f"lab-clear-{t:.0f}")
        lab.cluster.reconcile(t)
