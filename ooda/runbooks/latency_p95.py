"""p95 over its objective: a service saturating where its CPU autoscaler cannot see it.

When requests wait on something other than CPU (a pool, a lock, a slow synchronous call),
each pod serves fewer at once and the queue grows: the p95 (from
``http_request_duration_seconds_bucket``) creeps up while the request rate and the CPU per
pod stays at the HPA's target, so the CPU HPA never adds a pod. The signature is exactly
that: p95 ``latency_inflation`` x its own normal and climbing (a believable line projected
across the objective within ``projection_lead``, already ``latency_inflation_alone`` x its
normal, already ``latency_near_objective`` of the objective, or ``latency_inflation_cool`` x
its normal with each pod no busier than then) while the pods' CPU is at or under the target
and the request rate flat. A traffic surge or wave (rate up) and
CPU-bound saturation (CPU over the target) are the surge runbook's and the HPA's, and so is
a p95 that rose no more than the load since the normal window (an evening's slow climb, with
the HPA a step behind it) or than the CPU per pod (the HPA scaling in on a flat load, each
pod then busier): the inflation must beat ``latency_inflation`` x the larger load ratio. A
wave's growing load is left to the HPA only while the inflation beyond that ratio stays
under ``latency_inflation_alone``: a slow path under a wave (seed 23's frontend at 290 ms,
x3 its normal for a load x1.3, its CPU inside the HPA's tolerance) is no wave's to wait out.

Slowness propagates up the call graph: a caller of a slow service is slow too. The runbook
acts only where it starts: a service one of whose callees (``OodaSettings.calls``) shows an
inflated p95 that accounts for half its caller's rise or more is left to that callee's
diagnosis. Lost capacity is not saturation: a service
with a pod not Ready, or one restarted or lost (Ready pods falling while the desired count
did not) in the last quarter hour, is the crash loop's, the memory leak's, the
node runbooks' or the HPA's, and so is its callers' slowness (a crash-looping callee's
failing calls make its callers wait); so is a service whose pods sit on a node
retransmitting, under disk pressure or NotReady.

The heal raises the HPA's floor to ``latency_scale_step`` x the Ready pods, a step at a time
(each once the previous one is Ready) while the p95 still climbs. The slow path itself is
still there, so the floor is not released when the p95 recovers — it recovers *because* of
the floor. After ``latency_hold`` well inside the objective the floor steps halfway back, a
probe: if the p95 climbs again, the runbook raises it again.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import cast

import numpy as np
import pandas as pd

from actuators import CHANGED_AT, Action, SetHpaMinReplicas, floor_purpose, ooda_floor
from contracts import MetricFamily, ScenarioId
from ooda._records import Diagnosis, Snapshot
from ooda.runbooks._base import Runbook, register_runbook
from ooda.runbooks._trend import epoch_seconds, floats, project_crossing
from ooda.runbooks.traffic_surge import surging

#: How far back the service's normal is read (minutes before ``NORMAL_GAP``).
NORMAL_WINDOW = timedelta(minutes=60)
#: The normal ends this long before now, so a creep that began minutes ago is not in it.
NORMAL_GAP = timedelta(minutes=15)
SECOND = timedelta(seconds=1)
#: The request rate is compared with its level this long before.
RATE_LAG = timedelta(minutes=10)
#: A pod restarted or lost this recently means capacity was lost, not saturated.
LOSS_WINDOW = timedelta(minutes=15)
#: A callee whose p95 rose by this share of its caller's rise or more is where it starts.
CALLEE_SHARE = 0.5
#: A probe back down happens only while the p95 stayed under this share of the objective.
PROBE_HEADROOM = 0.7


@register_runbook
class LatencyP95(Runbook):
    """Raise the HPA floor of a service saturating on something its CPU does not show."""

    name = "latency_p95"
    scenarios = (ScenarioId.LATENCY_P95,)
    priority = 60
    follows_root_cause = True
    deadline = timedelta(minutes=10)
    families = (MetricFamily.NODE,)

    def inflation(self, snapshot: Snapshot, service: str) -> tuple[float, float] | None:
        """``(p95, normal p95)`` of ``service`` when its p95 (the lower of its last two
        minutes) is ``latency_inflation`` x its normal or more; None otherwise."""
        view = snapshot.views.get(service)
        if view is None or not view.usable:
            return None
        t = epoch_seconds(view.history["timestamp"])
        p95s = floats(view.history["p95_latency_ms"])
        now, gap = snapshot.at.timestamp(), NORMAL_GAP / SECOND
        normal = p95s[(t <= now - gap) & (t > now - gap - NORMAL_WINDOW / SECOND)]
        recent = p95s[t > now - 180.0]
        if len(normal) < 20 or len(recent) < 2:
            return None
        if np.isnan(normal).all() or np.isnan(recent[-2:]).all():
            return None
        base = float(np.nanmedian(normal))
        p95 = float(np.nanmin(recent[-2:]))
        if not (math.isfinite(base) and math.isfinite(p95)) or base <= 0:
            return None
        if p95 < self.settings.policy.latency_inflation * base:
            return None
        return p95, base

    def capacity_lost(self, snapshot: Snapshot, service: str) -> bool:
        """Whether ``service`` lost capacity in the last ``LOSS_WINDOW``: a pod not Ready (a
        crash loop, a leak, the HPA's new pods), one restarted, or Ready pods falling below
        the desired count (a node, an eviction; not the HPA scaling in, which a slow path
        whose waiting lowers the CPU invites). That is not saturation."""
        workload = snapshot.workloads.get(service)
        view = snapshot.views.get(service)
        if workload is None or view is None:
            return False
        if workload.ready_replicas < workload.replicas:
            return True
        history = view.history
        recent = history[history["timestamp"] > pd.Timestamp(snapshot.at - LOSS_WINDOW)]
        # Ready pods falling below the desired count; an HPA's scale-in lowers both.
        lost = (recent["ready_pods"].diff() < 0) & (recent["ready_pods"] < recent["desired_pods"])
        return bool((recent["restarts"] > 0).any() or lost.any())

    def signature(self, snapshot: Snapshot, service: str) -> dict[str, object] | None:
        """The saturation evidence of ``service`` (None: its p95 is not creeping while its CPU
        is at or under the HPA's target, its pods all Ready and none restarting)."""
        inflated = self.inflation(snapshot, service)
        workload = snapshot.workloads.get(service)
        if inflated is None or workload is None:
            return None
        p95, base = inflated
        if self.capacity_lost(snapshot, service):
            return None
        if self._bad_node(snapshot, service):
            return None  # a node of its pods is sick: the node runbooks' to move them
        history = snapshot.views[service].history
        stamps = history["timestamp"]
        hpa = workload.hpa
        policy = self.settings.policy
        target = policy.default_target_utilisation
        if hpa is not None and hpa.target_cpu_utilisation:
            target = hpa.target_cpu_utilisation
        cpu = float(history["cpu_utilisation"].iloc[-3:].mean())
        if not math.isfinite(cpu) or cpu > policy.latency_cpu_margin * target:
            return None
        if surging(history, policy):
            return None
        rate = history["request_rate"]
        before = rate[(stamps <= pd.Timestamp(snapshot.at - RATE_LAG))].iloc[-5:].mean()
        growing = not rate.iloc[-3:].mean() <= policy.latency_flat_rate * before
        inflation = p95 / base
        normal = (stamps <= pd.Timestamp(snapshot.at - NORMAL_GAP)) & (
            stamps > pd.Timestamp(snapshot.at - NORMAL_GAP - NORMAL_WINDOW)
        )
        usual = float(rate[normal].median())  # 0 at an idle standby: no usual load to compare
        load = float(rate.iloc[-3:].mean()) / usual if usual > 0 else math.nan
        # The load each pod carries, as its CPU shows it: the HPA scaling in on a flat load
        # raises it (and the p95 with it) as surely as more requests do.
        usual_cpu = float(history["cpu_utilisation"][normal].median())
        per_pod = cpu / usual_cpu if usual_cpu > 0 else math.nan
        load = max((x for x in (load, per_pod) if math.isfinite(x)), default=math.nan)
        beyond = inflation / max(1.0, load) if math.isfinite(load) else inflation
        if beyond < policy.latency_inflation:
            return None  # the p95 rose no more than the load: an evening's peak, the HPA's
        lifting = growing and cpu > policy.latency_idle_cpu * target
        if lifting and beyond < policy.latency_inflation_alone:
            return None  # load is growing and the CPU shows it: the HPA follows it
        objective = self.settings.slo_for(service).p95_ms
        projection = project_crossing(
            stamps,
            history["p95_latency_ms"],
            objective,
            falling=False,
            now=snapshot.at,
            window=policy.trend_window,
            min_fit=policy.trend_min_fit,
        )
        soon = projection is not None and projection.eta_s <= policy.projection_lead / SECOND
        near = p95 >= policy.latency_near_objective * objective
        cool = per_pod <= 1.0 and inflation >= policy.latency_inflation_cool
        if not (soon or near or cool) and inflation < policy.latency_inflation_alone:
            return None
        return {
            "p95_ms": round(p95, 1),
            "normal_p95_ms": round(base, 1),
            "inflation": round(inflation, 2),
            "minutes_to_objective": (
                None if projection is None else round(projection.eta_s / 60.0, 1)
            ),
            "fit": None if projection is None else round(projection.fit, 3),
            "cpu_utilisation": round(cpu, 3),
        }

    def _bad_node(self, snapshot: Snapshot, service: str) -> bool:
        """Whether a node the service's pods run on is NotReady, under disk pressure or
        retransmitting more than half the lossy-path threshold in its newest minute."""
        frame = snapshot.families.get(MetricFamily.NODE)
        workload = snapshot.workloads[service]
        nodes = {p.node for p in workload.pods if p.node}
        if any(n in snapshot.nodes and snapshot.nodes[n].not_ready for n in nodes):
            return True
        if frame is None or not len(frame):
            return False
        mine = frame[frame["node"].isin(list(nodes))]
        newest = mine[mine["timestamp"] == mine["timestamp"].max()]
        with np.errstate(divide="ignore", invalid="ignore"):
            share = (
                newest["node_netstat_TcpExt_TCPRetransSegs_rate"]
                / newest["node_netstat_Tcp_OutSegs_rate"]
            )
        lossy = share > 0.5 * self.settings.policy.retransmit_share
        pressure = newest["kube_node_status_condition_disk_pressure"] > 0
        return bool(lossy.any() or pressure.any())

    def matches(self, snapshot: Snapshot, service: str) -> Diagnosis | None:
        workload = snapshot.workloads[service]
        hpa = workload.hpa
        if hpa is None:
            return None
        evidence = self.signature(snapshot, service)
        if evidence is None:
            probe = self._probe(snapshot, service)
            if probe is None:
                return None
            return self.diagnose(snapshot, service, 0.7, {"direction": "in", **probe})
        callees = [snapshot.views.get(c) for c in self.settings.calls.get(service, ())]
        if any(v is not None and not v.usable for v in callees):
            return None  # a callee's metrics cannot be trusted: where it starts is unknown
        rise = cast(float, evidence["p95_ms"]) - cast(float, evidence["normal_p95_ms"])
        if any(v is not None and self._explains(snapshot, v.service, rise) for v in callees):
            return None  # the slowness starts further down; its own diagnosis acts there
        if any(v is not None and self.capacity_lost(snapshot, v.service) for v in callees):
            return None  # a callee lost capacity (a crash loop, say): its runbook's, not ours
        if workload.ready_replicas < hpa.min_replicas:
            return None  # the last step is still starting
        running = max(workload.ready_replicas, hpa.current_replicas)
        wanted = min(hpa.max_replicas, math.ceil(running * self.settings.policy.latency_scale_step))
        evidence = {
            **evidence,
            "direction": "out",
            "hpa": hpa.name,
            "ready": workload.ready_replicas,
            "set_min": wanted if wanted > hpa.min_replicas else None,
            "max_replicas": hpa.max_replicas,
        }
        return self.diagnose(snapshot, service, 0.75, evidence)

    def _explains(self, snapshot: Snapshot, callee: str, rise: float) -> bool:
        """Whether ``callee``'s p95 is inflated and rose by ``CALLEE_SHARE`` of its caller's
        ``rise`` (ms) or more: the caller waits on it. A callee a few milliseconds slower
        under the same wave does not explain a caller slower by a hundred."""
        inflated = self.inflation(snapshot, callee)
        return inflated is not None and inflated[0] - inflated[1] >= CALLEE_SHARE * rise

    def _probe(self, snapshot: Snapshot, service: str) -> dict[str, object] | None:
        """The floor to step back to, once the p95 has been well inside long enough."""
        hpa = snapshot.workloads[service].hpa
        assert hpa is not None
        floor = ooda_floor(hpa.annotations, hpa.min_replicas, f"hpa/{hpa.name}")
        if floor is None or floor >= hpa.min_replicas:
            return None
        if floor_purpose(hpa.annotations) != self.name:
            return None
        hold = self.settings.policy.latency_hold
        try:
            raised_at = datetime.fromisoformat(hpa.annotations.get(CHANGED_AT, ""))
        except ValueError:
            return None
        if raised_at.tzinfo is None or snapshot.at - raised_at < hold:
            return None
        history = snapshot.views[service].history
        window = history[history["timestamp"] > pd.Timestamp(snapshot.at - hold)]
        p95 = window["p95_latency_ms"].to_numpy(dtype=float)
        limit = PROBE_HEADROOM * self.settings.slo_for(service).p95_ms
        if len(p95) < hold / timedelta(minutes=1) - 2 or not (p95 <= limit).all():
            return None
        step_back = floor + (hpa.min_replicas - floor) // 2
        return {"hpa": hpa.name, "set_min": step_back, "floor_found": floor, "p95_max": p95.max()}

    def propose(self, diagnosis: Diagnosis, snapshot: Snapshot) -> Action | None:
        ev = diagnosis.evidence
        if ev["set_min"] is None:
            return None  # already at the HPA's maximum: a human raises it or fixes the path
        if ev["direction"] == "out":
            why = (
                f"p95 {ev['p95_ms']} ms, x{ev['inflation']} its normal with CPU at"
                f" {ev['cpu_utilisation']:.0%}: saturated on something CPU does not show"
            )
        else:
            why = f"p95 under {ev['p95_max']:.0f} ms since the floor was raised: probing back"
        return SetHpaMinReplicas(
            snapshot.namespace,
            diagnosis.service,
            reason=why,
            hpa=str(ev["hpa"]),
            min_replicas=int(str(ev["set_min"])),
            purpose=self.name,
        )
