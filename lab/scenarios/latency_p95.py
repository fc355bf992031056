"""``latency_p95``: a service saturates where its CPU autoscaler cannot see it.

A release puts a slow path on every request -- a synchronous call, a lock, a query whose
table keeps growing -- so each request holds one of a pod's workers longer, and longer as the
minutes pass. A pod then serves fewer requests at once (a request itself takes a little longer,
most of its extra time is spent waiting for a worker); they queue, and the service's p95
creeps up until it breaches, then the excess is shed with 503s. The waiting is I/O, not CPU:
CPU per request stays what it was, so the CPU HorizontalPodAutoscaler sees nothing. More
replicas (a raised HPA floor) bring the queues back down; the slow path itself stays until
its fix rolls out (the fault's duration) or a human clears it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from contracts import ActionKind, ScenarioId
from lab._errors import InvalidTimeError
from lab._faults import ActiveFault, FaultRecord, ScenarioInstance, TickEffects
from lab.scenarios._registry import Scenario, minutes, register_scenario

if TYPE_CHECKING:
    from lab._estate import Lab

#: Range of how many times longer a request holds a worker at the end of the creep.
HOLD_FACTOR = (1.8, 2.6)
#: Range of the creep's length, minutes (linear, from 1 to the factor).
CREEP_MINUTES = (12.0, 25.0)
#: Share of the longer hold a request itself waits (the rest of its wait is for a worker).
OWN_SHARE = 0.2
#: Range of the fault's total length, minutes (until the fix is out).
DURATION_MINUTES = (60.0, 90.0)


def hold_factor(instance: ScenarioInstance, elapsed_s: float) -> float:
    """How many times longer a request holds a worker ``elapsed_s`` after the release."""
    creep = float(instance.params["creep_s"])
    share = 1.0 if creep <= 0 else min(1.0, max(0.0, elapsed_s / creep))
    return 1.0 + (instance.magnitude - 1.0) * share


@register_scenario
class LatencyP95(Scenario):
    """Requests of ``service`` hold a worker up to ``magnitude`` x longer, creeping over
    ``params["creep_s"]`` seconds."""

    id = ScenarioId.LATENCY_P95
    title = "p95 latency creeping over its objective"
    heals = (ActionKind.SET_HPA_MIN, ActionKind.SCALE_DEPLOYMENT, ActionKind.PATCH_HPA)

    def draw(self, rng: np.random.Generator, lab: Lab) -> ScenarioInstance:
        service = lab.services[int(rng.integers(len(lab.services)))]
        return ScenarioInstance(
            self.id,
            service,
            magnitude=float(rng.uniform(*HOLD_FACTOR)),
            duration=minutes(rng, *DURATION_MINUTES),
            params={"creep_s": minutes(rng, *CREEP_MINUTES).total_seconds()},
        )

    def inject(self, lab: Lab, instance: ScenarioInstance) -> FaultRecord:
        creep = instance.params.get("creep_s")
        if instance.magnitude < 1 or not isinstance(creep, float | int) or creep < 0:
            raise InvalidTimeError(
                f"latency_p95 needs magnitude >= 1 and params['creep_s'] >= 0, got"
                f" {instance.magnitude}, {creep!r}"
            )
        return lab.begin_fault(instance, target=instance.service)

    def effect(self, lab: Lab, fault: ActiveFault, t0: float, h: float, fx: TickEffects) -> None:
        i = lab.service_index(fault.instance.service)
        k = hold_factor(fault.instance, t0 + h / 2 - fault.started)
        fx.capacity[i] /= k
        fx.cpu[i] /= k
        fx.latency[i] *= 1.0 + OWN_SHARE * (k - 1.0)
