"""Pod CrashLoopBackOff: restart the looping pod, or roll back the rollout that broke it.

A container waiting in CrashLoopBackOff is hard evidence from the cluster; the anomaly score
and the SLO only raise the confidence. When the looping pods run a revision rolled out in the
last ``rollout_window`` and an earlier revision exists, the rollout is the cause and a
rollback the heal. When a ConfigMap the pods read changed within that window before the crash
loop began (read back from its restart count and the kubelet's back-off), the change is the
suspect: a restarted container reads the same config and crashes the same way, so
nothing is restarted. When the loop saw a key vanish from that ConfigMap and the crashing
containers' last words name it (``required environment variable X is not set``), the
diagnosis names the key and the heal is to put it back with the value it had
(``RestoreConfigKey``, propose-only by default: a human approves the edit of their config);
otherwise the loop escalates, naming the ConfigMap, who changed it and when. Either way the
crashing containers' log templates (Drain3) go into the evidence. Otherwise the worst pod is
restarted, once: a
crash that survives the restart (a bad Secret, say) fails verification, the loop escalates,
and the guard refuses a second restart of that workload (``RestartPod.repeatable`` is
False) until a human resets it or the breaker window has passed.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta

from actuators import Action, RestartPod, RestoreConfigKey
from contracts import ActionKind, ConfigChange, ScenarioId
from ooda._logs import LogTemplates
from ooda._observe import within_slo
from ooda._records import Diagnosis, Finding, Snapshot
from ooda.runbooks._base import Runbook, register_runbook, rollback, rolled_back


def crash_began(restarts: int, now: datetime, backoff: tuple[timedelta, timedelta]) -> datetime:
    """When a crash loop of ``restarts`` restarts began at the latest: between each two crashes
    the kubelet waited its back-off (doubling from ``backoff[0]``, capped at ``backoff[1]``),
    so the loop is at least that old (the runs between the crashes only make it older; the
    newest crash may still be in its back-off, which is not counted)."""
    first, cap = backoff
    waits = max(0, restarts - 1)
    waited = timedelta(0)
    for i in range(waits):
        delay = first * 2**i
        if delay >= cap:
            waited += cap * (waits - i)
            break
        waited += delay
    return now - waited


@register_runbook
class PodCrashLoop(Runbook):
    """Restart a pod in CrashLoopBackOff; roll back a fresh bad rollout."""

    name = "pod_crashloop"
    scenarios = (ScenarioId.POD_CRASHLOOP, ScenarioId.POD_CRASHLOOP_PERSISTENT)
    priority = 10
    deadline = timedelta(minutes=6)
    acts_when_idle = True

    def matches(self, snapshot: Snapshot, service: str) -> Diagnosis | None:
        workload = snapshot.workloads[service]
        looping = snapshot.crashlooping(service)
        if not looping:
            return None
        view = snapshot.views[service]
        slo = self.settings.slo_for(service)
        breached = not view.idle and not within_slo(view.latest, slo.p95_ms, slo.max_error_rate)
        score = snapshot.score(service)
        anomalous = score is not None and score >= self.settings.policy.anomaly_threshold
        # When the crash loop began: the loop's own memory, or what the restarts tell.
        began = crash_began(looping[0].restarts, snapshot.at, self.settings.policy.crash_backoff)
        began = min(began, snapshot.crashlooping_since.get(service, began))
        window = self.settings.policy.rollout_window
        # A change is the suspect when it came before the crash loop, and not long before.
        fresh = (
            workload.revision_at is not None
            and workload.revision > 1
            and looping[0].template_hash == workload.current_template
            and timedelta(0) <= began - workload.revision_at <= window
        )
        changed = next(
            (c for c in workload.config_changes if timedelta(0) <= began - c.at <= window),
            None,
        )
        if fresh and changed is not None and workload.revision_at is not None:
            fresh = changed.at < workload.revision_at  # the newer of the two is the suspect
        evidence = {
            "pods": [p.name for p in looping],
            "restarts": looping[0].restarts,
            "anomaly_score": None if score is None else round(score, 4),
            "slo_breached": breached,
            "error_rate": None if view.idle else float(view.latest["error_rate"]),
            "ready": f"{workload.ready_replicas}/{workload.replicas}",
            "revision": workload.revision,
            "recent_rollout": bool(fresh),
            "config_change": None
            if changed is None
            else f"{changed.kind.lower()}/{changed.name} changed at {changed.at:%H:%M:%S}"
            f" by {changed.manager}",
        }
        lines = [line for p in looping for line in snapshot.pod_logs.get(p.name, ())]
        if lines:
            evidence["log_templates"] = _templates(lines)
        missing = _missing_key(changed, lines) if changed is not None else None
        if missing is not None:
            evidence["missing_config_key"] = missing
        if changed is not None and not fresh:
            said = f"; the pods say {missing['key']} is missing" if missing else ""
            evidence["escalate_because"] = (
                f"{evidence['config_change']}{said}: a restarted container re-reads it"
            )
        return self.diagnose(snapshot, service, 0.95 if (anomalous or breached) else 0.75, evidence)

    def follow_up(self, diagnosis: Diagnosis, action: Action, snapshot: Snapshot) -> Finding | None:
        workload = snapshot.workloads[diagnosis.service]
        if action.kind in (ActionKind.ROLLBACK_DEPLOYMENT, ActionKind.ARGO_ROLLBACK):
            return rolled_back(workload, "crash-looped")
        if isinstance(action, RestoreConfigKey):
            return Finding(
                f"configmap/{workload.namespace}/{action.config_map}",
                f"key {action.key} was removed from configmap/{action.config_map} and"
                f" {diagnosis.service} crash-looped without it; ooda put it back: tell whoever"
                " removed it, or the change's source (a GitOps repository, a Helm release)"
                " removes it again",
            )
        return None  # a restart that heals leaves nothing behind

    def propose(self, diagnosis: Diagnosis, snapshot: Snapshot) -> Action | None:
        workload = snapshot.workloads[diagnosis.service]
        pod = snapshot.crashlooping(diagnosis.service)[0]
        ns = workload.namespace
        if diagnosis.evidence["recent_rollout"]:
            return rollback(
                workload,
                f"{pod.name} crash-loops on revision {workload.revision}, rolled out"
                f" at {workload.revision_at:%H:%M}",
            )
        missing = diagnosis.evidence.get("missing_config_key")
        if missing is not None:
            return RestoreConfigKey(
                ns,
                diagnosis.service,
                reason=f"{pod.name} crash-loops: {missing['key']} was removed from"
                f" configmap/{missing['config_map']} and the pod says it is missing",
                config_map=missing["config_map"],
                key=missing["key"],
                value=missing["value"],
            )
        if diagnosis.evidence["config_change"] or not pod.controlled:
            return None  # a restart re-reads the changed config; a bare pod is not replaced
        return RestartPod(
            ns,
            diagnosis.service,
            reason=f"{pod.name} in CrashLoopBackOff, {pod.restarts} restarts",
            pod=pod.name,
        )


def _missing_key(change: ConfigChange, lines: list[str]) -> dict[str, str] | None:
    """The removed key of ``change`` that the crashing containers' log names (as a word),
    with its last value; None when none is named."""
    for key, value in change.removed:
        pattern = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(key)}(?![A-Za-z0-9_])")
        said = next((line for line in reversed(lines) if pattern.search(line)), None)
        if said is not None:
            return {"config_map": change.name, "key": key, "value": value, "log": said}
    return None


#: A line at a level that says why a process died.
_SEVERE = re.compile(
    r"(?<![A-Za-z])(FATAL|CRITICAL|ERROR|PANIC|panic|Traceback|\w*Error|\w*Exception)(?![a-z])"
)


def _templates(lines: list[str], top: int = 3) -> list[dict[str, object]]:
    """The most frequent message templates (Drain3) of the severe lines, or of all where none
    is, with a count each."""
    miner = LogTemplates()
    severe = [line for line in lines if _SEVERE.search(line)]
    counts = Counter(miner.add(line) for line in severe or lines)
    return [{"template": miner.template(cid), "count": n} for cid, n in counts.most_common(top)]
