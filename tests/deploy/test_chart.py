"""ooda's Helm chart and Dockerfile: what helm renders, the least-privilege check of its RBAC,
and the chart on the real control plane -- applied, running two replicas, and refusing with 403
what its ServiceAccount must not do. (The actuator contract suite in ``tests/k8s`` runs its
real-cluster half as that ServiceAccount.)
"""

from __future__ import annotations

import copy
import re
import subprocess
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from lab.k8s import CHART, ChartError, KubeCluster, helm_binary, rbac_violations, render_chart
from ooda._config import validate
from tests._narrow import name_of, some
from tests.k8s._chart import ChartRelease

ROOT = Path(__file__).parents[2]
SERVE_CONFIG = ROOT / "serving" / "serve_config.yaml"


def _kinds(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        out.setdefault(doc["kind"], []).append(doc)
    return out


SHARED = {"audit": {"urlSecret": {"name": "ooda-audit"}}}
"""The values every multi-replica install needs: a Secret with the audit log's URL."""


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return render_chart(
        "ooda", "ooda", {**SHARED, "rbac": {"argoCD": {"enabled": True}, "exec": True}}
    )


def test_helm_lints_the_chart() -> None:
    result = subprocess.run(
        [str(helm_binary()), "lint", "--strict", str(CHART), "--set", "audit.urlSecret.name=a"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_two_replicas_without_a_shared_audit_log_are_refused() -> None:
    """A standby with an audit log of its own would take over without the leader's memory."""
    with pytest.raises(ChartError, match="replicas > 1 need a shared audit log"):
        render_chart("ooda", "ooda", {})
    (single,) = _kinds(render_chart("ooda", "ooda", {"replicas": 1}))["Deployment"]
    notes = single["spec"]["template"]["metadata"]["annotations"]
    assert notes["cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes"] == "tmp"
    assert "env" not in single["spec"]["template"]["spec"]["containers"][0]


def test_the_audit_url_comes_from_the_secret(rendered: list[dict[str, Any]]) -> None:
    (deployment,) = _kinds(rendered)["Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["env"] == [
        {
            "name": "OODA__audit__url",
            "valueFrom": {"secretKeyRef": {"name": "ooda-audit", "key": "url"}},
        }
    ]


def test_the_chart_renders_every_part(rendered: list[dict[str, Any]]) -> None:
    kinds = _kinds(rendered)
    (deployment,) = kinds["Deployment"]
    assert deployment["spec"]["replicas"] == 2
    assert {"ServiceAccount", "ConfigMap", "PodDisruptionBudget", "RayService", "Service"} <= set(
        kinds
    )
    (pdb,) = kinds["PodDisruptionBudget"]
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["minAvailable"] == 1
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == kinds["ServiceAccount"][0]["metadata"]["name"]
    (container,) = pod["containers"]
    assert container["args"][:2] == ["run", "--config=/etc/ooda/config.yaml"]
    assert {"name": "config", "mountPath": "/etc/ooda", "readOnly": True} in container[
        "volumeMounts"
    ]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_the_configmap_is_a_valid_leader_elected_in_cluster_config(
    rendered: list[dict[str, Any]],
) -> None:
    (configmap,) = _kinds(rendered)["ConfigMap"]
    config = validate(yaml.safe_load(configmap["data"]["config.yaml"]))
    assert config.leader.enabled and config.leader.namespace == "ooda"
    assert all(region.in_cluster for region in config.regions)
    assert config.audit.path.is_relative_to("/var/lib/ooda")


def test_the_service_account_carries_its_cloud_identity() -> None:
    """IRSA: the role the AWS SDK assumes for the queue actions is the ServiceAccount's."""
    role = {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/ooda"}
    values = {**SHARED, "serviceAccount": {"annotations": role}}
    (account,) = _kinds(render_chart("ooda", "ooda", values))["ServiceAccount"]
    assert account["metadata"]["annotations"] == role
    (plain,) = _kinds(render_chart("ooda", "ooda", SHARED))["ServiceAccount"]
    assert "annotations" not in plain["metadata"]


def test_a_new_config_rolls_the_pods() -> None:
    def checksum(values: dict[str, Any]) -> str:
        (d,) = _kinds(render_chart("ooda", "ooda", {**SHARED, **values}))["Deployment"]
        return str(d["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum({}) != checksum({"config": {"loop": {"tick": "30s"}}})


def test_the_rayservice_serves_the_serve_build_output(rendered: list[dict[str, Any]]) -> None:
    (rayservice,) = _kinds(rendered)["RayService"]
    assert rayservice["apiVersion"] == "ray.io/v1"
    embedded = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    assert embedded == yaml.safe_load(SERVE_CONFIG.read_text())
    assert (CHART / "files" / "serve_config.yaml").read_text() == SERVE_CONFIG.read_text()


def test_the_rendered_rbac_is_least_privilege(rendered: list[dict[str, Any]]) -> None:
    assert rbac_violations(rendered) == []
    rules = [
        (tuple(r.get("apiGroups", [])), res, tuple(r["verbs"]))
        for d in rendered
        if d["kind"] in ("Role", "ClusterRole")
        for r in d["rules"]
        for res in r["resources"]
    ]
    assert (("",), "pods/eviction", ("create",)) in rules
    assert not any(res == "pods" and "delete" in verbs for _, res, verbs in rules)


def _role_with(rule: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "ClusterRole", "metadata": {"name": "bad"}, "rules": [rule]}


@pytest.mark.parametrize(
    ("rule", "named"),
    [
        ({"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]}, "wildcard in apiGroups"),
        ({"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}, "wildcard in resources"),
        (
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["*"]},
            "wildcard in verbs",
        ),
        ({"apiGroups": [""], "resources": ["pods/*"], "verbs": ["get"]}, "wildcard in resources"),
        ({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}, "'secrets'"),
        ({"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]}, "['delete'] on 'pods'"),
        (
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["bind"]},
            "escalates",
        ),
        ({"nonResourceURLs": ["/metrics"], "verbs": ["get"]}, "nonResourceURLs"),
    ],
)
def test_the_static_check_names_each_broad_grant(rule: dict[str, Any], named: str) -> None:
    (problem,) = rbac_violations([_role_with(rule)])
    assert named in problem and "ClusterRole bad rule 0" in problem


def test_the_static_check_reads_the_chart_not_a_list_of_its_own(
    rendered: list[dict[str, Any]],
) -> None:
    """A wildcard slipped into the chart's rendered role is caught."""
    docs = copy.deepcopy(rendered)
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    role["rules"][0]["verbs"] = ["*"]
    assert any("wildcard in verbs" in p for p in rbac_violations(docs))


def test_the_dockerfile_builds_what_the_chart_runs(rendered: list[dict[str, Any]]) -> None:
    """The image's entrypoint is the ``ooda`` script, its user the chart's, and what it copies
    is the package (the build itself is ``make image``, kept out of ``make test``: the image
    is several GB)."""
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    instructions = [ln for ln in lines if ln and not ln.startswith((" ", "#"))]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {ln.split()[1] for ln in instructions if ln.startswith("COPY ") and "--from" not in ln}
    assert packages <= copied
    assert (
        all((ROOT / src).exists() for src in copied if src != "pyproject.toml")
        and (ROOT / "pyproject.toml").exists()
    )
    entry = next(ln for ln in instructions if ln.startswith("ENTRYPOINT"))
    assert yaml.safe_load(entry.split(None, 1)[1]) == ["ooda"]
    assert "ooda" in project["project"]["scripts"]
    (user,) = [ln.split()[1] for ln in instructions if ln.startswith("USER ")]
    (deployment,) = _kinds(rendered)["Deployment"]
    assert int(user) == deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    python = re.findall(r"FROM python:(\d+\.\d+)", "\n".join(instructions))
    assert python and set(python) == {"3.11"}
    assert project["project"]["requires-python"].startswith(">=3.11")


# -- on the real control plane -------------------------------------------------------------


def _until(predicate: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.3)


@pytest.mark.k8s
def test_the_chart_runs_on_the_control_plane(
    kube_cluster: KubeCluster, ooda_chart: ChartRelease
) -> None:
    admin = kube_cluster.clients()
    ns = ooda_chart.namespace

    def available() -> bool:
        d = admin.apps_v1.read_namespaced_deployment("ooda", ns)
        return d.status is not None and (d.status.available_replicas or 0) == 2

    _until(available, "both ooda replicas available", 90)
    pdb = admin.policy_v1.read_namespaced_pod_disruption_budget("ooda", ns)

    def counted() -> bool:
        status = admin.policy_v1.read_namespaced_pod_disruption_budget("ooda", ns).status
        return status is not None and status.current_healthy == 2

    _until(counted, "the PDB to count both replicas", 30)
    assert some(pdb.spec).min_available == 1
    # The RayService passed KubeRay's own CRD schema.
    rayservice = admin.custom_objects.get_namespaced_custom_object(
        "ray.io", "v1", ns, "rayservices", "ooda-scoring"
    )
    assert isinstance(rayservice, dict)
    assert yaml.safe_load(rayservice["spec"]["serveConfigV2"]) == yaml.safe_load(
        SERVE_CONFIG.read_text()
    )
    # What the pods mount is what `ooda run` validates.
    configmap = admin.core_v1.read_namespaced_config_map("ooda", ns)
    assert validate(yaml.safe_load(some(configmap.data)["config.yaml"])).leader.enabled


def _status(call: Callable[[], Any]) -> int:
    try:
        call()
    except ApiException as exc:
        return int(exc.status)
    return 200


@pytest.mark.k8s
def test_the_service_account_is_refused_what_the_role_does_not_grant(
    kube_cluster: KubeCluster, ooda_chart: ChartRelease
) -> None:
    sa = ooda_chart.clients
    admin = kube_cluster.clients()
    pod = name_of(admin.core_v1.list_namespaced_pod(ooda_chart.namespace).items[0])
    node = name_of(admin.core_v1.list_node().items[0])
    refused = {
        "read a Secret": lambda: sa.core_v1.list_namespaced_secret("shop"),
        "read its own audit Secret": lambda: sa.core_v1.read_namespaced_secret(
            "ooda-audit", ooda_chart.namespace
        ),
        "read Secrets anywhere": lambda: sa.core_v1.list_secret_for_all_namespaces(),
        "delete a pod": lambda: sa.core_v1.delete_namespaced_pod(
            pod, ooda_chart.namespace, dry_run="All"
        ),
        "create a pod": lambda: sa.core_v1.create_namespaced_pod(
            "shop",
            client.V1Pod(
                metadata=client.V1ObjectMeta(name="x"),
                spec=client.V1PodSpec(containers=[client.V1Container(name="x", image="x")]),
            ),
            dry_run="All",
        ),
        "delete a Deployment": lambda: sa.apps_v1.delete_namespaced_deployment(
            "ooda", ooda_chart.namespace, dry_run="All"
        ),
        "change its own role": lambda: client.RbacAuthorizationV1Api(
            sa.api_client
        ).patch_cluster_role("ooda-actuator", {"rules": []}),
        "take another Lease": lambda: client.CoordinationV1Api(sa.api_client).read_namespaced_lease(
            "kube-scheduler", ooda_chart.namespace
        ),
        "renew a kubelet's Lease": lambda: client.CoordinationV1Api(
            sa.api_client
        ).patch_namespaced_lease(
            node, "kube-node-lease", {"spec": {"holderIdentity": "ooda"}}, dry_run="All"
        ),
    }
    assert {what: _status(call) for what, call in refused.items()} == dict.fromkeys(refused, 403)
    allowed = {
        "list pods": lambda: sa.core_v1.list_namespaced_pod("shop"),
        "evict a pod (dry run)": lambda: sa.core_v1.create_namespaced_pod_eviction(
            pod,
            ooda_chart.namespace,
            client.V1Eviction(
                metadata=client.V1ObjectMeta(name=pod, namespace=ooda_chart.namespace),
                delete_options=client.V1DeleteOptions(dry_run=["All"]),
            ),
        ),
        "cordon a node (dry run)": lambda: sa.core_v1.patch_node(
            node, {"spec": {"unschedulable": True}}, dry_run="All"
        ),
        "list Deployments": lambda: sa.apps_v1.list_namespaced_deployment("shop"),
        "read the kubelets' heartbeats": lambda: client.CoordinationV1Api(
            sa.api_client
        ).list_namespaced_lease("kube-node-lease"),
        "renew its Lease": lambda: client.CoordinationV1Api(sa.api_client).create_namespaced_lease(
            ooda_chart.namespace,
            client.V1Lease(metadata=client.V1ObjectMeta(name="ooda-leader")),
            dry_run="All",
        ),
    }
    assert {what: _status(call) for what, call in allowed.items()} == dict.fromkeys(allowed, 200)
