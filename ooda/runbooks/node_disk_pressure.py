"""Node disk pressure: drain a node before its kubelet starts evicting pods.

``node_filesystem_avail_bytes`` / ``node_filesystem_size_bytes`` (node-exporter) of every
node the service runs on is fitted over the last minutes; when the line is believable and
crosses the kubelets' hard eviction threshold within ``projection_lead`` -- or the kubelet
already reports ``DiskPressure`` -- the node is drained: cordoned, then emptied through the
Eviction API, so PodDisruptionBudgets hold, instead of the kubelet's evictions, which ignore
them and give the pods no grace. Cleaning the disk is a human's job; the drain buys time.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import numpy as np

from actuators import Action, DrainNode
from contracts import MetricFamily, ScenarioId
from ooda._records import ComponentKind, Diagnosis, Finding, Snapshot
from ooda.runbooks._base import Runbook, drained, register_runbook, running_nodes
from ooda.runbooks._trend import Projection, epoch_seconds, floats, project_line


@register_runbook
class NodeDiskPressure(Runbook):
    """Drain a node whose disk is about to reach the kubelet's eviction threshold."""

    name = "node_disk_pressure"
    scenarios = (ScenarioId.NODE_DISK_PRESSURE,)
    priority = 6
    heals = ComponentKind.NODE
    deadline = timedelta(minutes=12)
    acts_when_idle = True
    families = (MetricFamily.NODE,)

    def matches(self, snapshot: Snapshot, service: str) -> Diagnosis | None:
        workload = snapshot.workloads[service]
        policy = self.settings.policy
        for node in running_nodes(snapshot, service):
            state = snapshot.nodes[node]
            evidence: dict[str, object] = {"node": node, "disk_pressure": False}
            if "DiskPressure" in state.pressures:
                evidence["disk_pressure"] = True
            else:
                key = ("disk_projection", node)
                projection = snapshot.once(key, partial(self._projection, snapshot, node))
                if projection is None or projection.eta_s > policy.projection_lead.total_seconds():
                    continue
                evidence.update(
                    available=round(projection.latest, 4),
                    minutes_to_eviction=round(projection.eta_s / 60.0, 1),
                    slope_per_min=round(projection.slope_per_min, 5),
                    fit=round(projection.fit, 3),
                )
            evidence["pods"] = [p.name for p in workload.pods if p.node == node]
            return self.diagnose(snapshot, service, 0.9, evidence, target=f"node/{node}")
        return None

    def _projection(self, snapshot: Snapshot, node: str) -> Projection | None:
        """When the node's free filesystem share reaches the kubelet's eviction threshold."""
        rows = snapshot.rows_of(MetricFamily.NODE, "node", node)
        if not len(rows):
            return None
        policy = self.settings.policy
        with np.errstate(divide="ignore", invalid="ignore"):  # no size: not finite, dropped
            ratio = floats(rows["node_filesystem_avail_bytes"]) / floats(
                rows["node_filesystem_size_bytes"]
            )
        return project_line(
            epoch_seconds(rows["timestamp"]),
            ratio,
            policy.disk_eviction_threshold,
            falling=True,
            now_s=snapshot.at.timestamp(),
            window_s=policy.trend_window.total_seconds(),
            min_fit=policy.trend_min_fit,
        )

    def follow_up(self, diagnosis: Diagnosis, action: Action, snapshot: Snapshot) -> Finding:
        ev = diagnosis.evidence
        filled = (
            "came under DiskPressure"
            if ev["disk_pressure"]
            else "was filling toward the kubelet's eviction threshold"
        )
        return drained(ev["node"], f"'s disk {filled}", "free or grow its filesystem")

    def propose(self, diagnosis: Diagnosis, snapshot: Snapshot) -> Action | None:
        evidence = diagnosis.evidence
        when = (
            "is under DiskPressure"
            if evidence["disk_pressure"]
            else f"reaches the eviction threshold in {evidence['minutes_to_eviction']} min"
        )
        return DrainNode(
            snapshot.namespace,
            diagnosis.service,
            reason=f"node {evidence['node']}'s disk {when}",
            node=str(evidence["node"]),
            room_on_demand=self.settings.nodes_on_demand,
        )
