"""``queue_depth``: an SQS queue's depth and the age of its oldest message rise.

Two causes, drawn half and half. Poison: a producer sends messages no worker can process --
a batch of a few hundred at once (a bad backfill), or a share of its sends for 10-20 minutes
(a bad release). Each holds a worker thread until it times out, comes back after the
visibility timeout, and is the first to be received again; SQS moves it to the dead-letter
queue only after ``max_receive_count`` receives, half an hour later. Meanwhile the ordinary
messages wait. The fault is over once no poison message is left in the queue. Slow workers or
a send burst: the workers cannot keep up -- what they call slowed down (their rate x0.3-0.5),
or the producer sends x2.5-4 (a replay) -- for 20-40 minutes. No request fails either way;
the worker service's freshness does. More workers drain a backlog; moving the poison to the
dead-letter queue unblocks them (``Lab.clear``: an operator does that, and stops the rest).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from contracts import ActionKind, ScenarioId
from lab._errors import InvalidTimeError, NoTargetError
from lab._faults import ActiveFault, FaultRecord, ScenarioInstance, TickEffects, ramp_multiplier
from lab._queue import Queue, is_poison
from lab.scenarios._registry import Scenario, minutes, register_scenario

if TYPE_CHECKING:
    from lab._estate import Lab

KINDS = ("poison_batch", "poison_release", "slow_workers", "send_burst")
"""How the depth rises: the first two by poison messages, the others by a backlog."""
BATCH = (200, 500)
"""Range of the number of poison messages of a bad batch."""
RELEASE_SHARE = (0.004, 0.008)
"""Range of the share of its sends a bad release makes poison."""
RELEASE_MINUTES = (10.0, 20.0)
"""Range of how long a bad release sends poison before it is rolled back."""
SLOWDOWN = (0.3, 0.5)
"""Range of the workers' speed (a multiplier) while what they call is slow."""
BURST = (2.5, 4.0)
"""Range of the send multiplier of a burst."""
BACKLOG_MINUTES = (20.0, 40.0)
"""Range of the length of a slowdown or a burst."""


@register_scenario
class QueueDepth(Scenario):
    """A queue's workers fall behind: poison messages, slow workers or a send burst."""

    id = ScenarioId.QUEUE_DEPTH
    title = "SQS queue depth rising"
    heals = (ActionKind.REDRIVE_QUEUE, ActionKind.SET_HPA_MIN)

    def draw(self, rng: np.random.Generator, lab: Lab) -> ScenarioInstance:
        queues = lab.dependencies(Queue)
        if not queues:
            raise NoTargetError("the estate has no SQS queue")
        queue = queues[int(rng.integers(len(queues)))]
        kind = KINDS[int(rng.integers(len(KINDS)))]
        params: dict[str, float | str] = {"queue": queue.name, "kind": kind}
        if kind == "poison_batch":
            return ScenarioInstance(
                self.id, queue.service, float(rng.integers(*BATCH)), None, params
            )
        if kind == "poison_release":
            params["send_s"] = minutes(rng, *RELEASE_MINUTES).total_seconds()
            return ScenarioInstance(
                self.id, queue.service, float(rng.uniform(*RELEASE_SHARE)), None, params
            )
        if kind == "slow_workers":
            magnitude = float(rng.uniform(*SLOWDOWN))
        else:
            magnitude = float(rng.uniform(*BURST))
            params["ramp_s"] = minutes(rng, 1.0, 3.0).total_seconds()
        duration = minutes(rng, *BACKLOG_MINUTES)
        return ScenarioInstance(self.id, queue.service, magnitude, duration, params)

    def felt_by(self, lab: Lab, instance: ScenarioInstance) -> tuple[str, ...]:
        return (instance.service,)

    @staticmethod
    def _queue(lab: Lab, instance: ScenarioInstance) -> Queue:
        queue = lab.dependency(str(instance.params.get("queue", "")))
        if not isinstance(queue, Queue) or queue.service != instance.service:
            raise NoTargetError(
                f"{instance.params.get('queue')!r} is no queue worked off by {instance.service!r}"
            )
        return queue

    def inject(self, lab: Lab, instance: ScenarioInstance) -> FaultRecord:
        queue = self._queue(lab, instance)
        kind = str(instance.params.get("kind"))
        if kind not in KINDS:
            raise InvalidTimeError(f"queue_depth kind must be one of {KINDS}, got {kind!r}")
        if instance.magnitude <= 0 or (kind.startswith("poison") ^ (instance.duration is None)):
            raise InvalidTimeError(
                f"queue_depth {kind} needs magnitude > 0 and a duration only for a backlog,"
                f" got magnitude={instance.magnitude} duration={instance.duration}"
            )
        if kind == "poison_batch":
            queue.send_poison(int(instance.magnitude), lab.clock.now().timestamp())
        worker = kind == "slow_workers"
        target = queue.settings.service if worker else queue.settings.producer
        return lab.begin_fault(instance, target=target, root_cause=queue.name)

    def effect(self, lab: Lab, fault: ActiveFault, t0: float, h: float, fx: TickEffects) -> None:
        instance = fault.instance
        queue = self._queue(lab, instance)
        kind = instance.params["kind"]
        elapsed = t0 + h / 2 - fault.started
        if kind == "poison_release" and elapsed < float(instance.params["send_s"]):
            queue.poison_share = instance.magnitude
        elif kind == "slow_workers":
            queue.worker_factor *= instance.magnitude
        elif kind == "send_burst" and instance.duration is not None:
            ramp = float(instance.params.get("ramp_s", 0.0))
            total = instance.duration.total_seconds()
            queue.send_factor *= ramp_multiplier(elapsed, instance.magnitude, ramp, total)

    def is_over(self, lab: Lab, fault: ActiveFault, t: float) -> bool:
        instance = fault.instance
        if instance.duration is not None:
            return super().is_over(lab, fault, t)
        sending = float(instance.params.get("send_s", 0.0))
        return t - fault.started >= sending and self._queue(lab, instance).poison_in_queue() == 0

    def clear(self, lab: Lab, fault: ActiveFault, t: float) -> None:
        """An operator moves every poison message to the dead-letter queue (and the bad
        release is rolled back: the fault ends, so its effect stops)."""
        queue = self._queue(lab, fault.instance)
        for message in [m for m in queue.main.records.values() if is_poison(m.body)]:
            queue.dead_letter(message, t)
