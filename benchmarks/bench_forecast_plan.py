"""Cost of what predictive scaling plans on (``ooda/_forecast_plan.py``) and of the forecast
watch it reads (``ooda/_model_watch.py``), by estate size: a day of request rates seeded, a
day of 30-minute forecasts kept (one every five minutes, as the loop asks), then the times of
one plan for a new forecast (its caches warm, as every five minutes in the loop) and of the
watch's judgement, the first over the kept day and the next a minute later.

Run: ``.venv/bin/python benchmarks/bench_forecast_plan.py [--services 3 50 200]``.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from _machine import machine_description
from rich.console import Console
from rich.table import Table

from ooda import LoadForecast
from ooda._forecast_plan import ForecastPlanner
from ooda._model_watch import ForecastWatch
from ooda._settings import ModelWatchSettings

T0 = pd.Timestamp("2026-11-16T06:00Z")
HORIZON = 30
DAY = 288  # forecasts a day, one every five minutes


def wave(minutes: np.ndarray) -> np.ndarray:
    return 100 + 30 * np.sin(2 * np.pi * minutes / 1440)


def answer(services: list[str], at: pd.Timestamp) -> LoadForecast:
    steps = at + pd.to_timedelta(np.arange(1, HORIZON + 1), unit="min")
    q50 = np.tile(
        wave(((steps - T0) / pd.Timedelta(minutes=1)).to_numpy(dtype=float)), len(services)
    )
    frame = pd.DataFrame(
        {
            "service": np.repeat(services, HORIZON),
            "timestamp": pd.DatetimeIndex(np.tile(steps, len(services))),
            "q10": q50 * 0.95,
            "q50": q50,
            "q90": q50 * 1.05,
        }
    )
    return LoadForecast("1", frame)


def measure(n: int) -> dict[str, float]:
    services = [f"svc{i}" for i in range(n)]
    settings = ModelWatchSettings()
    watch = ForecastWatch(settings)
    minutes = pd.date_range(T0 - pd.Timedelta(days=1), T0 + pd.Timedelta(days=1), freq="1min")
    clock = ((minutes - T0) / pd.Timedelta(minutes=1)).to_numpy(dtype=float)
    noise = np.random.default_rng(1).normal(0, 3, n * len(minutes))
    watch.seed(
        pd.DataFrame(
            {
                "service": np.repeat(services, len(minutes)),
                "timestamp": np.tile(minutes, n),
                "request_rate": np.tile(wave(clock), n) + noise,
            }
        )
    )
    planner = ForecastPlanner(settings, watch)
    for k in range(DAY):
        at = T0 + pd.Timedelta(minutes=5 * k)
        watch.record(at.to_pydatetime(), answer(services, at))
    now = T0 + pd.Timedelta(minutes=5 * DAY)
    planner.plan(answer(services, now), now.to_pydatetime())  # caches, as in a running loop
    later = now + pd.Timedelta(minutes=5)
    began = time.perf_counter()
    plan = planner.plan(answer(services, later), later.to_pydatetime())
    planned = time.perf_counter() - began
    assert plan is not None and len(plan.sources) == n
    began = time.perf_counter()
    watch.tick(later.to_pydatetime())
    first = time.perf_counter() - began
    began = time.perf_counter()
    watch.tick((later + pd.Timedelta(minutes=1)).to_pydatetime())
    next_ = time.perf_counter() - began
    return {"plan": planned, "first": first, "next": next_}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, nargs="+", default=[3, 50, 200])
    args = parser.parse_args()
    table = Table(title="forecast plan and watch, a day of forecasts kept")
    for column in (
        "services",
        "plan (s)",
        "per service (ms)",
        "watch, first (s)",
        "watch, next (s)",
    ):
        table.add_column(column, justify="right")
    for n in args.services:
        t = measure(n)
        table.add_row(
            str(n),
            f"{t['plan']:.3f}",
            f"{1000 * t['plan'] / n:.1f}",
            f"{t['first']:.2f}",
            f"{t['next']:.2f}",
        )
    console = Console()
    console.print(table)
    console.print(f"machine: {machine_description()}; date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}")


if __name__ == "__main__":
    main()
