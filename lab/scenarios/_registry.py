"""The scenario base class and the registry that ``Lab`` looks scenarios up in.

A failure scenario is one module: it says how to draw a random instance, how to start it, what
it does to each simulation sub-step, who feels it and which actions can heal it. The estate
only calls these hooks, so adding a scenario touches no other lab file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import timedelta
from typing import TYPE_CHECKING, ClassVar, TypeVar

import numpy as np

from contracts import ActionKind, ScenarioId, UnknownIdError
from lab._errors import LabError, NoTargetError
from lab._faults import ActiveFault, FaultRecord, ScenarioInstance, TickEffects

if TYPE_CHECKING:
    from lab._estate import Lab
    from lab._pods import Pod


class ScenarioError(LabError, KeyError):
    """A scenario id has no registered scenario, or is registered twice."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Scenario(ABC):
    """A kind of failure the lab can cause, with its ground truth.

    Subclasses set the class attributes, implement ``draw`` and ``inject`` and override the
    hooks they need. A scenario holds no state: what one injected fault needs to remember
    lives on its ``ActiveFault`` (``pods``) or in its ``ScenarioInstance``.
    """

    id: ClassVar[ScenarioId]
    """The id the registry, the records and the chaos report use."""
    title: ClassVar[str]
    """A short human title."""
    heals: ClassVar[tuple[ActionKind, ...]]
    """Ground truth: the loop actions that can heal it (empty: only a human can)."""
    cause_outlives_effect: ClassVar[bool] = False
    """Whether the cause stays after the fault is over: a dead node is still dead once its
    pods moved away, so a human's ``clear`` still repairs it (``Lab.clear``)."""

    @abstractmethod
    def draw(self, rng: np.random.Generator, lab: Lab) -> ScenarioInstance:
        """A random instance for ``lab`` (service, magnitude, duration, params) from ``rng``."""

    @abstractmethod
    def inject(self, lab: Lab, instance: ScenarioInstance) -> FaultRecord:
        """Start ``instance`` now; implementations end with ``lab.begin_fault(...)``."""

    def felt_by(self, lab: Lab, instance: ScenarioInstance) -> tuple[str, ...]:
        """Services whose SLO it hits: by default the service and every service calling it."""
        return lab.upstream_of(instance.service)

    def effect(self, lab: Lab, fault: ActiveFault, t0: float, h: float, fx: TickEffects) -> None:
        """Called every sub-step ``[t0, t0 + h)`` while active, after the controllers ran."""
        return None

    def is_over(self, lab: Lab, fault: ActiveFault, t: float) -> bool:
        """Whether the fault has ended by itself at ``t``: by default when its duration is up."""
        duration = fault.instance.duration
        return duration is not None and t - fault.started >= duration.total_seconds()

    def pod_created(self, lab: Lab, fault: ActiveFault, pod: Pod, t: float) -> None:
        """A pod was created while the fault is active (a replacement, a scale-up, a rollout)."""
        return None

    def pod_removed(self, lab: Lab, fault: ActiveFault, pod: Pod, t: float) -> bool:
        """A pod went away while the fault is active; return True if that ended the fault."""
        return False

    def clear(self, lab: Lab, fault: ActiveFault, t: float) -> None:
        """A human fixed the cause at ``t``; undo what the fault still does (default: nothing)."""
        return None

    def __repr__(self) -> str:
        return f"<scenario {self.id.value}>"


_REGISTRY: dict[ScenarioId, Scenario] = {}
S = TypeVar("S", bound=type[Scenario])


def register_scenario(cls: S) -> S:
    """Class decorator: register one instance of ``cls`` under ``cls.id``."""
    if cls.id in _REGISTRY:
        raise ScenarioError(
            f"scenario {cls.id.value!r} is already registered"
            f" ({type(_REGISTRY[cls.id]).__qualname__})"
        )
    _REGISTRY[cls.id] = cls()
    return cls


def scenario(scenario_id: ScenarioId | str) -> Scenario:
    """The registered scenario of ``scenario_id``."""
    try:
        key = ScenarioId(scenario_id)
    except ValueError:
        raise UnknownIdError(f"unknown scenario id {scenario_id!r}") from None
    found = _REGISTRY.get(key)
    if found is None:
        raise ScenarioError(
            f"no lab scenario is registered for {key.value!r};"
            f" registered: {sorted(s.value for s in _REGISTRY)}"
        )
    return found


def registered() -> dict[ScenarioId, Scenario]:
    """Every registered scenario, by id, in registration order."""
    return dict(_REGISTRY)


def minutes(rng: np.random.Generator, low: float, high: float) -> timedelta:
    """A duration drawn uniformly in ``[low, high)`` minutes, to the second."""
    return timedelta(seconds=round(60.0 * float(rng.uniform(low, high))))


def pick_healthy_pod(lab: Lab, instance: ScenarioInstance) -> Pod:
    """The Ready, healthy pod of the instance's service that its ``pick`` in [0, 1) selects.

    Without a ``pick`` the estate's own stream chooses (as an injection by hand does).
    """
    healthy = lab.healthy_pods(instance.service)
    if not healthy:
        raise NoTargetError(f"service {instance.service!r} has no ready pod to break")
    pick = instance.params.get("pick")
    if pick is None:
        return healthy[int(lab.rng.integers(len(healthy)))]
    return healthy[min(len(healthy) - 1, int(float(pick) * len(healthy)))]
