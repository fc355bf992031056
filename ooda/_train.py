"""``ooda train``: retrain the models from Feast on demand, or when the data has drifted.

The demo trains once, on the lab's history, and promotes straight to ``champion``. Later
training is different: the candidate is judged by the same gate, registered, and given the
``challenger`` alias, so that it scores in shadow beside the champion until someone (or the
shadow record's gate) promotes it. Serving never answers with a model nobody judged.

Drift is judged on the detector's features: the champion's own training window (less the
most recent day, where they overlap) against the most recent day, one Kolmogorov-Smirnov
test per feature (``training.feature_drift``). With
``--if-drift`` nothing is trained unless a feature drifted. The labels that judge the
detector are the incidents in the audit logs given (the loop's own verified incidents).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from mlflow import MlflowClient
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

import features
import training
from ooda._audit import AuditLog
from ooda._errors import TrainInputError
from ooda._incidents import incidents
from ooda._settings import OodaSettings

#: The models ``ooda train`` can retrain.
MODELS = ("detector", "forecaster")
#: How much recent history the drift test compares with the champion's window.
RECENT = timedelta(days=1)


@dataclass(frozen=True)
class TrainOutcome:
    """What one ``ooda train`` did."""

    drift: list[training.FeatureDrift]
    """The drift tests, empty when there was no champion window to compare with."""
    drifted: bool
    results: list[training.TrainingResult]
    """Per model trained (none when skipped for no drift)."""


def incident_labels(paths: Sequence[Path]) -> list[training.Incident]:
    """The incidents of the audit logs at ``paths``, as training labels."""
    out: list[training.Incident] = []
    for path in paths:
        audit = AuditLog(path)
        try:
            for incident in incidents(audit):
                end = incident.entries[-1].at if incident.entries else incident.opened_at
                out.append(
                    training.Incident(
                        incident.service,
                        incident.opened_at,
                        max(end, incident.opened_at + timedelta(minutes=5)),
                        str(incident.context.get("scenario", "incident")),
                    )
                )
        finally:
            audit.close()
    return out


def retrain(
    settings: OodaSettings,
    console: Console,
    *,
    models: Sequence[str] = MODELS,
    days: float = 7.0,
    if_drift: bool = False,
    audits: Sequence[Path] = (),
) -> TrainOutcome:
    """Check drift, then (unless ``if_drift`` and none) train each of ``models`` on the last
    ``days`` of Feast's history, gate it and set ``@challenger`` on a winner."""
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        raise TrainInputError(f"unknown model(s) {unknown}; known: {list(MODELS)}")
    if days <= 0:
        raise TrainInputError(f"--days must be positive, got {days}")
    store = features.open_store(features.FeatureRepoSettings(settings.feature_dir.resolve()))
    stored = features.stored_range(store)
    if stored is None:
        raise TrainInputError(
            f"no history in the Feast store at {settings.feature_dir}: run `ooda demo` (the"
            " lab) or let `ooda run` ingest first"
        )
    end = stored[1].replace(second=0, microsecond=0)
    start = max(stored[0], end - timedelta(days=days))
    reg = settings.training.registry
    client = MlflowClient(tracking_uri=reg.tracking_uri, registry_uri=reg.tracking_uri)
    services = list(settings.services)

    drift: list[training.FeatureDrift] = []
    window = training.training_window(client, reg.detector_name)
    recent_start = max(start, end - RECENT)
    if window is not None and min(window[1], recent_start) - window[0] >= timedelta(hours=1):
        # The champion's window, less any part of it that is also the recent day.
        reference_window = (window[0], min(window[1], recent_start))
        names = list(features.DETECTOR_FEATURES)
        reference = features.training_frame(store, *reference_window, services, "detector_v2")
        recent = features.training_frame(store, recent_start, end, services, "detector_v2")
        drift = training.feature_drift(
            reference,
            recent,
            names,
            alpha=settings.training.drift_alpha,
            min_effect=settings.training.drift_min_effect,
        )
    drifted = any(d.drifted for d in drift)
    if drift:
        console.print(_drift_table(drift))
    if if_drift and not drifted:
        why = "no feature drifted" if drift else "no champion window to compare with"
        console.print(f"[green]{why}: nothing trained (--if-drift)[/]")
        return TrainOutcome(drift, drifted, [])

    tuned = replace(settings.training, promote_to=training.CHALLENGER)
    labels = incident_labels(audits)
    results: list[training.TrainingResult] = []
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        for model in models:
            task = progress.add_task(f"train + judge + register {model}", total=1)
            if model == "detector":
                result = training.train_detector(
                    store,
                    client,
                    tuned,
                    start=start,
                    end=end,
                    services=services,
                    incidents=labels,
                )
            else:
                result = training.train_forecaster(
                    store, client, tuned, start=start, end=end, services=services
                )
            results.append(result)
            progress.update(task, completed=1)
    console.print(_summary(results, settings))
    return TrainOutcome(drift, drifted, results)


def _drift_table(drift: Sequence[training.FeatureDrift]) -> Table:
    table = Table(title="drift: champion's training window against the last day (KS test)")
    for col in ("feature", "D", "p", "rows (train / recent)", "drifted"):
        table.add_column(col, justify="left" if col == "feature" else "right")
    for d in drift:
        table.add_row(
            d.feature,
            f"{d.statistic:.3f}",
            f"{d.p_value:.2g}",
            f"{d.reference_rows} / {d.recent_rows}",
            "[red]yes[/]" if d.drifted else "no",
        )
    return table


def _summary(results: Sequence[training.TrainingResult], settings: OodaSettings) -> Table:
    ui = settings.training.registry.ui_url.rstrip("/")
    table = Table(title="ooda train")
    for col in ("model", "version", "alias", "gate", "MLflow run"):
        table.add_column(col)
    for r in results:
        table.add_row(
            r.model_name,
            f"v{r.version} ({r.kind})",
            r.alias or "none: gate failed",
            r.rule,
            f"{ui}/#/experiments/{r.experiment_id}/runs/{r.run_id}",
        )
    return table
