"""``ooda demo``: the whole loop, end to end, on the embedded estate.

From an empty checkout: simulate a week of history, load it into Feast, train and register
both models in MLflow, start Ray Serve, then run each of the twelve scenarios twice from the same
state — once with the loop healing, once unattended — and print the scorecard. Beside them, one
region-wide outage of a two-region fleet, with the failover controller and without
(``ooda failover-drill`` has the rest).
"""

from __future__ import annotations

import copy
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from queue import Empty, Queue

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

import training
from contracts import ScenarioId
from lab import Lab, ScenarioInstance
from lab import scenario as lab_scenario
from ooda._audit import AuditEntry, AuditLog
from ooda._chaos import lab_context
from ooda._failover_drill import DrillRun, DrillSettings, draw_outages, run_outage
from ooda._incident_page import write_pages
from ooda._incidents import incidents
from ooda._loop import ControlLoop
from ooda._platform import history_lab, serve_early, train_models
from ooda._quiet import quiet_worker, silence
from ooda._report import scorecard, write_report
from ooda._runs import Mode, Run, run_mode
from ooda._scoring import ScoringClient
from ooda._settings import OodaSettings, ServingClientSettings

#: The demo's fixed incidents: a checkout pod in CrashLoopBackOff, and traffic x3 in 5 minutes.
FIXED_INSTANCES = {
    ScenarioId.POD_CRASHLOOP: ScenarioInstance(ScenarioId.POD_CRASHLOOP, "checkout"),
    ScenarioId.TRAFFIC_SURGE: ScenarioInstance(
        ScenarioId.TRAFFIC_SURGE,
        "frontend",
        magnitude=3.0,
        duration=timedelta(minutes=40),
        params={"ramp_s": 300.0},
    ),
}


def demo_instance(scenario_id: ScenarioId, lab: Lab, seed: int) -> ScenarioInstance:
    """The demo's incident of ``scenario_id``: a fixed one, or one its scenario draws from the
    demo's seed on the estate as it stands (so an instance fits the state it is injected in)."""
    fixed = FIXED_INSTANCES.get(scenario_id)
    if fixed is not None:
        return fixed
    rng = np.random.default_rng([seed, list(ScenarioId).index(scenario_id)])
    return lab_scenario(scenario_id).draw(rng, lab)


@dataclass
class DemoResult:
    """Everything the demo produced."""

    runs: list[Run]
    training: list[training.TrainingResult]
    report: Path
    audits: list[Path]
    """One audit log per scenario (each scenario's loop starts with a clean memory)."""
    incident_pages: list[Path]
    """The index of each audit log's incident pages."""
    failover: tuple[DrillRun, DrillRun]
    """The regional outage with the failover controller, and without."""

    @property
    def all_healed(self) -> bool:
        """Whether the loop handled every incident: a verified heal (or none needed: the fault
        went by itself, or the SLO held throughout with no failed heal), or, for one only a
        human can fix, an escalation; and the users of the dead region moved and came back."""
        on, _ = self.failover
        moved = on.failover_s is not None and on.failback_s is not None and not on.failed_heals
        return moved and all(handled(run) for run in self.runs if run.mode is Mode.ON)


def handled(run: Run) -> bool:
    """Whether the loop-on ``run`` ended as its scenario's ground truth says it should."""
    if not lab_scenario(run.scenario).heals:
        return run.escalated
    # A mild instance may never touch the SLO within the run: held, with no failed heal.
    held = run.breach_minutes == 0 and run.failed_heals == 0 and not run.escalated
    return run.healed or run.resolved_alone or held


def progress_bar(console: Console) -> Progress:
    """The progress display the long commands share."""
    return Progress(
        TextColumn("{task.description:<34}"),
        BarColumn(),
        TextColumn("{task.completed:>5.0f}/{task.total:<5.0f}"),
        TimeElapsedColumn(),
        console=console,
    )


@dataclass(frozen=True)
class LoopOnRun:
    """One loop-on run, as a worker process gets it: the estate as it stands before the
    scenario, the incident, and how to reach the models (everything picklable)."""

    lab: Lab
    instance: ScenarioInstance
    inject_at: datetime
    end: datetime
    settings: OodaSettings
    scoring: ServingClientSettings
    audit: Path
    """The run's audit log (created fresh)."""


def play_on(job: LoopOnRun, ticks: Queue[str] | None = None) -> Run:
    """Play ``job`` with the loop on; ``ticks`` is told the scenario's id every 10 ticks."""
    silence("ooda.loop")  # some libraries reset the filters when first imported
    scoring = ScoringClient(job.scoring)
    audit = AuditLog(job.audit)
    count = 0

    def make_loop(copy: Lab) -> ControlLoop:
        context = lab_context(copy, job.settings)
        return ControlLoop(
            job.settings,
            clock=copy.clock,
            source=copy.source,
            scorer=scoring,
            kube=context.kube,
            audit=audit,
            sleep=context.sleep,
            cloud=context.cloud,
        )

    def on_tick() -> None:
        nonlocal count
        count += 1
        if ticks is not None and count % 10 == 0:
            ticks.put(str(job.instance.scenario))

    try:
        return run_mode(
            job.lab,
            job.instance,
            job.inject_at,
            job.end,
            Mode.ON,
            make_loop,
            job.settings.slo,
            job.settings.loop.tick,
            on_tick=on_tick,
        )
    finally:
        audit.close()
        scoring.close()


def run_demo(settings: OodaSettings, console: Console) -> DemoResult:
    """Run the demo and return its scorecard; the caller decides the exit status.

    The scenarios follow each other in lab time; each loop-on run goes to a worker process
    (one per core), the unattended ones run here, and the scorecard keeps the scenarios'
    order.
    """
    demo = settings.demo
    settings.workdir.mkdir(parents=True, exist_ok=True)
    progress = progress_bar(console)
    workers = max(1, min(demo.workers or os.cpu_count() or 1, len(demo.scenarios)))
    spawn = multiprocessing.get_context("spawn")
    with (
        progress,
        spawn.Manager() as manager,
        ProcessPoolExecutor(
            workers,
            mp_context=spawn,
            initializer=quiet_worker,
            initargs=(logging.getLogger().level, ("feast", "serving", "ooda._demo"), "ooda.loop"),
        ) as pool,
        serve_early(settings, progress) as serving_ready,
    ):
        lab = history_lab(settings, progress)
        _, results = train_models(settings, lab, progress)
        tick = settings.loop.tick
        ticks = int((demo.warmup + demo.duration) / tick)
        client_settings = serving_ready()
        told: Queue[str] = manager.Queue()
        on_runs: dict[ScenarioId, Future[Run]] = {}
        replays: dict[ScenarioId, Callable[[], Run]] = {}
        off_runs: dict[ScenarioId, Run] = {}
        tasks: dict[str, TaskID] = {}
        audits: list[Path] = []
        drill = DrillSettings(runs=1, seed=demo.seed, clean_runs=0)
        (outage,) = draw_outages(drill)
        drill_dir = settings.workdir / "failover"
        drill_dir.mkdir(parents=True, exist_ok=True)
        failover_task = progress.add_task("regional outage (failover on, off)", total=2)
        failover_on = pool.submit(run_outage, settings, outage, "on", drill, drill_dir)
        for index, scenario_id in enumerate(demo.scenarios):
            if index:
                # Scenarios follow each other in lab time, as one evening of incidents.
                lab.step(demo.warmup + demo.duration)
            instance = demo_instance(scenario_id, lab, demo.seed)
            inject_at = lab.clock.now() + demo.warmup
            end = inject_at + demo.duration
            path = settings.workdir / f"audit-{instance.scenario}.db"
            for stale in (path, path.with_name(path.name + ".head")):
                stale.unlink(missing_ok=True)  # each demo run starts a new log
            audits.append(path)
            # A copy: the pool pickles the job later, while this lab moves on.
            estate = copy.deepcopy(lab)
            job = LoopOnRun(estate, instance, inject_at, end, settings, client_settings, path)
            tasks[str(scenario_id)] = progress.add_task(f"{scenario_id} (loop on)", total=ticks)
            on_runs[scenario_id] = pool.submit(play_on, job, told)
            replays[scenario_id] = partial(play_on, job, told)
            task = progress.add_task(f"{scenario_id} (loop off)", total=ticks)
            off_runs[scenario_id] = run_mode(
                lab,
                instance,
                inject_at,
                end,
                Mode.OFF,
                None,
                settings.slo,
                tick,
                on_tick=partial(progress.advance, task),
            )
        failover_off = run_outage(settings, outage, "off", drill, drill_dir)
        progress.advance(failover_task)
        runs: list[Run] = []
        for scenario_id, future in on_runs.items():
            while not future.done():
                _advance(progress, tasks, told, timeout=0.2)
            run = loop_on_result(future, replays[scenario_id], console.print)
            runs += [run, off_runs[scenario_id]]
            progress.update(tasks[str(scenario_id)], completed=ticks)
        failover = (failover_on.result(), failover_off)
        progress.advance(failover_task)
    console.print(scorecard(runs))
    console.print(failover_table(*failover, settings.failover.regions))
    report = write_report(runs, settings.slo, settings.workdir / "report.html")
    pages = []
    findings: list[AuditEntry] = []
    for path in audits:
        audit = AuditLog(path)
        pages.append(write_pages(incidents(audit), settings.workdir / "incidents" / path.stem)[0])
        findings += audit.entries("finding")
        audit.close()
    console.print(findings_table(findings))
    return DemoResult(runs, results, report, audits, pages, failover)


def findings_table(findings: list[AuditEntry]) -> Table:
    """What the heals left for the owners, one row per finding the loops opened."""
    table = Table(title="Left for the owners after the heals (findings, sent as tickets)")
    for column in ("scenario", "about", "what is left"):
        table.add_column(column)
    for entry in findings:
        table.add_row(
            str(entry.evidence.get("scenario", "")), entry.target, str(entry.evidence.get("text"))
        )
    return table


def failover_table(on: DrillRun, off: DrillRun, regions: tuple[str, ...]) -> Table:
    """The regional outage, with the failover controller and without."""
    home, standby = regions[0], regions[1]
    table = Table(
        title=f"Regional failover: {home} fails every request for {on.outage_minutes:.0f}"
        f" minutes; {standby} stands by (users' side, both regions)"
    )
    for column in ("failover", "breach min", "users moved after", "home again after", "actions"):
        table.add_column(column, justify="left" if column == "failover" else "right")

    def seconds(value: float | None, since: str) -> str:
        return "—" if value is None else f"{value:.0f} s {since}"

    for name, run in (("on", on), ("off (nobody acts)", off)):
        table.add_row(
            name,
            str(run.breach_minutes),
            seconds(run.failover_s, "from its start"),
            seconds(run.failback_s, "from its end"),
            str(run.actions),
        )
    return table


def loop_on_result(
    future: Future[Run], replay: Callable[[], Run], say: Callable[[str], None]
) -> Run:
    """A worker's loop-on run, or the same job played here when its worker died (the kernel
    kills a process under memory pressure; every job of the pool then fails alike). The job
    sent was a copy of the estate, untouched here, so the replay starts from the same state."""
    try:
        return future.result()
    except BrokenProcessPool as exc:
        say(f"[yellow]a demo worker died ({exc}); playing its run in this process[/yellow]")
        return replay()


def _advance(
    progress: Progress, tasks: dict[str, TaskID], told: Queue[str], timeout: float
) -> None:
    """Move the bars of the loop-on runs the workers told of (waits up to ``timeout``)."""
    try:
        scenario = told.get(timeout=timeout)
    except Empty:
        return
    progress.advance(tasks[scenario], 10)
