"""Change events near in time: what changed in the estate before a symptom.

Most incidents follow a change. The Kubernetes API says what changed last (a Deployment's
current revision and when its ReplicaSet was created, a ConfigMap's newest write and the
keys the loop saw it lose, a node cordoned, under pressure or NotReady); the audit log says
what ooda itself did. Each is attached to the component it changed, as evidence beside the
ranked root causes: a person reading the diagnosis sees "checkout: rollout to revision 7 at
09:31" next to checkout's score.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

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
        for change in workload.config_changes:
            if change.at >= since:
                removed = ", ".join(k for k, _ in change.removed)
                what = f"configmap/{change.name} changed by {change.manager or 'someone'}"
                note(service, change.at, what + (f" (removed {removed})" if removed else ""))
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
