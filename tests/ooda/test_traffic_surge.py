"""The surge runbook's sizing at a ramp's onset: the newest rise, not a fit that still
averages in the flat minutes before the ramp; and no floor while the cluster has no room."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from contracts import HpaState, PodState, WorkloadState
from ooda import OodaSettings
from ooda._records import Snapshot
from ooda.runbooks.traffic_surge import (
    TrafficSurge,
    climb_now,
    per_pod_capacity,
    ramp_ahead,
    rate_ratio,
    rise_share,
    surging,
)
from tests.ooda._snapshots import region_snapshot

#: Trust the instant rate of any service busy enough (the settings' default).
MIN_RPS = OodaSettings().policy.instant_rate_min_rps


def _history(rates: list[float], instant: float | None = None) -> pd.DataFrame:
    """Minute rates; the instant rate of each minute its mean, the newest ``instant``."""
    start = datetime(2026, 11, 16, 19, 0, tzinfo=UTC)
    stamps = [start + timedelta(minutes=i) for i in range(len(rates))]
    frame = pd.DataFrame({"timestamp": stamps, "request_rate": rates})
    frame["request_rate_instant"] = frame["request_rate"]
    if instant is not None:
        frame.loc[frame.index[-1], "request_rate_instant"] = instant
    return frame


def test_the_first_minute_of_a_ramp_is_projected_at_its_own_slope() -> None:
    """Flat at 100 rps for an hour, then 160: a fit over the last four minutes sees a slope
    of 18 rps/min and sizes for 214 rps in three minutes; the ramp is rising at 60."""
    history = _history([100.0] * 60 + [160.0])
    ahead = ramp_ahead(history, timedelta(minutes=3), 5.0, MIN_RPS)
    assert ahead == pytest.approx(160.0 + 3 * 60.0)
    assert rate_ratio(history, MIN_RPS) == pytest.approx(160.0 / (100.0 * 59 / 60 + 160.0 / 60))


def test_a_projection_never_passes_the_cap_nor_goes_below_the_rate() -> None:
    assert ramp_ahead(_history([100.0] * 60 + [400.0]), timedelta(minutes=3), 2.0, MIN_RPS) == (
        pytest.approx(2.0 * (100.0 * 59 + 400.0) / 60)
    )
    falling = _history([100.0] * 57 + [160.0, 150.0, 140.0, 130.0])
    assert ramp_ahead(falling, timedelta(minutes=3), 5.0, MIN_RPS) == pytest.approx(130.0)


def test_a_rise_slowing_down_goes_on_at_its_newest_rise_not_its_steepest() -> None:
    """Two waves on top of each other (seed 23's clean Monday, 11:41-11:44): rises of 14, 25
    then 12 rps a minute. Fitted over the four minutes the slope is 18 and the projection 234
    rps, the nine pods a surge would need; the crest is turning, so it goes on at 12 at most.
    A ramp still rising as fast keeps the steeper of its fitted slope and its newest rise."""
    slowing = _history([120.0] * 57 + [129.3, 143.4, 168.0, 180.4])
    assert ramp_ahead(slowing, timedelta(minutes=3), 5.0, MIN_RPS) == pytest.approx(
        180.4 + 3 * 12.4
    )
    steady = _history([120.0] * 57 + [129.3, 143.4, 168.0, 192.6])
    fitted = float(np.polyfit(np.arange(4), [129.3, 143.4, 168.0, 192.6], 1)[0])
    assert fitted < 24.6
    assert ramp_ahead(steady, timedelta(minutes=3), 5.0, MIN_RPS) == pytest.approx(192.6 + 3 * 24.6)


def test_overlapping_waves_on_a_daily_peak_are_no_surge_but_a_ramp_and_a_plateau_are() -> None:
    """Seed 23's clean Sunday, 19:42-19:46: two background waves on the evening peak lift
    frontend to x1.5 of its hour at 0.14-0.15 of it a minute (the HPA alone kept p95 at 114
    ms); a surge at the same level climbs twice as fast, and its plateau past x2 is one even
    when it no longer climbs."""
    policy = OodaSettings().policy
    waves = _history([420.0] * 56 + [512.0, 531.0, 589.0, 653.0])
    assert rate_ratio(waves, MIN_RPS) >= policy.surge_ratio
    assert not surging(waves, policy)
    # The crest read at its last two scrapes: higher, and no faster a climb for it.
    crest = _history([420.0] * 56 + [512.0, 531.0, 589.0, 653.0], 700.0)
    assert not surging(crest, replace(policy, surge_on_instant_rate=True))
    ramp = _history([420.0] * 57 + [480.0, 560.0, 660.0], 720.0)  # its scrapes further on
    assert rate_ratio(ramp, MIN_RPS) >= policy.surge_ratio and surging(ramp, policy)
    plateau = _history([420.0] * 55 + [1000.0] * 5)
    assert rise_share(plateau) == 0.0 and surging(plateau, policy)


def test_a_ramp_is_seen_at_its_instant_rate_once_two_scrapes_can_tell() -> None:
    """A ramp's first minute: its mean stands at x1.3 of the hour, no surge yet, while the
    last two scrapes already read x1.7; the ramp goes on from there at its minutes' slope. A
    service of 2 rps whose two scrapes read the same x1.7 counted 50 requests where 30 were
    due, which chance does: it waits for the minute."""
    policy = OodaSettings().policy
    assert not surging(_history([300.0] * 59 + [390.0]), policy)
    busy = _history([300.0] * 59 + [390.0], instant=500.0)
    assert not surging(busy, replace(policy, surge_on_instant_rate=False))
    assert rate_ratio(busy, MIN_RPS) == pytest.approx(500.0 / ((300.0 * 59 + 390.0) / 60))
    assert surging(busy, policy)
    assert ramp_ahead(busy, timedelta(minutes=3), 5.0, MIN_RPS) == pytest.approx(500 + 3 * 90)
    quiet = _history([2.0] * 59 + [2.6], instant=2.0 * 500.0 / 300.0)
    assert MIN_RPS > 2.0 and not surging(quiet, policy)
    assert rate_ratio(quiet, MIN_RPS) == pytest.approx(2.6 / ((2.0 * 59 + 2.6) / 60))


def test_a_crest_read_at_its_last_scrapes_is_a_surge_only_while_it_still_climbs() -> None:
    """Seed 23's clean Monday, 11:43: two waves on the daily peak, their minutes rising a
    fifth of the hour a minute, read x1.54 at their last two scrapes, which stood only 0.075
    of the hour above the minute's mean: the crest turning. A ramp's scrapes stand further on;
    a service whose scrapes are not read is judged by its minutes as before."""
    policy = OodaSettings().policy
    minutes = [300.0] * 56 + [320.0, 340.0, 385.0, 450.0]
    hour = sum(minutes) / 60
    assert rise_share(_history(minutes)) >= policy.surge_min_slope
    assert 450.0 / hour < policy.surge_ratio <= 470.0 / hour
    crest = _history(minutes, instant=470.0)
    assert climb_now(crest, MIN_RPS) == pytest.approx(20.0 / hour)
    assert not surging(crest, policy)
    assert surging(crest, replace(policy, surge_instant_climb=-math.inf))
    assert surging(_history(minutes, instant=500.0), policy)
    assert math.isnan(climb_now(crest, math.inf))
    bare = _history([420.0] * 57 + [480.0, 560.0, 660.0]).drop(columns="request_rate_instant")
    assert surging(bare, policy)  # a history with no scrapes to read: its minutes decide


def test_users_arriving_at_a_warm_standby_are_not_a_surge() -> None:
    """A standby idle for 50 minutes takes a failed-over region's users: its rate is steady
    since they came, so it is no surge (the failover sized it); and a pod's capacity is
    learnt from the minutes that served requests, not the idle ones."""
    history = _history([0.0] * 50 + [300.0] * 10)
    history["ready_pods"] = [3.0] * 50 + [6.0] * 10
    history["cpu_utilisation"] = [0.06] * 50 + [0.5] * 10
    assert rate_ratio(history, MIN_RPS) == pytest.approx(1.0)
    assert per_pod_capacity(history) == pytest.approx(300.0 / 6 / 0.5)
    assert math.isnan(rate_ratio(_history([0.0] * 60), MIN_RPS))  # no minute served: unknown


def _surging(pending_elsewhere: int) -> Snapshot:
    """Frontend at 100 rps on 3 pods for an hour, then 130, 190, 260 rps; the payments
    Deployment beside it with ``pending_elsewhere`` pods no node has room for."""
    history = _history([100.0] * 60 + [130.0, 190.0, 260.0])
    history["service"] = "frontend"
    history["ready_pods"] = 3.0
    history["cpu_utilisation"] = history["request_rate"] / 300.0
    history["p95_latency_ms"] = 90.0
    history["error_rate"] = 0.0
    at = history["timestamp"].iloc[-1].to_pydatetime()
    hpa = HpaState("frontend", 3, 30, 3, 3, 0.6, {})
    pods = tuple(PodState(f"frontend-{i}", "n1", True, 0, None, True) for i in range(3))
    frontend = WorkloadState("shop", "frontend", "frontend", 3, 3, 1, None, pods, hpa)
    waiting = tuple(
        PodState(f"payments-{i}", None, False, 0, None, True, unschedulable=True)
        for i in range(pending_elsewhere)
    )
    payments = WorkloadState(
        "shop", "payments", "payments", 9, 9 - len(waiting), 1, None, waiting, None
    )
    return region_snapshot(at, {"frontend": frontend, "payments": payments}, {"frontend": history})


def test_no_floor_is_raised_while_the_cluster_has_no_room_for_pods_already_asked() -> None:
    """More pods would only wait Pending beside the ones already waiting."""
    runbook = TrafficSurge(OodaSettings())
    diagnosis = runbook.matches(_surging(0), "frontend")
    assert diagnosis is not None and diagnosis.evidence["direction"] == "out"
    assert runbook.matches(_surging(2), "frontend") is None
