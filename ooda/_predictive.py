"""Predictive scaling: the HPA's floor follows the load forecast.

A CPU HPA sizes the pods to the last minute's load at its target; it is set cool (60 %) so
that the pods it has can absorb a ramp while new ones start. With the forecast holding the
floor at what the next ``lead`` needs (its upper quantile at ``floor_utilisation`` of a pod's
CPU), the HPA can run hot (``hpa_target``) and still be ahead of every daily ramp: the cost
saving of a predictive autoscaler (AHPA, Crane's EHPA) at the same SLO. ``ooda chaos
--predictive-days`` measures it against the reactive HPA.

The floor moves through :class:`~actuators.SetHpaMinReplicas` like any action (guard, audit,
autonomy), marked ``predictive``; it touches only a floor that is the one ooda found or its
own predictive one, never one a human set or another runbook raised. A floor that follows
the forecast is capacity planning, not a heal: it is not verified.
"""

from __future__ import annotations

import math

from actuators import MIN_SET, SetHpaMinReplicas, floor_purpose, ooda_floor
from ooda._records import Snapshot
from ooda._settings import OodaSettings
from ooda.runbooks.traffic_surge import per_pod_capacity

#: The ``ooda.dev/floor-for`` of a floor that follows the forecast.
PREDICTIVE = "predictive"


def predictive_floor(
    snapshot: Snapshot, service: str, settings: OodaSettings
) -> SetHpaMinReplicas | None:
    """The floor move the forecast asks of ``service``'s HPA now (None: none, or unknown)."""
    cfg = settings.predictive
    workload = snapshot.workloads.get(service)
    view = snapshot.views.get(service)
    if not cfg.enabled or snapshot.forecast is None or workload is None or view is None:
        return None
    hpa = workload.hpa
    if hpa is None:
        return None
    found = ooda_floor(hpa.annotations, hpa.min_replicas, f"hpa/{hpa.name}")
    if found is None:
        if MIN_SET in hpa.annotations:
            return None  # a human changed the floor ooda set: theirs now
        found = hpa.min_replicas
    elif floor_purpose(hpa.annotations) != PREDICTIVE:
        return None  # raised by a runbook for a failure: that runbook's to lower
    capacity = per_pod_capacity(view.history)
    peak = snapshot.forecast.peak(service, snapshot.at, snapshot.at + cfg.lead, cfg.quantile)
    if capacity is None or peak is None or not math.isfinite(peak):
        return None
    need = math.ceil(peak / (capacity * cfg.floor_utilisation))
    floor = max(found, min(need, hpa.max_replicas))
    if floor == hpa.min_replicas:
        return None
    return SetHpaMinReplicas(
        snapshot.namespace,
        service,
        reason=f"forecast {cfg.quantile} {peak:.0f} rps in the next {cfg.lead}: floor {floor}"
        f" at {cfg.floor_utilisation:.0%} of {capacity:.1f} rps a pod",
        hpa=hpa.name,
        min_replicas=floor,
        purpose=PREDICTIVE,
    )
