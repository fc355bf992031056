"""``traffic_surge``: external traffic rises by a factor, holds, and falls back.

A campaign or a bot wave: nothing is broken, the estate is too small for a while. It enters
at one entry service, and every service that one's requests reach feels it; the reactive HPA
catches up only after minutes of breached SLOs, which is what raising the HPA floor ahead of
(or during) the surge avoids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from contracts import ActionKind, ScenarioId
from lab._errors import InvalidTimeError, NoTargetError
from lab._faults import (
    ActiveFault,
    FaultRecord,
    ScenarioInstance,
    TickEffects,
    ramp_multiplier,
)
from lab.scenarios._registry import Scenario, minutes, register_scenario

if TYPE_CHECKING:
    from lab._estate import Lab

FACTOR = (2.5, 3.5)
"""Range of the drawn traffic multiplier at the plateau."""
RAMP_MINUTES = (2.0, 6.0)
"""Range of the drawn rise (and fall) time."""
DURATION_MINUTES = (30.0, 45.0)
"""Range of the drawn total length, ramps included."""


@register_scenario
class TrafficSurge(Scenario):
    """External traffic x ``magnitude`` with a linear ramp of ``params["ramp_s"]`` seconds."""

    id = ScenarioId.TRAFFIC_SURGE
    title = "traffic surge"
    heals = (ActionKind.SET_HPA_MIN, ActionKind.PATCH_HPA, ActionKind.SCALE_DEPLOYMENT)

    def draw(self, rng: np.random.Generator, lab: Lab) -> ScenarioInstance:
        entries = lab.entries
        entry = entries[0] if len(entries) == 1 else entries[int(rng.integers(len(entries)))]
        factor = float(rng.uniform(*FACTOR))
        ramp = minutes(rng, *RAMP_MINUTES)
        duration = minutes(rng, *DURATION_MINUTES)
        return ScenarioInstance(self.id, entry, factor, duration, {"ramp_s": ramp.total_seconds()})

    def felt_by(self, lab: Lab, instance: ScenarioInstance) -> tuple[str, ...]:
        return lab.downstream_of(instance.service)

    def inject(self, lab: Lab, instance: ScenarioInstance) -> FaultRecord:
        if instance.service not in lab.entries:
            raise NoTargetError(
                f"external traffic enters at {list(lab.entries)}, not {instance.service!r}"
            )
        ramp_s = float(instance.params.get("ramp_s", 0.0))
        duration = instance.duration
        if (
            instance.magnitude <= 0
            or duration is None
            or not 0 <= 2 * ramp_s <= duration.total_seconds()
        ):
            raise InvalidTimeError(
                f"surge needs factor > 0 and duration >= 2 x ramp, got factor="
                f"{instance.magnitude} ramp_s={ramp_s} duration={duration}"
            )
        return lab.begin_fault(instance, target=instance.service)

    def effect(self, lab: Lab, fault: ActiveFault, t0: float, h: float, fx: TickEffects) -> None:
        instance = fault.instance
        assert instance.duration is not None  # checked by inject
        fx.traffic[lab.service_index(instance.service)] *= ramp_multiplier(
            t0 + h / 2 - fault.started,
            instance.magnitude,
            float(instance.params.get("ramp_s", 0.0)),
            instance.duration.total_seconds(),
        )
