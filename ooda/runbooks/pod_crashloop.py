"""Pod CrashLoopBackOff: restart the looping pod, or roll back the rollout that broke it.

A container waiting in CrashLoopBackOff is hard evidence from the cluster; the anomaly score
and the SLO only raise the confidence. When the looping pods run a revision rolled out in the
last ``rollout_window`` and an earlier revision exists, the rollout is the cause and a
rollback the heal. Otherwise the worst pod is restarted, once: a crash that survives the
restart (a bad ConfigMap, say) fails verification, the loop escalates, and the guard refuses
a second restart of that workload (``RestartPod.repeatable`` is False) until a human resets
it or the breaker window has passed.
"""

from __future__ import annotations

from datetime import timedelta

from actuators import Action, RestartPod, RollbackDeployment
from contracts import ScenarioId
from ooda._observe import within_slo
from ooda._records import Diagnosis, Snapshot
from ooda.runbooks._base import Runbook, register_runbook


@register_runbook
class PodCrashLoop(Runbook):
    """Restart a pod in CrashLoopBackOff; roll back a fresh bad rollout."""

    name = "pod_crashloop"
    scenarios = (ScenarioId.POD_CRASHLOOP, ScenarioId.POD_CRASHLOOP_PERSISTENT)
    priority = 10
    deadline = timedelta(minutes=6)

    def matches(self, snapshot: Snapshot, service: str) -> Diagnosis | None:
        workload = snapshot.workloads[service]
        looping = workload.crashlooping
        if not looping:
            return None
        view = snapshot.views[service]
        slo = self.settings.slo
        breached = not within_slo(view.latest, slo.p95_ms, slo.max_error_rate)
        score = snapshot.score(service)
        anomalous = score is not None and score >= self.settings.policy.anomaly_threshold
        fresh = (
            workload.revision_at is not None
            and workload.revision > 1
            and looping[0].template_hash == workload.current_template
            and snapshot.at - workload.revision_at <= self.settings.policy.rollout_window
        )
        evidence = {
            "pods": [p.name for p in looping],
            "restarts": looping[0].restarts,
            "anomaly_score": None if score is None else round(score, 4),
            "slo_breached": breached,
            "error_rate": float(view.latest["error_rate"]),
            "ready": f"{workload.ready_replicas}/{workload.replicas}",
            "revision": workload.revision,
            "recent_rollout": bool(fresh),
        }
        return Diagnosis(
            scenario=ScenarioId.POD_CRASHLOOP,
            region=snapshot.region,
            service=service,
            target=workload.workload,
            confidence=0.95 if (anomalous or breached) else 0.75,
            evidence=evidence,
            runbook=self.name,
        )

    def propose(self, diagnosis: Diagnosis, snapshot: Snapshot) -> Action | None:
        workload = snapshot.workloads[diagnosis.service]
        pod = workload.crashlooping[0]
        ns = workload.namespace
        if diagnosis.evidence["recent_rollout"]:
            return RollbackDeployment(
                ns,
                diagnosis.service,
                reason=f"{pod.name} crash-loops on revision {workload.revision}, rolled out"
                f" at {workload.revision_at:%H:%M}",
                deployment=workload.deployment,
            )
        if not pod.controlled:
            return None
        return RestartPod(
            ns,
            diagnosis.service,
            reason=f"{pod.name} in CrashLoopBackOff, {pod.restarts} restarts",
            pod=pod.name,
        )
