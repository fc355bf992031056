"""Run a failure scenario on a copy of the lab, with the loop on or off, and score it.

Both runs start from the same copy of the estate (same state, same random stream), so the
difference in the scorecard is the loop's doing and nothing else.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from lab import CrashLoopFault, Lab, TrafficSurgeFault
from ooda._loop import ControlLoop, LoopEvent
from ooda._observe import within_slo
from ooda._settings import OodaSettings


@dataclass(frozen=True)
class Scenario:
    """A failure to inject and the service whose SLO judges it."""

    key: str
    title: str
    make_fault: Callable[[], Any]
    slo_service: str
    expected_action: str


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "crashloop",
        "pod CrashLoopBackOff",
        lambda: CrashLoopFault(service="checkout"),
        "checkout",
        "restart_pod",
    ),
    Scenario(
        "traffic-x3",
        "traffic spike x3",
        lambda: TrafficSurgeFault(
            factor=3.0, ramp=timedelta(minutes=5), duration=timedelta(minutes=40)
        ),
        "frontend",
        "set_hpa_min",
    ),
)


@dataclass
class ScenarioRun:
    """What happened in one run of one scenario."""

    scenario: Scenario
    loop_on: bool
    injected_at: datetime
    ended_at: datetime
    metrics: pd.DataFrame
    p95_ms: float
    availability: float
    breached_at: datetime | None
    breach_minutes: int
    events: list[LoopEvent] = field(default_factory=list)

    def first(self, *kinds: str) -> LoopEvent | None:
        """The first loop event of one of ``kinds`` at or after the injection."""
        for event in self.events:
            if event.kind in kinds and event.at >= self.injected_at:
                return event
        return None

    @property
    def detected_at(self) -> datetime | None:
        """When the loop first noticed (anomaly or action), if it did."""
        event = self.first("anomaly", "action")
        return event.at if event else None

    @property
    def action(self) -> str:
        """The first action the loop took after the injection."""
        event = self.first("action")
        return event.detail.split(" ", 1)[0] if event else "-"

    @property
    def healed_at(self) -> datetime | None:
        """When the first action was verified as a heal."""
        event = self.first("healed")
        return event.at if event else None

    @property
    def verified(self) -> bool:
        """Whether a heal was verified and no heal failed."""
        return self.healed_at is not None and self.first("failed") is None


def run_scenario(
    base: Lab,
    scenario: Scenario,
    settings: OodaSettings,
    make_loop: Callable[[Lab], ControlLoop] | None,
    on_tick: Callable[[], None] = lambda: None,
) -> ScenarioRun:
    """Run ``scenario`` on a deep copy of ``base``; ``make_loop=None`` runs it unattended."""
    lab = copy.deepcopy(base)
    loop = make_loop(lab) if make_loop is not None else None
    demo = settings.demo
    tick = settings.loop.tick

    def advance_until(until: datetime) -> None:
        while lab.clock.now() < until:
            lab.step(tick)
            if loop is not None:
                loop.tick()
            on_tick()

    start = lab.clock.now()
    advance_until(start + demo.warmup)
    record = lab.inject(scenario.make_fault())
    injected = record.injected_at
    advance_until(injected + demo.duration)
    end = lab.clock.now()
    metrics = lab.source.query_range(start, end, timedelta(minutes=1))
    whole = lab.source.query_range(end - (end - injected), end, end - injected)
    mine = whole[whole["service"] == scenario.slo_service].iloc[-1]
    after = metrics[
        (metrics["service"] == scenario.slo_service)
        & (metrics["timestamp"] > pd.Timestamp(injected))
    ]
    breached = [
        not within_slo(row, settings.slo.p95_ms, settings.slo.max_error_rate)
        for _, row in after.iterrows()
    ]
    first_breach = next((t for t, b in zip(after["timestamp"], breached, strict=True) if b), None)
    return ScenarioRun(
        scenario=scenario,
        loop_on=loop is not None,
        injected_at=injected,
        ended_at=end,
        metrics=metrics,
        p95_ms=float(mine["p95_latency_ms"]),
        availability=1.0 - float(mine["error_rate"]),
        breached_at=first_breach.to_pydatetime() if first_breach is not None else None,
        breach_minutes=int(sum(breached)),
        events=list(loop.events) if loop is not None else [],
    )
