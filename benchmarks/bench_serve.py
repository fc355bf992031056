"""Load benchmark of the scoring path and of the loop's tick.

Run: ``make bench-serve`` (builds the open-loop load generator, vegeta, from the Go module
proxy into ``~/.cache/ooda/bin`` once). Against the registry's champions (trained first if
the registry has none), on 127.0.0.1 only:

* Serve start-up: from ``serving.start`` to ``/healthz`` answering 200;
* ``POST /v1/anomaly`` with one row, open loop (vegeta) at 25, 100, 250 and 500 requests/s:
  achieved throughput, p50/p99 of every answer, 503s (load shed) and timeouts;
* batches of 1, 100, 1,000 and 10,000 rows (columns form): rows per CPU-second of the Ray
  processes (``rows/s/core``), against the same detector scoring in this process;
* the loop's tick by part on the lab, scored by this Serve application, for 3 services and
  for a lab of 1,000 services.

Ends with one machine-readable line per measurement (``bench-serve ...``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import mlflow
import numpy as np
import pandas as pd
import psutil
from _machine import machine_description, quiet_warnings
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

import serving
from contracts import SimClock
from features import DETECTOR_FEATURES
from lab import Lab, LabSettings, call_forest
from ooda import AuditLog, ControlLoop, OodaSettings, ScoringClient, ServingClientSettings
from ooda._cli_common import has_champions as _has_champions
from ooda._platform import history_lab, train_models

VEGETA = Path.home() / ".cache" / "ooda" / "bin" / "vegeta"
RATES = (25, 100, 250, 500)
START = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
BATCHES = (1, 100, 1_000, 10_000)
console = Console(width=140)


@dataclass
class LoadStep:
    offered: int
    achieved: float
    p50_ms: float
    p99_ms: float
    rejected: int
    timeouts: int
    errors: int


def _rows(n: int, seed: int = 0) -> dict[str, list[Any]]:
    rng = np.random.default_rng(seed)
    columns: dict[str, list[Any]] = {"service": [f"svc-{i % 50}" for i in range(n)]}
    means = {"error_rate": 0.002, "p95_latency_ms": 80.0, "restarts_15m": 0.0}
    for name in DETECTOR_FEATURES:
        centre = means.get(name, 0.5 if name != "request_rate_ratio_1h" else 1.0)
        columns[name] = np.abs(rng.normal(centre, 0.1 * centre + 1e-3, n)).round(6).tolist()
    return columns


def _ray_cpu_seconds() -> float:
    """CPU seconds used so far by every Ray process on this machine (proxy, replicas, GCS)."""
    total = 0.0
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            line = " ".join(proc.info["cmdline"] or [])
            if line.startswith("ray::") or "raylet" in line or "gcs_server" in line:
                times = proc.cpu_times()
                total += times.user + times.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def _vegeta(url: str, body: Path, rate: int, seconds: float) -> LoadStep:
    target = f"POST {url}/v1/anomaly\nContent-Type: application/json\n@{body}\n"
    attack = subprocess.run(
        [str(VEGETA), "attack", f"-rate={rate}/s", f"-duration={seconds}s", "-timeout=2s"],
        input=target.encode(),
        capture_output=True,
        check=True,
    )
    report = subprocess.run(
        [str(VEGETA), "report", "-type=json"], input=attack.stdout, capture_output=True, check=True
    )
    data = json.loads(report.stdout)
    codes = {int(k): v for k, v in (data.get("status_codes") or {}).items()}
    errors = data.get("errors") or []
    timeouts = sum("timeout" in e.lower() or "deadline" in e.lower() for e in errors)
    lat = data["latencies"]
    return LoadStep(
        offered=rate,
        achieved=codes.get(200, 0) / seconds,
        p50_ms=lat["50th"] / 1e6,
        p99_ms=lat["99th"] / 1e6,
        rejected=codes.get(503, 0),
        timeouts=max(timeouts, codes.get(0, 0)),
        errors=sum(v for k, v in codes.items() if k not in (0, 200, 503)),
    )


def _batch_rate(http: httpx.Client, n: int, seconds: float) -> tuple[float, float]:
    """Rows/s through Serve and rows per CPU-second of the Ray processes."""
    body = json.dumps({"columns": _rows(n)}).encode()
    headers = {"content-type": "application/json"}
    http.post("/v1/anomaly", content=body, headers=headers).raise_for_status()
    cpu0, began, rows = _ray_cpu_seconds(), time.perf_counter(), 0
    while time.perf_counter() - began < seconds:
        answer = http.post("/v1/anomaly", content=body, headers=headers)
        answer.raise_for_status()
        rows += n
    wall, cpu = time.perf_counter() - began, _ray_cpu_seconds() - cpu0
    return rows / wall, rows / max(cpu, 1e-9)


def _inprocess_rate(tracking_uri: str, n: int, seconds: float) -> float:
    """Rows per CPU-second of the champion detector scoring in this process."""
    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model("models:/ooda-detector@champion")
    detector = model.unwrap_python_model().detector
    frame = pd.DataFrame(_rows(n))
    detector.score(frame)
    cpu0, began, rows = time.process_time(), time.perf_counter(), 0
    while time.perf_counter() - began < seconds:
        detector.score(frame)
        rows += n
    return rows / max(time.process_time() - cpu0, 1e-9)


@contextmanager
def _serving(settings: OodaSettings, port: int) -> Iterator[tuple[str, float]]:
    serve_settings = serving.ServingSettings(
        tracking_uri=settings.training.registry.tracking_uri,
        feature_data_dir=settings.feature_dir.resolve(),
        port=port,
    )
    began = time.perf_counter()
    app = serving.start(serve_settings)
    try:
        yield app.url, time.perf_counter() - began
    finally:
        serving.stop()


def _tick_parts(lab: Lab, settings: OodaSettings, url: str, ticks: int) -> dict[str, float]:
    """Mean milliseconds per tick of each part of the loop, scored by Serve at ``url``, as
    on the wall clock: the forecast is asked for in the background (its time is reported,
    but it is not part of the tick)."""
    settings = replace(settings, loop=replace(settings.loop, forecast_in_background=True))
    scorer = ScoringClient(ServingClientSettings(base_url=url, timeout_s=120.0))
    loop = ControlLoop(
        settings,
        clock=lab.clock,
        source=lab.source,
        scorer=scorer,
        kube=lab.kube.clients(),
        audit=AuditLog(":memory:"),
    )
    for _ in range(4):  # warm: connections, first forecast
        lab.step(timedelta(seconds=15))
        loop.tick()
    loop.wait_for_forecast()
    one_forecast = loop.stats.seconds["forecast"]  # the first: every service at once
    loop.stats.seconds.clear()
    total = 0.0
    for _ in range(ticks):
        lab.step(timedelta(seconds=15))
        began = time.perf_counter()
        loop.tick()
        total += time.perf_counter() - began
    loop.wait_for_forecast()
    scorer.close()
    parts = {k: 1e3 * v / ticks for k, v in loop.stats.seconds.items() if k != "observe"}
    parts["tick"] = 1e3 * total / ticks
    parts["one forecast"] = 1e3 * one_forecast
    return parts


def _big_lab(services: int) -> tuple[Lab, OodaSettings]:
    topology = call_forest(services, trees=services // 20, replicas=10)
    lab = Lab(LabSettings(seed=5, topology=topology), SimClock(START))
    lab.step(timedelta(minutes=80))
    names = tuple(s.name for s in topology.services)
    return lab, replace(OodaSettings(), services=names, namespace=topology.namespace)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per load step (10)")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--ticks", type=int, default=40, help="ticks per tick measurement")
    parser.add_argument(
        "--parts",
        default="load,batch,tick",
        help="what to measure after start-up, of load,batch,tick (all)",
    )
    args = parser.parse_args()
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if not parts <= {"load", "batch", "tick"}:
        raise SystemExit(f"bench-serve: --parts {args.parts!r}: expected some of load,batch,tick")
    if not VEGETA.exists():
        raise SystemExit(f"bench-serve: {VEGETA} missing; run `make bench-serve`")
    console.print(f"machine: {machine_description()}")
    settings = OodaSettings()
    with Progress(console=console, transient=True) as progress:
        if not _has_champions(settings):
            train_models(settings, history_lab(settings, progress), progress)
    lines: list[str] = []
    with _serving(settings, args.port) as (url, start_s), tempfile.TemporaryDirectory() as tmp:
        console.print(f"Serve start to ready: {start_s:.1f} s")
        lines.append(f"bench-serve start seconds={start_s:.1f}")
        if "load" in parts:
            _load_table(url, Path(tmp), args.seconds, lines)
        if "batch" in parts:
            _batch_table(url, settings, args.seconds, lines)
        if "tick" in parts:
            _tick_table(url, args.ticks, lines)
    for line in lines:
        print(line)


def _load_table(url: str, tmp: Path, seconds: float, lines: list[str]) -> None:
    one = tmp / "one.json"
    one.write_text(json.dumps({"rows": [{k: v[0] for k, v in _rows(1).items()}]}))
    steps = [_vegeta(url, one, rate, seconds) for rate in RATES]
    table = Table(title=f"/v1/anomaly, 1 row, open loop for {seconds:g} s per step")
    for col in ("offered/s", "achieved/s", "p50 ms", "p99 ms", "503s", "timeouts", "other"):
        table.add_column(col, justify="right")
    for s in steps:
        table.add_row(
            str(s.offered),
            f"{s.achieved:.0f}",
            f"{s.p50_ms:.1f}",
            f"{s.p99_ms:.1f}",
            str(s.rejected),
            str(s.timeouts),
            str(s.errors),
        )
        lines.append(
            f"bench-serve anomaly rows=1 offered={s.offered} achieved={s.achieved:.0f}"
            f" p50_ms={s.p50_ms:.2f} p99_ms={s.p99_ms:.2f} rejected={s.rejected}"
            f" timeouts={s.timeouts}"
        )
    console.print(table)


def _batch_table(url: str, settings: OodaSettings, seconds: float, lines: list[str]) -> None:
    table = Table(title="batches through Serve (columns form) vs in process")
    for col in ("rows", "rows/s", "rows/s/core", "in-process rows/s/core", "ratio"):
        table.add_column(col, justify="right")
    with httpx.Client(base_url=url, timeout=60) as http:
        for n in BATCHES:
            wall, per_core = _batch_rate(http, n, seconds / 2)
            local = _inprocess_rate(settings.training.registry.tracking_uri, n, 2.0)
            table.add_row(
                str(n),
                f"{wall:,.0f}",
                f"{per_core:,.0f}",
                f"{local:,.0f}",
                f"{per_core / local:.2f}",
            )
            lines.append(
                f"bench-serve batch rows={n} rows_per_s_per_core={per_core:.0f}"
                f" inprocess_ratio={per_core / local:.2f}"
            )
    console.print(table)


def _tick_table(url: str, ticks: int, lines: list[str]) -> None:
    table = Table(title="the loop's tick by part, ms per tick (scored by this Serve)")
    results = {}
    lab3 = Lab(LabSettings(seed=5), SimClock(START))
    lab3.step(timedelta(minutes=80))
    results[3] = _tick_parts(lab3, OodaSettings(), url, ticks)
    big, big_settings = _big_lab(1000)
    results[1000] = _tick_parts(big, big_settings, url, max(4, ticks // 10))
    background = {"forecast", "one forecast"}
    parts = [*sorted({p for r in results.values() for p in r} - {"tick"} - background), "tick"]
    table.add_column("part")
    for n in results:
        table.add_column(f"{n} services", justify="right")
    for part in parts:
        table.add_row(part, *(f"{r.get(part, 0.0):.1f}" for r in results.values()))
    table.add_row(
        "forecast, per tick (in the background, not in the tick)",
        *(f"{r.get('forecast', 0.0):.1f}" for r in results.values()),
    )
    table.add_row(
        "one forecast of every service (ms per call)",
        *(f"{r.get('one forecast', 0.0):.0f}" for r in results.values()),
    )
    console.print(table)
    for n, r in results.items():
        lines.append(f"bench-serve tick services={n} ms={r['tick']:.1f}")


if __name__ == "__main__":
    quiet_warnings()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    main()
