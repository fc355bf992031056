"""``ooda demo``: the whole loop, end to end, on the embedded estate.

From an empty checkout: simulate a week of history, load it into Feast, train and register
both models in MLflow, start Ray Serve, then run each failure scenario twice from the same
state — once with the loop healing, once unattended — and print the scorecard.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from mlflow import MlflowClient
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

import features
import serving
import training
from actuators import Guard, KubeClients
from lab import Lab, LabSettings, SimClock
from ooda._audit import AuditLog
from ooda._loop import ControlLoop
from ooda._report import scorecard, write_report
from ooda._scenarios import SCENARIOS, ScenarioRun, run_scenario
from ooda._scoring import ScoringClient
from ooda._settings import OodaSettings, ServingClientSettings

#: Where the live part of the demo begins: a Monday evening, so the traffic surge lands near
#: the daily peak (19:00 UTC), when it hurts most.
LIVE_START = datetime(2026, 11, 16, 17, 30, tzinfo=UTC)


@dataclass
class DemoResult:
    """Everything the demo produced."""

    runs: list[ScenarioRun]
    training: list[training.TrainingResult]
    report: Path
    audit: Path

    @property
    def all_healed(self) -> bool:
        """Whether every scenario run with the loop on ended in a verified heal."""
        return all(run.verified for run in self.runs if run.loop_on)


def incidents_of(lab: Lab) -> list[training.Incident]:
    """The lab's recorded ground truth as labelled incidents, per service that felt it.

    A traffic surge reaches the whole call chain; a crash-looping pod fails the requests of
    its own service and, through them, of every service upstream of it.
    """
    chain = [service.name for service in lab.settings.topology.services]
    out: list[training.Incident] = []
    for record in lab.ground_truth:
        end = record.ends_at or lab.clock.now()
        if record.scenario == "traffic_surge":
            felt = chain
        else:
            felt = chain[: chain.index(record.service) + 1]
        out.extend(
            training.Incident(service, record.injected_at, end, record.scenario) for service in felt
        )
    return out


@contextmanager
def _serving(settings: OodaSettings) -> Iterator[ServingClientSettings]:
    serve_settings = serving.ServingSettings(
        tracking_uri=settings.training.registry.tracking_uri,
        feature_data_dir=settings.feature_dir.resolve(),
        port=settings.demo.serve_port,
    )
    serving.start(serve_settings)
    try:
        yield ServingClientSettings(
            base_url=f"http://127.0.0.1:{settings.demo.serve_port}",
            horizon=settings.serving.horizon,
        )
    finally:
        serving.stop()


def run_demo(settings: OodaSettings, console: Console) -> DemoResult:
    """Run the demo and return its scorecard; the caller decides the exit status."""
    demo = settings.demo
    settings.workdir.mkdir(parents=True, exist_ok=True)
    history_start = LIVE_START - timedelta(days=demo.history_days)
    lab = Lab(LabSettings(seed=demo.seed), SimClock(history_start))
    progress = Progress(
        TextColumn("{task.description:<34}"),
        BarColumn(),
        TextColumn("{task.completed:>5.0f}/{task.total:<5.0f}"),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        task = progress.add_task(f"simulating {demo.history_days:g} days of history", total=1)
        lab.generate_history(days=demo.history_days)
        history = lab.source.query_range(history_start, lab.clock.now(), timedelta(minutes=1))
        progress.update(task, completed=1)

        task = progress.add_task("Feast: apply, ingest, materialize", total=1)
        store = features.open_store(features.FeatureRepoSettings(settings.feature_dir.resolve()))
        features.apply(store)
        features.ingest(store, history)
        progress.update(task, completed=1)

        uri = settings.training.registry.tracking_uri
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        end, services = lab.clock.now(), settings.services
        task = progress.add_task("train + register detector", total=1)
        results = [
            training.train_detector(
                store,
                client,
                settings.training,
                start=history_start,
                end=end,
                services=services,
                incidents=incidents_of(lab),
            )
        ]
        progress.update(task, completed=1)
        task = progress.add_task("train + register LSTM forecaster", total=1)
        results.append(
            training.train_forecaster(
                store, client, settings.training, start=history_start, end=end, services=services
            )
        )
        progress.update(task, completed=1)

        task = progress.add_task("starting Ray Serve", total=1)
        audit_path = settings.workdir / "audit.db"
        audit = AuditLog(audit_path)
        runs: list[ScenarioRun] = []
        with _serving(settings) as client_settings:
            progress.update(task, completed=1)
            scoring = ScoringClient(client_settings)

            def make_loop(copy: Lab) -> ControlLoop:
                return ControlLoop(
                    settings,
                    clock=copy.clock,
                    source=copy.source,
                    push_features=lambda metrics: features.push_live(store, metrics),
                    scoring=scoring,
                    kube=KubeClients(
                        copy.kube.core_v1, copy.kube.apps_v1, copy.kube.autoscaling_v2
                    ),
                    guard=Guard(settings.guard),
                    audit=audit,
                )

            ticks = int((demo.warmup + demo.duration) / settings.loop.tick)
            for index, scenario in enumerate(SCENARIOS):
                if index:
                    # Scenarios follow each other in lab time, so each live run pushes
                    # newer features than the last one did.
                    until = lab.clock.now() + demo.warmup + demo.duration
                    while lab.clock.now() < until:
                        lab.step(settings.loop.tick)
                for loop_on in (True, False):
                    label = f"{scenario.title} (loop {'on' if loop_on else 'off'})"
                    task = progress.add_task(label, total=ticks)
                    runs.append(
                        run_scenario(
                            lab,
                            scenario,
                            settings,
                            make_loop if loop_on else None,
                            on_tick=partial(progress.advance, task),
                        )
                    )
            scoring.close()
        audit.close()
    console.print(scorecard(runs))
    report = write_report(runs, settings.slo, settings.workdir / "report.html")
    return DemoResult(runs, results, report, audit_path)
