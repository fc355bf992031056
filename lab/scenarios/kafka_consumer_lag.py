"""``kafka_consumer_lag``: a consumer group falls behind its topic and its work goes stale.

Two ways it happens, drawn at random. A **slow consumer**: the store each message is written
to slows down, so every consumer processes ``magnitude`` (x0.3-0.5) of its usual rate for
30-60 minutes. A **producer burst**: a backfill job produces into the topic on top of the
live traffic, ``magnitude`` (x3-5) times the usual production for 20-40 minutes. Either way
nothing on the request path moves (the consumers' work is I/O, not CPU, so the CPU HPA does
not add pods); what breaks is the consumer service's freshness objective, as the lag in
seconds climbs. Adding consumers (up to one per partition) heals it: the consumer service
is the target, and the root cause recorded is the topic (the dependency whose consumption
fell behind, ``Lab.dependency(topic)``). Both kinds end by themselves; ``Lab.clear`` is the
team fixing the store or stopping the backfill.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from contracts import ActionKind, ScenarioId
from lab._errors import NoTargetError
from lab._faults import ActiveFault, FaultRecord, ScenarioInstance, TickEffects
from lab._kafka import Topic
from lab.scenarios._registry import Scenario, minutes, register_scenario

if TYPE_CHECKING:
    from lab._estate import Lab

SLOW_CONSUMER = "slow_consumer"
PRODUCER_BURST = "producer_burst"


@register_scenario
class KafkaConsumerLag(Scenario):
    """The group of ``params["topic"]`` falls behind: slow consumers or a producer burst."""

    id = ScenarioId.KAFKA_CONSUMER_LAG
    title = "Kafka consumer lag"
    heals = (ActionKind.SCALE_CONSUMERS,)

    def draw(self, rng: np.random.Generator, lab: Lab) -> ScenarioInstance:
        topics = lab.dependencies(Topic)
        if not topics:
            raise NoTargetError("the estate has no Kafka topic")
        topic = topics[int(rng.integers(len(topics)))]
        if rng.random() < 0.5:
            kind, magnitude, duration = SLOW_CONSUMER, rng.uniform(0.3, 0.5), (30.0, 60.0)
        else:
            kind, magnitude, duration = PRODUCER_BURST, rng.uniform(3.0, 5.0), (20.0, 40.0)
        return ScenarioInstance(
            self.id,
            topic.settings.service,
            magnitude=round(float(magnitude), 3),
            duration=minutes(rng, *duration),
            params={"topic": topic.name, "kind": kind},
        )

    def _topic(self, lab: Lab, instance: ScenarioInstance) -> Topic:
        topic = lab.dependency(str(instance.params["topic"]))
        if not isinstance(topic, Topic):
            raise NoTargetError(f"{instance.params['topic']!r} is not a Kafka topic")
        return topic

    def inject(self, lab: Lab, instance: ScenarioInstance) -> FaultRecord:
        kind = instance.params.get("kind")
        if kind not in (SLOW_CONSUMER, PRODUCER_BURST):
            raise NoTargetError(f"kafka_consumer_lag has no kind {kind!r}")
        topic = self._topic(lab, instance)
        if topic.settings.service != instance.service:
            raise NoTargetError(
                f"topic {topic.name!r} is consumed by {topic.settings.service!r},"
                f" not {instance.service!r}"
            )
        return lab.begin_fault(instance, target=instance.service, root_cause=topic.name)

    def felt_by(self, lab: Lab, instance: ScenarioInstance) -> tuple[str, ...]:
        """Only the consumer service: its freshness, not anyone's requests."""
        return (instance.service,)

    def effect(self, lab: Lab, fault: ActiveFault, t0: float, h: float, fx: TickEffects) -> None:
        topic = self._topic(lab, fault.instance)
        if fault.instance.params["kind"] == SLOW_CONSUMER:
            topic.consumer_factor *= fault.instance.magnitude
        else:
            topic.production_factor *= fault.instance.magnitude
