"""The real parts behind ``ooda run``: how long a tick's reads take from a real Prometheus
against the lab's in-process source, and what starting the servers costs.

Prints a table; record it in RESULTS.md with the machine line.

    python benchmarks/bench_real_parts.py [--hours 3] [--repeats 10]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _machine import machine_description, quiet_warnings
from rich.console import Console
from rich.table import Table

from contracts import MetricFamily
from features import PrometheusSettings, PrometheusSource
from lab import Lab, LabSettings, SimClock
from lab.servers import KafkaBroker, PrometheusServer


def _timed(fn, repeats: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Median and max wall seconds of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hours", type=float, default=3.0, help="lab history backfilled")
    parser.add_argument("--repeats", type=int, default=10, help="reads timed per row")
    args = parser.parse_args()
    quiet_warnings()
    console = Console()
    console.print(f"machine: {machine_description()}   date: {datetime.now(UTC):%Y-%m-%d}")
    table = Table(title="a tick's reads and the servers' start-up")
    for column in ("what", "median", "max"):
        table.add_column(column)
    start = datetime(2026, 3, 2, tzinfo=UTC)
    lab = Lab(LabSettings(seed=5), SimClock(start))
    lab.step(timedelta(hours=args.hours))
    end = lab.clock.now()
    began = time.perf_counter()
    history = lab.source.history_openmetrics()
    write_s = time.perf_counter() - began
    table.add_row(
        f"OpenMetrics of {args.hours:g} h of the lab ({len(history) / 1e6:.0f} MB)",
        f"{write_s:.1f} s",
        "",
    )
    with tempfile.TemporaryDirectory() as tmp:
        server = PrometheusServer(Path(tmp) / "prometheus", lookback=timedelta(minutes=1))
        began = time.perf_counter()
        server.backfill(history)
        table.add_row("promtool backfill", f"{time.perf_counter() - began:.1f} s", "")
        began = time.perf_counter()
        server.start()
        table.add_row("Prometheus start (ready)", f"{time.perf_counter() - began:.1f} s", "")
        try:
            source = PrometheusSource(PrometheusSettings(url=server.url, region="eu-west-1"))
            window = (end - timedelta(minutes=75), end, timedelta(minutes=1))
            families = (end - timedelta(minutes=15), end, timedelta(minutes=1))
            for name, fn in (
                ("service frame, 75 min at 1 min: Prometheus", lambda: source.query_range(*window)),
                (
                    "service frame, 75 min at 1 min: the lab",
                    lambda: lab.source.query_range(*window),
                ),
                (
                    "six families, 15 min at 1 min: Prometheus",
                    lambda: [source.query_family(f, *families) for f in MetricFamily],
                ),
                (
                    "six families, 15 min at 1 min: the lab",
                    lambda: [lab.source.query_family(f, *families) for f in MetricFamily],
                ),
            ):
                median, worst = _timed(fn, args.repeats)
                table.add_row(name, f"{1e3 * median:.0f} ms", f"{1e3 * worst:.0f} ms")
            source.close()
        finally:
            server.stop()
        broker = KafkaBroker(Path(tmp) / "kafka")
        began = time.perf_counter()
        broker.start()
        table.add_row(
            "Kafka broker start (KRaft, port open)", f"{time.perf_counter() - began:.1f} s", ""
        )
        broker.stop()
    console.print(table)


if __name__ == "__main__":
    main()
