"""``upstream_throttling``: a third-party API cuts our quota, and answers 429 beyond it.

The provider lowers the quota of our account at the upstream's primary region to
``magnitude`` (40-70 %) of the calls per second we make when the instance is drawn, for 30 to
60 minutes (an incident on their side, a plan downgrade undone later). Beyond the quota every
attempt may be answered 429 with a ``Retry-After``; the caller's client waits and retries,
so its requests slow down by the waits and fail when the retries run out
(``lab._upstream``). The calling service and the services that call it feel it. Nothing in
our estate is broken: the heal is to send the calls the primary no longer takes to the
secondary region (the upstream's HTTPRoute weights), which has its own quota. The fault is
over when its duration is up (the provider restores the quota); ``Lab.clear`` is the
provider restoring it early.

The record's ``target`` is the calling service (the estate's object the fault is felt on);
its ``root_cause`` is the upstream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from contracts import ActionKind, ScenarioId
from lab._errors import NoTargetError
from lab._faults import ActiveFault, FaultRecord, ScenarioInstance, TickEffects
from lab._upstream import Upstream
from lab.scenarios._registry import Scenario, minutes, register_scenario

if TYPE_CHECKING:
    from lab._estate import Lab


def _upstream(lab: Lab, instance: ScenarioInstance) -> Upstream:
    name = str(instance.params["upstream"])
    found = lab.dependency(name)
    if not isinstance(found, Upstream):
        raise NoTargetError(f"{name!r} is a {type(found).__name__}, not an upstream API")
    return found


@register_scenario
class UpstreamThrottling(Scenario):
    """The primary region of an upstream accepts only ``quota_rps`` of our calls."""

    id = ScenarioId.UPSTREAM_THROTTLING
    title = "upstream API throttling"
    heals = (ActionKind.REROUTE,)

    def draw(self, rng: np.random.Generator, lab: Lab) -> ScenarioInstance:
        upstreams = lab.dependencies(Upstream)
        if not upstreams:
            raise NoTargetError("the estate calls no upstream API to throttle")
        upstream = upstreams[int(rng.integers(len(upstreams)))]
        if not upstream.call_rps > 0:
            raise NoTargetError(
                f"upstream {upstream.name!r} takes no calls yet ({upstream.call_rps}/s):"
                " step the lab before drawing"
            )
        share = float(rng.uniform(0.4, 0.7))
        return ScenarioInstance(
            self.id,
            upstream.settings.service,
            magnitude=share,
            duration=minutes(rng, 30.0, 60.0),
            params={
                "upstream": upstream.name,
                "quota_rps": round(share * upstream.call_rps, 1),
            },
        )

    def inject(self, lab: Lab, instance: ScenarioInstance) -> FaultRecord:
        upstream = _upstream(lab, instance)
        return lab.begin_fault(instance, target=instance.service, root_cause=upstream.name)

    def effect(self, lab: Lab, fault: ActiveFault, t0: float, h: float, fx: TickEffects) -> None:
        upstream = _upstream(lab, fault.instance)
        upstream.primary.cut_to = float(fault.instance.params["quota_rps"])
