"""An in-memory Kubernetes API with the official client's method names and object shapes.

Actuators are written against ``kubernetes.client`` (CoreV1Api, AppsV1Api, AutoscalingV2Api,
...); this facade lets the same code act on the lab: it returns the official model classes,
takes camelCase patch bodies (or model objects) and the client's ``_content_type`` (read as the
client would send it) and raises ``ApiException`` subclasses with the status codes a real API
server uses. Every public method also takes the client's per-call options
(``_request_timeout`` and the rest, see ``_Counted``) and counts whether a timeout came with
it, so a test can check that code never waits on the API server unbounded. Served objects
carry the API server's ``metadata.resourceVersion`` (see ``_Revisions``). This module holds the
shared helpers and the core and autoscaling APIs; ``lab._kube_apps`` and ``lab._kube_extra``
the others, ``lab._kube_net`` the Services and Ingresses.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
from collections.abc import Callable, Hashable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import (
    ApiException,
    BadRequestException,
    ConflictException,
    NotFoundException,
    UnprocessableEntityException,
)

from contracts import SimClock
from lab._cluster import Cluster, Node
from lab._kubelet import NODE_MONITOR_GRACE_S
from lab._logs import PodLogSource, render
from lab._pods import Pod
from lab._settings import LabSettings

if TYPE_CHECKING:
    from lab._kube_net import NamespacedObjects

_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_NAME_PART = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_ANNOTATIONS_MAX_BYTES = 256 * 2**10
_NODE_METADATA = ("labels", "annotations", "resourceVersion")
_IGNORED_CALL_OPTIONS = frozenset(
    {"async_req", "_return_http_data_only", "_preload_content", "_request_auth", "_headers"}
)
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
_ERRORS: dict[int, tuple[str, str, type[ApiException]]] = {
    400: ("BadRequest", "Bad Request", BadRequestException),
    404: ("NotFound", "Not Found", NotFoundException),
    409: ("AlreadyExists", "Conflict", ConflictException),
    415: ("UnsupportedMediaType", "Unsupported Media Type", ApiException),
    422: ("Invalid", "Unprocessable Entity", UnprocessableEntityException),
    429: ("TooManyRequests", "Too Many Requests", ApiException),
}


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _error(
    status: int, message: str, kind: str, name: str, reason: str | None = None
) -> ApiException:
    """An ApiException (the subclass the client raises) carrying the API server's Status body.

    ``reason`` overrides the status's usual one (409 is also "Conflict", a stale write).
    """
    usual, http_reason, cls = _ERRORS[status]
    reason = reason or usual
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": {"name": name, "kind": kind},
        "code": status,
    }
    return cls(status=status, reason=http_reason, body=json.dumps(body))


def _cpu_quantity(cores: float) -> str:
    return f"{round(cores * 1000)}m"


def _memory_quantity(value: int) -> str:
    return f"{value // 2**20}Mi" if value % 2**20 == 0 else str(value)


def parse_label_selector(selector: str) -> list[tuple[str, str, str]]:
    """Equality-based selector terms as (key, op, value); op is "=", "!=", "exists", "!exists"."""
    terms: list[tuple[str, str, str]] = []
    for raw in selector.split(","):
        term = raw.strip()
        if not term:
            continue
        if "!=" in term:
            op, (key, value) = "!=", term.split("!=", 1)
        elif "=" in term:
            op, (key, value) = "=", term.replace("==", "=", 1).split("=", 1)
        elif term.startswith("!"):
            op, key, value = "!exists", term[1:], ""
        else:
            op, key, value = "exists", term, ""
        key, value = key.strip(), value.strip()
        if not _KEY.match(key) or (value and not _KEY.match(value)):
            raise _error(400, f"unable to parse requirement: {term!r}", "selector", selector)
        terms.append((key, op, value))
    return terms


def _matches(labels: Mapping[str, str], terms: list[tuple[str, str, str]]) -> bool:
    for key, op, value in terms:
        present = key in labels
        if op == "=" and labels.get(key) != value:
            return False
        if op == "!=" and labels.get(key) == value:
            return False
        if (op == "exists") != present and op in ("exists", "!exists"):
            return False
    return True


def _body_dict(body: Any) -> dict[str, Any]:
    """Request bodies: dicts as given, model objects as the camelCase JSON the client sends."""
    if isinstance(body, dict):
        return body
    if hasattr(body, "to_dict"):
        result = client.ApiClient().sanitize_for_serialization(body)
        if isinstance(result, dict):
            return result
    raise _error(400, f"body must be a dict or a model object, got {body!r}", "body", "")


def _sent_content_type(body: Any, content_type: str | None, default: str) -> str:
    """The Content-Type the client (v37.0.1) sends with a patch.

    ``default`` (the first JSON type the API lists) unless one is given; its REST layer then
    turns a JSON patch whose body is not a list into a strategic merge patch.
    """
    sent = content_type or default
    if sent == JSON_PATCH and not isinstance(body, list):
        return STRATEGIC_MERGE_PATCH
    return sent


def _patch_body(body: Any, content_type: str | None, kind: str, name: str) -> Any:
    """A merge patch as a dict, a JSON patch as its list of operations (built-in kinds)."""
    sent = _sent_content_type(body, content_type, JSON_PATCH)
    if sent == JSON_PATCH:
        return body
    if sent not in (MERGE_PATCH, STRATEGIC_MERGE_PATCH):
        raise _error(
            415,
            f"the body of the request was in an unknown format - accepted media types include:"
            f" {JSON_PATCH}, {MERGE_PATCH}, {STRATEGIC_MERGE_PATCH}, application/apply-patch+yaml",
            kind,
            name,
        )
    if isinstance(body, list):
        raise _error(
            400,
            "json: cannot unmarshal array into Go value of type map[string]interface {}",
            kind,
            name,
        )
    return _body_dict(body)


def _merge_patch(body: Any, content_type: str | None, kind: str, name: str) -> dict[str, Any]:
    """The body of a merge patch, for the objects the lab patches no other way."""
    patch = _patch_body(body, content_type, kind, name)
    if isinstance(patch, list):
        raise _error(422, f"the lab takes only merge patches for {kind}", kind, name)
    return dict(patch)


def _status_success(name: str, group: str, kind: str, uid: str) -> client.V1Status:
    """What a DELETE of an object without a returned body answers."""
    return client.V1Status(
        api_version="v1",
        kind="Status",
        status="Success",
        details=client.V1StatusDetails(name=name, group=group, kind=kind, uid=uid),
    )


def _int_field(value: Any, path: str, minimum: int, kind: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _error(
            422, f"{kind} {name!r} is invalid: {path}: Invalid value: {value!r}", kind, name
        )
    return value


def _qualified_name(key: str) -> bool:
    """A label or annotation key: an optional DNS-subdomain prefix and "/", then a name part."""
    prefix, slash, name = key.rpartition("/")
    if slash and not (len(prefix) <= 253 and _DNS_SUBDOMAIN.match(prefix)):
        return False
    return len(name) <= 63 and bool(_NAME_PART.match(name))


def _check_annotations(annotations: Mapping[str, Any], kind: str, resource: str, name: str) -> None:
    """ValidateAnnotations: qualified keys (checked lower-cased), string values, 256 KiB in all."""
    for key, value in annotations.items():
        if not isinstance(value, str) or not _qualified_name(key.lower()):
            raise _error(
                422,
                f'{kind} "{name}" is invalid: metadata.annotations: Invalid value: {key!r}:'
                f" {value!r}: the key must be a qualified name ([prefix/]name), the value a string",
                resource,
                name,
            )
    if sum(len(k) + len(v) for k, v in annotations.items()) > _ANNOTATIONS_MAX_BYTES:
        raise _error(
            422,
            f'{kind} "{name}" is invalid: metadata.annotations: Too long:'
            f" must have at most {_ANNOTATIONS_MAX_BYTES} bytes",
            resource,
            name,
        )


def _merged_annotations(
    current: Mapping[str, str], metadata: Mapping[str, Any], kind: str, resource: str, name: str
) -> dict[str, str]:
    """``current`` after a merge patch's ``metadata``: null deletes a key, or the whole map."""
    if "annotations" not in metadata:
        return dict(current)
    patch = metadata["annotations"]
    if patch is None:
        return {}
    if not isinstance(patch, dict):
        raise _error(
            422,
            f'{kind} "{name}" is invalid: metadata.annotations: Invalid value: {patch!r}',
            resource,
            name,
        )
    merged = dict(current)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    _check_annotations(merged, kind, resource, name)
    return merged


def _check_resource_version(
    metadata: Mapping[str, Any], current: Any, resource: str, name: str
) -> None:
    """A resourceVersion in a patch is a precondition: the object must still be at it."""
    wanted = metadata.get("resourceVersion")
    if wanted is not None and wanted != current.metadata.resource_version:
        raise _error(
            409,
            f'Operation cannot be fulfilled on {resource} "{name}": the object has been modified;'
            " please apply your changes to the latest version and try again",
            resource.partition(".")[0],
            name,
            reason="Conflict",
        )


class _Served(Protocol):
    """A built-in object as the API returns it (an official client model)."""

    metadata: client.V1ObjectMeta | None

    def model_dump_json(self) -> str: ...


_M = TypeVar("_M", bound=_Served)


class _Models(dict[str, tuple[Hashable, Any]]):
    """uid -> (state key, model served for it). A deep copy of the lab shares the models
    (they are never modified) but not the mapping."""

    def __deepcopy__(self, memo: dict[int, Any]) -> _Models:
        return _Models(self)


class _Revisions:
    """etcd's revision -- one counter over every write, shared by every API of one cluster -- and
    the resourceVersion each built-in object was last served with.

    The lab's objects are plain state that controllers change without going through the API,
    so a built-in object is stamped when it is served: the same resourceVersion as last time if
    it looks the same, otherwise a new revision. A reader therefore sees the resourceVersion
    change exactly when the object (status included) changed since the last time anyone saw it.
    """

    def __init__(self) -> None:
        self.revision = 0
        self._served: dict[str, tuple[str, str]] = {}
        """uid -> (the object as served, without its resourceVersion; its resourceVersion)."""
        self._models = _Models()

    def write(self) -> str:
        """The resourceVersion of a new write."""
        self.revision += 1
        return str(self.revision)

    def stamp(self, model: _Served) -> None:
        """Set ``metadata.resource_version`` of a freshly rendered object."""
        meta = model.metadata
        assert meta is not None and meta.uid is not None and meta.resource_version is None
        content = model.model_dump_json()
        seen = self._served.get(meta.uid)
        if seen is None or seen[0] != content:
            seen = (content, self.write())
            self._served[meta.uid] = seen
        meta.resource_version = seen[1]

    def served(self, uid: str, key: Hashable, render: Callable[[], _M]) -> _M:
        """The object of ``uid`` as served now: the model served last time if its state
        ``key`` (everything its rendering reads) is unchanged, else ``render()`` stamped."""
        hit = self._models.get(uid)
        if hit is not None and hit[0] == key:
            model: _M = hit[1]
            return model
        model = render()
        self.stamp(model)
        self._models[uid] = (key, model)
        return model

    def forget(self, uid: str) -> None:
        """The object is gone."""
        self._served.pop(uid, None)
        self._models.pop(uid, None)

    def list_meta(self) -> client.V1ListMeta:
        """A list's metadata: the revision it was read at."""
        return client.V1ListMeta(resource_version=str(self.revision))


def _check_timeout(timeout: Any) -> None:
    """What the client's validation allows: a positive number or a (connect, read) pair."""

    def positive(value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool) and value > 0

    pair = isinstance(timeout, tuple) and len(timeout) == 2 and all(map(positive, timeout))
    if not (timeout is None or positive(timeout) or pair):
        raise ValueError(
            f"_request_timeout must be a positive number or a (connect, read) pair, got {timeout!r}"
        )


def _with_call_options(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` taking the client's per-call options as keywords, and counted."""
    takes_content_type = "_content_type" in inspect.signature(method).parameters

    @functools.wraps(method)
    def call(self: _Counted, *args: Any, **kwargs: Any) -> Any:
        timeout = kwargs.pop("_request_timeout", None)
        _check_timeout(timeout)
        if kwargs.pop("_host_index", 0) != 0:
            raise ValueError("_host_index: the API has one server, index 0")
        for option in _IGNORED_CALL_OPTIONS & kwargs.keys():
            del kwargs[option]
        if not takes_content_type:
            kwargs.pop("_content_type", None)
        self.calls += 1
        if timeout is None:
            self.calls_without_timeout += 1
        return method(self, *args, **kwargs)

    return call


class _Counted:
    """Every public method takes the official client's per-call options and counts its calls.

    ``_request_timeout`` is checked as the client checks it and counted (``calls``,
    ``calls_without_timeout``); ``_content_type`` goes to the methods that read it;
    ``async_req``, ``_preload_content``, ``_return_http_data_only``, ``_request_auth`` and
    ``_headers`` are accepted and ignored (the call always runs at once and returns the model).
    Subclasses get this for every public method they define; so that a call is counted once,
    their methods share private helpers rather than call one another.
    """

    def __init__(self) -> None:
        self.calls = 0
        """Calls made to this API object."""
        self.calls_without_timeout = 0
        """Of those, the ones without a ``_request_timeout``: a real call could hang."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, member in list(vars(cls).items()):
            if not name.startswith("_") and inspect.isfunction(member):
                setattr(cls, name, _with_call_options(member))


class _Api(_Counted):
    def __init__(
        self, cluster: Cluster, clock: SimClock, settings: LabSettings, revisions: _Revisions
    ) -> None:
        super().__init__()
        self._cluster = cluster
        self._revisions = revisions
        self._clock = clock
        self._namespace = settings.topology.namespace

    def _now(self) -> float:
        return self._clock.now().timestamp()

    def _check_namespace(self, namespace: str, kind: str, name: str) -> None:
        if namespace != self._namespace:
            raise _error(404, f'{kind} "{name}" not found', kind, name)

    def _meta(
        self, name: str, uid: str, created: float, labels: dict[str, str] | None
    ) -> client.V1ObjectMeta:
        return client.V1ObjectMeta(
            name=name,
            namespace=self._namespace,
            uid=uid,
            labels=labels,
            creation_timestamp=_utc(created),
        )

    def _container(self, service: int, image: str) -> client.V1Container:
        svc = self._cluster.services[service]
        config = client.V1ConfigMapEnvSource(name=f"{svc.name}-config")
        return client.V1Container(
            name=svc.name,
            image=image,
            env_from=[client.V1EnvFromSource(config_map_ref=config)],
            ports=[client.V1ContainerPort(container_port=8080, name="http")],
            resources=client.V1ResourceRequirements(
                requests={
                    "cpu": _cpu_quantity(svc.cpu_request_cores),
                    "memory": _memory_quantity(svc.memory_limit_bytes),
                },
                limits={"memory": _memory_quantity(svc.memory_limit_bytes)},
            ),
        )


class _ExternalNameReader:
    """What the lab's databases read off the Services: where an ExternalName one points. A
    read of the lab's own state, not an API call, so it is neither counted nor given call
    options (``_Counted`` wraps only the methods a subclass defines itself)."""

    _services: NamespacedObjects | None

    def external_name(self, name: str) -> str | None:
        """``spec.externalName`` of the Service ``name`` now (None: no such Service, or not
        an ExternalName one)."""
        obj = None if self._services is None else self._services.objects.get(name)
        spec = (obj or {}).get("spec") or {}
        external = spec.get("externalName") if spec.get("type") == "ExternalName" else None
        return external if isinstance(external, str) else None


class _ConfigEditor:
    """How a person's edit of a ConfigMap reaches the lab (``kubectl edit`` in the story of a
    scenario or of the background): a write of the lab's own state, not one of the loop's
    API calls, so it is not counted."""

    _config_maps: NamespacedObjects | None

    def edit_config_map(
        self, name: str, data: Mapping[str, str | None], manager: str, at: float
    ) -> None:
        """Merge ``data`` into ConfigMap ``name`` (None removes a key) as ``manager`` at ``at``
        (epoch seconds: the estate's time, ahead of the clock inside a step)."""
        assert self._config_maps is not None, "the lab has no ConfigMaps"
        namespace = self._config_maps.namespace
        body = {"data": dict(data)}
        self._config_maps.patch(name, namespace, body, None, field_manager=manager, at=at)


#: How far back a pod's log reaches (a kubelet rotates older lines away).
LOG_RETENTION_S = 3600.0


class FakeCoreV1Api(_Api, _ExternalNameReader, _ConfigEditor):
    """The subset of ``kubernetes.client.CoreV1Api`` the loop and actuators use."""

    logs: PodLogSource | None = None
    """Where pods' log lines come from (the ``Lab`` sets it; None: no logs, a 404)."""

    def __init__(
        self,
        cluster: Cluster,
        clock: SimClock,
        settings: LabSettings,
        revisions: _Revisions,
        services: NamespacedObjects | None = None,
        config_maps: NamespacedObjects | None = None,
    ) -> None:
        super().__init__(cluster, clock, settings, revisions)
        self._services = services
        """The Services (``lab._kube_net``, which builds on this module): none, a 404."""
        self._config_maps = config_maps
        """The ConfigMaps, likewise."""

    def _service_store(self) -> NamespacedObjects:
        if self._services is None:
            raise _error(404, "the server could not find the requested resource", "services", "")
        return self._services

    def list_namespaced_service(
        self, namespace: str, label_selector: str | None = None
    ) -> client.V1ServiceList:
        return self._service_store().list(namespace, label_selector)

    def read_namespaced_service(self, name: str, namespace: str) -> client.V1Service:
        return self._service_store().read(name, namespace)

    def create_namespaced_service(self, namespace: str, body: Any) -> client.V1Service:
        """A Service; an ExternalName one needs ``spec.externalName`` and gets no cluster IP."""
        return self._service_store().create(namespace, body)

    def patch_namespaced_service(
        self, name: str, namespace: str, body: Any, _content_type: str | None = None
    ) -> client.V1Service:
        """A merge patch (``spec.externalName`` to repoint an ExternalName Service)."""
        return self._service_store().patch(name, namespace, body, _content_type)

    def _config_map_store(self) -> NamespacedObjects:
        if self._config_maps is None:
            raise _error(404, "the server could not find the requested resource", "configmaps", "")
        return self._config_maps

    def list_namespaced_config_map(
        self, namespace: str, label_selector: str | None = None
    ) -> client.V1ConfigMapList:
        return self._config_map_store().list(namespace, label_selector)

    def read_namespaced_config_map(self, name: str, namespace: str) -> client.V1ConfigMap:
        return self._config_map_store().read(name, namespace)

    def create_namespaced_config_map(
        self, namespace: str, body: Any, field_manager: str | None = None
    ) -> client.V1ConfigMap:
        return self._config_map_store().create(namespace, body, field_manager=field_manager)

    def patch_namespaced_config_map(
        self,
        name: str,
        namespace: str,
        body: Any,
        field_manager: str | None = None,
        _content_type: str | None = None,
    ) -> client.V1ConfigMap:
        """A merge patch; ``field_manager`` is recorded in ``managedFields`` with the time."""
        store = self._config_map_store()
        return store.patch(name, namespace, body, _content_type, field_manager=field_manager)

    def _pod(self, name: str, namespace: str) -> Pod:
        self._check_namespace(namespace, "pods", name)
        pod = self._cluster.pods.get(name)
        if pod is None:
            raise _error(404, f'pods "{name}" not found', "pods", name)
        return pod

    def _to_v1_pod(self, pod: Pod, t: float, key: Hashable = None) -> client.V1Pod:
        """``key``: the pod's (version, Ready, running) at ``t`` when the caller has them."""
        if key is None:
            key = (pod.version, pod.ready(t), pod.running(t))
        return self._revisions.served(pod.uid, key, lambda: self._render_pod(pod, t))

    def _render_pod(self, pod: Pod, t: float) -> client.V1Pod:
        svc = self._cluster.services[pod.service]
        dep = self._cluster.deployments[svc.name]
        rs = dep.replica_set(pod.template_hash)
        meta = self._meta(pod.name, pod.uid, pod.created_at, self._cluster.pod_labels(pod))
        meta.generate_name = f"{dep.name}-{rs.template_hash}-"
        meta.owner_references = [
            client.V1OwnerReference(
                api_version="apps/v1",
                kind="ReplicaSet",
                name=f"{dep.name}-{rs.template_hash}",
                uid=rs.uid,
                controller=True,
                block_owner_deletion=True,
            )
        ]
        ready = pod.ready(t)
        running = pod.running(t)
        status = "True" if ready else "False"
        conditions = [
            client.V1PodCondition(
                type="PodScheduled",
                status="True" if pod.node else "False",
                reason=None if pod.node else "Unschedulable",
            )
        ]
        container_statuses = None
        if pod.node is not None:
            conditions += [
                client.V1PodCondition(type="Initialized", status="True"),
                client.V1PodCondition(type="ContainersReady", status=status),
                client.V1PodCondition(type="Ready", status=status),
            ]
            image = rs.image
            last_state = None
            if pod.crash is not None:
                last_state = client.V1ContainerState(
                    terminated=client.V1ContainerStateTerminated(exit_code=1, reason="Error")
                )
                state = (
                    client.V1ContainerState(
                        running=client.V1ContainerStateRunning(started_at=_utc(pod.crash.run_start))
                    )
                    if ready
                    else client.V1ContainerState(
                        waiting=client.V1ContainerStateWaiting(
                            reason="CrashLoopBackOff",
                            message=f"back-off restarting failed container={svc.name}"
                            f" pod={pod.name}",
                        )
                    )
                )
            elif running:
                state = client.V1ContainerState(
                    running=client.V1ContainerStateRunning(started_at=_utc(pod.started_at))
                )
            else:
                state = client.V1ContainerState(
                    waiting=client.V1ContainerStateWaiting(reason="ContainerCreating")
                )
            container_statuses = [
                client.V1ContainerStatus(
                    name=svc.name,
                    image=image,
                    image_id=f"{image}@sha256:{rs.template_hash * 6}"[:120],
                    ready=ready,
                    started=running and (pod.crash is None or ready),
                    restart_count=pod.restarts,
                    state=state,
                    last_state=last_state,
                )
            ]
        model = client.V1Pod(
            api_version="v1",
            kind="Pod",
            metadata=meta,
            spec=client.V1PodSpec(
                containers=[self._container(pod.service, rs.image)],
                node_name=pod.node,
                restart_policy="Always",
            ),
            status=client.V1PodStatus(
                phase="Running" if running else "Pending",
                conditions=conditions,
                container_statuses=container_statuses,
                start_time=_utc(pod.created_at) if pod.node else None,
            ),
        )
        return model

    def list_namespaced_pod(
        self, namespace: str, label_selector: str | None = None
    ) -> client.V1PodList:
        items = self._pods(label_selector) if namespace == self._namespace else []
        return client.V1PodList(
            api_version="v1", kind="PodList", metadata=self._revisions.list_meta(), items=items
        )

    def _pods(self, label_selector: str | None) -> list[client.V1Pod]:
        terms = parse_label_selector(label_selector or "")
        t = self._now()
        table = self._cluster.pod_table
        n = table.compact()
        keys = zip(
            table.version[:n].tolist(),
            table.ready_now(t).tolist(),
            ((table.node[:n] >= 0) & (table.started_at[:n] <= t)).tolist(),
            strict=True,
        )
        return [
            self._to_v1_pod(pod, t, key)
            for pod, key in zip(map(table.pod, range(n)), keys, strict=True)
            if not terms or _matches(self._cluster.pod_labels(pod), terms)
        ]

    def list_pod_for_all_namespaces(
        self, field_selector: str | None = None, label_selector: str | None = None
    ) -> client.V1PodList:
        """Pods of every namespace; the field selector supports ``spec.nodeName`` and
        ``status.phase``, with ``=``, ``==`` and ``!=``, as the API server does."""
        terms: list[tuple[str, bool, str]] = []
        for term in filter(None, (field_selector or "").split(",")):
            negated = "!=" in term
            key, _, value = term.replace("!=", "=").replace("==", "=").partition("=")
            if key.strip() not in ("spec.nodeName", "status.phase") or not value:
                raise _error(
                    400,
                    f"field label not supported by the lab: {term!r}"
                    " (only spec.nodeName and status.phase)",
                    "pods",
                    "",
                )
            terms.append((key.strip(), negated, value.strip()))

        def fields(pod: client.V1Pod) -> dict[str, str]:
            return {
                "spec.nodeName": (pod.spec.node_name if pod.spec else None) or "",
                "status.phase": (pod.status.phase if pod.status else None) or "",
            }

        items = [
            p
            for p in self._pods(label_selector)
            if all((fields(p)[k] == v) != negated for k, negated, v in terms)
        ]
        return client.V1PodList(
            api_version="v1", kind="PodList", metadata=self._revisions.list_meta(), items=items
        )

    def read_namespaced_pod(self, name: str, namespace: str) -> client.V1Pod:
        return self._to_v1_pod(self._pod(name, namespace), self._now())

    def read_namespaced_pod_log(
        self,
        name: str,
        namespace: str,
        container: str | None = None,
        since_seconds: int | None = None,
        tail_lines: int | None = None,
        timestamps: bool = False,
        previous: bool = False,
        **_: Any,
    ) -> str:
        """The pod's log as the API returns it (one string); the last hour at most, as a
        kubelet's rotation would keep, or ``since_seconds``; ``tail_lines`` last lines."""
        pod = self._pod(name, namespace)
        if self.logs is None:
            raise _error(404, f'no logs for pod "{name}": this lab keeps none', "pods", name)
        now = self._now()
        since = LOG_RETENTION_S if since_seconds is None else min(since_seconds, LOG_RETENTION_S)
        start = max(pod.created_at, now - since)
        lines = self.logs.lines(
            name,
            self._cluster.services[pod.service].name,
            datetime.fromtimestamp(start, UTC),
            datetime.fromtimestamp(now, UTC),
        )
        if tail_lines is not None:
            lines = lines[-tail_lines:] if tail_lines > 0 else []
        return render(lines, timestamps)

    def delete_namespaced_pod(
        self,
        name: str,
        namespace: str,
        body: client.V1DeleteOptions | None = None,
        grace_period_seconds: int | None = None,
    ) -> client.V1Pod:
        """Delete at once (the lab has no graceful termination); the ReplicaSet replaces it."""
        return self._delete_pod(self._pod(name, namespace), grace_period_seconds)

    def _delete_pod(self, pod: Pod, grace_period_seconds: int | None) -> client.V1Pod:
        t = self._now()
        deleted = self._to_v1_pod(pod, t).model_copy()  # the served one is shared
        meta = self._meta(pod.name, pod.uid, pod.created_at, self._cluster.pod_labels(pod))
        meta.deletion_timestamp = _utc(t)
        meta.deletion_grace_period_seconds = grace_period_seconds
        meta.resource_version = self._revisions.write()
        deleted.metadata = meta
        self._cluster.remove_pod(pod.name, t)
        self._cluster.reconcile(t)
        return deleted

    def create_namespaced_pod_eviction(
        self, name: str, namespace: str, body: Any
    ) -> client.V1Status:
        """Eviction API: refused (429) while a budget selecting the Ready pod allows no disruption.

        A pod that is not Ready may always go; an allowed eviction deletes the pod at once.
        """
        pod = self._pod(name, namespace)
        t = self._now()
        if pod.ready(t):
            for pdb in self._cluster.pdbs.values():
                if (
                    self._cluster.pdb_selects(pdb, pod)
                    and self._cluster.pdb_status(pdb, t).disruptions_allowed == 0
                ):
                    raise _error(
                        429,
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                        "pods",
                        name,
                    )
        self._delete_pod(pod, None)
        return client.V1Status(api_version="v1", kind="Status", status="Success", code=201)

    def list_node(self, label_selector: str | None = None) -> client.V1NodeList:
        terms = parse_label_selector(label_selector or "")
        return client.V1NodeList(
            api_version="v1",
            kind="NodeList",
            metadata=self._revisions.list_meta(),
            items=[self._to_v1_node(n) for n in self._cluster.nodes if _matches(n.labels, terms)],
        )

    def _node(self, name: str) -> Node:
        for node in self._cluster.nodes:
            if node.name == name:
                return node
        raise _error(404, f'nodes "{name}" not found', "nodes", name)

    def read_node(self, name: str) -> client.V1Node:
        return self._to_v1_node(self._node(name))

    def patch_node(
        self,
        name: str,
        body: Any,
        field_manager: str | None = None,
        _content_type: str | None = None,
    ) -> client.V1Node:
        """Merge-patch ``spec.unschedulable`` (cordon), ``metadata.labels`` and
        ``metadata.annotations`` (None deletes); ``metadata.resourceVersion`` is a precondition.
        A write that changes ``spec.unschedulable`` to true makes ``field_manager`` its owner
        in ``managedFields`` (false or a removal leaves it unowned), as the API server's field
        ownership does; the other fields' owners are not kept.
        """
        node = self._node(name)
        patch = _merge_patch(body, _content_type, "nodes", name)
        metadata = patch.get("metadata") or {}
        spec = patch.get("spec") or {}
        labels = metadata.get("labels") or {}
        unknown = sorted(
            [k for k in patch if k not in ("metadata", "spec")]
            + [f"metadata.{k}" for k in metadata if k not in _NODE_METADATA]
            + [f"spec.{k}" for k in spec if k != "unschedulable"]
        )
        if unknown:
            raise _error(422, f"unsupported node field(s) {unknown}", "nodes", name)
        _check_resource_version(metadata, self._to_v1_node(node), "nodes", name)
        unschedulable = spec.get("unschedulable")
        if unschedulable is not None and not isinstance(unschedulable, bool):
            raise _error(
                422, f"spec.unschedulable: Invalid value: {unschedulable!r}", "nodes", name
            )
        for key, value in labels.items():
            if not _qualified_name(key) or not (
                value is None or (isinstance(value, str) and _LABEL_VALUE.match(value))
            ):
                raise _error(
                    422, f"metadata.labels: Invalid value: {key!r}: {value!r}", "nodes", name
                )
        node.annotations = _merged_annotations(node.annotations, metadata, "Node", "nodes", name)
        if "unschedulable" in spec:
            if not unschedulable:  # false is omitted, as a removal: the field has no owner
                node.cordon_manager = None
            elif not node.unschedulable:  # an unchanged value keeps its owner
                node.cordon_manager = field_manager or "unknown"
            node.unschedulable = bool(unschedulable)
        for key, value in labels.items():
            if value is None:
                node.labels.pop(key, None)
            else:
                node.labels[key] = value
        return self._to_v1_node(node)

    def _to_v1_node(self, node: Node) -> client.V1Node:
        unknown = (
            node.down_since is not None and self._now() - node.down_since >= NODE_MONITOR_GRACE_S
        )
        key = (
            tuple(node.labels.items()),
            tuple(node.annotations.items()),
            node.unschedulable,
            node.cordon_manager,
            unknown,
            node.disk_pressure,
        )
        return self._revisions.served(node.uid, key, lambda: self._render_node(node, unknown))

    def _render_node(self, node: Node, unknown: bool) -> client.V1Node:
        resources = {
            "cpu": _cpu_quantity(node.cpu_cores),
            "memory": f"{node.memory_bytes // 2**10}Ki",
            "pods": "110",
        }
        # The node lifecycle controller turns Ready to Unknown once the kubelet has been
        # silent for the grace period, and taints the node; the kubelet reports pressure.
        ok = (
            client.V1NodeCondition(
                type="Ready",
                status="Unknown",
                reason="NodeStatusUnknown",
                message="Kubelet stopped posting node status.",
            )
            if unknown
            else client.V1NodeCondition(type="Ready", status="True", reason="KubeletReady")
        )
        pressures = [
            client.V1NodeCondition(
                type=kind,
                status="True" if kind == "DiskPressure" and node.disk_pressure else "False",
            )
            for kind in ("MemoryPressure", "DiskPressure", "PIDPressure")
        ]
        taints = [
            client.V1Taint(key=key, effect=effect)
            for key, effect, on in (
                ("node.kubernetes.io/unschedulable", "NoSchedule", node.unschedulable),
                ("node.kubernetes.io/unreachable", "NoSchedule", unknown),
                ("node.kubernetes.io/unreachable", "NoExecute", unknown),
                ("node.kubernetes.io/disk-pressure", "NoSchedule", node.disk_pressure),
            )
            if on
        ]
        model = client.V1Node(
            api_version="v1",
            kind="Node",
            metadata=client.V1ObjectMeta(
                name=node.name,
                uid=node.uid,
                creation_timestamp=_utc(node.created_at),
                labels=dict(node.labels),
                annotations=dict(node.annotations) or None,
                managed_fields=[
                    client.V1ManagedFieldsEntry(
                        manager=node.cordon_manager,
                        operation="Update",
                        api_version="v1",
                        fields_type="FieldsV1",
                        fields_v1={"f:spec": {"f:unschedulable": {}}},
                    )
                ]
                if node.cordon_manager
                else None,
            ),
            spec=client.V1NodeSpec(unschedulable=node.unschedulable or None, taints=taints or None),
            status=client.V1NodeStatus(
                capacity=resources, allocatable=resources, conditions=[*pressures, ok]
            ),
        )
        return model
