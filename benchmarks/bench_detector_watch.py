"""Cost of the detector's live watch per scoring (``ooda/_detector_watch.py``), 3 and 1,000
services: seven simulated hours of feature rows, verdicts and SLIs (1 % of service-minutes
breaching), the time of ``observe`` + ``tick`` over the last hour (the window is full).

Run: ``.venv/bin/python benchmarks/bench_detector_watch.py [--services 3 1000]``.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from _machine import machine_description

from ooda._detector_watch import DetectorWatch
from ooda._records import AnomalyScores, ServiceView
from ooda._settings import DetectorWatchSettings, SloSettings

T0 = datetime(2026, 11, 16, tzinfo=UTC)


def measure(n: int, minutes: int = 420) -> np.ndarray:
    services = [f"s{i}" for i in range(n)]
    watch = DetectorWatch(DetectorWatchSettings())
    rng = np.random.default_rng(0)
    seconds = []
    for minute in range(minutes):
        at = pd.Timestamp(T0) + pd.Timedelta(minutes=minute)
        rows = pd.DataFrame(
            {"service": services, "x": rng.normal(0, 1, n), "y": rng.normal(0, 1, n)}
        )
        p95 = np.where(rng.random(n) < 0.01, 200.0, 90.0)
        views = {
            s: ServiceView(
                s, pd.DataFrame({"timestamp": [at], "p95_latency_ms": [p95[i]], "error_rate": [0]})
            )
            for i, s in enumerate(services)
        }
        flags = dict(zip(services, (rows["x"] > 2).tolist(), strict=True))
        scores = AnomalyScores("1", dict.fromkeys(services, 0.0), flags)
        began = time.perf_counter()
        watch.observe(at.to_pydatetime(), scores, rows, views, lambda s: SloSettings())
        watch.tick(at.to_pydatetime())
        seconds.append(time.perf_counter() - began)
    return np.array(seconds[-60:]) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, nargs="+", default=[3, 1000])
    args = parser.parse_args()
    print("| services | mean ms per scoring | max ms |\n| ---: | ---: | ---: |")
    for n in args.services:
        ms = measure(n)
        print(f"| {n} | {ms.mean():.1f} | {ms.max():.1f} |")
    print(f"machine: {machine_description()}; date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}")


if __name__ == "__main__":
    main()
