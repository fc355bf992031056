"""The lab's PolicyV1Api (PodDisruptionBudgets), ApiextensionsV1Api and CustomObjectsApi, and
``FakeKubernetes``, which hands out every fake API (``NetworkingV1Api`` is ``lab._kube_net``'s,
``CoordinationV1Api`` ``lab._kube_leases``').

Budgets are evaluated live by the cluster's disruption controller (``Cluster.pdb_status``);
custom objects (Argo CD Applications) are plain dicts kept per CRD, as the real client returns
them, with the API server's metadata bookkeeping (uid, resourceVersion, generation). Every API
of one ``FakeKubernetes`` draws resourceVersions from one revision counter, as they would from
one etcd, and counts its calls, so that a test can sum the calls made without a timeout.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from contracts import KubeClients, SimClock
from lab._cluster import Cluster, Pdb
from lab._database import database_services
from lab._graph import CallGraph
from lab._kube import (
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    FakeCoreV1Api,
    _Api,
    _body_dict,
    _Counted,
    _error,
    _merge_patch,
    _Revisions,
    _sent_content_type,
    _status_success,
    _utc,
)
from lab._kube_apps import FakeAppsV1Api
from lab._kube_autoscaling import FakeAutoscalingV2Api
from lab._kube_leases import FakeCoordinationV1Api
from lab._kube_net import (
    FakeNetworkingV1Api,
    NamespacedObjects,
    _json_merge,
    check_config_map,
    check_ingress,
    check_service,
    entry_ingress,
    seeded_uid,
    service_config_map,
)
from lab._pods import Pod
from lab._settings import LabSettings

_PERCENT = re.compile(r"^[0-9]+%$")
_PDBS = "poddisruptionbudgets.policy"
_APPROVED = "api-approved.kubernetes.io"


def _protected(group: str) -> bool:
    """Kubernetes' own API groups: a CRD in one needs an approved API review."""
    return any(group == g or group.endswith(f".{g}") for g in ("k8s.io", "kubernetes.io"))


def _pdb_value(value: Any, field: str, name: str) -> int | str | None:
    """minAvailable / maxUnavailable: a non-negative int or a percentage up to 100 %."""
    if value is None:
        return None
    count = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    percent = isinstance(value, str) and _PERCENT.match(value) and int(value[:-1]) <= 100
    if not (count or percent):
        raise _error(422, f"spec.{field}: Invalid value: {value!r}", _PDBS, name)
    return value


class FakePolicyV1Api(_Api):
    """The subset of ``kubernetes.client.PolicyV1Api`` the actuators use: PodDisruptionBudgets."""

    def _pdb(self, name: str, namespace: str) -> Pdb:
        self._check_namespace(namespace, _PDBS, name)
        pdb = self._cluster.pdbs.get(name)
        if pdb is None:
            raise _error(404, f'{_PDBS} "{name}" not found', "poddisruptionbudgets", name)
        return pdb

    def _to_v1_pdb(self, pdb: Pdb) -> client.V1PodDisruptionBudget:
        status = self._cluster.pdb_status(pdb, self._now())
        meta = self._meta(pdb.name, pdb.uid, pdb.created_at, pdb.labels or None)
        meta.generation = 1
        selector = None
        if pdb.match_labels is not None:
            selector = client.V1LabelSelector(match_labels=pdb.match_labels)
        model = client.V1PodDisruptionBudget(
            api_version="policy/v1",
            kind="PodDisruptionBudget",
            metadata=meta,
            spec=client.V1PodDisruptionBudgetSpec(
                min_available=pdb.min_available,
                max_unavailable=pdb.max_unavailable,
                selector=selector,
            ),
            status=client.V1PodDisruptionBudgetStatus(
                current_healthy=status.current_healthy,
                desired_healthy=status.desired_healthy,
                expected_pods=status.expected_pods,
                disruptions_allowed=status.disruptions_allowed,
                observed_generation=1,
            ),
        )
        self._revisions.stamp(model)
        return model

    def create_namespaced_pod_disruption_budget(
        self, namespace: str, body: Any
    ) -> client.V1PodDisruptionBudget:
        """A budget over the pods ``spec.selector.matchLabels`` selects.

        Exactly one of ``minAvailable`` / ``maxUnavailable`` (an int or "N%").
        """
        data = _body_dict(body)
        metadata, spec = data.get("metadata") or {}, data.get("spec") or {}
        name = metadata.get("name")
        if not isinstance(name, str) or not name:
            raise _error(
                422, "metadata.name: Required value: name or generateName is required", _PDBS, ""
            )
        if namespace != self._namespace:
            raise _error(404, f'namespaces "{namespace}" not found', "namespaces", namespace)
        if name in self._cluster.pdbs:
            raise _error(409, f'{_PDBS} "{name}" already exists', "poddisruptionbudgets", name)
        unknown = sorted(set(spec) - {"selector", "minAvailable", "maxUnavailable"})
        selector = spec.get("selector")
        if unknown or (selector is not None and set(selector) - {"matchLabels"}):
            raise _error(
                422, f"the lab supports matchLabels budgets only, got {spec!r}", _PDBS, name
            )
        low = _pdb_value(spec.get("minAvailable"), "minAvailable", name)
        high = _pdb_value(spec.get("maxUnavailable"), "maxUnavailable", name)
        if (low is None) == (high is None):
            raise _error(
                422, "spec: exactly one of minAvailable and maxUnavailable must be set", _PDBS, name
            )
        pdb = Pdb(
            name=name,
            uid=self._cluster.new_uid(),
            created_at=self._now(),
            labels=dict(metadata.get("labels") or {}),
            match_labels=None if selector is None else dict(selector.get("matchLabels") or {}),
            min_available=low,
            max_unavailable=high,
        )
        self._cluster.pdbs[name] = pdb
        return self._to_v1_pdb(pdb)

    def read_namespaced_pod_disruption_budget(
        self, name: str, namespace: str
    ) -> client.V1PodDisruptionBudget:
        return self._to_v1_pdb(self._pdb(name, namespace))

    def list_namespaced_pod_disruption_budget(
        self, namespace: str
    ) -> client.V1PodDisruptionBudgetList:
        items = []
        if namespace == self._namespace:
            items = [self._to_v1_pdb(p) for p in self._cluster.pdbs.values()]
        return client.V1PodDisruptionBudgetList(
            api_version="policy/v1",
            kind="PodDisruptionBudgetList",
            metadata=self._revisions.list_meta(),
            items=items,
        )

    def delete_namespaced_pod_disruption_budget(self, name: str, namespace: str) -> client.V1Status:
        pdb = self._pdb(name, namespace)
        del self._cluster.pdbs[name]
        self._revisions.forget(pdb.uid)
        return _status_success(name, "policy", "poddisruptionbudgets", pdb.uid)


@dataclass
class _Crd:
    body: dict[str, Any]
    group: str
    plural: str
    kind: str
    namespaced: bool
    versions: frozenset[str]
    """The served version names."""
    status_subresource: bool
    objects: dict[tuple[str, str], dict[str, Any]]
    """(namespace, name) -> the stored object."""


class _CustomStore:
    """CRDs and their objects, shared by the apiextensions and custom-objects APIs."""

    def __init__(self, cluster: Cluster, clock: SimClock, revisions: _Revisions) -> None:
        self.cluster = cluster
        self.clock = clock
        self.revisions = revisions
        self.crds: dict[str, _Crd] = {}

    def timestamp(self) -> str:
        return _utc(self.clock.now().timestamp()).strftime("%Y-%m-%dT%H:%M:%SZ")


def _without_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != "metadata"}


class FakeApiextensionsV1Api(_Counted):
    """The subset of ``kubernetes.client.ApiextensionsV1Api`` needed to install a CRD."""

    def __init__(self, store: _CustomStore) -> None:
        super().__init__()
        self._store = store

    def _to_model(self, crd: _Crd) -> client.V1CustomResourceDefinition:
        # The real server establishes a CRD within moments; here at once.
        conditions = [
            {"type": kind, "status": "True", "reason": reason}
            for kind, reason in (
                ("NamesAccepted", "NoConflicts"),
                ("Established", "InitialNamesAccepted"),
            )
        ]
        names = crd.body["spec"]["names"]
        model = client.V1CustomResourceDefinition.from_dict(
            {**crd.body, "status": {"conditions": conditions, "acceptedNames": names}}
        )
        assert model is not None  # from_dict maps only None to None
        return model

    def create_custom_resource_definition(self, body: Any) -> client.V1CustomResourceDefinition:
        """Serve ``spec.group`` / each served version / ``spec.names.plural``."""
        return self._create(body, None)

    def _create(self, body: Any, uid: str | None) -> client.V1CustomResourceDefinition:
        """The create; a given ``uid`` is the lab installing a CRD of its own at start (not
        counted, and drawing no uid from the estate's random stream)."""
        data = copy.deepcopy(_body_dict(body))
        name = (data.get("metadata") or {}).get("name") or ""
        spec = data.get("spec") or {}
        names = spec.get("names") or {}
        group, plural, kind = spec.get("group"), names.get("plural"), names.get("kind")
        versions = spec.get("versions") or []
        kinds = "customresourcedefinitions.apiextensions.k8s.io"
        if not (
            isinstance(group, str)
            and isinstance(plural, str)
            and isinstance(kind, str)
            and spec.get("scope") in ("Namespaced", "Cluster")
            and versions
            and all(isinstance(v, dict) and isinstance(v.get("name"), str) for v in versions)
        ):
            raise _error(422, f"{kinds} {name!r} is invalid: spec: {spec!r}", kinds, name)
        if name != f"{plural}.{group}":
            raise _error(
                422,
                f"{kinds} {name!r} is invalid: metadata.name: Invalid value: {name!r}:"
                ' must be spec.names.plural+"."+spec.group',
                kinds,
                name,
            )
        approval = ((data.get("metadata") or {}).get("annotations") or {}).get(_APPROVED)
        if _protected(group) and not approval:
            raise _error(
                422,
                f"{kinds} {name!r} is invalid: metadata.annotations[{_APPROVED}]: Required value:"
                f' protected groups must have approval annotation "{_APPROVED}"',
                kinds,
                name,
            )
        if name in self._store.crds:
            raise _error(409, f'{kinds} "{name}" already exists', "customresourcedefinitions", name)
        data.setdefault("apiVersion", "apiextensions.k8s.io/v1")
        data.setdefault("kind", "CustomResourceDefinition")
        data["metadata"].update(
            uid=uid or self._store.cluster.new_uid(),
            creationTimestamp=self._store.timestamp(),
            resourceVersion=self._store.revisions.write(),
            generation=1,
        )
        crd = _Crd(
            body=data,
            group=group,
            plural=plural,
            kind=kind,
            namespaced=spec["scope"] == "Namespaced",
            versions=frozenset(v["name"] for v in versions if v.get("served")),
            status_subresource=any("status" in (v.get("subresources") or {}) for v in versions),
            objects={},
        )
        self._store.crds[name] = crd
        return self._to_model(crd)

    def read_custom_resource_definition(self, name: str) -> client.V1CustomResourceDefinition:
        crd = self._store.crds.get(name)
        if crd is None:
            raise _error(
                404,
                f'customresourcedefinitions.apiextensions.k8s.io "{name}" not found',
                "customresourcedefinitions",
                name,
            )
        return self._to_model(crd)


class FakeCustomObjectsApi(_Counted):
    """The namespaced half of ``kubernetes.client.CustomObjectsApi``; objects are dicts.

    Any namespace is accepted (Argo CD's is ``argocd``).
    """

    def __init__(self, store: _CustomStore) -> None:
        super().__init__()
        self._store = store

    def _crd(self, group: str, version: str, plural: str) -> _Crd:
        crd = self._store.crds.get(f"{plural}.{group}")
        if crd is None or version not in crd.versions or not crd.namespaced:
            raise _error(404, "the server could not find the requested resource", plural, "")
        return crd

    def _object(
        self, group: str, version: str, namespace: str, plural: str, name: str
    ) -> tuple[_Crd, dict[str, Any]]:
        crd = self._crd(group, version, plural)
        obj = crd.objects.get((namespace, name))
        if obj is None:
            raise _error(404, f'{plural}.{group} "{name}" not found', plural, name)
        return crd, obj

    @staticmethod
    def _served(obj: dict[str, Any], group: str, version: str) -> dict[str, Any]:
        """A copy in the requested version (the lab stores one shape for every version)."""
        return {**copy.deepcopy(obj), "apiVersion": f"{group}/{version}"}

    def create_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, body: Any
    ) -> dict[str, Any]:
        return self._create(group, version, namespace, plural, body, None)

    def _create(
        self, group: str, version: str, namespace: str, plural: str, body: Any, uid: str | None
    ) -> dict[str, Any]:
        """The create; a given ``uid`` is the lab's own object, as for its CRDs."""
        crd = self._crd(group, version, plural)
        obj = copy.deepcopy(_body_dict(body))
        metadata = obj.setdefault("metadata", {})
        name = metadata.get("name")
        resource = f"{plural}.{group}"
        if obj.get("apiVersion") != f"{group}/{version}" or obj.get("kind") != crd.kind:
            raise _error(
                400,
                f"the API version and kind in the data ({obj.get('apiVersion')},"
                f" {obj.get('kind')}) do not match the expected ({group}/{version}, {crd.kind})",
                plural,
                name or "",
            )
        if metadata.get("namespace", namespace) != namespace:
            raise _error(
                400,
                "the namespace of the provided object does not match the namespace sent on the"
                " request",
                plural,
                name or "",
            )
        if not isinstance(name, str) or not name:
            raise _error(
                422, "metadata.name: Required value: name or generateName is required", plural, ""
            )
        if (namespace, name) in crd.objects:
            raise _error(409, f'{resource} "{name}" already exists', plural, name)
        if crd.status_subresource:
            obj.pop("status", None)  # written through /status only
        metadata.update(
            namespace=namespace,
            uid=uid or self._store.cluster.new_uid(),
            creationTimestamp=self._store.timestamp(),
            resourceVersion=self._store.revisions.write(),
            generation=1,
        )
        crd.objects[namespace, name] = obj
        return self._served(obj, group, version)

    def _stored(self, group: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object as stored now, or None: the lab's own read of its state (an upstream's
        route), not an API call, so neither counted nor copied; do not change it."""
        crd = self._store.crds.get(f"{plural}.{group}")
        return None if crd is None else crd.objects.get((namespace, name))

    def get_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str
    ) -> dict[str, Any]:
        _, obj = self._object(group, version, namespace, plural, name)
        return self._served(obj, group, version)

    def list_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str
    ) -> dict[str, Any]:
        crd = self._crd(group, version, plural)
        items = [
            self._served(obj, group, version)
            for (ns, _), obj in crd.objects.items()
            if ns == namespace
        ]
        return {
            "apiVersion": f"{group}/{version}",
            "kind": f"{crd.kind}List",
            "metadata": {"resourceVersion": str(self._store.revisions.revision)},
            "items": items,
        }

    def patch_namespaced_custom_object(
        self,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        name: str,
        body: Any,
        _content_type: str | None = None,
    ) -> dict[str, Any]:
        """A JSON merge patch (the client's default for custom objects).

        Custom resources take no strategic merge patch (415), which is also what a dict sent as
        a JSON patch becomes in the client. As on the server, a change
        outside ``metadata`` bumps ``metadata.generation``, and ``status`` is left alone when
        the CRD has a status subresource.
        """
        crd, obj = self._object(group, version, namespace, plural, name)
        if _sent_content_type(body, _content_type, MERGE_PATCH) == STRATEGIC_MERGE_PATCH:
            raise _error(
                415, "strategic merge patch is not supported for custom resources", plural, name
            )
        patch = _merge_patch(body, _content_type or MERGE_PATCH, plural, name)
        merged = _json_merge(copy.deepcopy(obj), patch)
        # Identity and bookkeeping belong to the server, which drops emptied maps (omitempty).
        merged["apiVersion"], merged["kind"] = obj["apiVersion"], obj["kind"]
        server = ("name", "namespace", "uid", "creationTimestamp", "generation", "resourceVersion")
        merged["metadata"] = {
            **{k: v for k, v in (merged.get("metadata") or {}).items() if v != {}},
            **{k: obj["metadata"][k] for k in server},
        }
        if crd.status_subresource:
            merged.pop("status", None)
            if "status" in obj:
                merged["status"] = copy.deepcopy(obj["status"])
        if merged != obj:
            if _without_metadata(merged) != _without_metadata(obj):
                merged["metadata"]["generation"] += 1
            merged["metadata"]["resourceVersion"] = self._store.revisions.write()
            crd.objects[namespace, name] = merged
        return self._served(crd.objects[namespace, name], group, version)

    def delete_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str
    ) -> dict[str, Any]:
        crd, obj = self._object(group, version, namespace, plural, name)
        del crd.objects[namespace, name]
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {
                "name": name,
                "group": group,
                "kind": plural,
                "uid": obj["metadata"]["uid"],
            },
        }


class FakeKubernetes:
    """The lab's Kubernetes API, one attribute per ``kubernetes.client`` API class."""

    def __init__(self, cluster: Cluster, clock: SimClock, settings: LabSettings) -> None:
        self._revisions = revisions = _Revisions()
        # A bound method, not a closure, so that a deep copy of the lab forgets in its own copy.
        cluster.on_pod_removed.append(self._pod_removed)
        namespace = settings.topology.namespace
        where = (namespace, clock, revisions, cluster.new_uid)
        services = NamespacedObjects(
            client.V1Service,
            client.V1ServiceList,
            "v1",
            "Service",
            "services",
            *where,
            check=check_service,
            generation=False,
        )
        ingresses = NamespacedObjects(
            client.V1Ingress,
            client.V1IngressList,
            "networking.k8s.io/v1",
            "Ingress",
            "ingresses.networking.k8s.io",
            *where,
            check=check_ingress,
            generation=True,
        )
        config_maps = NamespacedObjects(
            client.V1ConfigMap,
            client.V1ConfigMapList,
            "v1",
            "ConfigMap",
            "configmaps",
            *where,
            check=check_config_map,
            generation=False,
        )
        for svc in settings.topology.services:
            body = service_config_map(svc.name)
            uid = seeded_uid("configmaps", namespace, body["metadata"]["name"])
            config_maps.create(namespace, body, uid=uid, field_manager="helm")
        # One Ingress in front of each service external traffic enters, as a real estate has.
        graph = CallGraph(settings.topology.services)
        for entry in (graph.names[i] for i in graph.entries):
            uid = seeded_uid("ingresses", namespace, entry)
            ingresses.create(namespace, entry_ingress(entry, namespace), uid=uid)
        # The ExternalName Services the application reaches each database through.
        for database in settings.topology.databases:
            region = settings.topology.region
            for body in database_services(database, namespace, region):
                uid = seeded_uid("services", namespace, body["metadata"]["name"])
                services.create(namespace, body, uid=uid)
        self.core_v1 = FakeCoreV1Api(
            cluster, clock, settings, revisions, services=services, config_maps=config_maps
        )
        self.apps_v1 = FakeAppsV1Api(cluster, clock, settings, revisions)
        self.autoscaling_v2 = FakeAutoscalingV2Api(cluster, clock, settings, revisions)
        self.policy_v1 = FakePolicyV1Api(cluster, clock, settings, revisions)
        store = _CustomStore(cluster, clock, revisions)
        self.apiextensions_v1 = FakeApiextensionsV1Api(store)
        self.custom_objects = FakeCustomObjectsApi(store)
        self.networking_v1 = FakeNetworkingV1Api(ingresses)
        self.coordination_v1 = FakeCoordinationV1Api(cluster, clock)

    def clients(self) -> KubeClients:
        """The API objects as the ``KubeClients`` every actuator and the loop take."""
        return KubeClients(
            self.core_v1,
            self.apps_v1,
            self.autoscaling_v2,
            self.policy_v1,
            self.custom_objects,
            self.networking_v1,
            self.coordination_v1,
        )

    def _pod_removed(self, pod: Pod, _t: float) -> None:
        self._revisions.forget(pod.uid)

    def _apis(self) -> tuple[_Counted, ...]:
        return (
            self.core_v1,
            self.apps_v1,
            self.autoscaling_v2,
            self.policy_v1,
            self.apiextensions_v1,
            self.custom_objects,
            self.networking_v1,
            self.coordination_v1,
        )

    def calls(self) -> int:
        """API calls made so far, through any of the APIs."""
        return sum(api.calls for api in self._apis())

    def calls_without_timeout(self) -> int:
        """Of those, the calls made without a ``_request_timeout``."""
        return sum(api.calls_without_timeout for api in self._apis())
