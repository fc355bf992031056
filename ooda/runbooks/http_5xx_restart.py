"""Sudden 5xx spike with no rollout near: restart the service's pods.

DESIGN.md's 5xx row: roll back when a deploy is near in time, **else restart**. The errors
live in the pods' processes (a connection pool kept half-open connections through a database
blip, a cache holds a poisoned entry): the build is fine, so there is nothing to roll back, and
fresh processes do not fail. The heal is ``RolloutRestart``, as ``kubectl rollout restart``
does it: every pod replaced at the Deployment's own rollout pace, none of its capacity lost.

A restart is a guess, so it is made on evidence and by elimination:

- the error share has been over the spike level (``spike_error_rate`` or
  ``spike_error_factor`` x the objective) for ``restart_minutes`` in a row, was low before, and
  is not subsiding;
- **the pods say so themselves**: an ``ERROR`` or ``FATAL`` message template surged in their
  own logs (``Snapshot.log_surges``). Requests a load balancer, a zone or the network fails in
  front of the pods leave no such line, and are escalated as unexplained instead;
- no rollout within ``rollout_error_lag`` before the errors began, nor any since (the rollback
  runbook's, or a human's at work), no restart in ``restart_every``
  (a wedge back so soon is no wedge a restart heals), no pod crash-looping, no surge, none of
  its pods on a node that is NotReady, cordoned or under pressure, no callee failing (the
  errors start further down), and nothing of ooda's for the service awaiting its verdict
  (``Runbook.last_resort``: a drain or a database switch in flight may be healing them).

It runs after every runbook with a named cause. The finding asks the owners what wedged the
pods: the restart cleared the symptom and took the wedged processes with it.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from actuators import Action, RolloutRestart
from contracts import ScenarioId
from ooda._records import Diagnosis, Finding, Snapshot
from ooda.runbooks._base import Runbook, register_runbook, running_nodes
from ooda.runbooks.http_5xx_spike import callee_failing, spike_level
from ooda.runbooks.traffic_surge import surging

#: Message levels that say a pod failed a request itself.
_FAILURE_LEVELS = ("ERROR", "FATAL")


@register_runbook
class Http5xxRestart(Runbook):
    """Restart the pods of a service that fails requests with no rollout to blame."""

    name = "http_5xx_restart"
    scenarios = (ScenarioId.HTTP_5XX_WEDGED,)
    priority = 70
    follows_root_cause = True
    last_resort = True
    deadline = timedelta(minutes=10)

    def matches(self, snapshot: Snapshot, service: str) -> Diagnosis | None:
        workload = snapshot.workloads[service]
        policy = self.settings.policy
        at = snapshot.at
        restarted = workload.restarted_at
        if restarted is not None and at - restarted < policy.restart_every:
            return None
        if snapshot.crashlooping(service) or not workload.pods:
            return None
        history = snapshot.views[service].history
        if surging(history, policy):
            return None
        spike = spike_level(self.settings, service)
        minutes = policy.restart_minutes
        errors = history["error_rate"].to_numpy(dtype=float)
        recent = errors[-minutes:]
        if len(recent) < minutes or not (recent > spike).all():
            return None
        if recent[-1] < 0.8 * float(np.nanmax(errors[-minutes - 2 :])):
            return None  # subsiding: something else is already healing it
        above = errors > spike / 2
        start = len(errors) - int(np.argmin(above[::-1])) if not above.all() else 0
        baseline = errors[max(0, start - 10) : start]
        baseline = baseline[~np.isnan(baseline)]
        if not len(baseline) or float(np.median(baseline)) > spike / 2:
            return None  # no calm before it: not a sudden spike
        rolled_out = workload.revision_at if workload.revision > 1 else None
        began = pd.Timestamp(history["timestamp"].iloc[start]).to_pydatetime()
        if rolled_out is not None and began - rolled_out <= policy.rollout_error_lag:
            return None  # it came with a rollout (or one came after it): rollback or a human
        nodes = set(running_nodes(snapshot, service))
        if any(p.node and p.node not in nodes for p in workload.pods):
            return None  # a node of its pods is sick or being drained: the node runbooks'
        if callee_failing(snapshot, self.settings, service, spike):
            return None  # the errors start further down the call graph
        logged = [
            s
            for s in snapshot.log_surges.get(service, ())
            if s.template.startswith(_FAILURE_LEVELS)
        ]
        if not logged:
            return None  # nothing in its own logs: the requests fail in front of the pods
        return self.diagnose(
            snapshot,
            service,
            0.6,
            {
                "error_rate": round(float(recent[-1]), 4),
                "error_rate_before": round(float(np.median(baseline)), 4),
                "minutes": int(len(errors) - start),
                "revision": workload.revision,
                "logged": logged[0].template,
                "log_example": logged[0].example,
                "pods": len(workload.pods),
            },
        )

    def propose(self, diagnosis: Diagnosis, snapshot: Snapshot) -> Action:
        workload = snapshot.workloads[diagnosis.service]
        evidence = diagnosis.evidence
        return RolloutRestart(
            workload.namespace,
            workload.service,
            reason=f"5xx at {evidence['error_rate']:.1%} (was {evidence['error_rate_before']:.1%})"
            f" for {evidence['minutes']} min with no rollout near; its pods log"
            f" {evidence['logged']!r}",
            deployment=workload.deployment,
        )

    def follow_up(self, diagnosis: Diagnosis, action: Action, snapshot: Snapshot) -> Finding:
        workload = snapshot.workloads[diagnosis.service]
        evidence = diagnosis.evidence
        return Finding(
            f"deployment/{workload.namespace}/{workload.deployment}",
            f"the pods of {workload.service} (revision {workload.revision}) failed"
            f" {evidence['error_rate']:.1%} of requests with no rollout near, logging"
            f" {evidence['logged']!r}, until a rollout restart replaced them: find what wedged"
            " them before it happens again",
        )
