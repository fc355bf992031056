"""Root causes on the lab: every scenario, several drawn instances, ranked as the loop would.

For each instance: 90 minutes of the estate, the fault injected, ``RCA_LATEST`` more; then
``ooda._runs.rank_root_causes``, as ``ooda chaos`` ranks its unattended runs (``RCA_AFTER``
into the fault, or at the first ``RCA_STEP`` after that where the symptom shows): the service
frame and the metric families of the whole window at 1-minute steps, the steps before the
fault as the normal window, the symptom at the upstream-most service the fault hits (its
``felt_by``; the service it hits when it hits no SLO). Top-1 and top-3 against the lab's
ground truth (``FaultRecord.root_cause``: a service, its database, topic, queue or upstream,
or a node), per scenario.

Run: ``.venv/bin/python benchmarks/bench_rca_lab.py --runs 5``.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import track
from rich.table import Table

from contracts import ScenarioId
from lab import Lab, LabSettings, SimClock
from lab.scenarios import registered, scenario
from ooda._runs import RCA_AFTER, RCA_LATEST, rank_root_causes

START = datetime(2025, 1, 8, 8, tzinfo=UTC)


def one(scenario_id: ScenarioId, seed: int) -> dict[str, object]:
    lab = Lab(LabSettings(seed=seed), SimClock(START))
    lab.step(timedelta(minutes=90))
    rng = np.random.default_rng(seed)
    record = lab.inject(scenario(scenario_id).draw(rng, lab))
    lab.step(RCA_LATEST)
    began = time.perf_counter()
    names = rank_root_causes(lab, START, record.injected_at, record.felt_by, record.service)
    took = time.perf_counter() - began
    target = record.felt_by[0] if record.felt_by else record.service
    return {
        "scenario": str(scenario_id),
        "seed": seed,
        "target": target,
        "truth": record.root_cause,
        "top1": record.root_cause in names[:1],
        "top3": record.root_cause in names[:3],
        "empty": not names,
        "got": ", ".join(names[:3]),
        "seconds": took,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=1)
    args = parser.parse_args()
    console = Console(width=140)
    seeds = range(args.first_seed, args.first_seed + args.runs)
    jobs = [(sid, seed) for sid in sorted(registered()) for seed in seeds]
    rows = [one(sid, seed) for sid, seed in track(jobs, "ranking", console=console)]
    frame = pd.DataFrame(rows)
    table = Table(
        title=f"ooda's root causes on the lab (seeds {seeds.start}-{seeds.stop - 1},"
        f" {RCA_AFTER.total_seconds() / 60:.0f} min in, or when the symptom shows)"
    )
    for col in ("scenario", "truth", "top-1", "top-3", "empty", "a miss (got)"):
        table.add_column(col)
    for name, group in frame.groupby("scenario"):
        misses = group[~group.top1]
        table.add_row(
            str(name),
            ", ".join(sorted(set(group.truth)))[:40],
            f"{group.top1.mean():.2f}",
            f"{group.top3.mean():.2f}",
            f"{group['empty'].mean():.2f}",
            (misses.got.iloc[0] or "(empty)")[:60] if len(misses) else "",
        )
    console.print(table)
    console.print(
        f"all: top-1 {frame.top1.mean():.3f}, top-3 {frame.top3.mean():.3f} over {len(frame)}"
        f" instances; ranking {frame.seconds.median() * 1e3:.1f} ms (median)"
    )


if __name__ == "__main__":
    main()
