"""Traffic surge: raise the HPA's floor ahead of forecast load, lower it after load fell.

The reactive HPA adds a few pods a minute, sized to the load of the last minute; the floor
jumps to what the load will need: the larger of the forecast's upper quantile over the next
half hour and where the ramp will stand when new pods are Ready (the LSTM, trained on
seasonal traffic, expects a level to persist, not a ramp to go on). Only for a surge: the
rate must already stand well above its last hour (``surging``), and the need well above
what the running pods serve (``surge_margin``); the HPA follows a daily ramp or a mild wave
by itself, and acting on those would be a false action. The rate is read where it stands
now, its last two scrapes (``rate_now``, ``surge_on_instant_rate``): the last minute's mean
shows a ramp half a minute late, and a pod started then is Ready half a minute later; read
so, it must still climb in that last half minute (``climb_now``), or a wave's crest would
pass for a surge's first minute. A
raised floor is released, in one step back to the floor ooda found, only after the *observed*
load has stayed below it for ``scale_in_after`` (never on a forecast alone), and only while it
is still the floor ooda set for a surge (its annotations say so): a floor a human raised is
theirs, and one raised for another reason (a saturated service, a consumer group) is its
runbook's.

When the floor already stands at the HPA's maximum and the load ahead needs more, capacity is
exhausted: the entry service's Ingress is rate-limited (ingress-nginx ``limit-rps``) to what
those pods serve at ``limit_utilisation``, so the requests let in stay fast while the excess
is turned away at the edge. The limit is lifted once it has been in place, and the offered load
within that, for ``scale_in_after``.

While pods of the estate wait Pending because no node has room for them, no floor is raised:
more pods would only wait beside them (the floors already raised are verified on the SLO the
pods that fit keep, and their verdicts name the pods left Pending).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from actuators import (
    CHANGED_AT,
    Action,
    MalformedAnnotationError,
    RateLimit,
    SetHpaMinReplicas,
    floor_purpose,
    ooda_floor,
)
from contracts import ScenarioId
from ooda._records import Diagnosis, Snapshot
from ooda._settings import PolicySettings
from ooda.runbooks._base import Runbook, register_runbook


def per_pod_capacity(history: pd.DataFrame) -> float | None:
    """Requests per second one pod serves at 100 % CPU, from recent unsaturated minutes that
    served requests (an idle minute, a warm standby's, says nothing of a pod's capacity)."""
    rate = history["request_rate"].to_numpy(dtype=float)
    ready = history["ready_pods"].to_numpy(dtype=float)
    cpu = history["cpu_utilisation"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        usable = (cpu > 0.05) & (cpu < 0.9) & (ready > 0) & (rate > 0)
    if usable.sum() < 5:
        return None
    value = float(np.median(rate[usable] / ready[usable] / cpu[usable]))
    return value if math.isfinite(value) and value > 0 else None


def rate_now(history: pd.DataFrame, instant_min_rps: float) -> float:
    """Where a service's request rate stands now (NaN when unknown).

    Each row's ``request_rate`` is the mean of the minute before it, so in a ramp the newest
    one lags half a minute; ``request_rate_instant``, the last two scrapes (PromQL's
    ``irate``), does not. It is taken for a service whose last hour averaged
    ``instant_min_rps`` or more, where two scrapes count requests enough to tell a ramp from
    chance; a quieter one's is its minute's mean. How fast the rate climbs is still read from
    the minutes' means (``rise_share``): two scrapes against a minute's mean take a wave's
    crest for a climb (seed 23's clean week: 3 waves raised floors, 2026-12-07); they only
    confirm that it still climbs (``climb_now``).
    """
    rate = history["request_rate"].to_numpy(dtype=float, na_value=np.nan)
    if not len(rate):
        return math.nan
    scrapes = _scrapes(history, rate, instant_min_rps)
    return scrapes if math.isfinite(scrapes) else float(rate[-1])


def _scrapes(history: pd.DataFrame, rate: np.ndarray, instant_min_rps: float) -> float:
    """The newest ``request_rate_instant`` where it is read: a service whose last hour
    averaged ``instant_min_rps`` or more, a history with such a column (NaN elsewhere)."""
    if "request_rate_instant" not in history or not len(rate):
        return math.nan
    if not _hour_mean(rate) >= instant_min_rps:
        return math.nan
    return float(history["request_rate_instant"].iloc[-1])


def instant_min_rps(policy: PolicySettings) -> float:
    """The least hourly rate at which ``rate_now`` reads the last two scrapes (infinite, never,
    unless ``surge_on_instant_rate``)."""
    return policy.instant_rate_min_rps if policy.surge_on_instant_rate else math.inf


def rate_ratio(history: pd.DataFrame, instant_min_rps: float) -> float:
    """The rate now (``rate_now``) over its mean of the last hour's minutes that served
    requests (NaN when unknown).

    Ordinary growth (a daily ramp, a mild wave) stays near 1; a surge of x2.5 and more passes
    1.5 within its first minutes. Idle minutes are left out of the mean: users arriving at a
    warm standby (a regional failover) are the failover's to size, not a surge of x100.
    """
    mean = _hour_mean(history["request_rate"].to_numpy(dtype=float, na_value=np.nan))
    now = rate_now(history, instant_min_rps)
    return now / mean if mean > 0 and math.isfinite(now) else math.nan


def _hour_mean(rate: np.ndarray) -> float:
    """The mean of the last hour's minutes that served requests (NaN when none did)."""
    recent = rate[-60:]
    served = recent[np.isfinite(recent) & (recent > 0)]
    return float(served.mean()) if len(served) else math.nan


def surging(history: pd.DataFrame, policy: PolicySettings) -> bool:
    """Whether a service's load is surging: its newest rate ``surge_ratio`` times its last
    hour or more and still rising fast (``surge_min_slope`` of that hour a minute, and, where
    the last two scrapes are read, ``surge_instant_climb`` in the last half minute), or
    ``surge_ratio_alone`` times it. Background waves overlapping on a daily peak reach the
    first ratio too, but climb at half a surge's pace, and their crests turn. The runbooks
    that a surge's symptoms would mislead defer to this one."""
    least = instant_min_rps(policy)
    ratio = rate_ratio(history, least)
    if not ratio >= policy.surge_ratio:
        return False
    if ratio >= policy.surge_ratio_alone:
        return True
    if rise_share(history) < policy.surge_min_slope:
        return False
    return not climb_now(history, least) < policy.surge_instant_climb


def climb_now(history: pd.DataFrame, instant_min_rps: float) -> float:
    """How far the last two scrapes stand above the last minute's mean, as a share of the
    hour's mean: whether the rate still climbs in its last half minute (NaN where they are
    not read, as in ``rate_now``)."""
    rate = history["request_rate"].to_numpy(dtype=float, na_value=np.nan)
    scrapes = _scrapes(history, rate, instant_min_rps)
    return (scrapes - float(rate[-1])) / _hour_mean(rate) if math.isfinite(scrapes) else math.nan


def _slopes(rate: np.ndarray) -> tuple[float, float, bool]:
    """The newest minute's rise, the fitted slope of the last four minutes, and whether the
    rise is slowing (smaller than the one before), of a rate's newest four minutes."""
    rises = np.diff(rate)
    newest = float(rises[-1])
    fitted = float(np.polyfit(np.arange(len(rate)), rate, 1)[0])
    return newest, fitted, len(rises) >= 2 and newest < float(rises[-2])


def rise_share(history: pd.DataFrame) -> float:
    """How fast the rate climbs: the steeper of its newest minute's rise and its last four
    minutes' fitted slope, as a share of its mean over the last hour (0 when unknown)."""
    rate = history["request_rate"].to_numpy(dtype=float, na_value=np.nan)
    newest4 = rate[-4:]
    mean = _hour_mean(rate)
    if len(newest4) < 2 or not np.isfinite(newest4).all() or not mean > 0:
        return 0.0
    newest, fitted, _ = _slopes(newest4)
    return max(newest, fitted) / mean


def ramp_ahead(
    history: pd.DataFrame, lead: timedelta, max_factor: float, instant_min_rps: float
) -> float:
    """Where a rising rate will stand ``lead`` from now (``rate_now`` on) if it keeps its
    minutes' slope of the last three minutes, or its newest minute's rise if that is steeper
    (a ramp that has just begun); at most ``max_factor`` times its mean of the last hour. A
    rise smaller than the one before is slowing (a wave, or two waves on top of each other,
    cresting): it goes on at most at its newest rise, not at the steeper minutes behind it.

    A new pod serves after about a minute and a half; capacity sized to the rate of *now*
    is short by the time it is Ready, which is why the reactive HPA breaches during a ramp.
    """
    now = rate_now(history, instant_min_rps)
    minutes = history["request_rate"].to_numpy(dtype=float, na_value=np.nan)
    rate = minutes[-4:]
    if len(rate) < 2 or not np.isfinite(rate).all():
        return now if math.isfinite(now) else 0.0
    newest, fitted, slowing = _slopes(rate)
    slope = max(0.0, newest) if slowing else max(0.0, fitted, newest)
    cap = max_factor * float(np.nanmean(minutes[-60:]))
    return float(min(now + slope * lead.total_seconds() / 60.0, cap))


@register_runbook
class TrafficSurge(Runbook):
    """Predictive scale-out through the HPA's ``minReplicas``, and the way back."""

    name = "traffic_surge"
    scenarios = (ScenarioId.TRAFFIC_SURGE,)
    priority = 50
    deadline = timedelta(minutes=10)

    def _forecast_upper(self, snapshot: Snapshot, service: str) -> float | None:
        if snapshot.forecast is None:
            return None
        cfg = self.settings.policy
        return snapshot.forecast.peak(
            service, snapshot.at + cfg.lead_min, snapshot.at + cfg.lead_max, cfg.forecast_quantile
        )

    def matches(self, snapshot: Snapshot, service: str) -> Diagnosis | None:
        workload = snapshot.workloads[service]
        hpa = workload.hpa
        capacity = per_pod_capacity(snapshot.views[service].history)
        if hpa is None or capacity is None:
            return None
        cfg = self.settings.policy
        per_pod = capacity * (hpa.target_cpu_utilisation or cfg.default_target_utilisation)
        upper = self._forecast_upper(snapshot, service)
        evidence: dict[str, object] = {
            "per_pod_capacity_rps": round(capacity, 2),
            "min_replicas": hpa.min_replicas,
            "current_replicas": hpa.current_replicas,
            "hpa": hpa.name,
        }
        history = snapshot.views[service].history
        ratio = rate_ratio(history, instant_min_rps(cfg))
        evidence["rate_ratio_1h"] = round(ratio, 3)
        if surging(history, cfg):
            ahead = ramp_ahead(history, cfg.ramp_lead, cfg.max_surge_factor, instant_min_rps(cfg))
            wanted_rps = max(upper or 0.0, ahead)
            needed = max(1, math.ceil(wanted_rps / per_pod))
            running = max(hpa.min_replicas, hpa.current_replicas)
            evidence |= {
                "forecast_upper_rps": None if upper is None else round(upper, 2),
                "ramp_ahead_rps": round(ahead, 2),
                "needed_replicas": needed,
            }
            limit = self._limit(snapshot, service, capacity, needed)
            if limit is not None:
                evidence |= {"direction": "limit", "limit_rps": limit}
                return self.diagnose(snapshot, service, 0.8, evidence)
            ahead_of_pods = wanted_rps >= (1 + cfg.surge_margin) * running * per_pod
            room = not any(w.unschedulable for w in snapshot.workloads.values())
            if ahead_of_pods and room and needed > running and hpa.min_replicas < hpa.max_replicas:
                # Asked uncapped: the action caps it at the maximum and says so.
                evidence |= {"direction": "out", "set_min": needed}
                return self.diagnose(snapshot, service, 0.8, evidence)
        if self._lift(snapshot, service, capacity):
            evidence |= {"direction": "lift", "limit_rps": 0}
            return self.diagnose(snapshot, service, 0.9, evidence)
        wanted = self._scale_in_floor(snapshot, service, per_pod, upper)
        if wanted is None:
            return None
        evidence |= {"direction": "in", "set_min": wanted}
        return self.diagnose(snapshot, service, 0.9, evidence)

    def _limit(self, snapshot: Snapshot, service: str, capacity: float, needed: int) -> int | None:
        """The ingress limit to set when capacity is exhausted: the floor already at the HPA's
        maximum and the load ahead needing more, at an entry with an Ingress and no limit."""
        workload = snapshot.workloads[service]
        hpa = workload.hpa
        assert hpa is not None
        if workload.ingress is None or workload.limit_rps is not None:
            return None
        if hpa.min_replicas < hpa.max_replicas or needed <= hpa.max_replicas:
            return None
        return max(1, int(hpa.max_replicas * capacity * self.settings.policy.limit_utilisation))

    def _lift(self, snapshot: Snapshot, service: str, capacity: float) -> bool:
        """Whether ooda's ingress limit can go: the load offered (turned-away requests
        included) stayed within what the maximum of pods serves for ``scale_in_after``."""
        workload = snapshot.workloads[service]
        hpa = workload.hpa
        assert hpa is not None
        if workload.limit_rps is None or not workload.limit_is_ooda:
            return False
        wait = self.settings.policy.scale_in_after
        if workload.limit_set_at is None or snapshot.at - workload.limit_set_at < wait:
            return False
        history = snapshot.views[service].history
        recent = history[history["timestamp"] > pd.Timestamp(snapshot.at - wait)]
        offered = float(recent["request_rate"].max()) if len(recent) else math.nan
        room = hpa.max_replicas * capacity * self.settings.policy.limit_utilisation
        return len(recent) >= wait / timedelta(minutes=1) - 1 and offered <= room

    def _scale_in_floor(
        self, snapshot: Snapshot, service: str, per_pod: float, upper: float | None
    ) -> int | None:
        """The floor to go back to, once load has been low long enough, or None."""
        hpa = snapshot.workloads[service].hpa
        assert hpa is not None
        floor = ooda_floor(hpa.annotations, hpa.min_replicas, f"hpa/{hpa.name}")
        if floor is None or floor >= hpa.min_replicas:
            return None
        if floor_purpose(hpa.annotations) not in ("", self.name):
            return None  # raised by another runbook, which lowers it
        wait = self.settings.policy.scale_in_after
        stamp = hpa.annotations.get(CHANGED_AT, "")
        try:
            raised_at = datetime.fromisoformat(stamp)
        except ValueError:
            raised_at = None
        if raised_at is None or raised_at.tzinfo is None:
            raise MalformedAnnotationError(f"hpa/{hpa.name}", CHANGED_AT, stamp, "a zoned time")
        if snapshot.at - raised_at < wait:
            return None
        history = snapshot.views[service].history
        recent = history[history["timestamp"] > pd.Timestamp(snapshot.at - wait)]
        observed = float(recent["request_rate"].max()) if not recent.empty else math.nan
        if not math.isfinite(observed):
            return None
        needed = max(1, math.ceil(observed / per_pod))
        if upper is not None:
            needed = max(needed, math.ceil(upper / per_pod))
        # The raised floor is released in one step once the load no longer needs it; the
        # HPA then scales down at its own pace (its stabilisation window).
        return floor if needed < hpa.min_replicas else None

    def propose(self, diagnosis: Diagnosis, snapshot: Snapshot) -> Action | None:
        ev = diagnosis.evidence
        if ev["direction"] in ("limit", "lift"):
            rps = int(str(ev["limit_rps"]))
            why = (
                f"surge past the HPA's maximum of {ev['min_replicas']} pods: let in {rps} rps"
                if rps
                else "offered load back within the pods' capacity: lifting the ingress limit"
            )
            ingress = snapshot.workloads[diagnosis.service].ingress or ""
            return RateLimit(snapshot.namespace, diagnosis.service, why, ingress=ingress, rps=rps)
        out = ev["direction"] == "out"
        if out:
            why = f"surge x{ev['rate_ratio_1h']:.1f}: load ahead needs {ev['needed_replicas']}"
        else:
            why = f"observed load needs only {ev['set_min']}"
        return SetHpaMinReplicas(
            snapshot.namespace,
            diagnosis.service,
            reason=f"{why} pods",
            hpa=str(ev["hpa"]),
            min_replicas=int(str(ev["set_min"])),
            purpose=self.name,
        )
