"""Deciding on the root cause, on and off: the same chaos instances played twice.

``loop.follow_root_cause`` on (the runbook of the diagnosed root cause first; a symptom whose
cause another service heals is left to it) and off (each service decided on its own
symptoms), over scenarios where a symptom can show away from its cause. Prints, per arm and
scenario, heals, failed heals, actions per incident, breach minutes and the RCA top-1 count.

Run: ``.venv/bin/python benchmarks/bench_follow_root_cause.py --runs 3``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from rich.console import Console
from rich.table import Table

from contracts import ScenarioId
from ooda import OodaSettings, RuleScorer
from ooda._chaos import ChaosSettings, certified, run_chaos
from ooda._chaos_report import to_json

AWAY_FROM_CAUSE = (
    "db_read_latency,latency_p95,http_5xx_spike,kafka_consumer_lag,queue_depth,"
    "upstream_throttling,packet_loss,traffic_surge"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scenarios", default=AWAY_FROM_CAUSE)
    args = parser.parse_args()
    console = Console(width=140)
    scenarios = tuple(ScenarioId(s) for s in args.scenarios.split(","))
    table = Table(title=f"follow_root_cause on/off ({args.runs} runs, seed {args.seed})")
    for col in ("arm", "scenario", "healed", "failed", "actions/inc", "breach on", "RCA top-1"):
        table.add_column(col)
    for follow in (True, False):
        base = OodaSettings()
        settings = replace(base, loop=replace(base.loop, follow_root_cause=follow))
        began = time.perf_counter()
        chaos = ChaosSettings(scenarios=scenarios, runs=args.runs, seed=args.seed)
        result = run_chaos(settings, chaos, RuleScorer())
        took = time.perf_counter() - began
        arm = f"{'on' if follow else 'off'} ({took:.0f} s)"
        for row in to_json(result)["scenarios"]:
            table.add_row(
                arm,
                row["scenario"],
                f"{row['healed']}/{row['runs']}",
                str(row["failed_heals"]),
                f"{row['actions_per_incident']:.1f}",
                f"{row['breach_minutes']['on']:.1f}",
                str(row.get("rca_top1")),
            )
        failing = {str(k): v for k, v in certified(result).items() if v}
        console.print(f"{arm}: not certified: {failing or 'none'}")
    console.print(table)


if __name__ == "__main__":
    main()
