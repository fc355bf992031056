"""Upstream throttling: shift calls an upstream's primary no longer accepts to its secondary.

A third-party API that answers 429 beyond a quota cannot be healed in our estate: our
client's retries only spend more of the quota, and each throttled call slows or fails the
request that made it. The calls leave through a Gateway API HTTPRoute named after the
upstream, whose backends are the primary (named as the upstream) and its secondary region
(``<upstream>-<suffix>``), as the client's ``http_client_requests`` series name them.

Diagnosis: the primary's ``http_client_requests_throttled`` share of its attempts has stayed
above ``throttled_share`` for ``spike_minutes`` in a row while the calling service suffers:
its errors over the objective or its p95 ``throttled_latency_inflation`` x its median
(throttling the retries absorb is no incident; a slowdown is caught before the generic
latency runbook raises pods against it). The heal is ``Reroute``: the
primary keeps the share of the calls it accepted in the newest minute, times
``upstream_headroom``, and the secondary takes the rest. The first attempts are told from the
retries with the client's retry count (``upstream_retries``): ``attempts = calls x (1 + p +
... + p^retries)`` for a throttled share ``p``. Only a healthy secondary gets more weight:
one that throttles too or answers slower than ``secondary_max_p95_ms`` is marked unhealthy,
and the action refuses (the incident is escalated by the refusal, never made worse).

The weight is never moved back by this runbook: with the primary at a reduced share it
cannot tell a restored quota from one the reduced share fits under, so the provider's word
is a human's to act on (a failed heal's undo, which the verifier does, is the other way
back). A secondary that starts throttling later is not healed either: nothing is left to
shift to, the verifier escalates.
"""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pandas as pd

from actuators import Action, Reroute
from contracts import MetricFamily, ScenarioId
from ooda._records import ComponentKind, Diagnosis, Finding, Snapshot
from ooda.runbooks._base import Runbook, register_runbook

REQUESTS = "http_client_requests_rate"
THROTTLED = "http_client_requests_throttled_rate"
P95 = "http_client_request_duration_p95_ms"
#: Weights of a rerouted rule sum to this (Gateway API weights are relative).
TOTAL_WEIGHT = 100


def first_attempts(attempts: float, share: float, retries: int) -> float:
    """Calls per second behind ``attempts`` per second of which ``share`` were throttled,
    each throttled one retried up to ``retries`` times."""
    return attempts / sum(share**k for k in range(retries + 1))


@register_runbook
class UpstreamThrottling(Runbook):
    """Move an HTTPRoute's weight from a throttling upstream to its healthy secondary."""

    name = "upstream_throttling"
    scenarios = (ScenarioId.UPSTREAM_THROTTLING,)
    priority = 35
    heals = ComponentKind.UPSTREAM
    deadline = timedelta(minutes=6)
    families = (MetricFamily.UPSTREAM,)

    def _suffering(self, snapshot: Snapshot, service: str) -> bool:
        """Whether the service's newest minute fails more than its objective allows, or is
        ``throttled_latency_inflation`` x slower than its median over the history held."""
        view = snapshot.views.get(service)
        if view is None or view.history.empty:
            return False
        history = view.history
        p95 = history["p95_latency_ms"].to_numpy(float)
        normal = float(np.nanmedian(p95)) if np.isfinite(p95).any() else math.nan
        slow = p95[-1] > self.settings.policy.throttled_latency_inflation * normal
        return bool(
            slow
            or float(history["error_rate"].iloc[-1]) > self.settings.slo_for(service).max_error_rate
        )

    def matches(self, snapshot: Snapshot, service: str) -> Diagnosis | None:
        frame = snapshot.families.get(MetricFamily.UPSTREAM)
        if frame is None or not len(frame):
            return None
        rows = frame[frame["service"] == service]
        if rows.empty or not self._suffering(snapshot, service):
            return None
        names = sorted(set(rows["upstream"]))
        for primary in names:
            secondaries = [n for n in names if n.startswith(f"{primary}-")]
            if not secondaries:
                continue  # not a route's primary
            found = self._diagnose(snapshot, service, rows, primary, secondaries[0])
            if found is not None:
                return found
        return None

    def _diagnose(
        self, snapshot: Snapshot, service: str, rows: pd.DataFrame, primary: str, secondary: str
    ) -> Diagnosis | None:
        policy = self.settings.policy
        mine = rows[rows["upstream"] == primary].sort_values("timestamp")
        recent = mine.tail(policy.spike_minutes)
        with np.errstate(invalid="ignore", divide="ignore"):
            shares = recent[THROTTLED].to_numpy(float) / recent[REQUESTS].to_numpy(float)
        if len(shares) < policy.spike_minutes or not (shares > policy.throttled_share).all():
            return None
        attempts, share = float(recent[REQUESTS].iloc[-1]), float(shares[-1])
        retries = policy.upstream_retries
        calls = first_attempts(attempts, share, retries)
        accepted = attempts * (1.0 - share)
        other = rows[rows["upstream"] == secondary].sort_values("timestamp").tail(1)
        other_attempts = float(other[REQUESTS].iloc[-1]) if len(other) else math.nan
        other_throttled = float(other[THROTTLED].iloc[-1]) if len(other) else math.nan
        other_p95 = float(other[P95].iloc[-1]) if len(other) else math.nan
        other_share = other_throttled / other_attempts if other_attempts > 0 else 0.0
        other_calls = 0.0
        if other_attempts > 0:
            other_calls = first_attempts(other_attempts, other_share, retries)
        if not (math.isfinite(calls) and math.isfinite(other_calls) and calls > 0):
            return None
        demand = calls + other_calls
        now_share = calls / demand
        keep = min(now_share, policy.upstream_headroom * accepted / demand)
        weight = max(0, min(TOTAL_WEIGHT, math.floor(TOTAL_WEIGHT * keep)))
        unhealthy = not (
            other_share <= policy.throttled_share and other_p95 <= policy.secondary_max_p95_ms
        )
        return self.diagnose(
            snapshot,
            service,
            0.85,
            {
                "route": primary,
                "primary": primary,
                "secondary": secondary,
                "throttled_share": round(share, 4),
                "calls_rps": round(demand, 2),
                "primary_accepts_rps": round(accepted, 2),
                "primary_share": round(now_share, 3),
                "primary_weight": weight,
                "secondary_weight": TOTAL_WEIGHT - weight,
                "secondary_throttled_share": round(other_share, 4),
                "secondary_p95_ms": None if math.isnan(other_p95) else round(other_p95, 1),
                "secondary_healthy": not unhealthy,
            },
            target=f"httproute/{snapshot.namespace}/{primary}",
        )

    def follow_up(self, diagnosis: Diagnosis, action: Action, snapshot: Snapshot) -> Finding:
        ev = diagnosis.evidence
        return Finding(
            f"upstream/{ev['primary']}",
            f"{ev['primary']} throttled {ev['throttled_share']:.0%} of the attempts (it accepts"
            f" {ev['primary_accepts_rps']} of {ev['calls_rps']} calls/s) and calls were shifted"
            f" to {ev['secondary']}: raise the quota with the provider, then set the route's"
            " weights back (ooda never moves them back itself)",
        )

    def propose(self, diagnosis: Diagnosis, snapshot: Snapshot) -> Action | None:
        ev = diagnosis.evidence
        primary, secondary = str(ev["primary"]), str(ev["secondary"])
        health = "" if ev["secondary_healthy"] else f"; {secondary} is unhealthy too"
        return Reroute(
            snapshot.namespace,
            diagnosis.service,
            reason=f"{primary} throttles {ev['throttled_share']:.0%} of the attempts and accepts"
            f" {ev['primary_accepts_rps']} of {ev['calls_rps']} calls/s: weights"
            f" {ev['primary_weight']}/{ev['secondary_weight']} to {secondary}{health}",
            route=str(ev["route"]),
            weights=(
                (primary, int(str(ev["primary_weight"]))),
                (secondary, int(str(ev["secondary_weight"]))),
            ),
            unhealthy=() if ev["secondary_healthy"] else (secondary,),
        )
