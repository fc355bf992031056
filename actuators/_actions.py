"""The healing actions: what each changes, how it checks its target, and how it steps back.

An action is a small value object built by the policy. It reads the live object before it
changes anything, so the audit log gets the state it acted on, and it refuses targets it cannot
bound (a pod that does not belong to the service it was asked to heal, a replica count past the
HPA's maximum).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actuators._errors import PermanentActuatorError
from actuators._kube import evict_pod, read_service_pod
from actuators._retry import RetryPolicy, call_with_retry


@dataclass(frozen=True)
class KubeClients:
    """The Kubernetes API objects an action calls (official client objects or the lab's twins)."""

    core_v1: Any
    """``kubernetes.client.CoreV1Api`` or an object with the same methods."""
    apps_v1: Any
    """``kubernetes.client.AppsV1Api`` or an object with the same methods."""
    autoscaling_v2: Any
    """``kubernetes.client.AutoscalingV2Api`` or an object with the same methods."""
    policy_v1: Any = None
    """``kubernetes.client.PolicyV1Api`` (PodDisruptionBudgets), where an action reads them."""
    custom_objects: Any = None
    """``kubernetes.client.CustomObjectsApi`` (Argo CD Applications)."""


@dataclass(frozen=True)
class ActionResult:
    """What an action did (or, in dry-run, would have done)."""

    kind: str
    target: str
    dry_run: bool
    before: dict[str, Any]
    after: dict[str, Any]
    undoable: bool


@dataclass(frozen=True)
class Action(ABC):
    """A healing action on one bounded target."""

    namespace: str
    service: str
    reason: str = field(default="", compare=False)

    @property
    @abstractmethod
    def kind(self) -> str:
        """Name of the action, the first half of its cooldown key."""

    @property
    @abstractmethod
    def target(self) -> str:
        """``kind/namespace/name`` of the object acted on."""

    @property
    def disruptive(self) -> bool:
        """Whether the action takes capacity away while it runs."""
        return False

    @property
    def node_scoped(self) -> bool:
        """Whether the action takes a node out (cordon): one such action per cluster at a time."""
        return False

    @abstractmethod
    def apply(
        self,
        kube: KubeClients,
        *,
        dry_run: bool,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = lambda _s: None,
    ) -> ActionResult:
        """Carry the action out (or only read and describe it when ``dry_run``)."""

    def undo(
        self,
        kube: KubeClients,
        result: ActionResult,
        *,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = lambda _s: None,
    ) -> ActionResult | None:
        """Step back from ``result``; ``None`` where there is nothing to undo."""
        return None

    def undone(
        self, result: ActionResult, after: dict[str, Any], target: str | None = None
    ) -> ActionResult:
        """The result of stepping back from ``result`` to ``after`` (itself not undoable)."""
        return ActionResult(
            "undo_" + self.kind, target or self.target, False, dict(result.after), after, False
        )


@dataclass(frozen=True)
class RestartPod(Action):
    """Evict one pod so its Deployment replaces it with a fresh one (on a healthy node).

    Through the Eviction API, like every pod removal here, so a PodDisruptionBudget holds: a
    crash-looping pod is unhealthy and is normally let go at once, but not while the budget
    is already short of healthy pods.
    """

    pod: str = ""

    @property
    def kind(self) -> str:
        return "restart_pod"

    @property
    def target(self) -> str:
        return f"pod/{self.namespace}/{self.pod}"

    @property
    def disruptive(self) -> bool:
        return True

    def apply(
        self,
        kube: KubeClients,
        *,
        dry_run: bool,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = lambda _s: None,
    ) -> ActionResult:
        if not self.pod:
            raise PermanentActuatorError("restart_pod needs a pod name, got ''")
        pod = read_service_pod(kube.core_v1, self.pod, self.namespace, self.service, retry, sleep)
        statuses = pod.status.container_statuses or []
        before = {
            "pod": self.pod,
            "node": pod.spec.node_name,
            "phase": pod.status.phase,
            "restarts": sum(s.restart_count or 0 for s in statuses),
        }
        after: dict[str, Any] = {"evicted": False}
        if not dry_run:
            outcome = evict_pod(kube.core_v1, self.pod, self.namespace, sleep=sleep)
            after = {"evicted": True, "pdb_refusals": outcome.refusals}
        return ActionResult(self.kind, self.target, dry_run, before, after, undoable=False)


@dataclass(frozen=True)
class SetHpaMinReplicas(Action):
    """Move an HPA's ``minReplicas`` (predictive scale-out ahead of load, and back)."""

    hpa: str = ""
    min_replicas: int = 1

    @property
    def kind(self) -> str:
        return "set_hpa_min"

    @property
    def target(self) -> str:
        return f"hpa/{self.namespace}/{self.hpa}"

    def _patch(
        self,
        kube: KubeClients,
        value: int,
        retry: RetryPolicy,
        sleep: Callable[[float], None],
    ) -> None:
        call_with_retry(
            lambda: kube.autoscaling_v2.patch_namespaced_horizontal_pod_autoscaler(
                self.hpa,
                self.namespace,
                {"spec": {"minReplicas": value}},
                _content_type="application/merge-patch+json",
            ),
            f"patch hpa {self.namespace}/{self.hpa} minReplicas={value}",
            retry,
            sleep,
        )

    def apply(
        self,
        kube: KubeClients,
        *,
        dry_run: bool,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = lambda _s: None,
    ) -> ActionResult:
        if self.min_replicas < 1:
            raise PermanentActuatorError(f"minReplicas must be >= 1, got {self.min_replicas}")
        hpa = call_with_retry(
            lambda: kube.autoscaling_v2.read_namespaced_horizontal_pod_autoscaler(
                self.hpa, self.namespace
            ),
            f"read hpa {self.namespace}/{self.hpa}",
            retry,
            sleep,
        )
        previous = int(hpa.spec.min_replicas or 1)
        maximum = int(hpa.spec.max_replicas)
        wanted = min(self.min_replicas, maximum)
        before = {"min_replicas": previous, "max_replicas": maximum}
        if not dry_run and wanted != previous:
            self._patch(kube, wanted, retry, sleep)
        return ActionResult(
            self.kind,
            self.target,
            dry_run,
            before,
            {"min_replicas": wanted, "capped_at_max": wanted < self.min_replicas},
            undoable=wanted != previous,
        )

    def undo(
        self,
        kube: KubeClients,
        result: ActionResult,
        *,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = lambda _s: None,
    ) -> ActionResult | None:
        if result.dry_run or not result.undoable:
            return None
        previous = int(result.before["min_replicas"])
        self._patch(kube, previous, retry, sleep)
        return self.undone(result, {"min_replicas": previous})
