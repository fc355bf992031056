"""A Kafka topic and the consumer group that reads it, as kafka-exporter sees them.

Checkout's requests produce messages, spread evenly over the partitions; the consumer group
is the Ready pods of the consumer Deployment (payments), one consumer each. The group
coordinator gives the partitions out as Kafka's range assignor does (the first
``partitions % consumers`` consumers take one more), and a consumer works its partitions
at ``consumer_rate`` messages per second in all, so a consumer holding three partitions
drains each slower than one holding two, and a consumer beyond the partition count gets
nothing and idles. The work is I/O bound (a write to a downstream store per message): it
does not show in the pods' CPU, which is why the CPU HPA does not see a lag grow. A change
of membership stops the whole group for ``rebalance_s`` (the eager protocol), and the group
commits its position every ``commit_interval_s``, so a healthy group lags by about half an
interval of production.

Faults bend the topic through ``production_factor`` (a backfill job producing too) and
``consumer_factor`` (a slow downstream write); an active fault sets them anew every
sub-step and the topic puts them back to 1 after each, so nothing outlives its fault.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from contracts import MetricFamily
from lab._dependencies import Dependency, Sample
from lab._settings import TopicSettings

if TYPE_CHECKING:
    from lab._estate import Lab


def range_assignment(partitions: int, consumers: int) -> np.ndarray:
    """The consumer (0-based) that owns each partition, as Kafka's range assignor gives
    them out; every partition is unowned (-1) when the group has no consumer."""
    if consumers <= 0:
        return np.full(partitions, -1)
    per, extra = divmod(partitions, consumers)
    sizes = [per + (1 if i < extra else 0) for i in range(min(consumers, partitions))]
    return np.repeat(np.arange(len(sizes)), sizes)


class Topic(Dependency):
    """One topic's partitions: log-end offsets, the group's committed offsets."""

    family = MetricFamily.KAFKA

    def __init__(self, lab: Lab, settings: TopicSettings) -> None:
        super().__init__(lab, settings.name)
        self.settings = settings
        self.production_factor = 1.0
        """Multiplier of this sub-step's production (a fault sets it; reset after each)."""
        self.consumer_factor = 1.0
        """Multiplier of this sub-step's ``consumer_rate`` (a fault sets it; reset after each)."""
        self._producer = lab.service_index(settings.producer)
        self._consumer = lab.service_index(settings.service)
        n = settings.partitions
        self._end = np.zeros(n)
        """Log-end offset of each partition (messages ever produced to it)."""
        self._position = np.zeros(n)
        """Offset up to which the group has processed each partition."""
        self._committed = np.zeros(n)
        """Offset the group last committed (what kafka-exporter's lag is measured from)."""
        self._members = -1
        self._paused_until = -math.inf

    @property
    def members(self) -> int:
        """Consumers in the group now (its Ready consumer pods at the last sub-step)."""
        return max(0, self._members)

    @property
    def lag(self) -> np.ndarray:
        """Per partition: messages between the log end and the committed offset."""
        return self._end - self._committed

    def capacity(self, consumers: int) -> np.ndarray:
        """Messages per second each partition is drained at with ``consumers`` members."""
        owner = range_assignment(self.settings.partitions, consumers)
        if consumers <= 0:
            return np.zeros(self.settings.partitions)
        held = np.bincount(owner, minlength=consumers)[owner]
        return self.settings.consumer_rate * self.consumer_factor / held

    def after(self, t0: float, h: float, served: np.ndarray, serving: np.ndarray) -> None:
        cfg = self.settings
        members = int(np.rint(serving[self._consumer]))
        if members != self._members:
            if self._members >= 0:
                self._paused_until = t0 + cfg.rebalance_s
            self._members = members
        working = h - min(h, max(0.0, self._paused_until - t0))
        rate = served[self._producer] * cfg.messages_per_request * self.production_factor
        produced = np.full(cfg.partitions, rate / cfg.partitions * h)
        self._end += produced
        backlog = self._end - self._position
        self._position += np.minimum(backlog, self.capacity(members) * working)
        in_flight = produced / h * cfg.commit_interval_s / 2.0
        self._committed = np.maximum(self._committed, self._position - in_flight)
        self.production_factor = self.consumer_factor = 1.0

    def sample(self, t: float) -> list[Sample]:
        cfg = self.settings
        return [
            (
                (cfg.service, cfg.group, cfg.name, str(p)),
                (float(lag), float(end), float(committed)),
            )
            for p, (lag, end, committed) in enumerate(
                zip(self.lag, self._end, self._committed, strict=True)
            )
        ]
