"""A self-contained place to experiment: a Feast store with history, an MLflow registry with
champions, the lab's incidents and an audit log of the loop at work, under one folder.

The notebooks work on one. ``Workspace.from_env()`` is ``$OODA_WORKSPACE`` (the tests point it
at a temporary folder) or ``.ooda/workspace`` beside the project; ``prepare`` fills it the
first time (a short lab history, both models trained and registered, one incident played with
the loop on) and leaves it alone after, so a notebook re-run starts in seconds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from mlflow import MlflowClient
from rich.console import Console
from rich.progress import Progress

import features
import training
from contracts import ScenarioId
from lab import Lab
from ooda._audit import AuditLog
from ooda._chaos import lab_context
from ooda._demo import demo_instance
from ooda._fakes import RuleScorer
from ooda._loop import ControlLoop
from ooda._platform import history_lab, incidents_of, train_models
from ooda._quiet import silence
from ooda._runs import Mode, Run, run_mode
from ooda._settings import DemoSettings, OodaSettings

if TYPE_CHECKING:
    from feast import FeatureStore

#: Where a workspace lives unless ``$OODA_WORKSPACE`` says otherwise (beside the project).
DEFAULT_ROOT = Path(__file__).resolve().parent.parent / ".ooda" / "workspace"
#: The incident the workspace plays with the loop on: a slow database, felt two hops away.
PLAYED = ScenarioId.DB_READ_LATENCY


@dataclass(frozen=True)
class Workspace:
    """The paths of one workspace, and the settings that point at them."""

    root: Path

    @classmethod
    def from_env(cls) -> Workspace:
        """``$OODA_WORKSPACE``, else :data:`DEFAULT_ROOT`."""
        return cls(Path(os.environ.get("OODA_WORKSPACE", DEFAULT_ROOT)).resolve())

    @property
    def feature_dir(self) -> Path:
        """The Feast repo's data (offline parquet, online SQLite, registry)."""
        return self.root / "features"

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking and registry store (SQLite)."""
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def audit(self) -> Path:
        """The audit log of the incident played with the loop on."""
        return self.root / "audit.db"

    @property
    def incidents(self) -> Path:
        """The lab's ground truth, one incident per row and service that felt it (CSV)."""
        return self.root / "incidents.csv"

    def settings(self, days: float = 2.0, seed: int = 7) -> OodaSettings:
        """ooda's settings over this workspace (a short history, a quick forecaster)."""
        registry = training.RegistrySettings(
            tracking_uri=self.tracking_uri, artifact_root=self.root / "artifacts"
        )
        base = OodaSettings()
        quick = replace(base.training.forecaster, epochs=4, max_samples_per_ts=300)
        return replace(
            base,
            workdir=self.root / "ooda",
            feature_dir=self.feature_dir,
            training=replace(base.training, registry=registry, forecaster=quick),
            demo=DemoSettings(history_days=days, seed=seed),
        )

    def client(self) -> MlflowClient:
        """An MLflow client on this workspace's registry."""
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def store(self) -> FeatureStore:
        """The Feast store (applied)."""
        return features.open_store(features.FeatureRepoSettings(self.feature_dir))

    def ready(self) -> bool:
        """Whether :meth:`prepare` has run to the end."""
        return (self.root / ".prepared").exists()

    def prepare(
        self, days: float = 2.0, seed: int = 7, console: Console | None = None
    ) -> Workspace:
        """Fill the workspace once: ``days`` of lab history into Feast, both models trained
        and registered as champions, the ground truth as CSV, and :data:`PLAYED` played with
        the loop on (rule scorer) into the audit log. A no-op when already prepared."""
        if self.ready():
            return self
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        silence()
        self.root.mkdir(parents=True, exist_ok=True)
        settings = self.settings(days, seed)
        with Progress(console=console or Console(), transient=True) as progress:
            lab = history_lab(settings, progress)
            silence()
            train_models(settings, lab, progress)
            task = progress.add_task(f"playing {PLAYED} with the loop on", total=1)
            self._play(lab, settings)
            progress.update(task, completed=1)
        frame = pd.DataFrame(
            [
                {"service": i.service, "start": i.start, "end": i.end, "scenario": i.scenario}
                for i in incidents_of(lab)
            ],
            columns=["service", "start", "end", "scenario"],
        )
        frame.to_csv(self.incidents, index=False)
        (self.root / ".prepared").write_text(f"days={days} seed={seed}\n")
        return self

    def _play(self, lab: Lab, settings: OodaSettings) -> Run:
        instance = demo_instance(PLAYED, lab, settings.demo.seed)
        audit = AuditLog(self.audit)

        def make_loop(copy: Lab) -> ControlLoop:
            context = lab_context(copy, settings)
            return ControlLoop(
                settings,
                clock=copy.clock,
                source=copy.source,
                scorer=RuleScorer(),
                kube=context.kube,
                audit=audit,
                sleep=context.sleep,
                cloud=context.cloud,
            )

        start = lab.clock.now()
        try:
            return run_mode(
                lab,
                instance,
                start + timedelta(minutes=20),
                start + timedelta(minutes=60),
                Mode.ON,
                make_loop,
                settings.slo,
                settings.loop.tick,
            )
        finally:
            audit.close()
