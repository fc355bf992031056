"""What the services depend on beyond each other: databases, Kafka topics, queues, upstream APIs.

Each kind is one module with a :class:`Dependency` subclass that keeps its own state (a
replica's lag, a partition's offsets, a queue's messages, an upstream's quota) and meets the
estate at three points of every sub-step: ``before`` the service model runs it bends the
services that use it (a slow database slows its service), ``after`` it advances with what
the services served and how many of their pods were Ready (producers fill a topic, consumers
drain it), and at each scrape ``sample`` gives its exporter's view under its metric family.
Faults reach a dependency through ``Lab.dependency(name)``; the estate does not know the
kinds, so adding one touches only :func:`build_dependencies`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from contracts import MetricFamily
from lab._faults import TickEffects

if TYPE_CHECKING:
    from lab._estate import Lab

#: One scraped series: its keys after ``region`` and its values, as the family's schema orders.
Sample = tuple[tuple[str, ...], tuple[float, ...]]


class Dependency(ABC):
    """One database, topic, queue or upstream of the estate."""

    family: ClassVar[MetricFamily]
    """The metric family its exporter's series belong to."""

    def __init__(self, lab: Lab, name: str) -> None:
        self.lab = lab
        self.name = name

    def before(self, t0: float, h: float, fx: TickEffects) -> None:
        """Bend sub-step ``[t0, t0 + h)`` of the services that use it (after the faults')."""
        return None

    def after(self, t0: float, h: float, served: np.ndarray, serving: np.ndarray) -> None:
        """Advance over the sub-step: ``served`` requests per second and ``serving`` Ready pods
        of each service (in the order of ``Lab.services``)."""
        return None

    @abstractmethod
    def sample(self, t: float) -> list[Sample]:
        """Its series at the scrape at ``t``."""


def build_dependencies(lab: Lab) -> list[Dependency]:
    """One :class:`Dependency` per database, topic, queue and upstream of the topology."""
    deps: list[Dependency] = []
    from lab._database import build_databases  # the kinds import this module; it sets lab.cloud

    deps += build_databases(lab)
    from lab._kafka import Topic  # the kinds import this module

    deps += [Topic(lab, topic) for topic in lab.settings.topology.topics]
    from lab._upstream import Upstream  # the kinds import this module

    deps += [Upstream(lab, upstream) for upstream in lab.settings.topology.upstreams]
    from lab._queue import build_queues  # the kinds import this module; it sets lab.cloud

    deps += build_queues(lab)
    return deps
