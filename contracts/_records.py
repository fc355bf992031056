"""Typed records that cross layers: the cluster state of a workload as observed once per
tick, and how an action is judged after it ran.

They live here because the loop builds them and the actions read them (an action's own
``check`` decides whether it healed), and neither layer may import the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class PodState:
    """One pod of a workload, as the loop saw it this tick."""

    name: str
    node: str | None
    ready: bool
    restarts: int
    waiting_reason: str | None
    """``CrashLoopBackOff``, ``ImagePullBackOff`` ... of the first waiting container."""
    controlled: bool
    """Whether a controller (ReplicaSet, StatefulSet ...) owns the pod and will replace it."""
    template_hash: str = ""
    """The ``pod-template-hash`` label: which revision of the Deployment the pod runs."""
    unschedulable: bool = False
    """Pending because no node has room for it (``PodScheduled`` False, reason
    ``Unschedulable``): the cluster is full for its requests."""

    @property
    def crashlooping(self) -> bool:
        """Whether a container waits in CrashLoopBackOff."""
        return self.waiting_reason == "CrashLoopBackOff"


@dataclass(frozen=True)
class HpaState:
    """The HorizontalPodAutoscaler whose ``scaleTargetRef`` names the workload."""

    name: str
    min_replicas: int
    max_replicas: int
    current_replicas: int
    desired_replicas: int
    target_cpu_utilisation: float | None
    """The CPU utilisation target as a fraction, or None when the HPA has no CPU metric."""
    annotations: dict[str, str] = field(default_factory=dict)
    changed_at: datetime | None = None
    """The newest write to it after its creation, from ``metadata.managedFields`` (the HPA
    controller's status updates are not changes); None when it is as created."""
    changed_by: str = ""
    """That write's field manager (``kubectl-edit``, ``helm``, ``ooda`` ...)."""


@dataclass(frozen=True)
class ArgoApp:
    """The Argo CD ``Application`` whose ``status.resources`` lists a workload's Deployment:
    a rollback goes through it (a patched Deployment would be synced straight back)."""

    name: str
    namespace: str
    """Namespace of the Application object (``argocd``), not of the workload."""
    revision: str
    """The revision of its newest sync (``status.history``), empty when it never synced."""
    deployed_at: datetime | None
    """When that sync finished."""
    previous_revision: str = ""
    """The revision before it: what a rollback would sync to (empty: nothing to go back to)."""


@dataclass(frozen=True)
class ConfigChange:
    """The last change to a ConfigMap or Secret a workload's pods read (``envFrom``, ``env``
    or a volume), from its ``metadata.managedFields``: the newest entry's time and field
    manager. A Secret is only ever read for that metadata, and only where the role allows
    listing Secrets (the Helm chart's does not)."""

    kind: str
    """``ConfigMap`` or ``Secret``."""
    name: str
    at: datetime
    manager: str
    """Who wrote it: ``kubectl-edit``, ``helm``, ``argocd-controller`` ..."""
    removed: tuple[tuple[str, str], ...] = ()
    """Keys the loop saw in it before and misses now, with the value each had (the loop's
    memory: the API keeps no history; empty when the loop never saw it whole)."""


@dataclass(frozen=True)
class WorkloadState:
    """A Deployment, its pods and its HPA, read once per tick."""

    namespace: str
    deployment: str
    service: str
    replicas: int
    ready_replicas: int
    revision: int
    """The revision that rolled out what the pods run: a rollout restart's revision (the same
    template but for ``kubectl.kubernetes.io/restartedAt``) is no change, so it counts back to
    the revision it restarted."""
    revision_at: datetime | None
    """When that revision's ReplicaSet was created (a rollout's time)."""
    pods: tuple[PodState, ...]
    hpa: HpaState | None
    current_template: str = ""
    """The ``pod-template-hash`` of the current revision's ReplicaSet."""
    restarted_at: datetime | None = None
    """When the pods were last restarted as a whole (``kubectl rollout restart``: the current
    template's ``kubectl.kubernetes.io/restartedAt``), None when never since ``revision``."""
    ingress: str | None = None
    """The Ingress in front of the service (None: none routes to it)."""
    limit_rps: float | None = None
    """Its ingress-nginx ``limit-rps`` (None: no limit)."""
    limit_is_ooda: bool = False
    """Whether that limit is the one ooda set (so ooda may lift it)."""
    limit_set_at: datetime | None = None
    """When ooda set it (its ``ooda.dev/changed-at``), None when not ooda's."""
    config_changes: tuple[ConfigChange, ...] = ()
    """The last change of each ConfigMap the pod template reads, newest first (empty where
    the ConfigMaps could not be read)."""
    config_data: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """The data of each ConfigMap the pod template reads, by name, as read this tick."""
    argo: ArgoApp | None = None
    """The Argo CD Application that deploys it, None when none does (or none could be read)."""

    @property
    def workload(self) -> str:
        """``namespace/deployment``: the key of breakers, cooldowns and the blast radius."""
        return f"{self.namespace}/{self.deployment}"

    @property
    def unschedulable(self) -> tuple[PodState, ...]:
        """The pods no node has room for."""
        return tuple(p for p in self.pods if p.unschedulable)

    @property
    def crashlooping(self) -> tuple[PodState, ...]:
        """The pods in CrashLoopBackOff, most restarts first."""
        return tuple(sorted((p for p in self.pods if p.crashlooping), key=lambda p: -p.restarts))


@dataclass(frozen=True)
class NodeState:
    """A node as the loop saw it this tick."""

    name: str
    ready: str
    """Status of the ``Ready`` condition: ``True``, ``False`` or ``Unknown`` (the kubelet
    went silent)."""
    unschedulable: bool
    """Cordoned."""
    pressures: tuple[str, ...] = ()
    """Pressure conditions that are ``True`` (``DiskPressure``, ``MemoryPressure`` ...)."""
    taints: tuple[str, ...] = ()
    """``key:effect`` of each taint."""
    heartbeat_lag_s: float | None = None
    """Seconds by which the kubelet's heartbeat (its Lease in ``kube-node-lease``) trails the
    freshest heartbeat of any node (None: not read). A kubelet renews every 10 s, so a lag of
    several renewals says it went silent before the node controller's grace period ends."""
    cordoned_by_ooda: bool = False
    """Cordoned by one of ooda's actions (``managedFields`` name ooda the owner of
    ``spec.unschedulable``; without them, its ``ooda.dev/changed-by`` annotation): a drain of
    ooda's that stopped with pods still there is ooda's to resume, where a node a human
    cordoned is their maintenance, even one ooda had cordoned before."""

    @property
    def not_ready(self) -> bool:
        """Whether the node's Ready condition is anything but True."""
        return self.ready != "True"


class Verdict(StrEnum):
    """Where a verification stands."""

    PENDING = "pending"
    HEALED = "healed"
    FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    """The verdict on an applied action, with the reason a human reads."""

    verdict: Verdict
    reason: str


@dataclass(frozen=True)
class VerifyWindow:
    """What an action's ``check`` judges: the service since the action, and its objectives."""

    metrics: pd.DataFrame
    """The target service's tidy metric rows after the action was applied, oldest first."""
    workload: WorkloadState | None
    """The workload as observed this tick (None where it could not be read)."""
    applied_at: datetime
    now: datetime
    deadline: datetime
    p95_ms: float
    """Latency objective (p95, milliseconds)."""
    max_error_rate: float
    """Error-rate objective (1 - availability)."""
    healthy_minutes: int
    """Consecutive minutes inside the SLO that count as healed."""
    freshness: pd.Series | None = None
    """Age of the service's oldest unprocessed asynchronous work (its consumer groups' lag,
    its queues' oldest message), seconds, per minute after the action, indexed by the
    minute's timestamp; None for a service with no asynchronous work."""
    max_freshness_s: float = float("inf")
    """Freshness objective: asynchronous work is processed within this many seconds."""
