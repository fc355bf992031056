"""One scenario instance run in one mode, on its own copy of the lab, and what it measured.

Every mode of an instance starts from a deep copy of the same lab (same state, same random
stream, same background events), so the differences between ``on``, ``off`` and
``reactive`` are the agent's doing and nothing else. The measures are taken from the lab's
ground truth and the per-minute SLIs of the services the fault is felt by.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

import pandas as pd

from contracts import MetricFamily, ScenarioId
from lab import Lab, ScenarioInstance
from ooda._freshness import ASYNC_FAMILIES, freshness
from ooda._journal import LoopEvent
from ooda._orient import orient
from ooda._settings import SloSettings

#: Minutes in a row inside the SLO that count as recovered.
SETTLE_MINUTES = 5
#: Loop events that show the agent noticed the fault.
DETECTIONS = ("anomaly", "diagnosis", "action", "alert", "proposed", "refused")


class Mode(StrEnum):
    """Who looks after the estate during a run."""

    ON = "on"
    """ooda's control loop."""
    OFF = "off"
    """Nobody: only the estate's own reactive HPA."""
    REACTIVE = "reactive"
    """Alert-triggered playbooks (the status quo)."""


class Agent(Protocol):
    """Whatever runs every tick beside the lab (the loop, the playbooks)."""

    @property
    def events(self) -> list[LoopEvent]: ...

    def tick(self) -> None: ...


@dataclass
class Run:
    """What happened in one mode of one instance."""

    scenario: ScenarioId
    mode: Mode
    instance: ScenarioInstance
    started_at: datetime
    injected_at: datetime
    ended_at: datetime
    felt_by: tuple[str, ...]
    metrics: pd.DataFrame
    """Per-minute tidy metrics of every service from ``started_at`` to ``ended_at``."""
    breached: list[bool]
    """Per minute after the injection: whether any felt service was outside its SLO."""
    budget_minutes: float
    """Error budget burned after the injection, in minutes at the objective's allowed rate."""
    pod_minutes: float
    """Pod-minutes used by every service after the injection (the cost side of scaling)."""
    fault_ended_at: datetime | None
    events: list[LoopEvent] = field(default_factory=list)
    window_sli: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Per service: p95 latency (ms) and availability over the whole time after injection."""
    root_cause: str = ""
    """The component at fault (the lab's ground truth)."""
    rca: tuple[str, ...] = ()
    """The unattended run only: the top three root causes ``ooda._orient`` ranks for the
    symptom ``RCA_AFTER`` into the fault, or once it shows (empty: none found)."""

    def first(self, *kinds: str) -> LoopEvent | None:
        """The first event of one of ``kinds`` at or after the injection."""
        return next((e for e in self.events if e.kind in kinds and e.at >= self.injected_at), None)

    def count(self, kind: str) -> int:
        """Events of ``kind`` after the injection."""
        return sum(1 for e in self.events if e.kind == kind and e.at >= self.injected_at)

    @property
    def breached_at(self) -> datetime | None:
        """The first minute a felt service was outside its SLO."""
        i = next((i for i, b in enumerate(self.breached) if b), None)
        return None if i is None else self.injected_at + timedelta(minutes=i + 1)

    @property
    def breach_minutes(self) -> int:
        """Minutes after the injection with a felt service outside its SLO."""
        return sum(self.breached)

    @property
    def detected_at(self) -> datetime | None:
        """When the agent first noticed (an anomaly on a felt service, a diagnosis, an alert,
        an action)."""
        for event in self.events:
            if event.at < self.injected_at or event.kind not in DETECTIONS:
                continue
            if event.kind != "anomaly" or event.service in self.felt_by:
                return event.at
        return None

    @property
    def detected_before_breach(self) -> bool:
        """Detected, and before the first SLO-breach minute (or with no breach at all)."""
        detected, breached = self.detected_at, self.breached_at
        return detected is not None and (breached is None or detected < breached)

    @property
    def recovered_at(self) -> datetime | None:
        """The end of the last breach, if the SLO then held ``SETTLE_MINUTES`` to the end."""
        last = max((i for i, b in enumerate(self.breached) if b), default=None)
        if last is None:
            return self.injected_at
        if len(self.breached) - last - 1 < SETTLE_MINUTES:
            return None
        return self.injected_at + timedelta(minutes=last + 1)

    @property
    def actions(self) -> int:
        """Actions the agent applied after the injection."""
        return self.count("action")

    @property
    def action(self) -> str:
        """The kind of the first action after the injection ("-" if none)."""
        event = self.first("action")
        return event.detail.split(" ", 1)[0] if event else "-"

    @property
    def failed_heals(self) -> int:
        """Verifications that said the heal failed."""
        return self.count("failed")

    @property
    def healed_at(self) -> datetime | None:
        """The first verified heal after the injection."""
        event = self.first("healed")
        return event.at if event else None

    @property
    def escalated(self) -> bool:
        """Whether the agent handed the incident to a human: escalated, or proposed a heal for
        a human to apply."""
        return self.count("escalation") + self.count("proposed") > 0

    @property
    def resolved_alone(self) -> bool:
        """The fault ended before the agent did anything (the HPA scaled the broken pod away,
        say) and the SLO held afterwards: nothing was left to detect or heal."""
        return (
            self.actions == 0
            and self.fault_ended_at is not None
            and self.recovered_at is not None
            and (self.detected_at is None or self.detected_at >= self.fault_ended_at)
        )

    @property
    def healed(self) -> bool:
        """Healed: the agent acted, a verification said healed, the fault is over (or is one
        that runs its course, like a surge, which healing means riding out) and the felt
        services were back inside their SLO at the end."""
        return (
            self.actions > 0
            and self.healed_at is not None
            and (self.fault_ended_at is not None or self.instance.duration is not None)
            and self.recovered_at is not None
        )

    def sli(self, service: str) -> tuple[float, float]:
        """p95 latency (ms) and availability of ``service`` over the time after injection."""
        return self.window_sli[service]


def breach_series(
    metrics: pd.DataFrame,
    felt_by: tuple[str, ...],
    injected_at: datetime,
    slo: SloSettings,
    fresh: pd.DataFrame | None = None,
) -> tuple[list[bool], float]:
    """Per minute after ``injected_at``: any felt service outside its SLO (latency, errors
    and, in ``fresh`` (:func:`ooda._freshness.freshness`), the freshness of its asynchronous
    work); and the error budget burned."""
    after = pd.Timestamp(injected_at)
    rows = metrics[metrics["service"].isin(felt_by) & (metrics["timestamp"] > after)]
    p95 = rows["p95_latency_ms"].to_numpy(dtype=float)
    err = rows["error_rate"].to_numpy(dtype=float)
    bad = ~((p95 <= slo.p95_ms) & (err <= slo.max_error_rate))
    per_minute = pd.Series(bad).groupby(rows["timestamp"].to_numpy()).any()
    if fresh is not None and len(fresh):
        late = fresh[fresh["service"].isin(felt_by) & (fresh["timestamp"] > after)]
        stale = pd.Series(~(late["freshness_s"].to_numpy(float) <= slo.freshness_s))
        stale_minutes = stale.groupby(late["timestamp"].to_numpy()).any()
        per_minute |= stale_minutes.reindex(per_minute.index, fill_value=False)
    burned = float(pd.Series(err).fillna(0).clip(0, 1).sum()) / slo.max_error_rate
    return [bool(b) for b in per_minute.to_numpy()], burned


log = logging.getLogger("ooda.chaos")

#: When into an unattended run the root causes are ranked (the loop's detection is minutes).
RCA_AFTER = timedelta(minutes=10)
#: A slow burn (a leak, a filling disk) may show no symptom ten minutes in: the ranking is
#: retried every ``RCA_STEP`` while the symptom is not there yet, as the loop re-ranks each
#: minute while a service shows one, up to this long into the fault.
RCA_LATEST = timedelta(minutes=30)
RCA_STEP = timedelta(minutes=5)


def rank_root_causes(
    lab: Lab, start: datetime, injected_at: datetime, felt_by: tuple[str, ...], service: str
) -> tuple[str, ...]:
    """The top three root causes of the symptom at the upstream-most service the fault hits,
    ranked on the metrics from ``start`` to ``RCA_AFTER`` after the fault, or, while nothing
    is ranked yet (no symptom), to each ``RCA_STEP`` later up to ``RCA_LATEST`` that the
    lab has reached; a window it cannot use is an empty answer, as no answer is."""
    step = timedelta(minutes=1)
    calls = {s.name: tuple(c for c, _ in s.downstream) for s in lab.settings.topology.services}
    target = felt_by[0] if felt_by else service
    normal_until = injected_at.replace(second=0, microsecond=0)
    end = injected_at + RCA_AFTER
    while True:
        until = min(lab.clock.now(), end)
        try:
            services = lab.source.query_range(start, until, step)
            families = {f: lab.source.query_family(f, start, until, step) for f in MetricFamily}
            causes = orient(calls, services, families, target, normal_until)
        except Exception as exc:  # a measurement: it must never stop a chaos run
            log.warning("root causes not ranked for %s: %s: %s", target, type(exc).__name__, exc)
            return ()
        end += RCA_STEP
        if causes or until < end - RCA_STEP or end > injected_at + RCA_LATEST:
            return tuple(c.node for c in causes[:3])


def run_mode(
    base: Lab,
    instance: ScenarioInstance,
    inject_at: datetime,
    end: datetime,
    mode: Mode,
    make_agent: Callable[[Lab], Agent] | None,
    slo: SloSettings,
    tick: timedelta = timedelta(seconds=15),
    on_tick: Callable[[], Any] = lambda: None,
) -> Run:
    """Run ``instance`` on a deep copy of ``base``; ``make_agent=None`` runs it unattended."""
    lab = copy.deepcopy(base)
    agent = make_agent(lab) if make_agent is not None else None
    start = lab.clock.now()

    def advance_until(until: datetime) -> None:
        while lab.clock.now() < until:
            lab.step(tick)
            if agent is not None:
                agent.tick()
            on_tick()

    advance_until(inject_at)
    record = lab.inject(instance)
    pods_before = sum(lab.pod_minutes.values())
    advance_until(end)
    finished = lab.clock.now()
    metrics = lab.source.query_range(start, finished, timedelta(minutes=1))
    fresh = freshness(
        {
            family: lab.source.query_family(family, start, finished, timedelta(minutes=1))
            for family in ASYNC_FAMILIES
        }
    )
    breached, burned = breach_series(metrics, record.felt_by, record.injected_at, slo, fresh)
    final = next(r for r in lab.ground_truth if r.injected_at == record.injected_at)
    rca: tuple[str, ...] = ()
    if mode is Mode.OFF:
        rca = rank_root_causes(lab, start, record.injected_at, record.felt_by, record.service)
    span = finished - record.injected_at
    whole = lab.source.query_range(finished - span, finished, span)
    newest = whole[whole["timestamp"] == whole["timestamp"].max()]
    window_sli = {
        str(row.service): (float(row.p95_latency_ms), 1.0 - float(row.error_rate))
        for row in newest.itertuples(index=False)
    }
    return Run(
        scenario=instance.scenario,
        mode=mode,
        instance=instance,
        started_at=start,
        injected_at=record.injected_at,
        ended_at=finished,
        felt_by=record.felt_by,
        metrics=metrics,
        breached=breached,
        budget_minutes=burned,
        pod_minutes=sum(lab.pod_minutes.values()) - pods_before,
        fault_ended_at=final.ends_at if final.ends_at and final.ends_at <= finished else None,
        events=list(agent.events) if agent is not None else [],
        window_sli=window_sli,
        root_cause=record.root_cause,
        rca=rca,
    )
