"""Benchmark of the real control plane under ``lab/k8s``: warm start, pod throughput, memory.

Run: ``.venv/bin/python benchmarks/bench_k8s.py [--starts 3] [--pods 300]``. Builds the
binaries first if they are missing (not timed), then:

* starts and stops a 3-node cluster ``--starts`` times (warm: binaries cached);
* creates one Deployment of ``--pods`` replicas and times until every pod is scheduled and
  until every pod is Running (KWOK nodes: no images, no containers);
* reads the resident memory of each component, idle and with the pods.

Prints a table; copy it to ``benchmarks/RESULTS.md`` with the machine and the date.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

from _machine import machine_description
from kubernetes import client
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from lab.k8s import KUBE_VERSION, ClusterSettings, KubeCluster, NodeShape, ensure_binaries


def _start_stop(n: int) -> list[float]:
    times = []
    with Progress(transient=True) as progress:
        task = progress.add_task("warm starts", total=n)
        for _ in range(n):
            cluster = KubeCluster()
            cluster.start()
            times.append(cluster.started_in_s)
            cluster.stop()
            progress.advance(task)
    return times


def _deployment(replicas: int) -> client.V1Deployment:
    labels = {"app": "bench"}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name="bench"),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[
                        client.V1Container(
                            name="app",
                            image="registry.example.com/bench:1",
                            resources=client.V1ResourceRequirements(requests={"cpu": "10m"}),
                        )
                    ]
                ),
            ),
        ),
    )


def _throughput(cluster: KubeCluster, pods: int) -> tuple[float, float]:
    core = cluster.clients().core_v1
    cluster.clients().apps_v1.create_namespaced_deployment("default", _deployment(pods))
    began = time.monotonic()
    scheduled_at = running_at = 0.0
    with Progress(transient=True) as progress:
        task = progress.add_task(f"{pods} pods Running", total=pods)
        while not running_at:
            items = core.list_namespaced_pod("default", label_selector="app=bench").items
            bound = sum(1 for p in items if p.spec.node_name)
            running = sum(1 for p in items if p.status.phase == "Running")
            progress.update(task, completed=running)
            now = time.monotonic() - began
            if bound >= pods and not scheduled_at:
                scheduled_at = now
            if running >= pods:
                running_at = now
            if now > 600:
                raise RuntimeError(f"only {running} of {pods} pods Running after 600 s")
            time.sleep(0.1)
    return scheduled_at, running_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--pods", type=int, default=300)
    args = parser.parse_args()
    console = Console()
    ensure_binaries()

    starts = _start_stop(args.starts)
    cluster = KubeCluster(ClusterSettings(nodes=NodeShape(count=10, pods=110)))
    cluster.start()
    try:
        time.sleep(5)
        idle = cluster.memory_rss_bytes()
        scheduled, running = _throughput(cluster, args.pods)
        loaded = cluster.memory_rss_bytes()
    finally:
        cluster.stop()

    table = Table(title=f"lab/k8s control plane ({KUBE_VERSION}, KWOK nodes)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row(
        f"warm start, 3 nodes Ready (median of {len(starts)})", f"{statistics.median(starts):.1f} s"
    )
    table.add_row("warm start, min / max", f"{min(starts):.1f} / {max(starts):.1f} s")
    table.add_row(f"{args.pods} pods scheduled (10 nodes)", f"{scheduled:.1f} s")
    table.add_row(f"{args.pods} pods Running", f"{running:.1f} s")
    table.add_row("pods scheduled and Running per second", f"{args.pods / running:.0f}")
    mib = 2**20
    for name in idle:
        table.add_row(
            f"RSS {name}, idle / with pods",
            f"{idle[name] / mib:.0f} / {loaded.get(name, 0) / mib:.0f} MiB",
        )
    table.add_row(
        "RSS control plane total, idle / with pods",
        f"{sum(idle.values()) / mib:.0f} / {sum(loaded.values()) / mib:.0f} MiB",
    )
    console.print(table)
    console.print(f"{machine_description()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()
