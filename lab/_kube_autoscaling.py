"""The lab's ``AutoscalingV2Api``: HorizontalPodAutoscalers with one CPU utilisation target.

The HPA controller itself lives in ``lab._cluster``; this is how it looks through the API:
patches of the floor, the ceiling and the target, and the v2 behaviour every lab HPA has.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from lab._cluster import Hpa
from lab._kube import (
    _Api,
    _check_resource_version,
    _error,
    _int_field,
    _merge_patch,
    _merged_annotations,
    _status_success,
    _utc,
)

_HPA_METADATA = ("annotations", "resourceVersion")


def _cpu_utilisation_target(metrics: Any, name: str) -> Any:
    """averageUtilization of the single CPU Utilization metric the lab's HPAs support."""
    if isinstance(metrics, list) and len(metrics) == 1 and isinstance(metrics[0], dict):
        resource = metrics[0].get("resource") or {}
        target = resource.get("target") or {}
        if (metrics[0].get("type"), resource.get("name"), target.get("type")) == (
            "Resource",
            "cpu",
            "Utilization",
        ):
            return target.get("averageUtilization")
    raise _error(
        422,
        f"only one Resource cpu Utilization metric is supported, got {metrics!r}",
        "HorizontalPodAutoscaler",
        name,
    )


class FakeAutoscalingV2Api(_Api):
    """The subset of ``kubernetes.client.AutoscalingV2Api`` the loop and actuators use."""

    def _hpa(self, name: str, namespace: str) -> Hpa:
        self._check_namespace(namespace, "horizontalpodautoscalers.autoscaling", name)
        hpa = self._cluster.hpas.get(name)
        if hpa is None:
            raise _error(
                404,
                f'horizontalpodautoscalers.autoscaling "{name}" not found',
                "horizontalpodautoscalers",
                name,
            )
        return hpa

    def _to_v2_hpa(self, hpa: Hpa) -> client.V2HorizontalPodAutoscaler:
        current = len(self._cluster.service_pods[hpa.service])
        key = (
            current,
            hpa.current_utilisation,
            tuple(hpa.annotations.items()),
            hpa.min_replicas,
            hpa.max_replicas,
            hpa.target_utilisation,
            hpa.desired_replicas,
            hpa.last_scale_time,
            hpa.changed,
        )
        return self._revisions.served(hpa.uid, key, lambda: self._render_hpa(hpa, current))

    _shared_behavior: client.V2HorizontalPodAutoscalerBehavior | None = None

    def _behavior(self) -> client.V2HorizontalPodAutoscalerBehavior:
        """The behaviour every HPA of the lab has (shared: served models are never modified)."""
        if self._shared_behavior is None:
            self._shared_behavior = self._render_behavior()
        return self._shared_behavior

    def _render_behavior(self) -> client.V2HorizontalPodAutoscalerBehavior:
        cfg = self._cluster.settings.hpa
        return client.V2HorizontalPodAutoscalerBehavior(
            scale_up=client.V2HPAScalingRules(
                stabilization_window_seconds=0,
                select_policy="Max",
                policies=[
                    client.V2HPAScalingPolicy(
                        type="Pods",
                        value=cfg.scale_up_pods,
                        period_seconds=round(cfg.scale_up_period_s),
                    ),
                    client.V2HPAScalingPolicy(
                        type="Percent",
                        value=cfg.scale_up_percent,
                        period_seconds=round(cfg.scale_up_period_s),
                    ),
                ],
            ),
            scale_down=client.V2HPAScalingRules(
                stabilization_window_seconds=round(cfg.scale_down_stabilisation_s),
                select_policy="Max",
                policies=[client.V2HPAScalingPolicy(type="Percent", value=100, period_seconds=15)],
            ),
        )

    def _render_hpa(self, hpa: Hpa, current: int) -> client.V2HorizontalPodAutoscaler:
        utilisation = hpa.current_utilisation
        meta = self._meta(hpa.name, hpa.uid, hpa.created_at, {"app": hpa.name})
        meta.annotations = dict(hpa.annotations) or None
        status_at = hpa.created_at if hpa.last_scale_time is None else hpa.last_scale_time
        managed = [
            ("helm", hpa.created_at, None),
            ("kube-controller-manager", status_at, "status"),
            *([] if hpa.changed is None else [(hpa.changed[1], hpa.changed[0], None)]),
        ]
        meta.managed_fields = [
            client.V1ManagedFieldsEntry(
                manager=manager,
                operation="Update",
                api_version="autoscaling/v2",
                time=_utc(at),
                subresource=subresource,
            )
            for manager, at, subresource in managed
        ]
        model = client.V2HorizontalPodAutoscaler(
            api_version="autoscaling/v2",
            kind="HorizontalPodAutoscaler",
            metadata=meta,
            spec=client.V2HorizontalPodAutoscalerSpec(
                scale_target_ref=client.V2CrossVersionObjectReference(
                    api_version="apps/v1", kind="Deployment", name=hpa.name
                ),
                min_replicas=hpa.min_replicas,
                max_replicas=hpa.max_replicas,
                metrics=[
                    client.V2MetricSpec(
                        type="Resource",
                        resource=client.V2ResourceMetricSource(
                            name="cpu",
                            target=client.V2MetricTarget(
                                type="Utilization", average_utilization=hpa.target_utilisation
                            ),
                        ),
                    )
                ],
                behavior=self._behavior(),
            ),
            status=client.V2HorizontalPodAutoscalerStatus(
                current_replicas=current,
                desired_replicas=hpa.desired_replicas,
                last_scale_time=None if hpa.last_scale_time is None else _utc(hpa.last_scale_time),
                current_metrics=None
                if utilisation is None
                else [
                    client.V2MetricStatus(
                        type="Resource",
                        resource=client.V2ResourceMetricStatus(
                            name="cpu",
                            current=client.V2MetricValueStatus(average_utilization=utilisation),
                        ),
                    )
                ],
            ),
        )
        return model

    def list_namespaced_horizontal_pod_autoscaler(
        self, namespace: str
    ) -> client.V2HorizontalPodAutoscalerList:
        items = []
        if namespace == self._namespace:
            items = [self._to_v2_hpa(h) for h in self._cluster.hpas.values()]
        return client.V2HorizontalPodAutoscalerList(
            api_version="autoscaling/v2",
            kind="HorizontalPodAutoscalerList",
            metadata=self._revisions.list_meta(),
            items=items,
        )

    def read_namespaced_horizontal_pod_autoscaler(
        self, name: str, namespace: str
    ) -> client.V2HorizontalPodAutoscaler:
        return self._to_v2_hpa(self._hpa(name, namespace))

    def patch_namespaced_horizontal_pod_autoscaler(
        self,
        name: str,
        namespace: str,
        body: Any,
        field_manager: str | None = None,
        _content_type: str | None = None,
    ) -> client.V2HorizontalPodAutoscaler:
        """Merge-patch ``spec.minReplicas``, ``spec.maxReplicas``, the CPU target and
        ``metadata.annotations`` (None deletes); ``metadata.resourceVersion`` is a precondition.
        The write is recorded in ``managedFields`` under ``field_manager`` (the client's
        default, ``OpenAPI-Generator``, without one).

        The HPA controller acts on the new spec at its next sync (within 15 s).
        """
        hpa = self._hpa(name, namespace)
        kind = "HorizontalPodAutoscaler"
        patch = _merge_patch(body, _content_type, "horizontalpodautoscalers", name)
        metadata, spec = patch.get("metadata") or {}, patch.get("spec") or {}
        unknown = sorted(
            [f"metadata.{k}" for k in metadata if k not in _HPA_METADATA]
            + [
                f"spec.{k}"
                for k in spec
                if k not in ("minReplicas", "maxReplicas", "metrics", "scaleTargetRef")
            ]
        )
        if unknown:
            raise _error(422, f"unsupported HPA field(s) {unknown}", kind, name)
        resource = "horizontalpodautoscalers.autoscaling"
        _check_resource_version(metadata, self._to_v2_hpa(hpa), resource, name)
        annotations = _merged_annotations(hpa.annotations, metadata, kind, resource, name)
        ref = spec.get("scaleTargetRef")
        if ref is not None and (ref.get("kind"), ref.get("name")) != ("Deployment", name):
            raise _error(422, f"spec.scaleTargetRef cannot change, got {ref!r}", kind, name)
        low = _int_field(
            spec.get("minReplicas", hpa.min_replicas), "spec.minReplicas", 1, kind, name
        )
        high = _int_field(
            spec.get("maxReplicas", hpa.max_replicas), "spec.maxReplicas", 1, kind, name
        )
        if low > high:
            raise _error(
                422,
                f"{kind} {name!r} is invalid: spec.maxReplicas: Invalid value: {high}:"
                f" must be greater than or equal to `minReplicas` ({low})",
                kind,
                name,
            )
        target = hpa.target_utilisation
        if "metrics" in spec:
            target = _int_field(
                _cpu_utilisation_target(spec["metrics"], name),
                "spec.metrics[0].resource.target.averageUtilization",
                1,
                kind,
                name,
            )
        hpa.min_replicas, hpa.max_replicas, hpa.target_utilisation = low, high, target
        hpa.annotations = annotations
        hpa.changed = (self._now(), field_manager or "OpenAPI-Generator")
        return self._to_v2_hpa(hpa)

    def delete_namespaced_horizontal_pod_autoscaler(
        self, name: str, namespace: str
    ) -> client.V1Status:
        """Gone at once; from then on the HPA controller leaves the Deployment's replicas alone."""
        hpa = self._hpa(name, namespace)
        del self._cluster.hpas[name]
        self._revisions.forget(hpa.uid)
        return _status_success(name, "autoscaling", "horizontalpodautoscalers", hpa.uid)
