"""The lab's ``AppsV1Api``: Deployments, their scale, ReplicaSets and template rollouts.

A Deployment keeps one ReplicaSet per pod template (the lab's templates differ only by image
and by ``kubectl rollout restart``'s ``restartedAt`` annotation); patching the template rolls
out a new revision, or brings an older ReplicaSet back as the newest one, which is how
``kubectl rollout undo`` works.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lab._cluster import Deployment, ReplicaSet
from lab._kube import (
    _Api,
    _check_annotations,
    _check_resource_version,
    _error,
    _int_field,
    _matches,
    _merge_patch,
    _merged_annotations,
    _patch_body,
    parse_label_selector,
)

REVISION = "deployment.kubernetes.io/revision"
#: The pod-template annotation ``kubectl rollout restart`` stamps (RFC 3339).
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
_HASH_LABEL = "pod-template-hash"
_ANNOTATIONS = "/metadata/annotations"
_KIND, _RESOURCE = "Deployment.apps", "deployments.apps"
_Counts = tuple[list[list[int]], list[list[int]]]
"""Pods and Ready pods per Deployment and ReplicaSet (``Cluster.replica_set_pods``)."""


def _invalid(name: str, detail: str) -> ApiException:
    return _error(422, f'{_KIND} "{name}" is invalid: {detail}', _RESOURCE, name)


def _annotations_op(annotations: dict[str, str], op: dict[str, Any], name: str) -> dict[str, str]:
    """A JSON-patch ``add``, ``replace`` or ``remove`` of ``/metadata/annotations`` or of one
    key, ``/metadata/annotations/<key>`` (a "/" in the key written "~1"; a "~", which "~0"
    would stand for, is in no valid key). Keys and values are checked once every operation has
    been applied, as the server decodes the result.
    """
    kind, path = op["op"], op["path"]
    if kind != "remove" and "value" not in op:
        raise _invalid(name, f"{kind} operation does not apply: missing value: {path}")
    if path == _ANNOTATIONS:
        value = op.get("value")
        if not (value is None or isinstance(value, dict)):
            raise _invalid(name, f"metadata.annotations: Invalid value: {value!r}")
        return {} if value is None else dict(value)
    key = path.removeprefix(f"{_ANNOTATIONS}/")
    if "/" in key:
        raise _invalid(name, f"{kind} operation does not apply: {path} is inside a string")
    key = key.replace("~1", "/")
    if kind != "add" and key not in annotations:
        raise _invalid(name, f"{kind} operation does not apply: doc is missing key: {path}")
    result = dict(annotations)
    if kind == "remove":
        del result[key]
    else:
        result[key] = op["value"]
    return result


class FakeAppsV1Api(_Api):
    """The subset of ``kubernetes.client.AppsV1Api`` the loop and actuators use."""

    def _deployment(self, name: str, namespace: str) -> Deployment:
        self._check_namespace(namespace, "deployments.apps", name)
        dep = self._cluster.deployments.get(name)
        if dep is None:
            raise _error(404, f'deployments.apps "{name}" not found', "deployments", name)
        return dep

    def _template(
        self, dep: Deployment, rs: ReplicaSet, labels: dict[str, str]
    ) -> client.V1PodTemplateSpec:
        notes = None if rs.restarted_at is None else {RESTARTED_AT: rs.restarted_at}
        return client.V1PodTemplateSpec(
            metadata=client.V1ObjectMeta(labels=labels, annotations=notes),
            spec=client.V1PodSpec(containers=[self._container(dep.service, rs.image)]),
        )

    def _to_v1_deployment(
        self, dep: Deployment, counts: _Counts | None = None
    ) -> client.V1Deployment:
        """``counts``: ``Cluster.replica_set_pods`` now, when the caller has them."""
        pods, ready = counts or self._cluster.replica_set_pods(self._now())
        current = dep.current
        on_current = pods[dep.service][dep.replica_sets.index(current)]
        status = (sum(pods[dep.service]), on_current, sum(ready[dep.service]))
        key = (
            dep.generation,
            dep.replicas,
            tuple(dep.annotations.items()),
            current.revision,
            current.template,
            status,
        )
        return self._revisions.served(dep.uid, key, lambda: self._render_deployment(dep, *status))

    def _render_deployment(
        self, dep: Deployment, pods: int, updated: int, ready: int
    ) -> client.V1Deployment:
        current = dep.current
        labels = {"app": dep.name}
        meta = self._meta(dep.name, dep.uid, dep.created_at, labels)
        meta.generation = dep.generation
        meta.annotations = {**dep.annotations, REVISION: str(current.revision)}
        return client.V1Deployment(
            api_version="apps/v1",
            kind="Deployment",
            metadata=meta,
            spec=client.V1DeploymentSpec(
                replicas=dep.replicas,
                selector=client.V1LabelSelector(match_labels=labels),
                template=self._template(dep, current, labels),
            ),
            status=client.V1DeploymentStatus(
                observed_generation=dep.generation,
                replicas=pods,
                updated_replicas=updated,
                ready_replicas=ready,
                available_replicas=ready,
                unavailable_replicas=max(0, dep.replicas - ready) or None,
            ),
        )

    def list_namespaced_deployment(
        self, namespace: str, label_selector: str | None = None
    ) -> client.V1DeploymentList:
        terms = parse_label_selector(label_selector or "")
        items = []
        if namespace == self._namespace:
            counts = self._cluster.replica_set_pods(self._now())
            items = [
                self._to_v1_deployment(d, counts)
                for d in self._cluster.deployments.values()
                if _matches({"app": d.name}, terms)
            ]
        return client.V1DeploymentList(
            api_version="apps/v1",
            kind="DeploymentList",
            metadata=self._revisions.list_meta(),
            items=items,
        )

    def read_namespaced_deployment(self, name: str, namespace: str) -> client.V1Deployment:
        return self._to_v1_deployment(self._deployment(name, namespace))

    def patch_namespaced_deployment(
        self, name: str, namespace: str, body: Any, _content_type: str | None = None
    ) -> client.V1Deployment:
        """Merge-patch replicas, annotations (None deletes) and the image, or JSON-patch the
        template and annotations; a merge patch's ``metadata.resourceVersion`` is a precondition.

        The JSON-patch form is what ``kubectl rollout undo`` sends: ``replace`` of
        ``/spec/template``; ``add``, ``replace`` and ``remove`` of ``/metadata/annotations`` or
        ``/metadata/annotations/<key>`` are taken too, other operations refused (422).
        """
        dep = self._deployment(name, namespace)
        patch = _patch_body(body, _content_type, _RESOURCE, name)
        replicas, template = dep.replicas, dep.current.template
        annotations = {**dep.annotations, REVISION: str(dep.current.revision)}  # as served
        if isinstance(patch, list):
            for op in patch:
                if not isinstance(op, dict):
                    raise _invalid(name, f"not a JSON-patch operation: {op!r}")
                path = op.get("path")
                if (op.get("op"), path) == ("replace", "/spec/template"):
                    template = self._patched_template(dep, op.get("value"), replace=True)
                elif (
                    op.get("op") in ("add", "replace", "remove")
                    and isinstance(path, str)
                    and f"{path}/".startswith(f"{_ANNOTATIONS}/")
                ):
                    annotations = _annotations_op(annotations, op, name)
                else:
                    raise _invalid(
                        name,
                        "the lab takes replace of /spec/template and add, replace or remove of"
                        f" {_ANNOTATIONS}[/<key>] only, got {op!r}",
                    )
            _check_annotations(annotations, _KIND, _RESOURCE, name)
        else:
            metadata, spec = patch.get("metadata") or {}, patch.get("spec") or {}
            unknown = sorted(
                [k for k in patch if k not in ("metadata", "spec")]
                + [f"metadata.{k}" for k in metadata if k not in ("annotations", "resourceVersion")]
                + [f"spec.{k}" for k in spec if k not in ("replicas", "template")]
            )
            if unknown:
                raise _invalid(name, f"unsupported deployment field(s) {unknown}")
            _check_resource_version(metadata, self._to_v1_deployment(dep), _RESOURCE, name)
            if "replicas" in spec:
                replicas = _int_field(spec["replicas"], "spec.replicas", 0, "Deployment", name)
            if "template" in spec:
                template = self._patched_template(dep, spec["template"], replace=False)
            annotations = _merged_annotations(annotations, metadata, _KIND, _RESOURCE, name)
        # The revision annotation belongs to the deployment controller.
        dep.annotations = {k: v for k, v in annotations.items() if k != REVISION}
        if (replicas, template) != (dep.replicas, dep.current.template):
            dep.replicas = replicas
            if template != dep.current.template:
                image, restarted = template
                self._cluster.roll_out(dep, image, self._now(), restarted)
            dep.generation += 1
            self._cluster.reconcile(self._now())
        return self._to_v1_deployment(dep)

    def _patched_template(
        self, dep: Deployment, template: Any, *, replace: bool
    ) -> tuple[str, str | None]:
        """The image and restart stamp a patched pod template asks for; ``replace``: the whole
        template is given, else it is merged into the current one.

        Container ports and resources are fixed in the lab and ignored; any other template
        change is refused rather than dropped, and the pod-template-hash label is ignored.
        """
        if not isinstance(template, dict):
            raise _invalid(dep.name, f"spec.template: Invalid value: {template!r}")
        metadata, spec = template.get("metadata") or {}, template.get("spec") or {}
        notes = metadata.get("annotations") or {}
        unknown = sorted(
            [k for k in template if k not in ("metadata", "spec")]
            + [f"metadata.{k}" for k in metadata if k not in ("labels", "annotations")]
            + [f"metadata.annotations.{k}" for k in notes if k != RESTARTED_AT]
            + [f"spec.{k}" for k in spec if k != "containers"]
        )
        if unknown:
            raise _invalid(
                dep.name,
                f"spec.template: the lab only changes the image and {RESTARTED_AT}: {unknown}",
            )
        restarted = notes.get(RESTARTED_AT, None if replace else dep.current.restarted_at)
        if restarted is not None and not isinstance(restarted, str):
            raise _invalid(dep.name, f"spec.template.metadata.annotations: {restarted!r}")
        return self._template_image(dep, metadata, spec, replace=replace), restarted

    def _template_image(
        self, dep: Deployment, metadata: dict[str, Any], spec: dict[str, Any], *, replace: bool
    ) -> str:
        """The image of a patched template's ``metadata`` and ``spec`` (its labels checked)."""
        labels = {k: v for k, v in (metadata.get("labels") or {}).items() if k != _HASH_LABEL}
        if (replace or "labels" in metadata) and labels != {"app": dep.name}:
            raise _invalid(
                dep.name,
                f"spec.template.metadata.labels: Invalid value: {labels!r}:"
                " `selector` does not match template `labels`",
            )
        containers = spec.get("containers")
        if containers is None and not replace:
            return dep.current.image
        if not (
            isinstance(containers, list)
            and len(containers) == 1
            and isinstance(containers[0], dict)
            and containers[0].get("name") == dep.name
        ):
            raise _invalid(
                dep.name, f"spec.template.spec.containers: the lab runs one, {dep.name!r}"
            )
        image = containers[0].get("image", None if replace else dep.current.image)
        if not isinstance(image, str) or not image:
            raise _invalid(dep.name, "spec.template.spec.containers[0].image: Required value")
        return image

    def _to_v1_scale(self, dep: Deployment) -> client.V1Scale:
        meta = self._meta(dep.name, dep.uid, dep.created_at, {"app": dep.name})
        # The scale subresource is a view of the Deployment, at its resourceVersion.
        dep_meta = self._to_v1_deployment(dep).metadata
        assert dep_meta is not None
        meta.resource_version = dep_meta.resource_version
        return client.V1Scale(
            api_version="autoscaling/v1",
            kind="Scale",
            metadata=meta,
            spec=client.V1ScaleSpec(replicas=dep.replicas),
            status=client.V1ScaleStatus(
                replicas=len(self._cluster.service_pods[dep.service]), selector=f"app={dep.name}"
            ),
        )

    def read_namespaced_deployment_scale(self, name: str, namespace: str) -> client.V1Scale:
        return self._to_v1_scale(self._deployment(name, namespace))

    def patch_namespaced_deployment_scale(
        self, name: str, namespace: str, body: Any, _content_type: str | None = None
    ) -> client.V1Scale:
        """``{"spec": {"replicas": n}}``; an HPA on the Deployment may override it later."""
        dep = self._deployment(name, namespace)
        spec = _merge_patch(body, _content_type, "deployments.apps", name).get("spec") or {}
        unknown = set(spec) - {"replicas"}
        if unknown:
            raise _error(422, f"unsupported scale field(s) {sorted(unknown)}", "scale", name)
        replicas = _int_field(spec.get("replicas", dep.replicas), "spec.replicas", 0, "Scale", name)
        if replicas != dep.replicas:
            dep.replicas = replicas
            dep.generation += 1
            self._cluster.reconcile(self._now())
        return self._to_v1_scale(dep)

    def _to_v1_replica_set(
        self, dep: Deployment, rs: ReplicaSet, counts: _Counts | None = None
    ) -> client.V1ReplicaSet:
        """``counts``: ``Cluster.replica_set_pods`` now, when the caller has them."""
        pods, ready = counts or self._cluster.replica_set_pods(self._now())
        index = dep.replica_sets.index(rs)
        status = (pods[dep.service][index], ready[dep.service][index])
        # Old ReplicaSets keep their pods until the current one is Ready, then go to zero.
        desired = dep.replicas if rs is dep.current else status[0]
        key = (rs.revision, desired, status)
        return self._revisions.served(
            rs.uid, key, lambda: self._render_replica_set(dep, rs, desired, *status)
        )

    def _render_replica_set(
        self, dep: Deployment, rs: ReplicaSet, desired: int, pods: int, ready: int
    ) -> client.V1ReplicaSet:
        labels = {"app": dep.name, _HASH_LABEL: rs.template_hash}
        meta = self._meta(f"{dep.name}-{rs.template_hash}", rs.uid, rs.created_at, labels)
        meta.annotations = {REVISION: str(rs.revision)}
        meta.owner_references = [
            client.V1OwnerReference(
                api_version="apps/v1",
                kind="Deployment",
                name=dep.name,
                uid=dep.uid,
                controller=True,
                block_owner_deletion=True,
            )
        ]
        return client.V1ReplicaSet(
            api_version="apps/v1",
            kind="ReplicaSet",
            metadata=meta,
            spec=client.V1ReplicaSetSpec(
                replicas=desired,
                selector=client.V1LabelSelector(match_labels=labels),
                template=self._template(dep, rs, labels),
            ),
            status=client.V1ReplicaSetStatus(
                replicas=pods,
                fully_labeled_replicas=pods,
                ready_replicas=ready,
                available_replicas=ready,
            ),
        )

    def list_namespaced_replica_set(
        self, namespace: str, label_selector: str | None = None
    ) -> client.V1ReplicaSetList:
        terms = parse_label_selector(label_selector or "")
        items = []
        if namespace == self._namespace:
            counts = self._cluster.replica_set_pods(self._now())
            items = [
                self._to_v1_replica_set(dep, rs, counts)
                for dep in self._cluster.deployments.values()
                for rs in dep.replica_sets
                if _matches({"app": dep.name, _HASH_LABEL: rs.template_hash}, terms)
            ]
        return client.V1ReplicaSetList(
            api_version="apps/v1",
            kind="ReplicaSetList",
            metadata=self._revisions.list_meta(),
            items=items,
        )

    def read_namespaced_replica_set(self, name: str, namespace: str) -> client.V1ReplicaSet:
        self._check_namespace(namespace, "replicasets.apps", name)
        for dep in self._cluster.deployments.values():
            for rs in dep.replica_sets:
                if f"{dep.name}-{rs.template_hash}" == name:
                    return self._to_v1_replica_set(dep, rs)
        raise _error(404, f'replicasets.apps "{name}" not found', "replicasets", name)
