"""SQS queue depth: move poison messages to the dead-letter queue, or add workers.

Two failures fill a queue, and they want opposite cures. Poison messages (ones no worker can
process) are received again and again and never deleted: the queue's receives outrun its
deletes by ``queue_poison_rps`` for ``queue_poison_minutes`` in a row (on a healthy queue
every receive is followed by its delete). Each holds a worker until it times out, so more
workers would only feed them; :class:`~actuators.RedriveQueue` moves the messages received
more than ``queue_poison_receives`` times to the queue's dead-letter queue, bounded, never
purging, never losing one, and lowers the queue's own ``maxReceiveCount`` to
``queue_dead_letter_after``, so that SQS dead-letters the poison in flight, which no pass can
see, and what a bad release is still sending. While the receives keep failing and the queue
is not fresh it redrives again (every two minutes, the guard's cooldown for the kind), and
the steps are judged as one heal; receives that fail while the lowered count keeps the queue
fresh are in hand. The count goes back to the one ooda found (the queue's tag says which)
once ``queue_scale_in_after`` has passed and the metric window has shown the queue fresh with
no receive failing.
Otherwise, when the workers delete fewer messages than are sent and the age of the oldest
message (``trend_window``) is projected to pass the freshness objective within
``projection_lead``, the workers cannot keep up: the worker service's HPA floor is raised to
enough pods to keep up with the sends and drain the backlog within ``queue_drain``, at the
throughput per pod the saturated workers show now (never past the HPA's maximum). Worker
time is I/O, which the CPU-driven HPA does not see.

A floor raised here carries this runbook's name (``ooda.dev/floor-for``); it goes back, in one
step, to the floor ooda found once ``queue_scale_in_after`` has passed and the queue has
stayed fresh over the whole metric window. A floor raised for anything else is left alone.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from actuators import (
    CHANGED_AT,
    Action,
    MalformedAnnotationError,
    RedriveQueue,
    SetHpaMinReplicas,
    floor_purpose,
    ooda_floor,
)
from contracts import MetricFamily, ScenarioId
from ooda._records import ComponentKind, Diagnosis, Finding, QueuePolicy, Snapshot
from ooda.runbooks._base import Runbook, register_runbook
from ooda.runbooks._trend import project_crossing

AGE = "aws_sqs_approximate_age_of_oldest_message_average"
VISIBLE = "aws_sqs_approximate_number_of_messages_visible_average"
RECEIVED = "aws_sqs_number_of_messages_received_rate"
DELETED = "aws_sqs_number_of_messages_deleted_rate"
SENT = "aws_sqs_number_of_messages_sent_rate"


@register_runbook
class QueueDepth(Runbook):
    """Redrive a queue's poison messages, or raise its workers' floor."""

    name = "queue_depth"
    scenarios = (ScenarioId.QUEUE_DEPTH,)
    priority = 45
    follows_root_cause = True
    heals = ComponentKind.QUEUE
    deadline = timedelta(minutes=15)
    families = (MetricFamily.QUEUE,)

    def matches(self, snapshot: Snapshot, service: str) -> Diagnosis | None:
        frame = snapshot.families.get(MetricFamily.QUEUE)
        if frame is None or frame.empty:
            return None
        mine = frame[frame["service"] == service]
        healthy = True
        for queue in sorted(set(mine["queue_name"])):
            rows = mine[mine["queue_name"] == queue].sort_values("timestamp")
            policy = snapshot.queues.get(queue)
            objective = self.settings.slo_for(service).freshness_s
            found = self._poison(rows, policy, objective)
            found = found or self._backlog(snapshot, service, rows)
            if found is not None:
                evidence = {"queue": queue, **found}
                confidence = 0.9 if found["direction"] == "poison" else 0.8
                return self.diagnose(snapshot, service, confidence, evidence)
            healthy &= self._fresh(rows)
        if healthy and len(mine):
            release = self._release_policy(snapshot, mine)
            release = release or self._release(snapshot, service)
            if release is not None:
                return self.diagnose(snapshot, service, 0.9, release)
        return None

    def _poison(
        self, rows: pd.DataFrame, policy: QueuePolicy | None, objective: float
    ) -> dict[str, object] | None:
        """Receives outrunning deletes for ``queue_poison_minutes`` in a row, unless the count
        ooda lowered has them in hand: the oldest message stays inside the freshness
        ``objective`` while SQS dead-letters each poison message after a few receives (a bad
        release still sending is no reason to redrive every two minutes)."""
        cfg = self.settings.policy
        recent = rows.tail(cfg.queue_poison_minutes)
        if len(recent) < cfg.queue_poison_minutes:
            return None
        failing = (recent[RECEIVED] - recent[DELETED]).to_numpy(dtype=float)
        if not (failing >= cfg.queue_poison_rps).all():
            return None
        lowered = (
            policy is not None
            and policy.found_max_receive_count is not None
            and policy.max_receive_count <= cfg.queue_dead_letter_after
        )
        if lowered and float(recent[AGE].max()) < objective:
            return None
        return {
            "direction": "poison",
            "failing_receives_per_s": round(float(failing[-1]), 2),
            "received_per_s": round(float(recent[RECEIVED].iloc[-1]), 2),
            "deleted_per_s": round(float(recent[DELETED].iloc[-1]), 2),
        }

    def _backlog(
        self, snapshot: Snapshot, service: str, rows: pd.DataFrame
    ) -> dict[str, object] | None:
        """Workers behind the sends, the oldest message's age heading past the objective."""
        cfg = self.settings.policy
        hpa = snapshot.workloads[service].hpa
        if hpa is None or rows.empty:
            return None
        latest = rows.iloc[-1]
        age, sent, deleted = float(latest[AGE]), float(latest[SENT]), float(latest[DELETED])
        if not (age >= cfg.queue_min_age_s and deleted < sent):
            return None
        objective = self.settings.slo_for(service).freshness_s
        projection = project_crossing(
            rows["timestamp"],
            rows[AGE],
            objective,
            falling=False,
            now=snapshot.at,
            window=cfg.trend_window,
            min_fit=cfg.trend_min_fit,
        )
        if projection is None or projection.eta_s > cfg.projection_lead.total_seconds():
            return None
        ready = snapshot.workloads[service].ready_replicas
        if ready < 1 or deleted <= 0:
            return None
        per_pod = deleted / ready  # saturated workers: what one pod gets through
        depth = float(latest[VISIBLE])
        wanted = sent + depth / cfg.queue_drain.total_seconds()
        needed = math.ceil(wanted / per_pod)
        running = max(hpa.min_replicas, hpa.current_replicas, ready)
        if needed <= running:
            return None
        return {
            "direction": "out",
            "age_s": round(age, 1),
            "minutes_to_objective": round(projection.eta_s / 60.0, 1),
            "sent_per_s": round(sent, 2),
            "deleted_per_s": round(deleted, 2),
            "depth": int(depth),
            "per_pod_per_s": round(per_pod, 2),
            "needed_replicas": needed,
            "set_min": min(needed, hpa.max_replicas),
            "hpa": hpa.name,
        }

    def _fresh(self, rows: pd.DataFrame) -> bool:
        """The queue stayed well inside the freshness objective over the whole window."""
        ages = rows[AGE].to_numpy(dtype=float)
        return bool(len(ages)) and bool(np.all(ages < self.settings.policy.queue_min_age_s))

    def _release_policy(self, snapshot: Snapshot, mine: pd.DataFrame) -> dict[str, object] | None:
        """Back to the ``maxReceiveCount`` ooda found, for a queue whose count ooda lowered
        long enough ago, once the metric window has shown it fresh and no receive failing."""
        cfg = self.settings.policy
        for name in sorted(set(mine["queue_name"])):
            policy = snapshot.queues.get(name)
            if policy is None or policy.found_max_receive_count is None:
                continue
            if (
                policy.changed_at is None
                or snapshot.at - policy.changed_at < cfg.queue_scale_in_after
            ):
                continue
            rows = mine[mine["queue_name"] == name]
            if (
                (rows[RECEIVED] - rows[DELETED]).to_numpy(dtype=float) >= cfg.queue_poison_rps
            ).any():
                continue  # poison still comes: the lowered count is still at work
            return {
                "direction": "policy",
                "queue": name,
                "max_receive_count": policy.max_receive_count,
                "set_max_receive_count": policy.found_max_receive_count,
            }
        return None

    def _release(self, snapshot: Snapshot, service: str) -> dict[str, object] | None:
        """Back to the floor ooda found, for a floor this runbook raised long enough ago."""
        hpa = snapshot.workloads[service].hpa
        if hpa is None:
            return None
        floor = ooda_floor(hpa.annotations, hpa.min_replicas, f"hpa/{hpa.name}")
        if floor is None or floor >= hpa.min_replicas:
            return None
        if floor_purpose(hpa.annotations) != self.name:
            return None
        stamp = hpa.annotations.get(CHANGED_AT, "")
        try:
            raised_at = datetime.fromisoformat(stamp)
        except ValueError:
            raised_at = None
        if raised_at is None or raised_at.tzinfo is None:
            raise MalformedAnnotationError(f"hpa/{hpa.name}", CHANGED_AT, stamp, "a zoned time")
        if snapshot.at - raised_at < self.settings.policy.queue_scale_in_after:
            return None
        return {"direction": "in", "set_min": floor, "hpa": hpa.name}

    def follow_up(self, diagnosis: Diagnosis, action: Action, snapshot: Snapshot) -> Finding | None:
        ev = diagnosis.evidence
        if ev["direction"] != "poison":
            return None  # workers added and taken back, a policy restored: nothing left
        return Finding(
            f"queue/{ev['queue']}",
            f"poison messages of {ev['queue']} ({ev['failing_receives_per_s']}/s receives"
            " failing) were moved to its dead-letter queue: inspect them there and fix what"
            " sends them or fails on them (ooda never deletes a message)",
        )

    def propose(self, diagnosis: Diagnosis, snapshot: Snapshot) -> Action | None:
        ev, cfg = diagnosis.evidence, self.settings.policy
        if ev["direction"] == "poison":
            policy = snapshot.queues.get(str(ev["queue"]))
            lower = cfg.queue_dead_letter_after
            if policy is None or not 0 < lower < policy.max_receive_count:
                lower = 0  # unknown, or already as low: the policy is left as it is
            return RedriveQueue(
                snapshot.namespace,
                diagnosis.service,
                reason=f"{ev['failing_receives_per_s']}/s receives of {ev['queue']} fail",
                queue=str(ev["queue"]),
                max_receive_count=cfg.queue_poison_receives,
                max_messages=cfg.queue_redrive_max,
                max_scanned=2 * cfg.queue_redrive_max,
                dead_letter_after=lower,
            )
        if ev["direction"] == "policy":
            return RedriveQueue(
                snapshot.namespace,
                diagnosis.service,
                reason=(
                    f"queue {ev['queue']} stayed fresh: maxReceiveCount back from"
                    f" {ev['max_receive_count']} to {ev['set_max_receive_count']}"
                ),
                queue=str(ev["queue"]),
                max_messages=0,
                dead_letter_after=int(str(ev["set_max_receive_count"])),
            )
        if ev["direction"] == "out":
            why = (
                f"queue {ev['queue']} {ev['age_s']} s old, past the objective in"
                f" {ev['minutes_to_objective']} min: {ev['needed_replicas']} workers"
                f" drain it"
            )
        else:
            why = f"queue stayed fresh: floor back to {ev['set_min']}"
        return SetHpaMinReplicas(
            snapshot.namespace,
            diagnosis.service,
            reason=why,
            hpa=str(ev["hpa"]),
            min_replicas=int(str(ev["set_min"])),
            purpose=self.name,
        )
