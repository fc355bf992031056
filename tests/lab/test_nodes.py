"""The lab's nodes: a dead kubelet, a filling disk and a lossy path, with Kubernetes' own
defaults (grace period, toleration, kubelet eviction), and the families that report them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from contracts import FAMILIES, NODE_LEASE_NAMESPACE, MetricFamily, ScenarioId
from lab import Lab, LabSettings, ScenarioInstance, SimClock
from lab._kubelet import (
    NODE_MONITOR_GRACE_S,
    NOT_READY_TOLERATION_S,
    kill_node,
    pods_on,
    revive_node,
)
from tests._narrow import name_of, some

START = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)


def _lab() -> Lab:
    lab = Lab(LabSettings(seed=4), SimClock(START))
    lab.step(timedelta(minutes=10))
    return lab


def _ready(lab: Lab, name: str) -> str:
    node = lab.kube.core_v1.read_node(name)
    return next(c.status for c in some(some(node.status).conditions) if c.type == "Ready")


def test_a_dead_node_turns_unknown_after_the_grace_period_and_loses_its_pods_after_300s() -> None:
    lab = _lab()
    node = lab.cluster.nodes[0]
    held = len(pods_on(lab.cluster, node))
    assert held > 0
    kill_node(node, lab.clock_s)
    lab.step(timedelta(seconds=NODE_MONITOR_GRACE_S - 10))
    assert _ready(lab, node.name) == "True"  # the API has not noticed yet
    lab.step(timedelta(seconds=15))
    assert _ready(lab, node.name) == "Unknown"
    node_spec = some(lab.kube.core_v1.read_node(node.name).spec)
    taints = {f"{t.key}:{t.effect}" for t in some(node_spec.taints)}
    assert "node.kubernetes.io/unreachable:NoExecute" in taints
    stranded = lab.kube.core_v1.list_pod_for_all_namespaces(
        field_selector=f"spec.nodeName={node.name}"
    ).items
    assert len(stranded) == held
    assert not any(
        c.status == "True"
        for p in stranded
        for c in some(some(p.status).conditions)
        if c.type == "Ready"
    )
    lab.step(timedelta(seconds=NOT_READY_TOLERATION_S))
    assert pods_on(lab.cluster, node) == []
    lab.step(timedelta(minutes=2))
    assert pods_on(lab.cluster, node) == [], "nothing is scheduled on a NotReady node"
    ready = {
        name_of(d): some(d.status).ready_replicas
        for d in lab.kube.apps_v1.list_namespaced_deployment("shop").items
    }
    assert all(n and n > 0 for n in ready.values())
    revive_node(lab.cluster, node, lab.clock_s)
    lab.step(timedelta(seconds=15))
    assert _ready(lab, node.name) == "True"


def test_requests_to_a_dead_nodes_pods_fail_until_they_are_marked_not_ready() -> None:
    lab = _lab()
    kill_node(lab.cluster.nodes[1], lab.clock_s)
    t0 = lab.clock.now()
    lab.step(timedelta(minutes=3))
    metrics = lab.source.query_range(t0, lab.clock.now(), timedelta(minutes=1))
    first = metrics[metrics["timestamp"] == metrics["timestamp"].min() + timedelta(minutes=1)]
    last = metrics[metrics["timestamp"] == metrics["timestamp"].max()]
    assert (first["error_rate"] > 0.05).any()
    assert (last["error_rate"] < 0.01).all()


def test_the_node_family_reports_readiness_disk_and_retransmits() -> None:
    lab = _lab()
    dead, full, lossy = lab.cluster.nodes
    kill_node(dead, lab.clock_s)
    full.disk_used_bytes = 0.88 * full.disk_size_bytes
    full.disk_fill_bps = 0.01 * full.disk_size_bytes / 60  # 1 % a minute
    lossy.packet_loss = 0.05
    t0 = lab.clock.now()
    lab.step(timedelta(minutes=5))
    frame = lab.source.query_family(MetricFamily.NODE, t0, lab.clock.now(), timedelta(minutes=1))
    assert list(frame.columns) == list(FAMILIES[MetricFamily.NODE].columns)
    newest = frame[frame["timestamp"] == frame["timestamp"].max()].set_index("node")
    assert newest.loc[dead.name, "kube_node_status_condition_ready"] == 0.0
    assert newest.loc[lossy.name, "kube_node_status_condition_ready"] == 1.0
    assert newest.loc[full.name, "kube_node_status_condition_disk_pressure"] == 1.0
    avail = frame[frame["node"] == full.name]["node_filesystem_avail_bytes"].to_numpy()
    assert (np.diff(avail) < 0).all(), "the disk fills"
    share = (
        newest["node_netstat_TcpExt_TCPRetransSegs_rate"] / newest["node_netstat_Tcp_OutSegs_rate"]
    )
    assert share[lossy.name] > 0.04


def test_disk_pressure_taints_the_node_and_the_kubelet_evicts_one_pod_at_a_time() -> None:
    lab = _lab()
    node = lab.cluster.nodes[2]
    node.disk_used_bytes = 0.95 * node.disk_size_bytes
    held = len(pods_on(lab.cluster, node))
    lab.step(timedelta(seconds=15))
    api = lab.kube.core_v1.read_node(node.name)
    assert api.status is not None and api.spec is not None
    assert any(c.type == "DiskPressure" and c.status == "True" for c in some(api.status.conditions))
    assert "node.kubernetes.io/disk-pressure:NoSchedule" in {
        f"{t.key}:{t.effect}" for t in some(api.spec.taints)
    }
    assert len(pods_on(lab.cluster, node)) == held - 1
    lab.step(timedelta(seconds=30))
    assert len(pods_on(lab.cluster, node)) == held - 3  # one per 15 s sub-step


def test_the_pod_family_has_every_scraped_pod_with_its_memory_and_limit() -> None:
    lab = _lab()
    now = lab.clock.now()
    frame = lab.source.query_family(
        MetricFamily.POD, now - timedelta(minutes=1), now, timedelta(minutes=1)
    )
    assert list(frame.columns) == list(FAMILIES[MetricFamily.POD].columns)
    newest = frame[frame["timestamp"] == frame["timestamp"].max()]
    assert set(newest["pod"]) == set(lab.cluster.pods)
    used = newest["container_memory_working_set_bytes"]
    limit = newest["kube_pod_container_resource_limits_memory_bytes"]
    assert ((used > 0) & (used < limit)).all()


def test_a_human_still_replaces_a_dead_node_after_its_pods_moved_away() -> None:
    """The fault is over once the taint manager evicted the pods, but the node stays dead
    until someone repairs it: a generated history's operator must still bring it back, or
    node after node dies and the estate ends with nowhere to run."""
    lab = _lab()
    record = lab.inject(ScenarioInstance(ScenarioId.NODE_NOT_READY, "checkout"))
    lab.step(timedelta(seconds=NODE_MONITOR_GRACE_S + NOT_READY_TOLERATION_S + 30))
    over = next(r for r in lab.ground_truth if r.target == record.target)
    assert over.ends_at is not None, "the pods moved away: the fault is over"
    assert _ready(lab, record.target) == "Unknown"
    lab.clear(record)
    lab.step(timedelta(seconds=15))
    assert _ready(lab, record.target) == "True"


def test_a_dead_nodes_pods_fail_for_the_grace_period_whatever_the_step() -> None:
    """The grace period ends inside a 15 s sub-step: the requests of that sub-step's first
    part fail, as they do when the lab moves in 1 s steps."""
    errors = []
    for step in (timedelta(seconds=15), timedelta(seconds=1)):
        lab = _lab()
        kill_node(lab.cluster.nodes[1], lab.clock_s)
        t0 = lab.clock.now()
        while lab.clock.now() < t0 + timedelta(minutes=1):
            lab.step(step)
        minute = lab.source.query_range(t0, lab.clock.now(), timedelta(minutes=1))
        errors.append(minute[minute["timestamp"] == lab.clock.now()]["error_rate"].to_numpy())
    coarse, fine = errors
    assert (fine > 0.05).any()
    np.testing.assert_allclose(coarse, fine, rtol=0.1, atol=0.002)


def test_each_node_has_a_heartbeat_lease_that_a_dead_kubelet_stops_renewing() -> None:
    lab = _lab()
    dead = lab.cluster.nodes[1]
    kill_node(dead, lab.clock_s)
    died = lab.clock.now()
    seen: dict[str, set[datetime]] = {}
    for _ in range(8):
        lab.step(timedelta(seconds=5))
        leases = lab.kube.coordination_v1.list_namespaced_lease(NODE_LEASE_NAMESPACE).items
        assert {name_of(lease) for lease in leases} == {n.name for n in lab.cluster.nodes}
        for lease in leases:
            renew_time = some(some(lease.spec).renew_time)
            assert renew_time <= lab.clock.now()
            assert some(lease.spec).lease_duration_seconds == 40
            seen.setdefault(name_of(lease), set()).add(renew_time)
    assert len(seen.pop(dead.name)) == 1
    lease = lab.kube.coordination_v1.read_namespaced_lease(dead.name, NODE_LEASE_NAMESPACE)
    renewed = some(some(lease.spec).renew_time)
    assert died - timedelta(seconds=10) < renewed <= died
    # 40 s of renewals every 10 s.
    assert all(len(times) >= 4 for times in seen.values()), seen
    assert lab.kube.coordination_v1.list_namespaced_lease("shop").items == []
