"""Change events near in time: what changed in the estate before a symptom.

Most incidents follow a change. The Kubernetes API says what changed last (a Deployment's
current revision and when its ReplicaSet was created, an Argo CD sync, the newest write to a
ConfigMap or Secret the pods read and the keys the loop saw a ConfigMap lose, an HPA's spec
edited, a node cordoned, under pressure or NotReady); the audit log says what ooda itself did
(so ooda's own writes, which ``managedFields`` also shows, are not listed twice). Each is
attached to the component it changed, as evidence beside the ranked root causes: a person
reading the diagnosis sees "checkout: rollout to revision 7 at 09:31" next to checkout's
score.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from actuators import FIELD_MANAGER
from contracts import NodeState, WorkloadState
from ooda._audit import AuditEntry


def change_events(
    workloads: Mapping[str, WorkloadState],
    nodes: Mapping[str, NodeState],
    actions: Iterable[AuditEntry],
    since: datetime,
) -> dict[str, list[str]]:
    """Per component (a service or a node): the changes since ``since``, newest first."""
    dated: dict[str, list[tuple[datetime, str]]] = {}

    def note(component: str, at: datetime, what: str) -> None:
        dated.setdefault(component, []).append((at, f"{what} at {at:%H:%M}"))

    for service, workload in workloads.items():
        if workload.revision > 1 and workload.revision_at and workload.revision_at >= since:
            note(service, workload.revision_at, f"rollout to revision {workload.revision}")
        if workload.restarted_at is not None and workload.restarted_at >= since:
            note(service, workload.restarted_at, "rollout restart")
        app = workload.argo
        if app is not None and app.deployed_at is not None and app.deployed_at >= since:
            note(service, app.deployed_at, f"argo cd sync of {app.name} to {app.revision[:12]}")
        for change in workload.config_changes:
            if change.at >= since and change.manager != FIELD_MANAGER:
                removed = ", ".join(k for k, _ in change.removed)
                what = (
                    f"{change.kind.lower()}/{change.name} changed by {change.manager or 'someone'}"
                )
                note(service, change.at, what + (f" (removed {removed})" if removed else ""))
        hpa = workload.hpa
        if (
            hpa is not None
            and hpa.changed_at is not None
            and hpa.changed_at >= since
            and hpa.changed_by != FIELD_MANAGER
        ):
            what = f"hpa/{hpa.name} changed by {hpa.changed_by or 'someone'}"
            note(
                service,
                hpa.changed_at,
                f"{what} (min {hpa.min_replicas}, max {hpa.max_replicas})",
            )
    for entry in actions:
        if entry.kind == "action" and entry.outcome == "applied" and entry.at >= since:
            component = entry.target.split("/")[-1] if entry.target.startswith("node/") else None
            note(component or entry.service, entry.at, f"ooda {entry.action} {entry.target}")
    out = {c: [what for _, what in sorted(events, reverse=True)] for c, events in dated.items()}
    for name, node in nodes.items():
        state = [
            *(["NotReady"] if node.not_ready else []),
            *(["cordoned"] if node.unschedulable else []),
            *node.pressures,
        ]
        if state:
            out.setdefault(name, []).insert(0, "now " + ", ".join(state))
    return out
