"""What a fault is made of, apart from the scenario that knows how to cause it.

Each injected fault leaves a ``FaultRecord`` so that detectors, RCA and healing policies can be
scored against what really happened (where it started, who felt it, when it really ended).
The types live here, free of the estate and of the scenario registry, so that both can use
them without importing each other. ``CrashLoopFault`` and ``TrafficSurgeFault`` are the older
way to ask for a fault; ``Lab.inject`` turns them into a ``ScenarioInstance``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import numpy as np

from contracts import ScenarioId
from lab._errors import InvalidTimeError


def ramp_multiplier(elapsed_s: float, factor: float, ramp_s: float, total_s: float) -> float:
    """A multiplier that rises from 1 to ``factor`` over ``ramp_s``, holds, falls back.

    The whole shape, ramps included, lasts ``total_s``; it is 1 outside ``[0, total_s)``.
    """
    if elapsed_s < 0 or elapsed_s >= total_s:
        return 1.0
    edge = min(elapsed_s, total_s - elapsed_s)
    share = 1.0 if ramp_s == 0 or edge >= ramp_s else edge / ramp_s
    return 1.0 + (factor - 1.0) * share


@dataclass(frozen=True)
class ScenarioInstance:
    """One concrete fault to inject: which scenario, where, how hard, for how long.

    Drawn by ``Scenario.draw`` (so a chaos harness can try many) or written by hand. Not
    hashable (``params`` is a dict); compare instances with ``==``.
    """

    scenario: ScenarioId
    """Which registered scenario causes it."""
    service: str
    """The service at fault (for a traffic surge: the entry service it hits)."""
    magnitude: float = 1.0
    """How hard: the traffic factor of a surge, 1 for a single crashing pod."""
    duration: timedelta | None = None
    """How long it lasts by itself, or None: until healed or cleared."""
    params: dict[str, float | str] = field(default_factory=dict)
    """Anything else the scenario needs (a surge's ``ramp_s``, the ``pick`` of a pod)."""


@dataclass(frozen=True)
class FaultRecord:
    """Ground truth of one injected fault."""

    scenario: ScenarioId
    """Which scenario it was."""
    target: str
    """What broke: the pod name of a crash loop, the entry service of a surge."""
    service: str
    """Service the fault hits first."""
    injected_at: datetime
    """When the fault started."""
    ends_at: datetime | None
    """When it ended (surges: known upfront; crash loops: when healed), None while on."""
    root_cause: str
    """The component at fault, as an RCA should name it (a service name)."""
    felt_by: tuple[str, ...]
    """Services whose SLO the fault hits, in topological order."""
    detail: str = ""
    """The finer cause where there is one: the ConfigMap key a persistent crash loop misses."""


@dataclass
class ActiveFault:
    """A fault in progress: the estate's handle on it, passed to the scenario's hooks."""

    instance: ScenarioInstance
    """What was injected."""
    index: int
    """Position of its record in ``Lab.ground_truth``."""
    started: float
    """Epoch second of the injection."""
    pods: list[str] = field(default_factory=list)
    """Names of the pods the fault holds (the crashing pod, every doomed replacement)."""


@dataclass
class TickEffects:
    """How the active faults bend one simulation sub-step; neutral values change nothing.

    A scenario's ``effect`` hook multiplies (or adds to) these; the estate applies them to the
    traffic and service model of that sub-step only. Arrays are indexed by service, in the
    order of ``Lab.services``.
    """

    traffic: np.ndarray
    """Multiplier of the external request rate into each entry service."""
    capacity: np.ndarray
    """Multiplier of the requests per second one Ready pod serves."""
    latency: np.ndarray
    """Multiplier of the service's own median latency (downstream time excluded)."""
    errors: np.ndarray
    """Fraction of the served requests that fail with a 500 regardless of load."""
    cpu: np.ndarray
    """Multiplier of the CPU one unit of utilisation costs: a pod whose requests wait on I/O
    serves fewer at once (``capacity`` down) without burning more CPU (``cpu`` down as much)."""

    @classmethod
    def neutral(cls, services: int) -> TickEffects:
        """Effects of a quiet sub-step."""
        ones = np.ones(services)
        return cls(ones, ones.copy(), ones.copy(), np.zeros(services), ones.copy())


BackgroundKind = Literal["rollout", "traffic_wave", "config_edit"]


@dataclass(frozen=True)
class BackgroundEvent:
    """Ground truth of an ordinary event of a chaos run: something the loop must NOT act on."""

    kind: BackgroundKind
    """"rollout": a new image tag, same behaviour; "traffic_wave": a mild rise in traffic;
    "config_edit": a harmless change to a service's ConfigMap (a feature flag)."""
    service: str
    """The service rolled out, or the entry service of a wave."""
    at: datetime
    """When it began."""
    ends_at: datetime | None
    """When a wave is over; None for a rollout (it completes by itself within minutes)."""
    magnitude: float
    """Traffic factor at the crest of a wave; 1 for a rollout."""
    detail: str
    """The new image of a rollout, the shape of a wave, the key and value of an edit."""


@dataclass(frozen=True)
class CrashLoopFault:
    """One running pod of ``service`` starts crash-looping; deleting that pod heals it.

    Older spelling of ``ScenarioInstance(ScenarioId.POD_CRASHLOOP, service)``.
    """

    service: str = "checkout"
    """Service whose pod breaks."""


@dataclass(frozen=True)
class TrafficSurgeFault:
    """External traffic rises to ``factor`` x over ``ramp``, holds, falls back over ``ramp``.

    The whole surge, ramps included, lasts ``duration``. Older spelling of a
    ``ScenarioId.TRAFFIC_SURGE`` instance.
    """

    factor: float = 3.0
    """Traffic multiplier at the plateau."""
    ramp: timedelta = timedelta(minutes=5)
    """Length of the rise (and of the fall)."""
    duration: timedelta = timedelta(minutes=40)
    """Total length of the surge."""

    def __post_init__(self) -> None:
        if self.factor <= 0 or self.ramp < timedelta(0) or self.duration < 2 * self.ramp:
            raise InvalidTimeError(
                f"surge needs factor > 0 and duration >= 2 x ramp, got factor={self.factor}"
                f" ramp={self.ramp} duration={self.duration}"
            )

    def multiplier(self, elapsed_s: float) -> float:
        """Traffic multiplier ``elapsed_s`` seconds after injection (1 outside the surge)."""
        return ramp_multiplier(
            elapsed_s, self.factor, self.ramp.total_seconds(), self.duration.total_seconds()
        )


Fault = CrashLoopFault | TrafficSurgeFault
"""The older fault requests ``Lab.inject`` still accepts."""
