"""``ooda chaos``: a randomized scenario scorecard, the instrument every runbook is judged by.

Each run draws a scenario instance from the lab (service, time of day, magnitude, duration)
over background noise (benign rollouts, traffic waves) and plays it three times from the
same state: ``on`` (ooda's loop), ``off`` (only the estate's reactive HPA) and ``reactive``
(alert-triggered playbooks, the status quo). The loops of one scenario's instances run side
by side and share one scoring call per minute (:mod:`ooda._batching`). A clean week plays
the estate with no fault and counts the loop's actions: each one is a false action.

Every number is measured on the lab's ground truth; a scenario the lab or the runbooks
cannot run yet is reported with ``runs: 0``, never left out and never faked.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from actuators import ActionContext
from contracts import ScenarioId, SimClock
from lab import Lab, LabSettings, ScenarioInstance, TopologySettings, registered_scenarios
from lab import scenario as lab_scenario
from ooda._audit import AuditLog
from ooda._batching import BatchingScorer
from ooda._capacity_week import CapacityWeek, capacity_week
from ooda._errors import ChaosError
from ooda._loop import ControlLoop
from ooda._reactive import ReactivePlaybooks
from ooda._runs import Agent, Mode, Run, run_mode
from ooda._scoring import Scorer
from ooda._settings import OodaSettings
from ooda.runbooks import runbook_for

#: Monday 00:00 UTC of the chaos week; instances start at a random time of it.
WEEK_START = datetime(2026, 11, 16, tzinfo=UTC)


@dataclass(frozen=True)
class ChaosSettings:
    """What a chaos run plays."""

    scenarios: tuple[ScenarioId, ...] = tuple(ScenarioId)
    runs: int = 20
    """Instances per scenario."""
    seed: int = 0
    clean_week_days: float = 0.0
    """Days of a fault-free estate to count false actions on (0: skip)."""
    history: timedelta = timedelta(minutes=80)
    """Estate history before the live part (the loop reads 75 minutes back)."""
    warmup: timedelta = timedelta(minutes=10)
    """Live time before the fault."""
    duration: timedelta = timedelta(minutes=45)
    """Live time after the fault is injected."""
    predictive_days: float = 0.0
    """Days of seasonal traffic to play under predictive scaling and under the reactive HPA
    alone, to compare their breach minutes and pod-minutes (0: skip)."""
    clean_week_tick: timedelta = timedelta(minutes=1)
    """Tick of the clean week: the metrics' resolution, so a simulated week costs minutes;
    the loop decides on the same per-minute samples as at its 15 s tick."""


@dataclass
class Instance:
    """One drawn instance and its three runs."""

    scenario: ScenarioId
    index: int
    instance: ScenarioInstance
    runs: dict[Mode, Run]


@dataclass
class CleanWeek:
    """The fault-free stretch and the actions the loop took in it."""

    days: float
    false_actions: int
    actions: list[str]
    escalations: list[str] = field(default_factory=list)
    """Humans told in it: about the estate, each a false page; about ooda's own models (a
    forecaster the live watch condemned), a true one."""


@dataclass
class ChaosResult:
    """Everything a chaos run measured."""

    settings: ChaosSettings
    instances: list[Instance]
    skipped: dict[ScenarioId, str]
    """Scenarios with no run, and why."""
    clean_week: CleanWeek | None
    capacity: CapacityWeek | None = None
    """The predictive-scaling week against the reactive HPA."""
    scoring_requests: int = 0
    scoring_calls: int = 0


def _rng(seed: int, scenario: ScenarioId, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, list(ScenarioId).index(scenario), index])


def _base_lab(rng: np.random.Generator, chaos: ChaosSettings, live_start: datetime) -> Lab:
    settings = LabSettings(
        seed=int(rng.integers(2**31)), topology=TopologySettings(pdb_max_unavailable=1)
    )
    lab = Lab(settings, SimClock(live_start - chaos.history))
    lab.generate_history(days=chaos.history / timedelta(days=1), incidents=False)
    return lab


def draw_instance(
    chaos: ChaosSettings, scenario: ScenarioId, index: int
) -> tuple[Lab, ScenarioInstance, datetime, datetime]:
    """The lab (with its background noise planned), the instance, inject time and end."""
    rng = _rng(chaos.seed, scenario, index)
    live_start = WEEK_START + timedelta(minutes=float(rng.uniform(0, 7 * 1440)))
    live_start = live_start.replace(second=0, microsecond=0)
    lab = _base_lab(rng, chaos, live_start)
    end = live_start + chaos.warmup + chaos.duration
    lab.background(rng, live_start, end)
    instance = lab_scenario(scenario).draw(rng, lab)
    return lab, instance, live_start + chaos.warmup, end


def lab_context(lab: Lab, settings: OodaSettings) -> ActionContext:
    """Actions in the lab: a backoff lets the simulated estate move on, as time would."""

    def sleep(seconds: float) -> None:
        lab.step(timedelta(seconds=max(1.0, seconds)))

    return ActionContext(
        lab.kube.clients(),
        sleep=sleep,
        now=lab.clock.now,
        api_timeout_s=settings.loop.api_timeout_s,
        cloud=lab.cloud,
    )


def make_loop(lab: Lab, settings: OodaSettings, scorer: Scorer) -> ControlLoop:
    """ooda's loop on ``lab`` with a fresh audit log (each instance stands alone)."""
    context = lab_context(lab, settings)
    return ControlLoop(
        settings,
        clock=lab.clock,
        source=lab.source,
        scorer=scorer,
        kube=context.kube,
        audit=AuditLog(":memory:"),
        sleep=context.sleep,
        cloud=context.cloud,
    )


def make_playbooks(lab: Lab, settings: OodaSettings) -> ReactivePlaybooks:
    """The alert-triggered playbooks on ``lab``."""
    context = lab_context(lab, settings)
    return ReactivePlaybooks(settings, lab.clock, lab.source, context.kube, context)


def runnable(scenario: ScenarioId) -> str | None:
    """Why ``scenario`` cannot be run yet, or None."""
    if scenario not in registered_scenarios():
        return "no lab scenario is registered for it yet"
    if not runbook_for(scenario):
        return "no runbook claims it yet"
    return None


def run_chaos(
    settings: OodaSettings,
    chaos: ChaosSettings,
    scorer: Scorer,
    progress: Callable[[str, int], None] = lambda _what, _n: None,
) -> ChaosResult:
    """Play ``chaos`` and measure it; ``progress(what, n)`` is told of each finished run."""
    if chaos.runs < 0 or chaos.clean_week_days < 0 or chaos.predictive_days < 0:
        raise ChaosError(
            f"runs, clean-week and predictive days must be >= 0, got {chaos.runs},"
            f" {chaos.clean_week_days}, {chaos.predictive_days}"
        )
    instances: list[Instance] = []
    skipped: dict[ScenarioId, str] = {}
    batcher = BatchingScorer(scorer)
    for scenario in chaos.scenarios:
        why = runnable(scenario)
        if why is not None or chaos.runs == 0:
            skipped[scenario] = why or "--runs 0"
            continue
        instances += play_scenario(settings, chaos, scenario, batcher, progress)
    clean = None
    if chaos.clean_week_days > 0:
        clean = clean_week(settings, chaos, batcher, progress)
    capacity = None
    if chaos.predictive_days > 0:
        tick = max(settings.loop.tick, chaos.clean_week_tick)
        capacity = capacity_week(
            settings,
            chaos.predictive_days,
            chaos.seed,
            WEEK_START,
            chaos.history,
            tick,
            batcher,
            make_loop,
            progress,
        )
    return ChaosResult(chaos, instances, skipped, clean, capacity, batcher.requests, batcher.calls)


def play_scenario(
    settings: OodaSettings,
    chaos: ChaosSettings,
    scenario: ScenarioId,
    batcher: BatchingScorer,
    progress: Callable[[str, int], None],
) -> list[Instance]:
    """Draw ``chaos.runs`` instances of ``scenario`` and play each in the three modes.

    The ``on`` runs go side by side, one thread each, so their scoring calls batch.
    """
    drawn = [draw_instance(chaos, scenario, i) for i in range(chaos.runs)]

    def play(i: int, mode: Mode) -> Run:
        lab, instance, inject_at, end = drawn[i]
        factory: Callable[[Lab], Agent] | None = None
        if mode is Mode.ON:
            factory = lambda copy_: make_loop(copy_, settings, batcher.client(i))  # noqa: E731
        elif mode is Mode.REACTIVE:
            factory = lambda copy_: make_playbooks(copy_, settings)  # noqa: E731
        return run_mode(
            lab, instance, inject_at, end, mode, factory, settings.slo, settings.loop.tick
        )

    def on(i: int) -> Run:
        try:
            return play(i, Mode.ON)
        finally:
            batcher.leave()
            progress(f"{scenario} on", 1)

    for _ in drawn:
        batcher.join()
    with ThreadPoolExecutor(max_workers=max(1, len(drawn))) as pool:
        on_runs = list(pool.map(on, range(len(drawn))))
    out = []
    for i, (_, instance, _, _) in enumerate(drawn):
        runs = {Mode.ON: on_runs[i]}
        for mode in (Mode.OFF, Mode.REACTIVE):
            runs[mode] = play(i, mode)
            progress(f"{scenario} {mode}", 1)
        out.append(Instance(scenario, i, instance, runs))
    return out


def clean_week(
    settings: OodaSettings,
    chaos: ChaosSettings,
    batcher: BatchingScorer,
    progress: Callable[[str, int], None],
) -> CleanWeek:
    """Play ``clean_week_days`` of the estate with no fault; every action is a false one.

    Each day is its own lab (the week's Monday, Tuesday ...) with background noise, and the
    days run side by side so their scoring calls batch.
    """
    days = chaos.clean_week_days
    spans = [min(1.0, days - d) for d in range(math.ceil(days))]
    for _ in spans:
        batcher.join()

    def day(d: int) -> tuple[list[str], list[str]]:
        try:
            return _clean_day(settings, chaos, d, spans[d], batcher.client(-1 - d), progress)
        finally:
            batcher.leave()

    with ThreadPoolExecutor(max_workers=max(1, len(spans))) as pool:
        found = list(pool.map(day, range(len(spans))))
    actions = [a for day_actions, _ in found for a in day_actions]
    return CleanWeek(days, len(actions), actions, [e for _, pages in found for e in pages])


def _clean_day(
    settings: OodaSettings,
    chaos: ChaosSettings,
    d: int,
    span: float,
    scorer: Scorer,
    progress: Callable[[str, int], None],
) -> tuple[list[str], list[str]]:
    """One clean day: the actions the loop applied, and the escalations it raised."""
    rng = np.random.default_rng([chaos.seed, 999, d])
    live_start = WEEK_START + timedelta(days=d)
    lab = _base_lab(rng, chaos, live_start)
    end = live_start + timedelta(days=span)
    lab.background(rng, live_start, end)
    loop = make_loop(lab, settings, scorer)
    tick = max(settings.loop.tick, chaos.clean_week_tick)
    ticks_per_hour = int(timedelta(hours=1) / tick)
    n = 0
    while lab.clock.now() < end:
        lab.step(tick)
        loop.tick()
        n += 1
        if n % ticks_per_hour == 0:
            progress("clean week", 1)
    actions = [
        f"{e.at:%a %H:%M} {e.target}: {e.action} ({e.evidence.get('reason', '')})"
        for e in loop.audit.entries("action")
        if e.outcome == "applied"
    ]
    pages = [f"{e.at:%a %H:%M} {e.service}: {e.outcome}" for e in loop.audit.entries("escalation")]
    return actions, pages


def total_work(chaos: ChaosSettings) -> int:
    """Progress units of ``chaos``: one per run of each mode, one per clean-week hour."""
    scenarios = [s for s in chaos.scenarios if runnable(s) is None]
    days = chaos.clean_week_days + 2 * chaos.predictive_days
    return 3 * chaos.runs * len(scenarios) + int(days * 24)


def parse_scenarios(text: str) -> tuple[ScenarioId, ...]:
    """``all`` or a comma-separated list of scenario ids; ChaosError names a bad one."""
    if text.strip() == "all":
        return tuple(ScenarioId)
    out = []
    for name in (n.strip() for n in text.split(",")):
        try:
            out.append(ScenarioId(name))
        except ValueError:
            raise ChaosError(
                f"unknown scenario {name!r}; known: {', '.join(s.value for s in ScenarioId)}"
            ) from None
    if not out:
        raise ChaosError("no scenario given")
    return tuple(out)


def certified(result: ChaosResult) -> dict[ScenarioId, list[str]]:
    """Per scenario run, the ways its runbooks failed certification (empty: certified).

    A scenario whose lab ground truth names actions that heal it must be healed in every
    run (a fault the estate resolved by itself before anyone acted does not count against
    it); one that only a human can fix (a crash that survives restarts) must be detected,
    get one restart at most (a failed restart is never repeated on its workload), and be
    escalated.
    """
    problems: dict[ScenarioId, list[str]] = {}
    for inst in result.instances:
        run = inst.runs[Mode.ON]
        found = problems.setdefault(inst.scenario, [])
        heals = lab_scenario(inst.scenario).heals
        if run.resolved_alone:
            continue
        if run.detected_at is None:
            found.append(f"run {inst.index}: not detected")
        if heals and not run.healed:
            found.append(f"run {inst.index}: not healed")
        if not heals and not run.escalated:
            found.append(f"run {inst.index}: not escalated")
        if not heals and run.actions > 1:
            found.append(f"run {inst.index}: {run.actions} actions (one restart at most)")
    return problems
