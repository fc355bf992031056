"""Benchmark of the embedded lab (``lab/``): a day of history, and one control-loop tick at scale.

Run: ``.venv/bin/python benchmarks/bench_lab.py [--ticks 5] [--services 1000] [--trees 40]``
(about a minute on 2 CPUs):

* simulates one day (``Lab.generate_history``, 15 s sub-steps, random incidents) of the default
  3-service estate and of a 50-service ``call_forest``;
* builds a ``call_forest`` of ``--services`` services with 10 pods each (10,000 pods), runs it
  76 minutes, then times ``--ticks`` control-loop ticks: the lab-side work of one tick is
  stepping the lab one minute, ``source.query_range`` over the last 75 minutes at 1-minute
  resolution (what the loop reads), and listing pods, Deployments, HPAs, ReplicaSets
  (``ooda``'s ``read_workloads``), nodes and the nodes' Leases (``read_heartbeat_lags``)
  through ``lab.kube``;
* times a drain's placement at that scale: ``DrainNode`` in dry run on the busiest node (its
  pods listed, every node and every unfinished pod listed, each serving pod placed on the
  other nodes with the scheduler's filters), outside the tick.

Prints a table (median and worst of the ticks); copy it to ``benchmarks/RESULTS.md`` with the
machine and the date.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from _machine import machine_description
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from actuators import ActionContext, DrainNode, KubeClients
from contracts import NODE_LEASE_NAMESPACE
from lab import Lab, LabSettings, SimClock, call_forest

MONDAY = datetime(2025, 1, 6, tzinfo=UTC)
MORNING = datetime(2025, 1, 8, 9, 45, tzinfo=UTC)
"""A Wednesday: the 75 minutes before the timed ticks stay below the daily peak."""
NS = "shop"


def _day(settings: LabSettings) -> tuple[float, int]:
    """Wall seconds of one simulated day, and the pods at its end."""
    lab = Lab(settings, SimClock(MONDAY))
    began = time.perf_counter()
    lab.generate_history(1.0)
    return time.perf_counter() - began, len(lab.cluster.pods)


def _timed(call: Callable[[], object]) -> float:
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


def _tick_parts(lab: Lab) -> dict[str, float]:
    """One control-loop tick's lab-side work, part by part, in seconds."""
    kube = lab.kube
    parts = {"step the lab 1 minute": _timed(lambda: lab.step(timedelta(minutes=1)))}
    now = lab.clock.now()
    parts["query_range 75 min, 1 min step"] = _timed(
        lambda: lab.source.query_range(now - timedelta(minutes=75), now, timedelta(minutes=1))
    )
    parts["list pods"] = _timed(lambda: kube.core_v1.list_namespaced_pod(NS))
    parts["list Deployments"] = _timed(lambda: kube.apps_v1.list_namespaced_deployment(NS))
    parts["list HPAs"] = _timed(
        lambda: kube.autoscaling_v2.list_namespaced_horizontal_pod_autoscaler(NS)
    )
    parts["list ReplicaSets"] = _timed(lambda: kube.apps_v1.list_namespaced_replica_set(NS))
    parts["list nodes"] = _timed(kube.core_v1.list_node)
    parts["list ConfigMaps"] = _timed(lambda: kube.core_v1.list_namespaced_config_map(NS))
    parts["list node Leases (heartbeats)"] = _timed(
        lambda: kube.coordination_v1.list_namespaced_lease(NODE_LEASE_NAMESPACE)
    )
    return parts


def _drain_dry_run(lab: Lab) -> tuple[float, int, int]:
    """Seconds of a dry-run drain of the node with the most pods, its pods and pods placed."""
    k = lab.kube
    kube = KubeClients(k.core_v1, k.apps_v1, k.autoscaling_v2, k.policy_v1, k.custom_objects)
    pods = k.core_v1.list_pod_for_all_namespaces().items
    busiest = max(
        {p.spec.node_name for p in pods},
        key=lambda n: sum(p.spec.node_name == n for p in pods),
    )
    ours = next(p for p in pods if p.spec.node_name == busiest)
    service = ours.metadata.labels["app"]
    drain = DrainNode(NS, service, node=busiest)
    began = time.perf_counter()
    result = drain.apply(ActionContext(kube, dry_run=True, sleep=lambda _s: None))
    seconds = time.perf_counter() - began
    return seconds, len(result.before["pods"]), len(result.before["placement"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ticks", type=int, default=5)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--trees", type=int, default=40)
    args = parser.parse_args()
    console = Console()
    table = Table(title="lab: simulated day, and one control-loop tick at scale")
    table.add_column("measure")
    table.add_column("median", justify="right")
    table.add_column("worst", justify="right")

    with Progress(transient=True) as progress:
        task = progress.add_task("one day, 3 and 50 services", total=2)
        for name, settings in (
            ("3 services (default)", LabSettings(seed=11)),
            ("50 services, 5 trees", LabSettings(seed=11, topology=call_forest(50, 5, seed=1))),
        ):
            seconds, pods = _day(settings)
            table.add_row(f"simulate one day, {name}, {pods} pods", f"{seconds:.2f} s", "")
            progress.advance(task)

        task = progress.add_task(f"{args.services} services: build, 76 minutes", total=None)
        topology = call_forest(args.services, args.trees, replicas=10, seed=1)
        began = time.perf_counter()
        lab = Lab(LabSettings(seed=11, topology=topology), SimClock(MORNING))
        built = time.perf_counter() - began
        warm = _timed(lambda: lab.step(timedelta(minutes=76)))
        _tick_parts(lab)  # the first read renders every object once
        progress.remove_task(task)
        pods, nodes = len(lab.cluster.pods), len(lab.cluster.nodes)
        ticks = []
        task = progress.add_task("control-loop ticks", total=args.ticks)
        for _ in range(args.ticks):
            ticks.append(_tick_parts(lab))
            progress.advance(task)
        drains = [_drain_dry_run(lab) for _ in range(3)]

    scale = f"{args.services} services / {pods} pods / {nodes} nodes"
    table.add_row(f"build the lab, {scale}", f"{built:.2f} s", "")
    table.add_row("simulate 76 minutes (before the ticks)", f"{warm:.2f} s", "")
    for part in ticks[0]:
        values = [tick[part] for tick in ticks]
        table.add_row(
            f"tick: {part}",
            f"{1e3 * statistics.median(values):.0f} ms",
            f"{1e3 * max(values):.0f} ms",
        )
    totals = [sum(tick.values()) for tick in ticks]
    table.add_row(
        f"tick: total lab-side work ({len(ticks)} ticks)",
        f"{1e3 * statistics.median(totals):.0f} ms",
        f"{1e3 * max(totals):.0f} ms",
    )
    seconds = [d[0] for d in drains]
    _, moved, placed = drains[0]
    table.add_row(
        f"a drain's placement, dry run ({moved} pods on the node, {placed} placed)",
        f"{1e3 * statistics.median(seconds):.0f} ms",
        f"{1e3 * max(seconds):.0f} ms",
    )
    console.print(table)
    console.print(f"{machine_description()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()
