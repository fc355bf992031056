"""``ooda demo``: the whole loop, end to end, on the embedded estate.

From an empty checkout: simulate a week of history, load it into Feast, train and register
both models in MLflow, start Ray Serve, then run each of the twelve scenarios twice from the same
state — once with the loop healing, once unattended — and print the scorecard.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

import training
from contracts import ScenarioId
from lab import Lab, ScenarioInstance
from lab import scenario as lab_scenario
from ooda._audit import AuditLog
from ooda._chaos import lab_context
from ooda._loop import ControlLoop
from ooda._platform import history_lab, serve, train_models
from ooda._report import scorecard, write_report
from ooda._runs import Mode, Run, run_mode
from ooda._scoring import ScoringClient
from ooda._settings import OodaSettings

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

    @property
    def all_healed(self) -> bool:
        """Whether the loop handled every incident: a verified heal (or none needed: the fault
        went by itself, or the SLO held throughout with no failed heal), or, for one only a
        human can fix, an escalation."""
        return all(handled(run) for run in self.runs if run.mode is Mode.ON)


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


def run_demo(settings: OodaSettings, console: Console) -> DemoResult:
    """Run the demo and return its scorecard; the caller decides the exit status."""
    demo = settings.demo
    settings.workdir.mkdir(parents=True, exist_ok=True)
    progress = progress_bar(console)
    with progress:
        lab = history_lab(settings, progress)
        _, results = train_models(settings, lab, progress)
        runs: list[Run] = []
        audits: list[Path] = []
        with serve(settings, progress) as client_settings:
            scoring = ScoringClient(client_settings)

            def make_loop(copy: Lab, audit: AuditLog) -> ControlLoop:
                context = lab_context(copy, settings)
                return ControlLoop(
                    settings,
                    clock=copy.clock,
                    source=copy.source,
                    scorer=scoring,
                    kube=context.kube,
                    audit=audit,
                    sleep=context.sleep,
                    cloud=context.cloud,
                )

            tick = settings.loop.tick
            ticks = int((demo.warmup + demo.duration) / tick)
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
                audit = AuditLog(path)
                audits.append(path)
                for mode in (Mode.ON, Mode.OFF):
                    label = f"{instance.scenario} (loop {mode})"
                    task = progress.add_task(label, total=ticks)
                    runs.append(
                        run_mode(
                            lab,
                            instance,
                            inject_at,
                            end,
                            mode,
                            partial(make_loop, audit=audit) if mode is Mode.ON else None,
                            settings.slo,
                            tick,
                            on_tick=partial(progress.advance, task),
                        )
                    )
                audit.close()
            scoring.close()
    console.print(scorecard(runs))
    report = write_report(runs, settings.slo, settings.workdir / "report.html")
    return DemoResult(runs, results, report, audits)
