"""Kafka consumer lag: add consumers before the group's lag breaks the freshness objective.

kafka-exporter gives, per partition, the group's lag and the two offsets it is measured
between; summed over a group's partitions, the log-end offset's rate is what is produced,
the committed offset's rate what the group consumes, and lag over production is the lag in
seconds (:func:`ooda._freshness.lag_seconds`), the freshness the SLO holds to
``SloSettings.freshness_s``. While consumption stays below production the lag in seconds
grows by the shortfall's share each second, so the crossing is projected from the rates the
minute they show it, not from a line fitted through minutes of lag: a group that has
fallen behind (lag over ``consumer_min_lag_s``, still climbing, consuming
``consumer_min_deficit`` less than is produced) and would cross within ``projection_lead``
gets consumers. How many: enough to keep up with production and drain the backlog within
``consumer_drain``, at ``consumer_target_utilisation`` of the throughput one consumer
showed while behind (when a group is behind its consumers are saturated, so that is what a
consumer can do now, slow store or not); never more than one per partition, never more than
the HPA allows. A group that already has a consumer per partition cannot be helped by more:
that is escalated.

The consumers' CPU does not see the lag, so the CPU HPA does not scale them; the action
raises the HPA's floor (``ScaleConsumers``). It is not lowered by ooda: what one consumer
can do is only seen while the group is behind, so no observation says the fewer consumers
of before would keep up again (the slow store may still be slow), and lowering the floor
blind would spend the freshness objective to find out. The floor carries ooda's annotations
(``ooda.dev/original-min-replicas`` says where to take it back to); the traffic-surge
runbook, which releases floors by request load, leaves one that ``scale_consumers`` set
alone, and a human lowers it when the incident is closed. A consumer service whose own
request rate surges is left to its HPA and the traffic-surge runbook: its pods, and so its
consumers, follow the requests it serves. So is a group whose consumers crash-loop (seen in
CrashLoopBackOff within the crash-loop gap): more of them would crash too, whichever runbook
the root-cause ranking (which names the lagging topic) has the loop try first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

import pandas as pd

from actuators import Action, ScaleConsumers
from contracts import MetricFamily, ScenarioId
from ooda._freshness import lag_seconds
from ooda._records import ComponentKind, Diagnosis, Snapshot
from ooda.runbooks._base import Runbook, register_runbook
from ooda.runbooks.traffic_surge import surging

_SUMS = {
    "kafka_consumergroup_lag": "lag",
    "kafka_topic_partition_current_offset_rate": "produced",
    "kafka_consumergroup_current_offset_rate": "consumed",
}


@dataclass(frozen=True)
class GroupState:
    """A consumer group's newest minute, summed over its partitions."""

    group: str
    topic: str
    partitions: int
    lag: float
    """Messages behind."""
    produced: float
    """Messages per second produced to the topic."""
    consumed: float
    """Messages per second the group committed."""
    lag_s: float
    """Lag in seconds (the freshness of the group's work)."""
    rising: bool
    """Whether the lag in seconds grew since the minute before."""

    @property
    def deficit(self) -> float:
        """Share of the production the group does not consume (<= 0: it keeps up)."""
        return 1.0 - self.consumed / self.produced if self.produced > 0 else 0.0


def group_states(frame: pd.DataFrame, service: str) -> list[GroupState]:
    """The newest state of each consumer group of ``service`` in the kafka family frame."""
    rows = frame[frame["service"] == service]
    if rows.empty:
        return []
    states = []
    for (group, topic), part in rows.groupby(["consumergroup", "topic"], sort=True):
        per_minute = (
            part.groupby("timestamp", sort=True)[list(_SUMS)].sum(min_count=1).rename(columns=_SUMS)
        ).dropna()
        if len(per_minute) < 2:
            continue
        seconds = lag_seconds(per_minute["lag"], per_minute["produced"])
        newest = per_minute.iloc[-1]
        partitions = part.loc[part["timestamp"] == part["timestamp"].max(), "partition"].nunique()
        states.append(
            GroupState(
                str(group),
                str(topic),
                int(partitions),
                float(newest["lag"]),
                float(newest["produced"]),
                float(newest["consumed"]),
                float(seconds.iloc[-1]),
                bool(seconds.iloc[-1] > seconds.iloc[-2]),
            )
        )
    return states


@register_runbook
class KafkaConsumerLag(Runbook):
    """Scale a lagging consumer group out, up to one consumer per partition."""

    name = "kafka_consumer_lag"
    scenarios = (ScenarioId.KAFKA_CONSUMER_LAG,)
    priority = 40
    follows_root_cause = True
    heals = ComponentKind.TOPIC
    deadline = timedelta(minutes=12)
    families = (MetricFamily.KAFKA,)

    def _eta_s(self, state: GroupState, service: str) -> float:
        """Seconds until the lag in seconds crosses ``service``'s freshness objective at this
        shortfall (it grows by ``deficit`` seconds a second)."""
        room = max(0.0, self.settings.slo_for(service).freshness_s - state.lag_s)
        return room / state.deficit if state.deficit > 0 else math.inf

    def matches(self, snapshot: Snapshot, service: str) -> Diagnosis | None:
        frame = snapshot.families.get(MetricFamily.KAFKA)
        if frame is None or not len(frame):
            return None
        policy = self.settings.policy
        view = snapshot.views.get(service)
        if view is not None and surging(view.history, policy):
            return None
        if service in snapshot.workloads and snapshot.crashlooping(service):
            return None  # consumers that crash consume nothing: the crash loop's to heal
        behind = [
            state
            for state in group_states(frame, service)
            if state.deficit >= policy.consumer_min_deficit
            and state.lag_s >= policy.consumer_min_lag_s
            and state.rising
            and self._eta_s(state, service) <= policy.projection_lead.total_seconds()
        ]
        if not behind:
            return None
        state = min(behind, key=lambda s: self._eta_s(s, service))
        workload = snapshot.workloads[service]
        consumers = workload.ready_replicas
        active = min(consumers, state.partitions)
        per_consumer = state.consumed / active if active > 0 else 0.0
        needed_rps = state.produced + state.lag / policy.consumer_drain.total_seconds()
        if per_consumer > 0:
            wanted = math.ceil(needed_rps / (per_consumer * policy.consumer_target_utilisation))
        else:
            wanted = state.partitions  # nothing consumed: no throughput to size on
        limit = state.partitions
        if workload.hpa is not None:
            limit = min(limit, workload.hpa.max_replicas)
        running = max(workload.replicas, consumers)
        wanted = min(max(wanted, running + 1), limit)
        return self.diagnose(
            snapshot,
            service,
            min(0.95, 0.6 + state.deficit),
            {
                "consumergroup": state.group,
                "topic": state.topic,
                "partitions": state.partitions,
                "lag": round(state.lag),
                "lag_s": round(state.lag_s, 1),
                "produced_per_s": round(state.produced, 1),
                "consumed_per_s": round(state.consumed, 1),
                "minutes_to_objective": round(self._eta_s(state, service) / 60.0, 1),
                "consumers": consumers,
                "per_consumer_per_s": round(per_consumer, 1),
                "set_consumers": wanted,
                "at_limit": running >= limit,
            },
        )

    def propose(self, diagnosis: Diagnosis, snapshot: Snapshot) -> Action | None:
        ev = diagnosis.evidence
        if ev["at_limit"]:
            return None  # a consumer per partition (or the HPA's maximum) already: a human's
        workload = snapshot.workloads[diagnosis.service]
        return ScaleConsumers(
            snapshot.namespace,
            diagnosis.service,
            reason=f"group {ev['consumergroup']} on {ev['topic']} {ev['lag_s']} s behind,"
            f" consuming {ev['consumed_per_s']}/s of {ev['produced_per_s']}/s: freshness"
            f" objective in {ev['minutes_to_objective']} min",
            deployment=workload.deployment,
            replicas=int(ev["set_consumers"]),
            partitions=int(ev["partitions"]),
        )
