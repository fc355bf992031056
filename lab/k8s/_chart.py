"""ooda's Helm chart on the lab's control plane: render it with the helm that ``build.sh`` built,
apply what it renders, and check its RBAC statically.

Rendering goes through ``helm template`` (not a Python re-implementation of Go templates), and
applying through server-side apply with the dynamic client, so the API server validates every
object, a RayService included against KubeRay's own CRD schema. :func:`rbac_violations` is the
static half of the least-privilege promise: it reads rendered Roles and ClusterRoles and names
every grant that is broader than ooda may hold.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from kubernetes import dynamic
from kubernetes.client import ApiClient

from lab.k8s._binaries import KUBE_VERSION, cache_dir, ensure_binaries
from lab.k8s._errors import ChartError

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "ooda"
"""The chart in this repository."""

#: Verbs no ooda role may hold: they let the holder grant itself more.
ESCALATING_VERBS = frozenset({"escalate", "bind", "impersonate"})
#: Resources no ooda role may touch in any way.
FORBIDDEN_RESOURCES = frozenset({"secrets"})
#: resource -> verbs ooda must not hold on it (a pod moves through the Eviction API only).
FORBIDDEN_VERBS = {"pods": frozenset({"delete", "deletecollection", "create", "update", "patch"})}
FIELD_MANAGER = "ooda-lab"


def helm_binary(version: str = KUBE_VERSION) -> Path:
    """The helm ``build.sh`` built beside the control plane (built now if missing)."""
    return ensure_binaries(version) / "helm"


def crd_path(name: str, version: str = KUBE_VERSION) -> Path:
    """A CRD file ``build.sh`` copied out of its upstream Go module, e.g.
    ``ray.io_rayservices.yaml``."""
    ensure_binaries(version)
    return cache_dir(version) / "crds" / name


def render_chart(
    release: str,
    namespace: str,
    values: Mapping[str, Any] | None = None,
    *,
    chart: Path = CHART,
    show_only: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """The objects ``helm template`` renders for ``release`` in ``namespace`` with ``values``
    (merged over the chart's values.yaml); ``show_only`` limits them to some templates."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as handle:
        yaml.safe_dump(dict(values or {}), handle)
        handle.flush()
        args = [str(helm_binary()), "template", release, str(chart), "--namespace", namespace]
        args += ["--values", handle.name]
        for template in show_only:
            args += ["--show-only", template]
        result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ChartError(f"helm template {chart.name} failed: {result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def apply_manifests(
    api_client: ApiClient, docs: Iterable[Mapping[str, Any]], namespace: str | None = None
) -> list[str]:
    """Server-side apply each object (``kind/name`` returned in order); the API server validates
    them, and a second apply of the same objects changes nothing."""
    dyn = dynamic.DynamicClient(api_client)
    applied = []
    for doc in docs:
        resource = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        ns = doc["metadata"].get("namespace", namespace) if resource.namespaced else None
        dyn.server_side_apply(
            resource,
            body=dict(doc),
            namespace=ns,
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )
        applied.append(f"{doc['kind']}/{doc['metadata']['name']}")
    return applied


def load_crd(path: Path) -> dict[str, Any]:
    """A CustomResourceDefinition file (KubeRay's are about a megabyte: the C loader)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open() as handle:
        doc: dict[str, Any] = yaml.load(handle, Loader=loader)
    return doc


def rbac_violations(docs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every grant in the Roles and ClusterRoles of ``docs`` that ooda must not hold: a
    wildcard anywhere in a rule, any access to Secrets, pod deletion or mutation beyond the
    Eviction API, and the verbs that escalate privileges. Empty when the RBAC is least-privilege."""
    problems = []
    for doc in docs:
        if doc.get("kind") not in ("Role", "ClusterRole"):
            continue
        where = f"{doc['kind']} {doc['metadata']['name']}"
        if doc.get("aggregationRule"):
            problems.append(f"{where}: aggregationRule (its rules come from elsewhere)")
        for i, rule in enumerate(doc.get("rules") or []):
            at = f"{where} rule {i}"
            for key in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                if any("*" in str(item) for item in rule.get(key) or []):
                    problems.append(f"{at}: wildcard in {key} {rule[key]}")
            verbs = set(rule.get("verbs") or [])
            if rule.get("nonResourceURLs"):
                problems.append(f"{at}: nonResourceURLs {rule['nonResourceURLs']}")
            for verb in sorted(verbs & ESCALATING_VERBS):
                problems.append(f"{at}: verb {verb!r} escalates privileges")
            for resource in rule.get("resources") or []:
                base = resource.split("/")[0]
                if base in FORBIDDEN_RESOURCES:
                    problems.append(f"{at}: access to {resource!r}")
                if resource in FORBIDDEN_VERBS and (bad := verbs & FORBIDDEN_VERBS[resource]):
                    problems.append(f"{at}: {sorted(bad)} on {resource!r}")
    return problems
