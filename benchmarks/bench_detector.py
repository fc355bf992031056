"""The anomaly detector with and without the metric families, by forward-chained CV.

Run: ``.venv/bin/python benchmarks/bench_detector.py [--seeds 1 2 3] [--days 4]
[--per-day 6]`` (or ``make bench-detector``).

For each seed the lab lives ``--days`` days with ``--per-day`` random incidents drawn from
all twelve scenarios (the demo's history has only crash loops and surges, which the service's
own metrics show). Day ``d`` (from the second on) is scored by detectors fitted on the quiet
rows of days ``0..d-1``, never on the day scored; the figures pool every scored day of every
seed, with the training pipeline's settings (``training.TrainingSettings().detector``).
Compared: the Isolation Forest and the robust z-score baseline, each on the service's
own features (``features.SERVICE_DETECTOR_FEATURES``) and on those plus the service's view
of the families (``features.DETECTOR_FEATURES``). Reported: row precision, recall and F1 at
the 0.5 threshold, average precision, incidents detected (any anomalous minute of a felt
service inside the incident) per scenario, and false-alarm episodes per day outside
incidents. Copy the tables to ``benchmarks/RESULTS.md`` with the machine and the date.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from _machine import machine_description
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

import features
from contracts import MetricFamily, ScenarioId, SimClock
from lab import IncidentSettings, Lab, LabSettings
from models import IsolationForestDetector, RobustZScoreDetector, detector_metrics
from training import TrainingSettings

START = datetime(2026, 11, 2, tzinfo=UTC)
STEP = timedelta(minutes=1)
WARM_UP = timedelta(hours=1)
SETS = {
    "service only": features.SERVICE_DETECTOR_FEATURES,
    "service + families": features.DETECTOR_FEATURES,
}


@dataclass
class Incident:
    service: str
    start: pd.Timestamp
    end: pd.Timestamp
    scenario: str


def history(seed: int, days: float, per_day: float) -> tuple[pd.DataFrame, list[Incident]]:
    """A seed's feature rows (service features and rollup per minute) and its incidents."""
    incidents = IncidentSettings(per_day=per_day, scenarios=tuple(ScenarioId))
    lab = Lab(LabSettings(seed=seed, incidents=incidents), SimClock(START - WARM_UP))
    lab.step(WARM_UP)  # some scenarios draw their target from live traffic
    lab.generate_history(days=days)
    end = lab.clock.now()
    metrics = lab.source.query_range(START, end, STEP)
    rows = features.build_features(metrics)
    families = {f: lab.source.query_family(f, START, end, STEP) for f in MetricFamily}
    rollup = features.service_rollup(families).rename(columns={"timestamp": "event_timestamp"})
    rows = rows.merge(rollup.drop(columns="region"), on=["service", "event_timestamp"], how="left")
    found = [
        Incident(s, pd.Timestamp(r.injected_at), pd.Timestamp(r.ends_at or end), str(r.scenario))
        for r in lab.ground_truth
        for s in r.felt_by
    ]
    return rows.sort_values(["event_timestamp", "service"], ignore_index=True), found


def labels(rows: pd.DataFrame, incidents: list[Incident]) -> np.ndarray:
    out = np.zeros(len(rows), dtype=bool)
    ts = rows["event_timestamp"]
    for inc in incidents:
        out |= ((ts >= inc.start) & (ts < inc.end) & (rows["service"] == inc.service)).to_numpy()
    return out


def episodes(flags: np.ndarray, rows: pd.DataFrame) -> int:
    """Runs of consecutive anomalous minutes per service."""
    count = 0
    for _, group in rows.assign(flag=flags).groupby("service"):
        f = group.sort_values("event_timestamp")["flag"].to_numpy()
        count += int((f & ~np.concatenate([[False], f[:-1]])).sum())
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--days", type=float, default=4.0)
    parser.add_argument("--per-day", type=float, default=6.0)
    args = parser.parse_args()
    logging.getLogger("models").setLevel(logging.ERROR)  # imputation notes, one per fit
    cfg = TrainingSettings().detector  # the pipeline's own settings
    console = Console()
    began = time.perf_counter()
    scored: dict[str, list[np.ndarray]] = {}
    truth: list[np.ndarray] = []
    per_incident: dict[str, dict[str, list[bool]]] = {}
    false_eps: dict[str, int] = {}
    quiet_days = 0.0
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("seeds", total=len(args.seeds))
        for seed in args.seeds:
            rows, incidents = history(seed, args.days, args.per_day)
            y = labels(rows, incidents)
            day = (
                (rows["event_timestamp"] - pd.Timestamp(START)) // pd.Timedelta(days=1)
            ).to_numpy()
            for d in range(1, int(np.ceil(args.days))):
                train = (day < d) & ~y
                test = day == d
                test_rows = rows[test].reset_index(drop=True)
                truth.append(y[test])
                quiet_days += 1.0
                for set_name, names in SETS.items():
                    complete = rows[list(names)].notna().all(axis=1).to_numpy()
                    floors = {f: v for f, v in features.ROLLUP_MIN_SCALES.items() if f in names}
                    for model in (
                        IsolationForestDetector(
                            names,
                            n_estimators=cfg.n_estimators,
                            threshold_quantile=cfg.threshold_quantile,
                            envelope_quantile=cfg.envelope_quantile,
                            random_state=seed,
                            min_scales=floors,
                        ),
                        RobustZScoreDetector(
                            names, threshold_quantile=cfg.threshold_quantile, min_scales=floors
                        ),
                    ):
                        key = f"{type(model).__name__.removesuffix('Detector')} | {set_name}"
                        model.fit(rows[train & complete])
                        scores = model.score(test_rows)
                        scored.setdefault(key, []).append(scores)
                        flags = scores >= 0.5
                        false_eps[key] = false_eps.get(key, 0) + episodes(
                            flags & ~y[test], test_rows
                        )
                        lo, hi = (
                            test_rows["event_timestamp"].min(),
                            test_rows["event_timestamp"].max(),
                        )
                        for inc in incidents:
                            if not lo <= inc.start <= hi:
                                continue
                            inside = (
                                (test_rows["event_timestamp"] >= inc.start)
                                & (test_rows["event_timestamp"] < inc.end)
                                & (test_rows["service"] == inc.service)
                            ).to_numpy()
                            hit = bool((flags & inside).any())
                            per_incident.setdefault(key, {}).setdefault(inc.scenario, []).append(
                                hit
                            )
            progress.advance(task)
    y_all = np.concatenate(truth)
    table = Table(title=f"Detector, forward-chained CV: seeds {args.seeds}, {args.days:g} days")
    for col in ("model | features", "precision", "recall", "F1", "AP", "false episodes/day"):
        table.add_column(col, justify="right" if col != "model | features" else "left")
    for key, parts in scored.items():
        m = detector_metrics(y_all, np.concatenate(parts))
        table.add_row(
            key,
            f"{m['precision']:.3f}",
            f"{m['recall']:.3f}",
            f"{m['f1']:.3f}",
            f"{m['average_precision']:.3f}",
            f"{false_eps[key] / quiet_days:.1f}",
        )
    console.print(table)
    scenarios = sorted({s for hits in per_incident.values() for s in hits})
    detail = Table(title="Incidents detected (felt service, any anomalous minute inside)")
    detail.add_column("scenario")
    for key in scored:
        detail.add_column(key, justify="right")
    for scenario in scenarios:
        cells = []
        for key in scored:
            hits = per_incident.get(key, {}).get(scenario, [])
            cells.append(f"{sum(hits)}/{len(hits)}")
        detail.add_row(scenario, *cells)
    console.print(detail)
    console.print(f"{machine_description()}; {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
