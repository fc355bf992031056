"""Fault injectors and their ground truth.

Each injected fault leaves a ``FaultRecord`` so that detectors, RCA and healing policies can be
scored against what really happened (and when it really ended).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from lab._errors import InvalidTimeError


@dataclass(frozen=True)
class CrashLoopFault:
    """One running pod of ``service`` starts crash-looping; deleting that pod heals it."""

    service: str = "checkout"
    """Service whose pod breaks."""


@dataclass(frozen=True)
class TrafficSurgeFault:
    """External traffic rises to ``factor`` x over ``ramp``, holds, falls back over ``ramp``.

    The whole surge, ramps included, lasts ``duration``.
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
        total, ramp = self.duration.total_seconds(), self.ramp.total_seconds()
        if elapsed_s < 0 or elapsed_s >= total:
            return 1.0
        edge = min(elapsed_s, total - elapsed_s)
        share = 1.0 if ramp == 0 or edge >= ramp else edge / ramp
        return 1.0 + (self.factor - 1.0) * share


Fault = CrashLoopFault | TrafficSurgeFault


@dataclass(frozen=True)
class FaultRecord:
    """Ground truth of one injected fault."""

    scenario: str
    """"pod_crashloop" or "traffic_surge" (names of the design's failure scenarios)."""
    target: str
    """What broke: the pod name of a crash loop, the entry service of a surge."""
    service: str
    """Service the fault hits first."""
    injected_at: datetime
    """When the fault started."""
    ends_at: datetime | None
    """When it ended (surges: known upfront; crash loops: when the pod went), None while on."""
