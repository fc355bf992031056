"""How few breach minutes a traffic x3 surge allows: an oracle against the HPA alone.

Run: ``.venv/bin/python benchmarks/bench_surge_bound.py [--runs 10] [--seed 7]
[--delays 0 30 60]``.

The oracle knows each drawn surge's size: on its first tick ``delay`` seconds or more after
injection it raises the HPA floor of every service the surge reaches to the replicas the
plateau needs (current replicas x factor x 1.1, at most the HPA's maximum). No loop that sees
the surge that late can do better, so each row bounds what ``traffic_surge`` can reach when
it knows the ramp after that long. Compare the loop's own figures from ``ooda chaos
--scenarios traffic_surge``; copy the table to ``benchmarks/RESULTS.md`` with the machine and
the date.
"""

from __future__ import annotations

import argparse
import logging
import math
from datetime import datetime, timedelta

import numpy as np
from _machine import machine_description
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from contracts import ScenarioId
from lab import Lab, ScenarioInstance
from ooda._chaos import ChaosSettings, draw_instance
from ooda._runs import Mode, run_mode
from ooda._settings import OodaSettings


class Oracle:
    """Raises the floors to the plateau's need on its first tick after ``at``."""

    def __init__(self, lab: Lab, at: datetime, instance: ScenarioInstance) -> None:
        self.lab, self.at, self.instance = lab, at, instance
        self.done = False
        self.events: list[object] = []

    def tick(self) -> None:
        if self.done or self.lab.clock.now() <= self.at:
            return
        self.done = True
        autoscaling, apps = self.lab.kube.autoscaling_v2, self.lab.kube.apps_v1
        for service in self.lab.downstream_of(self.instance.service):
            hpa = autoscaling.read_namespaced_horizontal_pod_autoscaler(service, "shop")
            replicas = apps.read_namespaced_deployment(service, "shop").spec.replicas
            need = math.ceil(replicas * self.instance.magnitude * 1.1)
            autoscaling.patch_namespaced_horizontal_pod_autoscaler(
                service,
                "shop",
                {"spec": {"minReplicas": min(hpa.spec.max_replicas, need)}},
                _content_type="application/merge-patch+json",
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--delays", type=float, nargs="+", default=[0.0], help="seconds after the injection"
    )
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)
    settings = OodaSettings()
    scenario = ScenarioId.TRAFFIC_SURGE
    chaos = ChaosSettings((scenario,), runs=args.runs, seed=args.seed)
    console = Console()
    delays = [timedelta(seconds=d) for d in args.delays]
    off, pods_off = [], []
    oracle: dict[timedelta, list[float]] = {d: [] for d in delays}
    pods: dict[timedelta, list[float]] = {d: [] for d in delays}
    level: dict[timedelta, list[float]] = {d: [] for d in delays}
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("surges", total=args.runs * (1 + len(delays)))
        for index in range(args.runs):
            lab, instance, at, end = draw_instance(chaos, scenario, index)
            alone = run_mode(lab, instance, at, end, Mode.OFF, None, settings.slo)
            off.append(sum(alone.breached))
            pods_off.append(alone.pod_minutes)
            progress.advance(task)
            ramp_s = float(instance.params.get("ramp_s", 0.0))
            for delay in delays:
                known = run_mode(
                    lab,
                    instance,
                    at,
                    end,
                    Mode.ON,
                    lambda copy, at=at + delay, instance=instance: Oracle(copy, at, instance),
                    settings.slo,
                )
                oracle[delay].append(sum(known.breached))
                pods[delay].append(known.pod_minutes)
                share = 1.0 if ramp_s <= 0 else min(1.0, delay.total_seconds() / ramp_s)
                level[delay].append(1.0 + (instance.magnitude - 1.0) * share)
                progress.advance(task)
    table = Table(title=f"traffic_surge bound: seed {args.seed}, {args.runs} runs (means)")
    for column in ("agent", "rate then (x)", "breach minutes", "pod-minutes"):
        table.add_column(column, justify="left" if column == "agent" else "right")
    table.add_row("HPA only (off)", "", f"{np.mean(off):.2f}", f"{np.mean(pods_off):.0f}")
    for delay in delays:
        table.add_row(
            f"oracle at +{delay.total_seconds():.0f} s",
            f"{np.mean(level[delay]):.2f}",
            f"{np.mean(oracle[delay]):.2f}",
            f"{np.mean(pods[delay]):.0f}",
        )
    console.print(table)
    console.print(machine_description())


if __name__ == "__main__":
    main()
