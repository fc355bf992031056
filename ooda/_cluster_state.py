"""Read the cluster state of the looked-after workloads, once per tick: one list call per kind.

The lists are indexed (pods by label, HPAs by target, ReplicaSets by owner) so the cost is
linear in the objects, not services x pods: 1,000 services with 10,000 pods are one pass.

Decide and verify both read from this snapshot; before, decide read pods and HPAs per
service and act read them again. The HPA is found through its ``scaleTargetRef``, not by
assuming it shares the Deployment's name; a pod belongs to a Deployment when the
Deployment's selector matches its labels. The ConfigMaps and Secrets a pod template reads
(``envFrom``, ``env`` references, volumes) are listed with their last change from
``managedFields``: a crash that begins right after its config changed is the change's, not
the pod's. So is the HPA's last spec change, and the Argo CD Application that deploys the
workload, with its sync history: the changes the orient stage puts beside a root cause.

A Secret's data is never kept: only its metadata is read, and only where the role may list
Secrets (the Helm chart's may not; a 403 reads as "no Secret changes known").

Nodes come with their kubelets' heartbeats (the Leases in ``kube-node-lease``): a dead
kubelet shows there after two missed renewals, 20 s, where its Ready condition waits out the
node controller's 40 s grace period.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from actuators import (
    CHANGED_AT,
    CHANGED_BY,
    FIELD_MANAGER,
    LIMIT_RPS,
    RESTARTED_AT,
    REVISION,
    RPS_SET,
    template_content,
)
from contracts import (
    NODE_LEASE_NAMESPACE,
    ArgoApp,
    ConfigChange,
    HpaState,
    KubeClients,
    NodeState,
    PodState,
    WorkloadState,
)

#: Where Argo CD keeps its Applications, and their API.
ARGO_NAMESPACE = "argocd"
_ARGO = ("argoproj.io", "v1alpha1")


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and selector.items() <= labels.items()


def _pod_state(pod: Any) -> PodState:
    statuses = pod.status.container_statuses or [] if pod.status else []
    waiting = next((s.state.waiting.reason for s in statuses if s.state and s.state.waiting), None)
    conditions = pod.status.conditions or [] if pod.status else []
    return PodState(
        name=pod.metadata.name,
        node=pod.spec.node_name if pod.spec else None,
        ready=any(c.type == "Ready" and c.status == "True" for c in conditions),
        restarts=sum(int(s.restart_count or 0) for s in statuses),
        waiting_reason=waiting,
        controlled=any(r.controller for r in pod.metadata.owner_references or []),
        template_hash=(pod.metadata.labels or {}).get("pod-template-hash", ""),
        unschedulable=any(
            c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable"
            for c in conditions
        ),
    )


def _last_change(metadata: Any) -> tuple[datetime, str] | None:
    """The newest write after creation in ``managedFields`` (status subresource writes, the
    controllers' own bookkeeping, are not changes), as (time, field manager)."""
    created = metadata.creation_timestamp
    fields = [
        m
        for m in metadata.managed_fields or []
        if m.time is not None and getattr(m, "subresource", None) != "status"
    ]
    newest = max(fields, key=lambda m: m.time, default=None)
    if newest is None or created is None or newest.time <= created:
        return None
    return newest.time, newest.manager or ""


def _hpa_state(hpa: Any) -> HpaState:
    cpu = None
    for metric in hpa.spec.metrics or []:
        resource = getattr(metric, "resource", None)
        if resource is not None and resource.name == "cpu" and resource.target is not None:
            value = resource.target.average_utilization
            cpu = float(value) / 100.0 if value else None
    status = hpa.status
    change = _last_change(hpa.metadata)
    return HpaState(
        name=hpa.metadata.name,
        min_replicas=int(hpa.spec.min_replicas or 1),
        max_replicas=int(hpa.spec.max_replicas),
        current_replicas=int(status.current_replicas or 0) if status else 0,
        desired_replicas=int(status.desired_replicas or 0) if status else 0,
        target_cpu_utilisation=cpu,
        annotations=dict(hpa.metadata.annotations or {}),
        changed_at=None if change is None else change[0],
        changed_by="" if change is None else change[1],
    )


def _template_sources(template: Any) -> tuple[set[str], set[str]]:
    """Names of the ConfigMaps and of the Secrets a pod template reads: ``envFrom``, ``env``
    values, volumes."""
    spec = template.spec if template is not None else None
    if spec is None:
        return set(), set()
    maps: set[str] = set()
    secrets: set[str] = set()

    def add(into: set[str], ref: Any) -> None:
        name = getattr(ref, "name", None) or getattr(ref, "secret_name", None)
        if ref is not None and name:
            into.add(name)

    for container in [*(spec.containers or []), *(spec.init_containers or [])]:
        for source in container.env_from or []:
            add(maps, source.config_map_ref)
            add(secrets, source.secret_ref)
        for var in container.env or []:
            if var.value_from is not None:
                add(maps, var.value_from.config_map_key_ref)
                add(secrets, var.value_from.secret_key_ref)
    for volume in spec.volumes or []:
        add(maps, volume.config_map)
        add(secrets, volume.secret)
    return maps, secrets


def _listed(call: Any, *args: Any) -> list[Any] | None:
    """The items of a list call, None where the role may not make it or the API has no such
    resource (or the client no such call)."""
    if call is None:
        return None
    try:
        got = call(*args)
    except ApiException as exc:
        if exc.status in (403, 404):
            return None
        raise
    return list(got["items"] if isinstance(got, dict) else got.items)


def _config_maps(
    kube: KubeClients, namespace: str
) -> tuple[dict[str, ConfigChange], dict[str, dict[str, str]]]:
    """The newest write of each ConfigMap of the namespace that was changed after it was
    created (a ConfigMap installed with its Deployment is no change, as revision 1 is no
    rollout), and every ConfigMap's data; both empty where they may not be read (a role
    without ConfigMaps, a client without the call)."""
    items = _listed(getattr(kube.core_v1, "list_namespaced_config_map", None), namespace)
    changes: dict[str, ConfigChange] = {}
    data: dict[str, dict[str, str]] = {}
    for cm in items or []:
        name = cm.metadata.name
        data[name] = {str(k): str(v) for k, v in (cm.data or {}).items()}
        change = _last_change(cm.metadata)
        if change is not None:
            changes[name] = ConfigChange("ConfigMap", name, *change)
    return changes, data


def _secret_changes(kube: KubeClients, namespace: str) -> dict[str, ConfigChange]:
    """The newest write of each Secret changed after its creation; only metadata is looked
    at, and nothing where Secrets may not be listed."""
    items = _listed(getattr(kube.core_v1, "list_namespaced_secret", None), namespace)
    changes: dict[str, ConfigChange] = {}
    for secret in items or []:
        change = _last_change(secret.metadata)
        if change is not None:
            changes[secret.metadata.name] = ConfigChange("Secret", secret.metadata.name, *change)
    return changes


def _when(raw: Any) -> datetime | None:
    if isinstance(raw, datetime):
        return raw
    if not raw:
        return None
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return None


def argo_applications(
    kube: KubeClients, namespace: str, argo_namespace: str = ARGO_NAMESPACE
) -> dict[str, ArgoApp]:
    """Per Deployment of ``namespace``: the Argo CD Application whose ``status.resources``
    lists it, with its two newest syncs. Empty where Argo CD is not installed or may not be
    read."""
    api = kube.custom_objects
    call = None if api is None else getattr(api, "list_namespaced_custom_object", None)
    apps = _listed(call, *_ARGO, argo_namespace, "applications")
    out: dict[str, ArgoApp] = {}
    for app in apps or []:
        status = app.get("status") or {}
        history = sorted(status.get("history") or [], key=lambda h: h.get("id", 0))
        newest = history[-1] if history else {}
        record = ArgoApp(
            name=(app.get("metadata") or {}).get("name", ""),
            namespace=argo_namespace,
            revision=str(newest.get("revision", "")),
            deployed_at=_when(newest.get("deployedAt")),
            previous_revision=str(history[-2].get("revision", "")) if len(history) > 1 else "",
        )
        for resource in status.get("resources") or []:
            if resource.get("kind") == "Deployment" and resource.get("namespace") == namespace:
                out.setdefault(resource.get("name", ""), record)
    return out


def read_workloads(
    kube: KubeClients, namespace: str, services: Sequence[str]
) -> dict[str, WorkloadState]:
    """The state of each service's Deployment (named as the service), its pods and HPA.

    A service whose Deployment does not exist is absent from the result. API errors
    propagate: the caller skips the tick's actions rather than act on half a picture.
    """
    deployments = {
        d.metadata.name: d for d in kube.apps_v1.list_namespaced_deployment(namespace).items
    }
    pods = [
        (p, dict(p.metadata.labels or {}))
        for p in kube.core_v1.list_namespaced_pod(namespace).items
        if p.metadata.deletion_timestamp is None
    ]
    hpas = kube.autoscaling_v2.list_namespaced_horizontal_pod_autoscaler(namespace).items
    sets = kube.apps_v1.list_namespaced_replica_set(namespace).items
    # Indexes, so a tick over many services stays linear in the number of objects.
    by_label: dict[tuple[str, str], list[int]] = {}
    for i, (_, labels) in enumerate(pods):
        for item in labels.items():
            by_label.setdefault(item, []).append(i)
    scaling = {
        h.spec.scale_target_ref.name: h
        for h in reversed(hpas)  # the first HPA naming a Deployment wins, as before
        if h.spec.scale_target_ref.kind == "Deployment"
    }
    owned_by: dict[str, list[Any]] = {}
    for rs in sets:
        for ref in rs.metadata.owner_references or []:
            owned_by.setdefault(ref.uid, []).append(rs)
    fronted = _ingresses(kube, namespace)
    configs, config_data = _config_maps(kube, namespace)
    secrets = _secret_changes(kube, namespace)
    argo = argo_applications(kube, namespace)
    out: dict[str, WorkloadState] = {}
    for service in services:
        dep = deployments.get(service)
        if dep is None:
            continue
        selector = dict(dep.spec.selector.match_labels or {})
        candidates = min((by_label.get(item, []) for item in selector.items()), key=len, default=[])
        mine = [_pod_state(pods[i][0]) for i in candidates if _selects(selector, pods[i][1])]
        hpa = scaling.get(service)
        revision = int((dep.metadata.annotations or {}).get(REVISION, "0") or 0)
        revision, revision_at, template, restarted_at = _rolled_out(
            owned_by.get(dep.metadata.uid, []), revision
        )
        read, secret_read = _template_sources(dep.spec.template)
        changes = sorted(
            [
                *(configs[name] for name in read if name in configs),
                *(secrets[name] for name in secret_read if name in secrets),
            ],
            key=lambda c: c.at,
            reverse=True,
        )
        out[service] = WorkloadState(
            namespace=namespace,
            deployment=service,
            service=service,
            replicas=int(dep.spec.replicas or 0),
            ready_replicas=sum(p.ready for p in mine),
            revision=revision,
            revision_at=revision_at,
            pods=tuple(mine),
            hpa=None if hpa is None else _hpa_state(hpa),
            current_template=template,
            restarted_at=restarted_at,
            config_changes=tuple(changes),
            config_data={name: config_data[name] for name in sorted(read) if name in config_data},
            argo=argo.get(service),
            **fronted.get(service, {}),
        )
    return out


def _rolled_out(
    sets: list[Any], revision: int
) -> tuple[int, datetime | None, str, datetime | None]:
    """Of a Deployment's ReplicaSets and its current ``revision``: the revision that rolled
    out what its pods run and when, the current template's hash, and when the pods were last
    restarted as a whole. A revision that repeats the one before it but for a rollout
    restart's stamp counts back to that one (the templates are compared only when the current
    one carries a stamp)."""
    by_revision = {int((rs.metadata.annotations or {}).get(REVISION, "0") or 0): rs for rs in sets}
    current = by_revision.get(revision)
    if current is None:
        return revision, None, "", None
    template = (current.metadata.labels or {}).get("pod-template-hash", "")
    notes = current.spec.template.metadata.annotations or {}
    if RESTARTED_AT not in notes:
        return revision, current.metadata.creation_timestamp, template, None
    running = template_content(current.spec.template)
    origin = revision
    for earlier in sorted((r for r in by_revision if 0 < r < revision), reverse=True):
        if template_content(by_revision[earlier].spec.template) != running:
            break
        origin = earlier
    found = by_revision[origin].metadata.creation_timestamp
    return origin, found, template, current.metadata.creation_timestamp


def _ingresses(kube: KubeClients, namespace: str) -> dict[str, dict[str, Any]]:
    """Per backend service: the Ingress in front of it and its ingress-nginx limit (one list
    call; none where the estate gives no networking API)."""
    if kube.networking_v1 is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for ingress in kube.networking_v1.list_namespaced_ingress(namespace).items:
        notes = dict(ingress.metadata.annotations or {})
        raw = notes.get(LIMIT_RPS)
        try:
            limit = float(raw) if raw is not None else None
        except ValueError:
            limit = None
        spec = ingress.spec
        backends = []
        if spec.default_backend is not None and spec.default_backend.service is not None:
            backends.append(spec.default_backend.service.name)
        for rule in spec.rules or []:
            for path in rule.http.paths if rule.http else []:
                if path.backend.service is not None:
                    backends.append(path.backend.service.name)
        ours = raw is not None and notes.get(RPS_SET) == raw
        set_at = None
        if ours:
            try:
                set_at = datetime.fromisoformat(notes.get(CHANGED_AT, ""))
            except ValueError:
                set_at = None
        for name in backends:
            out.setdefault(
                name,
                {
                    "ingress": ingress.metadata.name,
                    "limit_rps": limit,
                    "limit_is_ooda": ours,
                    "limit_set_at": set_at if set_at is None or set_at.tzinfo else None,
                },
            )
    return out


def _cordoned_by_ooda(node: Any) -> bool:
    """Whether ooda's write set the node's cordon. The API server's field ownership says who
    last set ``spec.unschedulable``: a human who uncordoned and cordoned again since owns it,
    though ooda's annotations stay on the node. Without ``managedFields``, the annotation."""
    owners = [
        entry.manager
        for entry in node.metadata.managed_fields or []
        if "f:unschedulable" in ((entry.fields_v1 or {}).get("f:spec") or {})
    ]
    if owners:
        return FIELD_MANAGER in owners
    return (node.metadata.annotations or {}).get(CHANGED_BY) == "ooda"


def read_nodes(kube: KubeClients) -> dict[str, NodeState]:
    """Every node's Ready condition, pressure conditions, cordon and taints (one list call)."""
    out: dict[str, NodeState] = {}
    for node in kube.core_v1.list_node().items:
        conditions = (node.status.conditions if node.status else None) or []
        ready = next((c.status for c in conditions if c.type == "Ready"), "Unknown")
        pressures = tuple(
            c.type for c in conditions if c.type.endswith("Pressure") and c.status == "True"
        )
        spec = node.spec
        cordoned = bool(spec and spec.unschedulable)
        taints = tuple(f"{t.key}:{t.effect}" for t in (spec.taints if spec else None) or [])
        out[node.metadata.name] = NodeState(
            name=node.metadata.name,
            ready=str(ready),
            unschedulable=cordoned,
            cordoned_by_ooda=cordoned and _cordoned_by_ooda(node),
            pressures=pressures,
            taints=taints,
        )
    return out


def read_heartbeat_lags(kube: KubeClients) -> dict[str, float]:
    """Per node, seconds its kubelet's last Lease renewal trails the freshest of any node's
    (one list call; empty without a coordination API).

    Renewals are compared with each other, not with the loop's clock: a skewed loop clock
    changes nothing, and a control plane that stalls every renewal at once (an overloaded
    API server) makes no node trail the others.
    """
    if kube.coordination_v1 is None:
        return {}
    renewed: dict[str, datetime] = {}
    for lease in kube.coordination_v1.list_namespaced_lease(NODE_LEASE_NAMESPACE).items:
        at = lease.spec.renew_time if lease.spec is not None else None
        if isinstance(at, datetime) and at.tzinfo is not None:
            renewed[lease.metadata.name] = at
    if not renewed:
        return {}
    freshest = max(renewed.values())
    return {name: (freshest - at).total_seconds() for name, at in renewed.items()}
