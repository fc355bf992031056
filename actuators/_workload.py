"""Actions on workloads: scale a Deployment, retune its HPA, roll it back a revision.

Each reads the live object first (the audit log gets the state it acted on), refuses what it
cannot bound, and keeps enough of the old state in its result to step back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from actuators._actions import Action, ActionResult, KubeClients
from actuators._errors import PermanentActuatorError
from actuators._kube import JSON_PATCH, MERGE_PATCH
from actuators._retry import RetryPolicy, call_with_retry

REVISION = "deployment.kubernetes.io/revision"
_HASH_LABEL = "pod-template-hash"


def _serialise(obj: Any) -> Any:
    """A client model as the camelCase JSON the API server speaks."""
    return client.ApiClient().sanitize_for_serialization(obj)


@dataclass(frozen=True)
class ScaleDeployment(Action):
    """Set a Deployment's replicas (for workloads no HPA manages; an HPA would undo it)."""

    deployment: str = ""
    replicas: int = 1
    max_replicas: int = 50
    """Blast-radius cap: never ask for more pods than this."""

    @property
    def kind(self) -> str:
        return "scale_deployment"

    @property
    def target(self) -> str:
        return f"deployment/{self.namespace}/{self.deployment}"

    def _patch(
        self, kube: KubeClients, n: int, retry: RetryPolicy, sleep: Callable[[float], None]
    ) -> None:
        call_with_retry(
            lambda: kube.apps_v1.patch_namespaced_deployment_scale(
                self.deployment,
                self.namespace,
                {"spec": {"replicas": n}},
                _content_type=MERGE_PATCH,
            ),
            f"scale deployment {self.namespace}/{self.deployment} to {n}",
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
        if not 0 <= self.replicas <= self.max_replicas:
            raise PermanentActuatorError(
                f"replicas must be within 0..{self.max_replicas}, got {self.replicas}"
            )
        hpas = call_with_retry(
            lambda: kube.autoscaling_v2.list_namespaced_horizontal_pod_autoscaler(self.namespace),
            f"list hpas in {self.namespace}",
            retry,
            sleep,
        )
        for hpa in hpas.items:
            ref = hpa.spec.scale_target_ref
            if ref.kind == "Deployment" and ref.name == self.deployment:
                raise PermanentActuatorError(
                    f"deployment {self.namespace}/{self.deployment} is scaled by HPA "
                    f"{hpa.metadata.name!r}; change the HPA instead"
                )
        scale = call_with_retry(
            lambda: kube.apps_v1.read_namespaced_deployment_scale(self.deployment, self.namespace),
            f"read scale of deployment {self.namespace}/{self.deployment}",
            retry,
            sleep,
        )
        previous = int(scale.spec.replicas or 0)
        if not dry_run and previous != self.replicas:
            self._patch(kube, self.replicas, retry, sleep)
        return ActionResult(
            self.kind,
            self.target,
            dry_run,
            {"replicas": previous},
            {"replicas": self.replicas},
            undoable=previous != self.replicas,
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
        previous = int(result.before["replicas"])
        self._patch(kube, previous, retry, sleep)
        return self.undone(result, {"replicas": previous})


def _cpu_target(hpa_spec: Any) -> int | None:
    for metric in hpa_spec.metrics or []:
        resource = metric.resource
        if metric.type == "Resource" and resource is not None and resource.name == "cpu":
            value = resource.target.average_utilization
            return None if value is None else int(value)
    return None


@dataclass(frozen=True)
class PatchHpa(Action):
    """Change an HPA's ``minReplicas``, ``maxReplicas`` and/or CPU utilisation target."""

    hpa: str = ""
    min_replicas: int | None = None
    max_replicas: int | None = None
    target_cpu_utilization: int | None = None
    """Percent of the CPU request (``averageUtilization``)."""

    @property
    def kind(self) -> str:
        return "patch_hpa"

    @property
    def target(self) -> str:
        return f"hpa/{self.namespace}/{self.hpa}"

    def _patch(
        self,
        kube: KubeClients,
        spec: dict[str, Any],
        retry: RetryPolicy,
        sleep: Callable[[float], None],
    ) -> None:
        call_with_retry(
            lambda: kube.autoscaling_v2.patch_namespaced_horizontal_pod_autoscaler(
                self.hpa, self.namespace, {"spec": spec}, _content_type=MERGE_PATCH
            ),
            f"patch hpa {self.namespace}/{self.hpa} {spec}",
            retry,
            sleep,
        )

    @staticmethod
    def _spec(current: Any, low: int, high: int, cpu: int | None) -> dict[str, Any]:
        spec: dict[str, Any] = {"minReplicas": low, "maxReplicas": high}
        if cpu is not None:
            metrics = _serialise(current.spec.metrics or [])
            for metric in metrics:
                if metric.get("type") == "Resource" and metric["resource"]["name"] == "cpu":
                    metric["resource"]["target"] = {
                        "type": "Utilization",
                        "averageUtilization": cpu,
                    }
            spec["metrics"] = metrics
        return spec

    def apply(
        self,
        kube: KubeClients,
        *,
        dry_run: bool,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = lambda _s: None,
    ) -> ActionResult:
        hpa = call_with_retry(
            lambda: kube.autoscaling_v2.read_namespaced_horizontal_pod_autoscaler(
                self.hpa, self.namespace
            ),
            f"read hpa {self.namespace}/{self.hpa}",
            retry,
            sleep,
        )
        old_low, old_high = int(hpa.spec.min_replicas or 1), int(hpa.spec.max_replicas)
        old_cpu = _cpu_target(hpa.spec)
        before = {
            "min_replicas": old_low,
            "max_replicas": old_high,
            "target_cpu_utilization": old_cpu,
        }
        low = self.min_replicas if self.min_replicas is not None else old_low
        high = self.max_replicas if self.max_replicas is not None else old_high
        cpu = self.target_cpu_utilization
        if low < 1 or high < low:
            raise PermanentActuatorError(
                f"hpa {self.namespace}/{self.hpa}: need 1 <= minReplicas <= maxReplicas,"
                f" got {low}..{high}"
            )
        if cpu is not None and not 1 <= cpu <= 100:
            raise PermanentActuatorError(f"CPU target must be 1..100 %, got {cpu}")
        if cpu is not None and old_cpu is None:
            raise PermanentActuatorError(
                f"hpa {self.namespace}/{self.hpa} has no CPU utilisation metric to retarget"
            )
        after = {
            "min_replicas": low,
            "max_replicas": high,
            "target_cpu_utilization": cpu if cpu is not None else old_cpu,
        }
        changed = after != before
        if not dry_run and changed:
            self._patch(kube, self._spec(hpa, low, high, cpu), retry, sleep)
        return ActionResult(self.kind, self.target, dry_run, before, after, undoable=changed)

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
        hpa = kube.autoscaling_v2.read_namespaced_horizontal_pod_autoscaler(
            self.hpa, self.namespace
        )
        b = result.before
        cpu = b["target_cpu_utilization"] if self.target_cpu_utilization is not None else None
        self._patch(kube, self._spec(hpa, b["min_replicas"], b["max_replicas"], cpu), retry, sleep)
        return self.undone(result, dict(b))


@dataclass(frozen=True)
class RollbackDeployment(Action):
    """Put a Deployment's pod template back to an earlier revision, as ``kubectl rollout undo``.

    The template is copied from the ReplicaSet of that revision; the Deployment controller then
    scales that ReplicaSet back up and gives it the next revision number.
    """

    deployment: str = ""
    to_revision: int | None = None
    """The revision to return to; the one before the current when None."""

    @property
    def kind(self) -> str:
        return "rollback_deployment"

    @property
    def target(self) -> str:
        return f"deployment/{self.namespace}/{self.deployment}"

    @property
    def disruptive(self) -> bool:
        return True

    def _replace_template(
        self, kube: KubeClients, template: Any, retry: RetryPolicy, sleep: Callable[[float], None]
    ) -> None:
        call_with_retry(
            lambda: kube.apps_v1.patch_namespaced_deployment(
                self.deployment,
                self.namespace,
                [{"op": "replace", "path": "/spec/template", "value": template}],
                _content_type=JSON_PATCH,
            ),
            f"roll back deployment {self.namespace}/{self.deployment}",
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
        dep = call_with_retry(
            lambda: kube.apps_v1.read_namespaced_deployment(self.deployment, self.namespace),
            f"read deployment {self.namespace}/{self.deployment}",
            retry,
            sleep,
        )
        if dep.spec.paused:
            raise PermanentActuatorError(
                f"deployment {self.namespace}/{self.deployment} is paused; resume it first"
            )
        current = int((dep.metadata.annotations or {}).get(REVISION, "0"))
        labels = dep.spec.selector.match_labels or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        if not selector:
            raise PermanentActuatorError(
                f"deployment {self.namespace}/{self.deployment} has no matchLabels selector"
            )
        sets = call_with_retry(
            lambda: kube.apps_v1.list_namespaced_replica_set(
                self.namespace, label_selector=selector
            ),
            f"list replicasets of {self.namespace}/{self.deployment}",
            retry,
            sleep,
        )
        owned = {
            int((rs.metadata.annotations or {}).get(REVISION, "0")): rs
            for rs in sets.items
            if any(
                ref.controller and ref.uid == dep.metadata.uid
                for ref in rs.metadata.owner_references or []
            )
        }
        wanted = self.to_revision
        if wanted is None:
            earlier = [r for r in owned if 0 < r < current]
            if not earlier:
                raise PermanentActuatorError(
                    f"deployment {self.namespace}/{self.deployment} has no revision before"
                    f" {current} to roll back to"
                )
            wanted = max(earlier)
        if wanted not in owned or wanted == current:
            raise PermanentActuatorError(
                f"deployment {self.namespace}/{self.deployment}: revision {wanted} is not an"
                f" earlier revision (have {sorted(owned)}, current {current})"
            )
        template = _serialise(owned[wanted].spec.template)
        template.get("metadata", {}).get("labels", {}).pop(_HASH_LABEL, None)
        previous = _serialise(dep.spec.template)
        if not dry_run:
            self._replace_template(kube, template, retry, sleep)
        images = [c["image"] for c in template["spec"]["containers"]]
        return ActionResult(
            self.kind,
            self.target,
            dry_run,
            {"revision": current, "template": previous},
            {"revision": wanted, "images": images},
            undoable=True,
        )

    def undo(
        self,
        kube: KubeClients,
        result: ActionResult,
        *,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = lambda _s: None,
    ) -> ActionResult | None:
        if result.dry_run:
            return None
        self._replace_template(kube, result.before["template"], retry, sleep)
        return self.undone(result, {"revision_template": result.before["revision"]})
