"""Retune an HPA: its ``minReplicas``, ``maxReplicas`` and CPU utilisation target.

For a latency problem that more pods fix sooner than the reactive HPA adds them; undo puts
the three values back, unless someone changed them since.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubernetes import client

from actuators._base import Action, ActionResult, register_action
from actuators._context import ActionContext
from actuators._errors import ConflictError, PermanentActuatorError
from actuators._kube import MERGE_PATCH, read_hpa
from contracts import ActionKind


def serialise(obj: Any) -> Any:
    """A client model as the camelCase JSON the API server speaks."""
    return client.ApiClient().sanitize_for_serialization(obj)


def cpu_target(hpa_spec: Any) -> int | None:
    """The CPU ``averageUtilization`` target of an autoscaling/v2 HPA spec, percent."""
    for metric in hpa_spec.metrics or []:
        resource = metric.resource
        if metric.type == "Resource" and resource is not None and resource.name == "cpu":
            value = resource.target.average_utilization
            return None if value is None else int(value)
    return None


def _state(hpa: Any) -> dict[str, Any]:
    return {
        "min_replicas": int(hpa.spec.min_replicas or 1),
        "max_replicas": int(hpa.spec.max_replicas),
        "target_cpu_utilization": cpu_target(hpa.spec),
    }


@register_action
@dataclass(frozen=True)
class PatchHpa(Action):
    """Change an HPA's ``minReplicas``, ``maxReplicas`` and/or CPU utilisation target."""

    hpa: str = ""
    min_replicas: int | None = None
    max_replicas: int | None = None
    target_cpu_utilization: int | None = None
    """Percent of the CPU request (``averageUtilization``)."""

    kind = ActionKind.PATCH_HPA

    @property
    def target(self) -> str:
        return f"hpa/{self.namespace}/{self.hpa}"

    def _patch(self, ctx: ActionContext, current: Any, state: dict[str, Any]) -> None:
        spec: dict[str, Any] = {
            "minReplicas": state["min_replicas"],
            "maxReplicas": state["max_replicas"],
        }
        cpu = state["target_cpu_utilization"]
        if cpu is not None and cpu != cpu_target(current.spec):
            metrics = serialise(current.spec.metrics or [])
            for metric in metrics:
                if metric.get("type") == "Resource" and metric["resource"]["name"] == "cpu":
                    metric["resource"]["target"] = {
                        "type": "Utilization",
                        "averageUtilization": cpu,
                    }
            spec["metrics"] = metrics
        body = {"metadata": {"annotations": ctx.annotations(self.kind)}, "spec": spec}
        self.call(
            ctx,
            lambda: ctx.api.autoscaling_v2.patch_namespaced_horizontal_pod_autoscaler(
                self.hpa, self.namespace, body, _content_type=MERGE_PATCH
            ),
            f"patch hpa {self.namespace}/{self.hpa} {spec}",
        )

    def apply(self, ctx: ActionContext) -> ActionResult:
        hpa = read_hpa(ctx, self.hpa, self.namespace)
        before = _state(hpa)
        after = {
            "min_replicas": self.min_replicas or before["min_replicas"],
            "max_replicas": self.max_replicas or before["max_replicas"],
            "target_cpu_utilization": self.target_cpu_utilization
            or before["target_cpu_utilization"],
        }
        low, high, cpu = after["min_replicas"], after["max_replicas"], self.target_cpu_utilization
        if low < 1 or high < low:
            raise PermanentActuatorError(
                f"hpa {self.namespace}/{self.hpa}: need 1 <= minReplicas <= maxReplicas,"
                f" got {low}..{high}"
            )
        if cpu is not None and not 1 <= cpu <= 100:
            raise PermanentActuatorError(f"CPU target must be 1..100 %, got {cpu}")
        if cpu is not None and before["target_cpu_utilization"] is None:
            raise PermanentActuatorError(
                f"hpa {self.namespace}/{self.hpa} has no CPU utilisation metric to retarget"
            )
        changed = after != before
        if not ctx.dry_run and changed:
            self._patch(ctx, hpa, after)
        return ActionResult(self.kind, self.target, ctx.dry_run, before, after, undoable=changed)

    def undo(self, ctx: ActionContext, result: ActionResult) -> ActionResult | None:
        if result.dry_run or not result.undoable:
            return None
        hpa = read_hpa(ctx, self.hpa, self.namespace)
        now = _state(hpa)
        if now != result.after:
            raise ConflictError(
                f"hpa {self.namespace}/{self.hpa} is {now} since ooda set {result.after};"
                " someone else changed it, so it is left alone"
            )
        self._patch(ctx, hpa, result.before)
        return self.undone(result, dict(result.before))
