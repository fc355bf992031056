"""Memory leak: restart a leaking pod before the kernel OOM-kills it.

Each pod's ``container_memory_working_set_bytes`` over its
``kube_pod_container_resource_limits`` (cAdvisor, kube-state-metrics) is fitted over the last
minutes; a pod whose line is believable and reaches the limit within ``projection_lead`` is
restarted (deleted; its ReplicaSet starts a fresh process), the soonest first. One pod of a
workload per tick, and the guard's cooldown and blast radius between restarts, so the
replicas of a leaking service are restarted one after another, never together. An OOM kill
already seen (``kube_pod_container_status_last_terminated_reason="OOMKilled"``) is evidence,
not a trigger: the process it killed is fresh.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from actuators import Action, RestartPod
from contracts import MetricFamily, ScenarioId
from ooda._records import Diagnosis, Finding, Snapshot
from ooda.runbooks._base import Runbook, register_runbook
from ooda.runbooks._trend import Projection, epoch_seconds, floats, project_line


@register_runbook
class MemoryLeak(Runbook):
    """Restart the pod projected to reach its memory limit soonest."""

    name = "memory_leak"
    scenarios = (ScenarioId.MEMORY_LEAK,)
    priority = 20
    deadline = timedelta(minutes=6)
    families = (MetricFamily.POD,)

    def matches(self, snapshot: Snapshot, service: str) -> Diagnosis | None:
        frame = snapshot.families.get(MetricFamily.POD)
        if frame is None or not len(frame):
            return None
        workload = snapshot.workloads[service]
        mine = {p.name: p for p in workload.pods if p.ready and p.controlled}
        rows = snapshot.rows_of(MetricFamily.POD, "service", service)
        rows = rows[rows["pod"].isin(list(mine))]
        policy = self.settings.policy
        pods = rows["pod"].to_numpy()
        t = epoch_seconds(rows["timestamp"])
        with np.errstate(divide="ignore", invalid="ignore"):  # no limit: not finite, dropped
            share = floats(rows["container_memory_working_set_bytes"]) / floats(
                rows["kube_pod_container_resource_limits_memory_bytes"]
            )
        now_s = snapshot.at.timestamp()
        soonest: tuple[Projection, str] | None = None
        for pod in sorted(set(pods)):
            mask = pods == pod
            projection = project_line(
                t[mask],
                share[mask],
                1.0,
                falling=False,
                now_s=now_s,
                window_s=policy.trend_window.total_seconds(),
                min_fit=policy.trend_min_fit,
            )
            if projection is None or projection.eta_s > policy.projection_lead.total_seconds():
                continue
            if soonest is None or projection.eta_s < soonest[0].eta_s:
                soonest = (projection, str(pod))
        if soonest is None:
            return None
        projection, pod = soonest
        oom_killed = frame[
            (frame["service"] == service)
            & (frame["kube_pod_container_status_last_terminated_oomkilled"] > 0)
        ]["pod"]
        return self.diagnose(
            snapshot,
            service,
            min(0.95, 0.5 + 0.5 * projection.fit),
            {
                "pod": pod,
                "memory_of_limit": round(projection.latest, 3),
                "minutes_to_limit": round(projection.eta_s / 60.0, 1),
                "growth_per_min": round(projection.slope_per_min, 4),
                "fit": round(projection.fit, 3),
                "oom_killed_recently": sorted(set(oom_killed)),
            },
            target=f"pod/{workload.namespace}/{pod}",
        )

    def follow_up(self, diagnosis: Diagnosis, action: Action, snapshot: Snapshot) -> Finding:
        workload = snapshot.workloads[diagnosis.service]
        ev = diagnosis.evidence
        return Finding(
            f"deployment/{workload.namespace}/{workload.deployment}",
            f"{diagnosis.service} leaks memory: {ev['pod']} grew {ev['growth_per_min']:.1%} of its"
            f" limit a minute (revision {workload.revision}); a restart only postpones the OOM"
            f" kill by about {_restart_buys(ev)}: fix the leak",
        )

    def propose(self, diagnosis: Diagnosis, snapshot: Snapshot) -> Action | None:
        evidence = diagnosis.evidence
        return RestartPod(
            snapshot.namespace,
            diagnosis.service,
            reason=f"{evidence['pod']} at {evidence['memory_of_limit']:.0%} of its memory limit,"
            f" growing {evidence['growth_per_min']:.1%}/min: OOM in about"
            f" {evidence['minutes_to_limit']} min",
            pod=str(evidence["pod"]),
        )


def _restart_buys(evidence: dict[str, object]) -> str:
    """How long a fresh process of the leaking pod lasts at the leak's rate (its memory
    starts near the share it would hold without the leak; taken as none, the upper bound)."""
    growth = float(str(evidence["growth_per_min"]))
    if growth <= 0:
        return "an unknown time"
    minutes = 1.0 / growth
    return f"{minutes / 60:.1f} h" if minutes >= 90 else f"{minutes:.0f} min"
