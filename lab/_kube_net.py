"""The lab's Services, Ingresses and ConfigMaps: plain objects the API keeps as they were written.

Unlike pods or Deployments, which the lab's controllers change every tick, a Service (the
``ExternalName`` one a database is reached through) or an Ingress (whose ingress-nginx
annotations rate-limit a service) only changes when someone writes it. So they are stored as
the camelCase JSON the client sends, with the API server's bookkeeping (uid, creationTimestamp,
resourceVersion from the shared revision counter, generation where the kind has one), and
served as the official client's models. ``FakeCoreV1Api`` serves the Services
(``lab._kube``), :class:`FakeNetworkingV1Api` the Ingresses; ``FakeKubernetes`` creates one
Ingress per entry service at start, and the estate's traffic model reads the limit set on it
(:meth:`FakeNetworkingV1Api.limit_rps`) without making an API call. Each service reads its
settings from a ConfigMap (``<service>-config``, in its containers' ``envFrom``); every write
keeps ``metadata.managedFields`` as the API server does: who changed the object, and when.
"""

from __future__ import annotations

import builtins
import copy
import math
import re
import uuid
from collections.abc import Callable
from typing import Any

from kubernetes import client

from contracts import SimClock
from lab._kube import (
    _body_dict,
    _check_resource_version,
    _Counted,
    _error,
    _matches,
    _merge_patch,
    _merged_annotations,
    _Revisions,
    _utc,
    parse_label_selector,
)

#: ingress-nginx's per-client request rate limit (requests per second).
LIMIT_RPS = "nginx.ingress.kubernetes.io/limit-rps"
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SERVER_METADATA = (
    "name",
    "namespace",
    "uid",
    "creationTimestamp",
    "resourceVersion",
    "managedFields",
)


def _json_merge(target: Any, patch: Any) -> Any:
    """RFC 7386: None deletes a key, objects merge, anything else (lists too) replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _json_merge(merged.get(key), value)
    return merged


class NamespacedObjects:
    """Objects of one built-in kind, as written, in the lab's namespace.

    ``check(obj)`` validates (and defaults) a whole object before every write, raising the
    API's 422 for an invalid one, as the kind's strategy does on the server.
    """

    def __init__(
        self,
        model: type[Any],
        list_model: type[Any],
        api_version: str,
        kind: str,
        resource: str,
        namespace: str,
        clock: SimClock,
        revisions: _Revisions,
        new_uid: Callable[[], str],
        check: Callable[[dict[str, Any]], None],
        generation: bool,
    ) -> None:
        self._model, self._list_model = model, list_model
        self._api_version, self._kind, self._resource = api_version, kind, resource
        self._namespace = namespace
        self._clock, self._revisions, self._new_uid = clock, revisions, new_uid
        self._check, self._generation = check, generation
        self.objects: dict[str, dict[str, Any]] = {}
        """name -> the stored object (camelCase JSON)."""
        self.writes = 0
        """Writes so far (a reader caches what it derives until this moves)."""
        self._models: dict[str, tuple[str, Any]] = {}
        """name -> (resourceVersion, the model served for it): a list every tick renders
        only what was written since (the loop lists ConfigMaps each tick)."""

    @property
    def namespace(self) -> str:
        """The namespace the objects live in."""
        return self._namespace

    def _serve(self, obj: dict[str, Any]) -> Any:
        """The client's model of ``obj``, rendered once per resourceVersion (readers do not
        change what they are served, as with the lab's pods)."""
        meta = obj["metadata"]
        hit = self._models.get(meta["name"])
        if hit is not None and hit[0] == meta["resourceVersion"]:
            return hit[1]
        model = self._model.from_dict(copy.deepcopy(obj))
        self._models[meta["name"]] = (meta["resourceVersion"], model)
        return model

    def _get(self, name: str, namespace: str) -> dict[str, Any]:
        obj = self.objects.get(name) if namespace == self._namespace else None
        if obj is None:
            raise _error(404, f'{self._resource} "{name}" not found', self._resource, name)
        return obj

    def read(self, name: str, namespace: str) -> Any:
        return self._serve(self._get(name, namespace))

    def list(self, namespace: str, label_selector: str | None) -> Any:
        terms = parse_label_selector(label_selector or "")
        items = [
            self._serve(obj)
            for obj in (self.objects.values() if namespace == self._namespace else [])
            if _matches((obj["metadata"].get("labels") or {}), terms)
        ]
        return self._list_model(
            api_version=self._api_version,
            kind=f"{self._kind}List",
            metadata=self._revisions.list_meta(),
            items=items,
        )

    def _managed(
        self,
        metadata: dict[str, Any],
        manager: str | None,
        operation: str,
        at: float | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """``metadata.managedFields`` after a write by ``manager`` at ``at`` (epoch seconds;
        default now): the server keeps one entry per manager with the time of its last change
        (what ``kubectl`` shows as who changed an object when)."""
        manager = manager or "unknown"
        kept = [m for m in metadata.get("managedFields") or [] if m.get("manager") != manager]
        t = self._clock.now().timestamp() if at is None else at
        now = _utc(t).strftime("%Y-%m-%dT%H:%M:%SZ")
        entry = {
            "manager": manager,
            "operation": operation,
            "apiVersion": self._api_version,
            "time": now,
            "fieldsType": "FieldsV1",
        }
        return [*kept, entry]

    def create(
        self,
        namespace: str,
        body: Any,
        uid: str | None = None,
        field_manager: str | None = None,
    ) -> Any:
        """Store ``body`` under its ``metadata.name``; 409 if taken, 404 outside the namespace."""
        obj = copy.deepcopy(_body_dict(body))
        metadata = obj.setdefault("metadata", {})
        name = metadata.get("name")
        if not isinstance(name, str) or not (len(name) <= 253 and _DNS_SUBDOMAIN.match(name)):
            raise _error(
                422,
                f"{self._kind} {name!r} is invalid: metadata.name: must be a DNS subdomain",
                self._resource,
                str(name or ""),
            )
        if namespace != self._namespace or metadata.get("namespace", namespace) != namespace:
            raise _error(404, f'namespaces "{namespace}" not found', "namespaces", namespace)
        if name in self.objects:
            raise _error(409, f'{self._resource} "{name}" already exists', self._resource, name)
        metadata["annotations"] = (
            _merged_annotations({}, metadata, self._kind, self._resource, name) or None
        )
        obj.update(apiVersion=self._api_version, kind=self._kind)
        obj.setdefault("status", {"loadBalancer": {}})
        self._check(obj)
        metadata.update(
            namespace=namespace,
            uid=uid or self._new_uid(),
            creationTimestamp=_utc(self._clock.now().timestamp()).strftime("%Y-%m-%dT%H:%M:%SZ"),
            resourceVersion=self._revisions.write(),
            managedFields=self._managed({}, field_manager, "Update"),
        )
        if self._generation:
            metadata["generation"] = 1
        self.objects[name] = {**obj, "metadata": {k: v for k, v in metadata.items() if v}}
        self.writes += 1
        return self._serve(self.objects[name])

    def patch(
        self,
        name: str,
        namespace: str,
        body: Any,
        content_type: str | None,
        field_manager: str | None = None,
        at: float | None = None,
    ) -> Any:
        """A merge patch (a strategic one is read as a merge patch: the lab keeps no patch
        strategies); ``metadata.resourceVersion`` in it is a precondition."""
        current = self._get(name, namespace)
        patch = _merge_patch(body, content_type, self._resource, name)
        metadata = patch.get("metadata") or {}
        _check_resource_version(metadata, self._serve(current), self._resource, name)
        annotations = _merged_annotations(
            current["metadata"].get("annotations") or {},
            metadata,
            self._kind,
            self._resource,
            name,
        )
        merged = _json_merge(copy.deepcopy(current), patch)
        server = {k: current["metadata"][k] for k in _SERVER_METADATA}
        merged["metadata"] = {
            **{k: v for k, v in (merged.get("metadata") or {}).items() if v not in ({}, None)},
            **server,
            "annotations": annotations or None,
        }
        merged["metadata"] = {k: v for k, v in merged["metadata"].items() if v is not None}
        merged["apiVersion"], merged["kind"] = self._api_version, self._kind
        self._check(merged)
        if merged != current:
            if self._generation:
                spec_changed = merged.get("spec") != current.get("spec")
                merged["metadata"]["generation"] = current["metadata"]["generation"] + int(
                    spec_changed
                )
            merged["metadata"]["resourceVersion"] = self._revisions.write()
            merged["metadata"]["managedFields"] = self._managed(
                current["metadata"], field_manager, "Update", at
            )
            self.objects[name] = merged
            self.writes += 1
        return self._serve(self.objects[name])


def _invalid(kind: str, name: str, resource: str, detail: str) -> Exception:
    return _error(422, f'{kind} "{name}" is invalid: {detail}', resource, name)


def check_service(obj: dict[str, Any]) -> None:
    """The Service strategy's defaults and the checks the lab's users can trip: an
    ExternalName Service needs a DNS name and has no cluster IP; other types get one."""
    name = obj["metadata"].get("name", "")
    spec = obj.setdefault("spec", {})
    kind = spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if kind == "ExternalName":
        external = spec.get("externalName")
        if not isinstance(external, str) or not _DNS_SUBDOMAIN.match(external.lower()):
            raise _invalid(
                "Service", name, "services", f"spec.externalName: Invalid value: {external!r}"
            )
        if spec.get("clusterIP"):
            raise _invalid(
                "Service", name, "services", "spec.clusterIP: must be empty for ExternalName"
            )
    elif kind in ("ClusterIP", "NodePort", "LoadBalancer"):
        if not spec.get("ports"):
            raise _invalid("Service", name, "services", "spec.ports: Required value")
        digest = int(uuid.uuid5(uuid.NAMESPACE_DNS, name).hex[:4], 16)
        spec.setdefault("clusterIP", f"10.96.{digest >> 8}.{digest & 0xFF}")
    else:
        raise _invalid("Service", name, "services", f"spec.type: Unsupported value: {kind!r}")


def check_ingress(obj: dict[str, Any]) -> None:
    """An Ingress routes somewhere: a default backend or rules."""
    spec = obj.get("spec") or {}
    if not (spec.get("defaultBackend") or spec.get("rules")):
        raise _invalid(
            "Ingress",
            obj["metadata"].get("name", ""),
            "ingresses.networking.k8s.io",
            "spec: Invalid value: either `defaultBackend` or `rules` must be specified",
        )


def _backends(ingress: dict[str, Any]) -> set[str]:
    """The names of the Services an Ingress sends requests to."""
    spec = ingress.get("spec") or {}
    refs = [spec.get("defaultBackend") or {}]
    for rule in spec.get("rules") or []:
        refs += [path.get("backend") or {} for path in (rule.get("http") or {}).get("paths") or []]
    return {ref["service"]["name"] for ref in refs if (ref.get("service") or {}).get("name")}


def _rps(value: Any) -> float | None:
    try:
        rps = float(value)
    except (TypeError, ValueError):
        return None  # ingress-nginx ignores a value it cannot parse, and so does the lab
    return rps if rps > 0 and math.isfinite(rps) else None


class _LimitReader:
    """What the lab's traffic model reads off the Ingresses: a read of the lab's own state,
    not an API call, so it is neither counted nor given call options (``_Counted`` wraps only
    the methods a subclass defines itself)."""

    _ingresses: NamespacedObjects
    _limits: tuple[int, dict[str, float]] = (-1, {})

    def limit_rps(self, service: str) -> float | None:
        """The tightest ``limit-rps`` of the Ingresses in front of ``service`` (None: none)."""
        writes, limits = self._limits
        if writes != self._ingresses.writes:
            limits = {}
            for ingress in self._ingresses.objects.values():
                rps = _rps((ingress["metadata"].get("annotations") or {}).get(LIMIT_RPS))
                if rps is None:
                    continue
                for name in _backends(ingress):
                    limits[name] = min(rps, limits.get(name, rps))
            self._limits = (self._ingresses.writes, limits)
        return limits.get(service)


class FakeNetworkingV1Api(_Counted, _LimitReader):
    """The subset of ``kubernetes.client.NetworkingV1Api`` ooda uses: Ingresses."""

    def __init__(self, ingresses: NamespacedObjects) -> None:
        super().__init__()
        self._ingresses = ingresses

    def list_namespaced_ingress(
        self, namespace: str, label_selector: str | None = None
    ) -> client.V1IngressList:
        return self._ingresses.list(namespace, label_selector)

    def read_namespaced_ingress(self, name: str, namespace: str) -> client.V1Ingress:
        return self._ingresses.read(name, namespace)

    def create_namespaced_ingress(self, namespace: str, body: Any) -> client.V1Ingress:
        return self._ingresses.create(namespace, body)

    def patch_namespaced_ingress(
        self, name: str, namespace: str, body: Any, _content_type: str | None = None
    ) -> client.V1Ingress:
        return self._ingresses.patch(name, namespace, body, _content_type)


def entry_ingress(service: str, namespace: str) -> dict[str, Any]:
    """The Ingress the lab puts in front of an entry service at start: no annotations."""
    backend = {"service": {"name": service, "port": {"name": "http"}}}
    return {
        "metadata": {"name": service},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [
                {
                    "host": f"{service}.{namespace}.example.com",
                    "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
                }
            ],
        },
    }


#: The settings each service reads from its ConfigMap at start-up.
CONFIG_KEYS = {
    "PAYMENT_GATEWAY_URL": "https://gateway.internal:8443",
    "DB_POOL_SIZE": "20",
    "FEATURE_FLAGS": "checkout-v2=on",
    "TLS_CA_BUNDLE": "/etc/ssl/internal-ca.pem",
}


def config_map_name(service: str) -> str:
    """The ConfigMap ``service`` reads its settings from."""
    return f"{service}-config"


def service_config_map(service: str) -> dict[str, Any]:
    """The ConfigMap the lab creates for ``service`` at start."""
    labels = {"app": service}
    return {"metadata": {"name": config_map_name(service), "labels": labels}, "data": CONFIG_KEYS}


def check_config_map(obj: dict[str, Any]) -> None:
    """ConfigMap values are strings."""
    data = obj.get("data") or {}
    bad = [k for k, v in data.items() if not isinstance(v, str)]
    if bad:
        name = obj["metadata"].get("name", "")
        detail = f"data[{bad[0]}]: Invalid value: must be a string"
        raise _invalid("ConfigMap", name, "configmaps", detail)


def seeded_uid(resource: str, namespace: str, name: str) -> str:
    """A uid for an object the lab creates at start, drawn without the estate's random stream
    (which would shift every pod name after it)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"ooda-lab/{resource}/{namespace}/{name}"))
