"""Benchmark of the data and model path the demo runs, stage by stage (no Ray Serve).

Run: ``.venv/bin/python benchmarks/bench_pipeline.py [--days 7]``. Prints a table; copy it to
``benchmarks/RESULTS.md`` with the machine and the date.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import features
from lab import Lab, LabSettings, SimClock
from models import IsolationForestDetector, LSTMForecaster
from training._pipeline import request_rate_series


def timed(
    rows: list[tuple[str, float, str]], name: str, fn: Callable[[], Any], note: str = ""
) -> Any:
    began = time.perf_counter()
    out = fn()
    rows.append((name, time.perf_counter() - began, note))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=float, default=7.0)
    args = parser.parse_args()
    rows: list[tuple[str, float, str]] = []
    start = datetime(2026, 11, 9, 17, 30, tzinfo=UTC)
    lab = Lab(LabSettings(seed=11), SimClock(start))
    timed(
        rows,
        "lab: simulate history",
        lambda: lab.generate_history(days=args.days),
        f"{args.days:g} days, 1-min steps",
    )
    end = lab.clock.now()
    metrics = timed(
        rows,
        "lab: query_range whole history",
        lambda: lab.source.query_range(start, end, timedelta(minutes=1)),
        "",
    )
    rows[-1] = (rows[-1][0], rows[-1][1], f"{len(metrics)} rows")
    timed(
        rows,
        "lab: query_range last 75 min",
        lambda: lab.source.query_range(end - timedelta(minutes=75), end, timedelta(minutes=1)),
        "what one loop tick reads",
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = features.open_store(features.FeatureRepoSettings(Path(tmp) / "data"))
        timed(rows, "feast: apply", lambda: features.apply(store))
        timed(rows, "feast: ingest + materialize", lambda: features.ingest(store, metrics))
        services = ["frontend", "checkout", "payments"]
        frame = timed(
            rows,
            "feast: historical detector_v2",
            lambda: features.training_frame(store, start, end, services, "detector_v2"),
            "point-in-time join, 1-min grid (DuckDB)",
        )
        series = timed(
            rows,
            "feast: request-rate series",
            lambda: request_rate_series(store, start, end, services),
            "forecaster_v1 windows every 60 min",
        )
        recent = metrics[metrics["timestamp"] > end - timedelta(minutes=75)]
        timed(rows, "feast: push_live (one tick)", lambda: features.push_live(store, recent))
        timed(
            rows,
            "feast: online_features (3 services)",
            lambda: features.online_features(store, services, "detector_v2"),
        )
    cols = list(features.DETECTOR_FEATURES)
    detector = timed(
        rows,
        "model: Isolation Forest fit",
        lambda: IsolationForestDetector(features=cols).fit(frame.dropna(subset=cols)),
        f"{len(frame)} rows",
    )
    timed(rows, "model: Isolation Forest score (3 rows)", lambda: detector.score(frame.tail(3)))
    lstm = timed(
        rows,
        "model: LSTM fit",
        lambda: LSTMForecaster(n_epochs=20, learning_rate=3e-3, random_state=7).fit(series),
        "20 epochs, 1000 windows per service",
    )
    history = series.groupby("service", group_keys=False).tail(60)
    timed(
        rows,
        "model: LSTM predict (3 x 30 min)",
        lambda: lstm.predict(history, 30),
        "100 sample paths",
    )

    machine = f"{platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs)"
    table = Table(title=f"ooda pipeline benchmark — {machine}, {datetime.now(UTC):%Y-%m-%d}")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    table.add_column("note")
    for name, seconds, note in rows:
        table.add_row(name, f"{seconds:.3f}", note)
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
