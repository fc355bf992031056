"""Actions on nodes: cordon, drain, and moving one pod off its node.

Pods leave a node only through the Eviction API, so every PodDisruptionBudget holds; a refusal
is waited out with backoff, never forced by deleting the pod. No node action starts when it
would leave too large a share of the cluster's nodes unhealthy or cordoned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from actuators._actions import Action, ActionResult, KubeClients
from actuators._errors import (
    ActuatorError,
    GuardRejectedError,
    PermanentActuatorError,
    TemporaryActuatorError,
)
from actuators._kube import (
    MERGE_PATCH,
    PDB_RETRY,
    evict_pod,
    is_daemonset_pod,
    is_mirror_pod,
    node_unhealthy,
    pods_on_node,
    read_service_pod,
)
from actuators._retry import RetryPolicy, call_with_retry


def _read_node(
    kube: KubeClients, node: str, retry: RetryPolicy, sleep: Callable[[float], None]
) -> Any:
    return call_with_retry(lambda: kube.core_v1.read_node(node), f"read node {node}", retry, sleep)


def _check_capacity(
    action: Action,
    kube: KubeClients,
    node: str,
    max_fraction: float,
    retry: RetryPolicy,
    sleep: Callable[[float], None],
) -> None:
    """Refuse when taking ``node`` out would leave too large a share of nodes out."""
    nodes = call_with_retry(lambda: kube.core_v1.list_node(), "list nodes", retry, sleep).items
    others = sum(node_unhealthy(n) for n in nodes if n.metadata.name != node)
    share = (others + 1) / max(1, len(nodes))
    if share > max_fraction:
        raise GuardRejectedError(
            action.kind,
            action.target,
            f"{others} of {len(nodes)} other nodes are already unhealthy or cordoned;"
            f" taking {node} out too would leave {share:.0%} of nodes out"
            f" (limit {max_fraction:.0%})",
        )


def _set_unschedulable(
    kube: KubeClients, node: str, value: bool, retry: RetryPolicy, sleep: Callable[[float], None]
) -> None:
    call_with_retry(
        lambda: kube.core_v1.patch_node(
            node, {"spec": {"unschedulable": value or None}}, _content_type=MERGE_PATCH
        ),
        f"{'cordon' if value else 'uncordon'} node {node}",
        retry,
        sleep,
    )


def _cordon_first(
    action: Action,
    kube: KubeClients,
    node: str,
    max_fraction: float,
    retry: RetryPolicy,
    sleep: Callable[[float], None],
) -> bool:
    """Whether ``node`` was already cordoned; checks capacity when it was not."""
    if not node:
        raise PermanentActuatorError(f"{action.kind} needs a node name, got ''")
    was = bool(_read_node(kube, node, retry, sleep).spec.unschedulable)
    if not was:
        _check_capacity(action, kube, node, max_fraction, retry, sleep)
    return was


def _uncordon_result(
    action: Action,
    kube: KubeClients,
    node: str,
    result: ActionResult,
    retry: RetryPolicy,
    sleep: Callable[[float], None],
) -> ActionResult | None:
    if result.dry_run or not result.undoable:
        return None
    _set_unschedulable(kube, node, False, retry, sleep)
    return action.undone(result, {"cordoned": False}, f"node/{node}")


@dataclass(frozen=True)
class _NodeAction(Action):
    """Fields shared by the actions that cordon a node."""

    node: str = ""
    max_unhealthy_fraction: float = 0.34
    """Refuse when, with this node taken out, more than this share of nodes would be unhealthy
    (NotReady, under pressure or cordoned): draining a sick cluster makes it sicker."""
    pdb_retry: RetryPolicy = PDB_RETRY
    """Backoff while a PodDisruptionBudget refuses an eviction."""

    @property
    def node_scoped(self) -> bool:
        return True

    @property
    def target(self) -> str:
        return f"node/{self.node}"

    def undo(
        self,
        kube: KubeClients,
        result: ActionResult,
        *,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = lambda _s: None,
    ) -> ActionResult | None:
        """Uncordon the node if this action cordoned it (evicted pods stay where they went)."""
        return _uncordon_result(self, kube, self.node, result, retry, sleep)


@dataclass(frozen=True)
class CordonNode(_NodeAction):
    """Mark a node unschedulable: nothing new lands there, running pods stay."""

    @property
    def kind(self) -> str:
        return "cordon_node"

    def apply(
        self,
        kube: KubeClients,
        *,
        dry_run: bool,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = lambda _s: None,
    ) -> ActionResult:
        was = _cordon_first(self, kube, self.node, self.max_unhealthy_fraction, retry, sleep)
        if not dry_run and not was:
            _set_unschedulable(kube, self.node, True, retry, sleep)
        return ActionResult(
            self.kind, self.target, dry_run, {"cordoned": was}, {"cordoned": True}, undoable=not was
        )


@dataclass(frozen=True)
class DrainNode(_NodeAction):
    """Cordon a node and evict every pod on it but DaemonSet and mirror pods."""

    @property
    def kind(self) -> str:
        return "drain_node"

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
        was = _cordon_first(self, kube, self.node, self.max_unhealthy_fraction, retry, sleep)
        pods = pods_on_node(kube.core_v1, self.node, retry, sleep)
        movable = [p for p in pods if not (is_daemonset_pod(p) or is_mirror_pod(p))]
        names = [f"{p.metadata.namespace}/{p.metadata.name}" for p in movable]
        before = {"cordoned": was, "pods": names, "skipped": len(pods) - len(movable)}
        if dry_run:
            return ActionResult(self.kind, self.target, True, before, {"would_evict": names}, False)
        if not was:
            _set_unschedulable(kube, self.node, True, retry, sleep)
        evicted: list[str] = []
        refusals = 0
        for pod in movable:
            try:
                outcome = evict_pod(
                    kube.core_v1,
                    pod.metadata.name,
                    pod.metadata.namespace,
                    pdb_retry=self.pdb_retry,
                    sleep=sleep,
                )
            except TemporaryActuatorError as exc:
                raise TemporaryActuatorError(
                    f"drain of {self.node} stopped after evicting {len(evicted)} of"
                    f" {len(movable)} pods (node left cordoned): {exc}"
                ) from exc
            refusals += outcome.refusals
            evicted.append(f"{pod.metadata.namespace}/{pod.metadata.name}")
        return ActionResult(
            self.kind,
            self.target,
            False,
            before,
            {"cordoned": True, "evicted": evicted, "pdb_refusals": refusals},
            undoable=not was,
        )


@dataclass(frozen=True)
class RecreatePodElsewhere(Action):
    """Cordon a pod's node and evict the pod, so its controller recreates it on another node."""

    pod: str = ""
    max_unhealthy_fraction: float = 0.34
    """As for :class:`DrainNode`: the pod's node is cordoned, so the same limit applies."""
    pdb_retry: RetryPolicy = PDB_RETRY
    """Backoff while a PodDisruptionBudget refuses the eviction."""

    @property
    def kind(self) -> str:
        return "recreate_pod_elsewhere"

    @property
    def target(self) -> str:
        return f"pod/{self.namespace}/{self.pod}"

    @property
    def disruptive(self) -> bool:
        return True

    @property
    def node_scoped(self) -> bool:
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
            raise PermanentActuatorError("recreate_pod_elsewhere needs a pod name, got ''")
        pod = read_service_pod(kube.core_v1, self.pod, self.namespace, self.service, retry, sleep)
        if not pod.metadata.owner_references:
            raise PermanentActuatorError(
                f"pod {self.namespace}/{self.pod} has no controller to recreate it"
            )
        node = pod.spec.node_name or ""
        was = _cordon_first(self, kube, node, self.max_unhealthy_fraction, retry, sleep)
        before = {"pod": self.pod, "node": node, "cordoned": was}
        if dry_run:
            return ActionResult(
                self.kind, self.target, True, before, {"would_evict": self.pod}, False
            )
        if not was:
            _set_unschedulable(kube, node, True, retry, sleep)
        try:
            outcome = evict_pod(
                kube.core_v1, self.pod, self.namespace, pdb_retry=self.pdb_retry, sleep=sleep
            )
        except ActuatorError:
            if not was:  # the pod stays where it is, so the node goes back into service
                _set_unschedulable(kube, node, False, retry, sleep)
            raise
        return ActionResult(
            self.kind,
            self.target,
            False,
            before,
            {"cordoned_node": node, "evicted": True, "pdb_refusals": outcome.refusals},
            undoable=not was,
        )

    def undo(
        self,
        kube: KubeClients,
        result: ActionResult,
        *,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = lambda _s: None,
    ) -> ActionResult | None:
        """Uncordon the node this action cordoned."""
        return _uncordon_result(self, kube, str(result.before["node"]), result, retry, sleep)
