"""Moving pods off a node only where they fit: the scheduler's filters simulated over V1
objects, and the drain and the move that refuse (no mutating call) when a serving pod would
fit nowhere, but not for pods that serve nothing."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from actuators import DrainNode, NoRoomError, RecreatePodElsewhere, place_pods
from tests.actuators._stubs import NS, StubCore, context, make_node, make_pod, mutations


def _node(name: str, cpu: str = "2", **kw: Any) -> Any:
    node = make_node(name, **kw)
    node.status.allocatable = {"cpu": cpu, "memory": "8Gi", "pods": "110"}
    return node


def _pod(name: str, node: str, cpu: str = "500m", *, ready: bool = True, **kw: Any) -> Any:
    pod = make_pod(name, node, **kw)
    pod.spec.containers[0].resources = client.V1ResourceRequirements(
        requests={"cpu": cpu, "memory": "256Mi"}
    )
    pod.status.conditions = [client.V1PodCondition(type="Ready", status=str(ready))]
    return pod


def _place(pods: list[Any], nodes: list[Any], bound: list[Any]) -> Any:
    return place_pods(pods, nodes, bound, "n1")


def test_a_pod_goes_where_its_request_fits_and_names_why_elsewhere_is_full() -> None:
    nodes = [_node("n1"), _node("n2"), _node("n3")]
    bound = [_pod("big", "n2", "1800m"), _pod("mid", "n3", "1")]
    placement = _place([_pod("web-1", "n1")], nodes, bound)
    assert placement.moves == {f"{NS}/web-1": "n3"} and not placement.unplaced
    crowded = _place([_pod("web-1", "n1", "1200m")], nodes, bound)
    assert crowded.unplaced == {f"{NS}/web-1": "0/2 other nodes are available: 2 Insufficient cpu"}


def test_pods_are_packed_largest_first_so_pods_that_fit_together_are_placed() -> None:
    """Free CPU 1.0 on n2 and 0.6 on n3: 600m then 1000m in that order would put the small
    one on n2 (most room) and leave the large one nowhere; best fit, largest first, places both."""
    nodes = [_node("n1"), _node("n2"), _node("n3")]
    bound = [_pod("a", "n2", "1"), _pod("b", "n3", "1400m")]
    pods = [_pod("small", "n1", "600m"), _pod("large", "n1", "1")]
    placement = _place(pods, nodes, bound)
    assert placement.moves == {f"{NS}/large": "n2", f"{NS}/small": "n3"}


def test_finished_pods_hold_no_room_and_init_containers_count_at_their_largest() -> None:
    nodes = [_node("n1"), _node("n2", cpu="1")]
    done = _pod("job", "n2", "1")
    done.status.phase = "Succeeded"
    assert _place([_pod("web-1", "n1")], nodes, [done]).moves == {f"{NS}/web-1": "n2"}
    warm = _pod("web-1", "n1", "200m")
    warm.spec.init_containers = [
        client.V1Container(
            name="warm", resources=client.V1ResourceRequirements(requests={"cpu": "1500m"})
        )
    ]
    assert "1 Insufficient cpu" in _place([warm], nodes, []).unplaced[f"{NS}/web-1"]


def test_cordoned_not_ready_and_tainted_nodes_take_nothing_unless_tolerated() -> None:
    nodes = [
        _node("n1"),
        _node("n2", cordoned=True),
        _node("n3", ready=False),
        _node("n4"),
    ]
    nodes[3].spec.taints = [client.V1Taint(key="dedicated", value="gpu", effect="NoSchedule")]
    pod = _pod("web-1", "n1")
    why = _place([pod], nodes, []).unplaced[f"{NS}/web-1"]
    assert why == (
        "0/3 other nodes are available: 1 node(s) had untolerated taint {dedicated: gpu},"
        " 1 node(s) were not ready, 1 node(s) were unschedulable"
    )
    pod.spec.tolerations = [client.V1Toleration(key="dedicated", operator="Exists")]
    assert _place([pod], nodes, []).moves == {f"{NS}/web-1": "n4"}


def test_node_selector_and_required_node_affinity_are_honoured() -> None:
    nodes = [_node("n1"), _node("n2"), _node("n3")]
    nodes[1].metadata.labels["disk"] = "ssd"
    pod = _pod("db-1", "n1")
    pod.spec.node_selector = {"disk": "ssd"}
    assert _place([pod], nodes, []).moves == {f"{NS}/db-1": "n2"}
    pod.spec.node_selector = None
    term = client.V1NodeSelectorTerm(
        match_fields=[
            client.V1NodeSelectorRequirement(key="metadata.name", operator="NotIn", values=["n2"])
        ],
        match_expressions=[client.V1NodeSelectorRequirement(key="disk", operator="DoesNotExist")],
    )
    pod.spec.affinity = client.V1Affinity(
        node_affinity=client.V1NodeAffinity(
            required_during_scheduling_ignored_during_execution=client.V1NodeSelector(
                node_selector_terms=[term]
            )
        )
    )
    assert _place([pod], nodes, []).moves == {f"{NS}/db-1": "n3"}
    nodes[2].metadata.labels["disk"] = "hdd"
    assert (
        "didn't match Pod's node affinity/selector"
        in _place([pod], nodes, []).unplaced[f"{NS}/db-1"]
    )


# -- the actions ------------------------------------------------------------------------------


def _full_cluster(ready: bool = True, node_ready: bool = True) -> StubCore:
    """n1 holds three serving web pods; n2 and n3 have room for two of them."""
    nodes = [_node("n1", ready=node_ready), _node("n2"), _node("n3")]
    pods = [_pod(f"web-{i}", "n1", ready=ready) for i in range(3)]
    pods += [_pod("other-2", "n2", "1500m"), _pod("other-3", "n3", "1500m")]
    return StubCore(nodes, pods)


def test_a_drain_that_would_strand_a_serving_pod_is_refused_untouched() -> None:
    core = _full_cluster()
    ctx, spies = context(core)
    with pytest.raises(NoRoomError, match=r"1 serving pod\(s\) would have no node to go to"):
        DrainNode(NS, "checkout", node="n1").apply(ctx)
    assert mutations(spies) == [] and core.evicted == []
    assert not core.nodes["n1"].spec.unschedulable


@pytest.mark.parametrize(
    "case", ["pods not ready", "node not ready", "node lost"], ids=lambda c: c.replace(" ", "-")
)
def test_a_drain_of_pods_that_serve_nothing_goes_ahead_without_room(case: str) -> None:
    core = _full_cluster(ready=case != "pods not ready", node_ready=case != "node not ready")
    ctx, _ = context(core)
    result = DrainNode(NS, "checkout", node="n1", node_lost=case == "node lost").apply(ctx)
    assert sorted(core.evicted) == ["web-0", "web-1", "web-2"]
    assert result.before["placement"] == {}


def test_a_cluster_that_adds_nodes_is_drained_into_pending() -> None:
    """With a cluster-autoscaler (or Karpenter) behind it, a pod with no node to go to waits
    Pending for the node the autoscaler adds: the drain goes ahead and says which pods wait."""
    core = _full_cluster()
    ctx, _ = context(core)
    result = DrainNode(NS, "checkout", node="n1", room_on_demand=True).apply(ctx)
    assert sorted(core.evicted) == ["web-0", "web-1", "web-2"]
    assert len(result.before["placement"]) == 2
    assert list(result.before["pending"].values()) == [
        "0/2 other nodes are available: 2 Insufficient cpu"
    ]


def test_a_drain_with_room_records_where_each_pod_would_go() -> None:
    core = _full_cluster()
    del core.pods["other-3"]
    ctx, _ = context(core)
    result = DrainNode(NS, "checkout", node="n1").apply(ctx)
    assert sorted(core.evicted) == ["web-0", "web-1", "web-2"]
    assert sorted(result.before["placement"].values()) == ["n2", "n3", "n3"]


def test_a_pod_moved_elsewhere_needs_a_node_to_go_to() -> None:
    nodes = [_node("n1"), _node("n2")]
    core = StubCore(nodes, [_pod("web-0", "n1"), _pod("other", "n2", "1800m")])
    ctx, spies = context(core)
    with pytest.raises(NoRoomError, match="Insufficient cpu"):
        RecreatePodElsewhere(NS, "checkout", pod="web-0").apply(ctx)
    assert mutations(spies) == [] and not core.nodes["n1"].spec.unschedulable
    del core.pods["other"]
    RecreatePodElsewhere(NS, "checkout", pod="web-0").apply(ctx)
    assert core.evicted == ["web-0"]


def test_a_pod_is_moved_into_pending_where_the_cluster_adds_nodes() -> None:
    nodes = [_node("n1"), _node("n2")]
    core = StubCore(nodes, [_pod("web-0", "n1"), _pod("other", "n2", "1800m")])
    ctx, _ = context(core)
    result = RecreatePodElsewhere(NS, "checkout", pod="web-0", room_on_demand=True).apply(ctx)
    assert core.evicted == ["web-0"]
    assert result.before["pending"] == {
        f"{NS}/web-0": "0/1 other nodes are available: 1 Insufficient cpu"
    }
