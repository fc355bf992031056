"""Bounded targets: what an action may touch, checked on small stub clusters.

No eviction of a pod no controller will replace; ``kubectl drain``'s refusals (bare pods,
emptyDir data); the HPA of a workload is the one whose ``scaleTargetRef`` names it; no node
action when 40 % of the node's pool is already out (cordoned counts), pool by pool.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from actuators import (
    SAFE_TO_EVICT,
    SAFE_TO_EVICT_LOCAL_VOLUMES,
    BudgetRefusedError,
    CallSpy,
    CordonNode,
    DrainNode,
    GuardRejectedError,
    KubeClients,
    NotLeaderError,
    RecreatePodElsewhere,
    RestartPod,
    TemporaryActuatorError,
)
from ooda import read_workloads
from tests.actuators._stubs import NS, StubCore, context, make_node, make_pod, mutations

# -- no eviction of a pod without a controller --------------------------------------------


@pytest.mark.parametrize(
    "bare",
    [
        make_pod("bare", owner=None),
        make_pod("owned-not-controlled", controller=False),
    ],
    ids=["no-owner", "owner-not-controller"],
)
def test_restart_pod_refuses_a_pod_no_controller_would_replace(bare: Any) -> None:
    """RestartPod refuses (GuardRejectedError, no eviction) a pod no controller replaces."""
    core = StubCore([make_node("n1")], [bare])
    ctx, spies = context(core)
    with pytest.raises(GuardRejectedError, match="no controller"):
        RestartPod(NS, "checkout", pod=bare.metadata.name).apply(ctx)
    assert mutations(spies) == [] and core.evicted == []


def test_restart_pod_evicts_a_controlled_pod() -> None:
    """The positive control: a ReplicaSet's pod is evicted through the Eviction API."""
    core = StubCore([make_node("n1")], [make_pod("ok")])
    ctx, spies = context(core)
    RestartPod(NS, "checkout", pod="ok").apply(ctx)
    assert mutations(spies) == ["create_namespaced_pod_eviction"] and core.evicted == ["ok"]


def test_recreate_pod_elsewhere_refuses_a_bare_pod_before_cordoning() -> None:
    """RecreatePodElsewhere refuses a bare pod and leaves its node schedulable."""
    core = StubCore([make_node("n1"), make_node("n2")], [make_pod("bare", owner=None)])
    ctx, spies = context(core)
    with pytest.raises(GuardRejectedError, match="no controller"):
        RecreatePodElsewhere(NS, "checkout", pod="bare").apply(ctx)
    assert mutations(spies) == []
    assert not core.nodes["n1"].spec.unschedulable


# -- kubectl drain's refusals ---------------------------------------------------------------


def test_drain_refuses_a_node_with_a_bare_pod() -> None:
    """A bare pod on the node: the drain refuses, names the pod, cordons and evicts nothing."""
    pods = [make_pod("web-1"), make_pod("lonely", owner=None)]
    core = StubCore([make_node("n1"), make_node("n2")], pods)
    ctx, spies = context(core)
    with pytest.raises(GuardRejectedError, match=r"without a controller: \['shop/lonely'\]"):
        DrainNode(NS, "checkout", node="n1").apply(ctx)
    assert mutations(spies) == [] and core.evicted == []
    assert not core.nodes["n1"].spec.unschedulable


def test_drain_refuses_emptydir_data_unless_told_it_may_go() -> None:
    """emptyDir pods block a drain; ``delete_emptydir_data=True`` lets it evict them."""
    pods = [make_pod("web-1"), make_pod("cache-1", empty_dir=True)]
    core = StubCore([make_node("n1"), make_node("n2")], pods)
    ctx, spies = context(core)
    with pytest.raises(GuardRejectedError, match=r"emptyDir data: \['shop/cache-1'\]"):
        DrainNode(NS, "checkout", node="n1").apply(ctx)
    assert mutations(spies) == [] and core.evicted == []

    result = DrainNode(NS, "checkout", node="n1", delete_emptydir_data=True).apply(ctx)
    assert sorted(core.evicted) == ["cache-1", "web-1"]
    assert core.nodes["n1"].spec.unschedulable and result.undoable


@pytest.mark.parametrize(
    ("annotations", "refused"),
    [
        ({SAFE_TO_EVICT: "true"}, False),
        ({SAFE_TO_EVICT_LOCAL_VOLUMES: "cache, scratch"}, False),
        ({SAFE_TO_EVICT_LOCAL_VOLUMES: "cache"}, True),
        ({SAFE_TO_EVICT: "false"}, True),
    ],
)
def test_drain_evicts_a_pod_that_declares_its_emptydir_disposable(
    annotations: dict[str, str], refused: bool
) -> None:
    """The cluster-autoscaler's annotations let a pod's owner say its emptyDir may go; a list
    that misses one of its volumes does not."""
    pods = [make_pod("web-1"), make_pod("cache-1", empty_dir=True, annotations=annotations)]
    core = StubCore([make_node("n1"), make_node("n2")], pods)
    ctx, _ = context(core)
    if refused:
        with pytest.raises(GuardRejectedError, match="emptyDir data"):
            DrainNode(NS, "checkout", node="n1").apply(ctx)
        assert core.evicted == []
    else:
        DrainNode(NS, "checkout", node="n1").apply(ctx)
        assert sorted(core.evicted) == ["cache-1", "web-1"]


def test_drain_leaves_daemonset_pods_and_does_not_refuse_them() -> None:
    """DaemonSet pods (even with emptyDir) stay; the rest are evicted."""
    pods = [make_pod("web-1"), make_pod("agent", owner="DaemonSet", empty_dir=True)]
    core = StubCore([make_node("n1"), make_node("n2")], pods)
    ctx, _ = context(core)
    result = DrainNode(NS, "checkout", node="n1").apply(ctx)
    assert core.evicted == ["web-1"] and result.before["skipped"] == 1


class _Budgeted(StubCore):
    """A PodDisruptionBudget that refuses the eviction of ``guarded`` ``refusals`` times."""

    def __init__(self, nodes: list[Any], pods: list[Any], guarded: str, refusals: int) -> None:
        super().__init__(nodes, pods)
        self.guarded, self.refusals = guarded, refusals
        self.asked: list[str] = []

    def create_namespaced_pod_eviction(self, name: str, namespace: str, body: Any, **_: Any) -> Any:
        self.asked.append(name)
        if name == self.guarded and self.refusals > 0:
            self.refusals -= 1
            raise ApiException(status=429, reason="Too Many Requests")
        return super().create_namespaced_pod_eviction(name, namespace, body)


def test_drain_goes_on_with_the_pods_a_refusing_budget_does_not_cover() -> None:
    """As ``kubectl drain``: a pod its PDB refuses is asked again after a backoff, while the
    node's other pods are evicted at once, not after it."""
    pods = [make_pod("web-1"), make_pod("pay-1", app="payments"), make_pod("pay-2", app="payments")]
    core = _Budgeted([make_node("n1"), make_node("n2")], pods, guarded="web-1", refusals=2)
    slept: list[float] = []
    ctx, _ = context(core)
    ctx = replace(ctx, sleep=slept.append)
    result = DrainNode(NS, "checkout", node="n1").apply(ctx)
    assert core.asked == ["web-1", "pay-1", "pay-2", "web-1", "web-1"]
    assert core.evicted == ["pay-1", "pay-2", "web-1"]
    assert len(slept) == 2 and slept[1] > slept[0]
    assert result.after["pdb_refusals"] == 2


def test_drain_that_a_budget_never_allows_stops_in_part_and_names_the_pod_left() -> None:
    """The budget did its job: the drain is applied in part (not an error, no failed heal),
    the node stays cordoned with the refused pod on it, for the next step to continue."""
    pods = [make_pod("web-1"), make_pod("pay-1", app="payments")]
    core = _Budgeted([make_node("n1"), make_node("n2")], pods, guarded="web-1", refusals=99)
    ctx, _ = context(core)
    result = DrainNode(NS, "checkout", node="n1").apply(ctx)
    assert result.after["evicted"] == [f"{NS}/pay-1"]
    assert result.after["waiting_on_budget"] == [f"{NS}/web-1"]
    assert core.evicted == ["pay-1"] and "web-1" in core.pods
    assert core.nodes["n1"].spec.unschedulable


def test_a_drain_stops_at_once_when_this_replica_loses_its_lease() -> None:
    """A drain waits on its budgets for about 90 s; the Lease lapses within 10 s of silence
    and another replica may then act: this one stops before its next round of evictions,
    refused (not failed), the node left cordoned for the new leader."""
    pods = [make_pod("web-1"), make_pod("pay-1", app="payments")]
    core = _Budgeted([make_node("n1"), make_node("n2")], pods, guarded="web-1", refusals=99)
    slept: list[float] = []
    ctx, _ = context(core)
    ctx = replace(ctx, sleep=slept.append, may_act=lambda: len(slept) < 2)
    no_more = r"web-1.*may act no more \(its Lease lapsed, or it is stopping\); 1 of 2"
    with pytest.raises(NotLeaderError, match=no_more) as caught:
        DrainNode(NS, "checkout", node="n1").apply(ctx)
    assert isinstance(caught.value, GuardRejectedError)
    assert core.asked == ["web-1", "pay-1", "web-1"]  # two rounds, then no more asking
    assert core.evicted == ["pay-1"] and core.nodes["n1"].spec.unschedulable


class _Failing(_Budgeted):
    """An API server that answers 503 for ``guarded`` instead of a budget's 429."""

    def create_namespaced_pod_eviction(self, name: str, namespace: str, body: Any, **_: Any) -> Any:
        if name == self.guarded:
            raise ApiException(status=503, reason="Service Unavailable")
        return super().create_namespaced_pod_eviction(name, namespace, body)


def test_drain_the_api_keeps_failing_stops_with_an_error() -> None:
    pods = [make_pod("web-1"), make_pod("pay-1", app="payments")]
    core = _Failing([make_node("n1"), make_node("n2")], pods, guarded="web-1", refusals=0)
    ctx, _ = context(core)
    with pytest.raises(TemporaryActuatorError, match="web-1: still refused") as caught:
        DrainNode(NS, "checkout", node="n1").apply(ctx)
    assert "node left cordoned" in str(caught.value)
    assert core.evicted == ["pay-1"] and "web-1" in core.pods


@pytest.mark.parametrize("action", ["restart", "recreate elsewhere"])
def test_an_eviction_a_budget_never_allows_is_refused_not_failed(action: str) -> None:
    """The budget did its job: the action is refused (tried again after the cooldown, never a
    failed heal), the pod left running, and a node cordoned for the move uncordoned."""
    pods = [make_pod("web-1"), make_pod("web-2")]
    core = _Budgeted([make_node("n1"), make_node("n2")], pods, guarded="web-1", refusals=99)
    ctx, _ = context(core)
    act = (
        RestartPod(NS, "checkout", pod="web-1")
        if action == "restart"
        else RecreatePodElsewhere(NS, "checkout", pod="web-1")
    )
    with pytest.raises(BudgetRefusedError, match=r"web-1.*PodDisruptionBudget") as caught:
        act.apply(ctx)
    assert isinstance(caught.value, GuardRejectedError)
    assert core.evicted == [] and "web-1" in core.pods
    assert not core.nodes["n1"].spec.unschedulable


# -- the HPA is found through its scaleTargetRef --------------------------------------------


def _hpa(name: str, target: str, low: int) -> Any:
    return client.V2HorizontalPodAutoscaler(
        metadata=client.V1ObjectMeta(name=name, namespace=NS),
        spec=client.V2HorizontalPodAutoscalerSpec(
            scale_target_ref=client.V2CrossVersionObjectReference(
                api_version="apps/v1", kind="Deployment", name=target
            ),
            min_replicas=low,
            max_replicas=20,
        ),
        status=client.V2HorizontalPodAutoscalerStatus(current_replicas=low, desired_replicas=low),
    )


def _deployment(name: str) -> Any:
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, namespace=NS, uid=f"uid-{name}"),
        spec=client.V1DeploymentSpec(
            replicas=3,
            selector=client.V1LabelSelector(match_labels={"app": name}),
            template=client.V1PodTemplateSpec(),
        ),
    )


class _Lists:
    """The four list calls ``read_workloads`` makes, over fixed objects."""

    def __init__(self, deployments: list[Any], pods: list[Any], hpas: list[Any]) -> None:
        self.deployments, self.pods, self.hpas = deployments, pods, hpas

    def list_namespaced_deployment(self, namespace: str, **_: Any) -> Any:
        return client.V1DeploymentList(items=self.deployments)

    def list_namespaced_replica_set(self, namespace: str, **_: Any) -> Any:
        return client.V1ReplicaSetList(items=[])

    def list_namespaced_pod(self, namespace: str, **_: Any) -> Any:
        return client.V1PodList(items=self.pods)

    def list_namespaced_horizontal_pod_autoscaler(self, namespace: str, **_: Any) -> Any:
        return client.V2HorizontalPodAutoscalerList(items=self.hpas)


def test_the_hpa_of_a_workload_is_the_one_whose_scale_target_ref_names_it() -> None:
    """An HPA named apart from its Deployment is found; one named like it but scaling
    another Deployment is not."""
    lists = _Lists(
        [_deployment("checkout"), _deployment("payments")],
        [make_pod("checkout-1"), make_pod("payments-1", app="payments")],
        [_hpa("checkout", "checkout-canary", 9), _hpa("checkout-autoscaler", "checkout", 4)],
    )
    workloads = read_workloads(KubeClients(lists, lists, lists), NS, ["checkout", "payments"])
    hpa = workloads["checkout"].hpa
    assert hpa is not None and (hpa.name, hpa.min_replicas) == ("checkout-autoscaler", 4)
    assert workloads["payments"].hpa is None
    assert [p.name for p in workloads["checkout"].pods] == ["checkout-1"]


# -- the node-pool health limit -------------------------------------------------------------


def pool(
    name: str, size: int, *, not_ready: int = 0, cordoned: int = 0, start: int = 0
) -> list[Any]:
    """``size`` nodes of pool ``name``; the last ``not_ready + cordoned`` of them are out."""
    nodes = []
    for i in range(size):
        out = size - 1 - i
        nodes.append(
            make_node(
                f"{name}{start + i}",
                name,
                ready=not cordoned <= out < cordoned + not_ready,
                cordoned=out < cordoned,
            )
        )
    return nodes


def cordon(nodes: list[Any], name: str) -> tuple[StubCore, list[CallSpy]]:
    """Cordon node ``name`` of the stub cluster of ``nodes``; raises as CordonNode does."""
    core = StubCore(nodes)
    ctx, spies = context(core)
    CordonNode(NS, "checkout", node=name).apply(ctx)
    return core, spies


@pytest.mark.parametrize(
    ("not_ready", "cordoned", "refused"),
    [(1, 1, True), (2, 0, True), (0, 2, True), (1, 0, False), (0, 1, False)],
    ids=["40%-mixed", "40%-not-ready", "40%-cordoned", "20%-not-ready", "20%-cordoned"],
)
def test_no_node_action_at_40_percent_of_the_pool_out(
    not_ready: int, cordoned: int, refused: bool
) -> None:
    """Pool of 5: two others out (NotReady or cordoned) refuses at 40 %; one out (20 %) acts."""
    nodes = pool("a", 5, not_ready=not_ready, cordoned=cordoned)
    assert sum(n.spec.unschedulable is True for n in nodes) == cordoned
    assert sum(n.status.conditions[0].status == "False" for n in nodes) == not_ready
    if refused:
        with pytest.raises(GuardRejectedError, match=r"2 of 5 nodes of pool 'a'.*\(40%\)"):
            cordon(nodes, "a0")
    else:
        core, spies = cordon(nodes, "a0")
        assert mutations(spies) == ["patch_node"] and core.nodes["a0"].spec.unschedulable


def test_pools_are_counted_apart() -> None:
    """A pool with most nodes out blocks its own nodes, not a node of another pool."""
    nodes = pool("a", 5) + pool("b", 4, not_ready=2, cordoned=1)
    core, _ = cordon(nodes, "a0")
    assert core.nodes["a0"].spec.unschedulable
    with pytest.raises(GuardRejectedError, match=r"3 of 4 nodes of pool 'b'"):
        cordon(nodes, "b0")
