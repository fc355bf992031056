"""The real control plane itself: KWOK faults, two regions at once, a clean stop."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kubernetes import client

from actuators import ActionContext, evict_pod
from contracts import NODE_LEASE_NAMESPACE, KubeClients
from lab.k8s import (
    KUBE_VERSION,
    ClusterSettings,
    ClusterStoppedError,
    KubeCluster,
    NodeShape,
    node_ready,
)
from ooda import read_heartbeat_lags, read_workloads
from tests._narrow import name_of, some
from tests.k8s._backends import SERVICE, ready_pods, real_backend

pytestmark = pytest.mark.k8s


def _until(predicate: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _condition(node: client.V1Node, kind: str) -> str | None:
    for c in some(node.status).conditions or []:
        if c.type == kind:
            return str(c.status)
    return None


def _taints(node: client.V1Node) -> set[str]:
    return {f"{t.key}:{t.effect}" for t in some(node.spec).taints or []}


def test_crashloop_stage_raises_restarts_and_the_policy_sees_it(kube_cluster: KubeCluster) -> None:
    b = real_backend(kube_cluster)
    try:
        pod = ready_pods(b.kube, b.namespace)[0].metadata.name
        kube_cluster.set_fault("crashloop", "pod", pod, b.namespace)

        def restarts() -> int:
            p = b.kube.core_v1.read_namespaced_pod(pod, b.namespace)
            return sum(s.restart_count or 0 for s in p.status.container_statuses or [])

        _until(lambda: restarts() >= 3, "the restart count to rise to 3", 30)
        state = read_workloads(b.kube, b.namespace, [SERVICE])[SERVICE]
        found = {p.name: p.restarts for p in state.crashlooping}
        assert pod in found and found[pod] >= 3
        assert len(ready_pods(b.kube, b.namespace)) == 2
        first = restarts()
        _until(lambda: restarts() > first, "the count to keep rising", 15)
    finally:
        for cleanup in b.cleanups:
            cleanup()


def test_a_pod_no_node_has_room_for_is_read_as_unschedulable(kube_cluster: KubeCluster) -> None:
    """The scheduler's own verdict (``PodScheduled`` False, ``Unschedulable``) reaches the
    loop: what tells a floor that did not fill from one that is still filling."""
    b = real_backend(kube_cluster)
    try:
        huge = {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": SERVICE, "resources": {"requests": {"cpu": "1000"}}}
                        ]
                    }
                }
            }
        }
        b.kube.apps_v1.patch_namespaced_deployment(SERVICE, b.namespace, huge)

        def pending() -> tuple[str, ...]:
            state = read_workloads(b.kube, b.namespace, [SERVICE])[SERVICE]
            return tuple(p.name for p in state.unschedulable)

        _until(lambda: bool(pending()), "the scheduler to find no room for the new pod", 30)
        state = read_workloads(b.kube, b.namespace, [SERVICE])[SERVICE]
        assert all(p.node is None for p in state.unschedulable)
        assert state.ready_replicas >= 2, "the old pods still serve"
        assert not any(p.unschedulable for p in state.pods if p.node is not None)
    finally:
        for cleanup in b.cleanups:
            cleanup()


def test_node_faults_set_conditions_and_the_controllers_taint(kube_cluster: KubeCluster) -> None:
    core = kube_cluster.clients().core_v1
    sick, full = (name_of(n) for n in core.list_node().items[:2])
    kube_cluster.set_fault("node-not-ready", "node", sick)
    kube_cluster.set_fault("disk-pressure", "node", full)
    try:
        _until(
            lambda: (
                _condition(core.read_node(sick), "Ready") == "False"
                and "node.kubernetes.io/not-ready:NoSchedule" in _taints(core.read_node(sick))
            ),
            "NotReady and the not-ready taint",
        )
        _until(
            lambda: (
                _condition(core.read_node(full), "DiskPressure") == "True"
                and "node.kubernetes.io/disk-pressure:NoSchedule" in _taints(core.read_node(full))
            ),
            "DiskPressure and its taint",
        )
        assert node_ready(core.read_node(full)), "disk pressure alone leaves the node Ready"
    finally:
        kube_cluster.set_fault("node-not-ready", "node", sick, on=False)
        kube_cluster.set_fault("disk-pressure", "node", full, on=False)
    _until(
        lambda: (
            node_ready(core.read_node(sick))
            and _condition(core.read_node(full), "DiskPressure") == "False"
            and not _taints(core.read_node(sick)) | _taints(core.read_node(full))
        ),
        "both nodes to recover and lose their taints",
    )


def test_two_regions_run_side_by_side(kube_cluster: KubeCluster) -> None:
    settings = ClusterSettings(name="us", region="us-east-1", nodes=NodeShape(count=2))
    with KubeCluster(settings) as second:
        assert second.kubeconfig != kube_cluster.kubeconfig
        assert second.server != kube_cluster.server
        regions = {
            some(some(n.metadata).labels)["topology.kubernetes.io/region"]
            for n in second.clients().core_v1.list_node().items
        }
        assert regions == {"us-east-1"}
        first_nodes = kube_cluster.clients().core_v1.list_node().items
        first_regions = {
            some(some(n.metadata).labels)["topology.kubernetes.io/region"] for n in first_nodes
        }
        assert first_regions == {"eu-west-1"}
        second.clients().core_v1.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name="only-in-us"))
        )
        names = {name_of(n) for n in kube_cluster.clients().core_v1.list_namespace().items}
        assert "only-in-us" not in names
        pids = [p.popen.pid for p in second._procs]
        workdir = second.workdir
    assert all(not Path(f"/proc/{pid}").exists() or _zombie(pid) for pid in pids)
    assert not workdir.exists()
    with pytest.raises(ClusterStoppedError):
        second.clients()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_kubeconfig_works_for_other_clients(kube_cluster: KubeCluster) -> None:
    """The kubeconfig file alone reaches the cluster (as kubectl or an operator would use it)."""
    from kubernetes import config

    api = config.new_client_from_config(config_file=str(kube_cluster.kubeconfig))
    try:
        assert client.VersionApi(api).get_code().git_version == KUBE_VERSION
    finally:
        api.close()


def test_a_kubelet_that_stops_renewing_its_lease_trails_the_others(
    kube_cluster: KubeCluster,
) -> None:
    """The heartbeat the loop reads before the node controller's grace period is over: the
    real Leases in kube-node-lease, one per node. KWOK renews its nodes'; this test is the
    kubelet of one more node, renews its Lease a while, then goes silent."""
    clients = kube_cluster.clients()
    core = clients.core_v1
    leases = client.CoordinationV1Api(clients.api_client)
    kube = KubeClients(core, None, None, coordination_v1=leases)
    name = "lease-probe"
    core.create_node(
        client.V1Node(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1NodeSpec(unschedulable=True),  # no other test's pod lands here
        )
    )
    try:
        lease = leases.create_namespaced_lease(
            NODE_LEASE_NAMESPACE,
            client.V1Lease(
                metadata=client.V1ObjectMeta(name=name),
                spec=client.V1LeaseSpec(
                    holder_identity=name, lease_duration_seconds=40, renew_time=_now()
                ),
            ),
        )
        for _ in range(3):
            time.sleep(2)
            some(lease.spec).renew_time = _now()
            lease = leases.replace_namespaced_lease(name, NODE_LEASE_NAMESPACE, lease)
        lags = read_heartbeat_lags(kube)
        assert {name_of(n) for n in core.list_node().items} <= set(lags)
        assert max(lags.values()) < 20, lags
        silent = time.monotonic()
        _until(lambda: read_heartbeat_lags(kube)[name] >= 20, "its Lease to trail", 60)
        assert time.monotonic() - silent >= 10  # the others' renewals, not the loop's clock
        lags = read_heartbeat_lags(kube)
        assert max(lag for node, lag in lags.items() if node != name) < 20, lags
    finally:
        core.delete_node(name)
        with contextlib.suppress(client.ApiException):
            leases.delete_namespaced_lease(name, NODE_LEASE_NAMESPACE)


def _now() -> datetime:
    return datetime.now(UTC)


def test_an_eviction_in_a_namespace_being_deleted_counts_the_pod_as_going(
    kube_cluster: KubeCluster,
) -> None:
    """Another team's namespace being deleted while a pod of it sits on the node: the API
    server refuses that pod's eviction (403, ``NamespaceTerminating``: no new content in the
    namespace). The pod goes with its namespace; the eviction counts it so, as ``kubectl
    drain`` does, rather than fail a drain (found by ``benchmarks/bench_held_drain.py``, whose
    runs follow each other on one cluster)."""
    b = real_backend(kube_cluster)
    c = kube_cluster.clients()
    gone = f"gone-{b.namespace.removeprefix('shop-')}"
    c.core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=gone)))
    hold = "ooda.dev/test-hold"
    labels = {"app": "leftover"}
    template = client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels=labels, finalizers=[hold]),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name="app", image="registry.example.com/x:1")]
        ),
    )
    c.apps_v1.create_namespaced_deployment(
        gone,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="leftover"),
            spec=client.V1DeploymentSpec(
                replicas=1, selector=client.V1LabelSelector(match_labels=labels), template=template
            ),
        ),
    )
    pods: list[client.V1Pod] = []
    try:
        _until(lambda: len(ready_pods(b.kube, gone, "leftover")) == 1, "the leftover pod Ready")
        leftover = ready_pods(b.kube, gone, "leftover")[0]
        c.core_v1.delete_namespace(gone)

        def terminating() -> bool:
            pods[:] = c.core_v1.list_namespaced_pod(gone).items
            phase = some(c.core_v1.read_namespace(gone).status).phase
            return phase == "Terminating" and all(some(p.metadata).deletion_timestamp for p in pods)

        _until(terminating, "the namespace Terminating, its pod held by a finalizer")
        with pytest.raises(client.exceptions.ApiException) as refused:
            c.core_v1.create_namespaced_pod_eviction(
                name_of(leftover),
                gone,
                client.V1Eviction(metadata=client.V1ObjectMeta(name=name_of(leftover))),
            )
        assert refused.value.status == 403 and "NamespaceTerminating" in str(refused.value.body)

        outcome = evict_pod(ActionContext(b.kube, sleep=time.sleep), name_of(leftover), gone)
        assert outcome.evicted and outcome.refusals == 0
    finally:
        for pod in pods:
            with contextlib.suppress(client.exceptions.ApiException):
                c.core_v1.patch_namespaced_pod(
                    name_of(pod), gone, {"metadata": {"finalizers": None}},
                    _content_type="application/merge-patch+json",
                )  # fmt: skip
        for cleanup in b.cleanups:
            cleanup()
