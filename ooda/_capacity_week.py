"""A week of seasonal traffic, no fault: predictive scaling against the reactive HPA.

Each day is its own seeded lab, played twice from the same draw: once as the estate runs
today (the CPU HPA at its 60 % target, no ooda), once with the HPA at
``PredictiveSettings.hpa_target`` and ooda holding each floor at what the forecast asks
(:mod:`ooda._predictive`; the rest of the loop runs too). Measured per day: SLO-breach
minutes of every service (latency, errors, freshness) and pod-minutes. Published predictive
autoscalers claim about 20 % fewer pod-minutes at the same SLO (Alibaba's AHPA, Crane's EHPA).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np

from lab import Lab, LabSettings, SimClock, TopologySettings
from ooda._batching import BatchingScorer
from ooda._freshness import ASYNC_FAMILIES, freshness
from ooda._loop import ControlLoop
from ooda._runs import breach_series
from ooda._scoring import Scorer
from ooda._settings import OodaSettings


@dataclass(frozen=True)
class ModeWeek:
    """What one way of scaling cost and missed over the days."""

    breach_minutes: int
    pod_minutes: float
    actions: int = 0


@dataclass(frozen=True)
class CapacityWeek:
    """The reactive HPA against predictive scaling over the same days."""

    days: float
    hpa_target: float
    reactive: ModeWeek
    predictive: ModeWeek

    @property
    def saving(self) -> float:
        """Share of the reactive HPA's pod-minutes predictive scaling saved (negative: cost)."""
        base = self.reactive.pod_minutes
        return 1.0 - self.predictive.pod_minutes / base if base > 0 else math.nan


def _day_lab(
    week_start: datetime, seed: int, d: int, history: timedelta, hpa_target: float | None
) -> Lab:
    rng = np.random.default_rng([seed, 777, d])
    start = week_start + timedelta(days=d)
    settings = LabSettings(
        seed=int(rng.integers(2**31)), topology=TopologySettings(pdb_max_unavailable=1)
    )
    if hpa_target is not None:
        settings = replace(
            settings, hpa=replace(settings.hpa, target_cpu_utilisation=round(100 * hpa_target))
        )
    lab = Lab(settings, SimClock(start - history))
    lab.generate_history(days=history / timedelta(days=1), incidents=False)
    lab.background(rng, start, start + timedelta(days=1))
    return lab


def _play_day(
    lab: Lab,
    span: timedelta,
    tick: timedelta,
    slo_settings: OodaSettings,
    agent: Callable[[], None] | None,
    hour_done: Callable[[], None],
) -> tuple[int, float]:
    start = lab.clock.now()
    end = start + span
    pods_before = sum(lab.pod_minutes.values())
    per_hour = max(1, int(timedelta(hours=1) / tick))
    n = 0
    while lab.clock.now() < end:
        lab.step(tick)
        if agent is not None:
            agent()
        n += 1
        if n % per_hour == 0:
            hour_done()
    finished = lab.clock.now()
    metrics = lab.source.query_range(start, finished, timedelta(minutes=1))
    fresh = freshness(
        {
            family: lab.source.query_family(family, start, finished, timedelta(minutes=1))
            for family in ASYNC_FAMILIES
        }
    )
    services = tuple(str(s) for s in metrics["service"].unique())
    breached, _ = breach_series(metrics, services, start, slo_settings.slo, fresh)
    return sum(breached), sum(lab.pod_minutes.values()) - pods_before


def capacity_week(
    settings: OodaSettings,
    days: float,
    seed: int,
    week_start: datetime,
    history: timedelta,
    tick: timedelta,
    batcher: BatchingScorer,
    make_loop: Callable[[Lab, OodaSettings, Scorer], ControlLoop],
    progress: Callable[[str, int], None],
) -> CapacityWeek:
    """Play ``days`` from ``week_start`` both ways (each day from the same draw); the
    predictive days run side by side so their scoring calls batch."""
    spans = [min(1.0, days - d) for d in range(math.ceil(days))]
    cfg = replace(settings.predictive, enabled=True)
    predictive = replace(settings, predictive=cfg)

    def reactive_day(d: int) -> tuple[int, float, int]:
        lab = _day_lab(week_start, seed, d, history, None)
        done = lambda: progress("capacity week", 1)  # noqa: E731
        breach, pods = _play_day(lab, timedelta(days=spans[d]), tick, settings, None, done)
        return breach, pods, 0

    def predictive_day(d: int) -> tuple[int, float, int]:
        try:
            lab = _day_lab(week_start, seed, d, history, cfg.hpa_target)
            loop = make_loop(lab, predictive, batcher.client(-100 - d))
            done = lambda: progress("capacity week", 1)  # noqa: E731
            span = timedelta(days=spans[d])
            breach, pods = _play_day(lab, span, tick, settings, loop.tick, done)
            return breach, pods, len(loop.audit.entries("action"))
        finally:
            batcher.leave()

    for _ in spans:
        batcher.join()
    with ThreadPoolExecutor(max_workers=max(1, len(spans))) as pool:
        ahead = list(pool.map(predictive_day, range(len(spans))))
    behind = [reactive_day(d) for d in range(len(spans))]

    def total(rows: list[tuple[int, float, int]]) -> ModeWeek:
        return ModeWeek(sum(r[0] for r in rows), sum(r[1] for r in rows), sum(r[2] for r in rows))

    return CapacityWeek(days, cfg.hpa_target, total(behind), total(ahead))
