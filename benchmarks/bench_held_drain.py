"""A node NotReady whose drain its PodDisruptionBudget holds, and a crash loop elsewhere: how
long the crash loop waits for its restart, with the drain inside the tick and beside it.

Run: ``.venv/bin/python benchmarks/bench_held_drain.py [--runs 3] [--hold 60] [--tick 5]``.
On the real control plane of ``lab/k8s`` (KWOK nodes and fault stages), with ooda's own
runbooks, guard and actions on the wall clock; the metrics are a lab's, level with now and
healthy, so only the cluster's evidence (a NotReady node, a container in CrashLoopBackOff)
decides. Each run, in a namespace of its own:

* checkout (3 pods) has a PodDisruptionBudget that lets no pod go (a rollout holding it);
  payments (3 pods) has none;
* the node under a checkout pod turns NotReady; once ooda has begun to drain it, a payments
  pod on another node crash-loops;
* the budget is lifted ``--hold`` seconds after the drain began.

Times are wall-clock seconds. Prints a table; copy it to ``benchmarks/RESULTS.md`` with the
machine and the date.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from _machine import machine_description, quiet_warnings
from kubernetes import client
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from contracts import KubeClients, WallClock
from lab import Lab, LabSettings, SimClock
from lab.k8s import KubeCluster, ensure_binaries
from ooda import AuditLog, ControlLoop, OodaSettings, RuleScorer

SERVICES = ("checkout", "payments")
IMAGE = "registry.example.com/shop/app:1.0.0"


@dataclass
class Timings:
    drain_began: float
    """NotReady to the cordon (the drain's start)."""
    crash_restarted: float
    """The crash loop's fault to its restart recorded applied."""
    drain_applied: float
    """The cordon to the drain recorded applied."""
    longest_tick: float


def _deploy(c: Any, namespace: str) -> None:
    c.core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    for name in SERVICES:
        labels = {"app": name}
        container = client.V1Container(
            name=name,
            image=IMAGE,
            resources=client.V1ResourceRequirements(requests={"cpu": "100m"}),
        )
        spec = client.V1PodSpec(containers=[container], termination_grace_period_seconds=1)
        template = client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels=labels), spec=spec)
        c.apps_v1.create_namespaced_deployment(
            namespace,
            client.V1Deployment(
                metadata=client.V1ObjectMeta(name=name, labels=labels),
                spec=client.V1DeploymentSpec(
                    replicas=3,
                    selector=client.V1LabelSelector(match_labels=labels),
                    template=template,
                ),
            ),
        )
    held = client.V1PodDisruptionBudget(
        metadata=client.V1ObjectMeta(name="checkout"),
        spec=client.V1PodDisruptionBudgetSpec(
            max_unavailable=0, selector=client.V1LabelSelector(match_labels={"app": "checkout"})
        ),
    )
    c.policy_v1.create_namespaced_pod_disruption_budget(namespace, held)


def _ready(c: Any, namespace: str, app: str) -> list[Any]:
    pods = c.core_v1.list_namespaced_pod(namespace, label_selector=f"app={app}").items
    return [
        p
        for p in pods
        if p.metadata.deletion_timestamp is None
        and any(k.type == "Ready" and k.status == "True" for k in p.status.conditions or [])
    ]


def _three_ready(c: Any, namespace: str, app: str) -> bool:
    return len(_ready(c, namespace, app)) == 3


def _until(predicate: Callable[[], bool], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _first(loop: ControlLoop, kind: str, action: str, outcome: str = "") -> bool:
    return any(
        e.action == action and e.outcome.startswith(outcome) for e in loop.audit.entries(kind)
    )


def _direct(
    cluster: KubeCluster, namespace: str, sick: str, hold_s: float, marks: dict[str, float]
) -> None:
    """Beside the loop (whose tick a drain may hold): once the drain has cordoned the node, a
    payments pod elsewhere crash-loops; ``hold_s`` later the budget is lifted."""
    c = cluster.clients()
    _until(
        lambda: bool(getattr(c.core_v1.read_node(sick).spec, "unschedulable", False)),
        "the cordon",
        300,
    )
    marks["cordoned"] = time.monotonic()
    others = [p for p in _ready(c, namespace, "payments") if p.spec.node_name != sick]
    if not others:
        raise RuntimeError(f"no Ready payments pod off {sick} to crash-loop")
    cluster.set_fault("crashloop", "pod", others[0].metadata.name, namespace)
    marks["crashed"] = time.monotonic()
    time.sleep(max(0.0, hold_s - (time.monotonic() - marks["cordoned"])))
    c.policy_v1.delete_namespaced_pod_disruption_budget("checkout", namespace)


def one_run(cluster: KubeCluster, background: bool, hold_s: float, tick_s: float) -> Timings:
    c = cluster.clients()
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    _deploy(c, namespace)
    sick: str | None = None
    try:
        for app in SERVICES:
            _until(partial(_three_ready, c, namespace, app), f"{app} Ready", 120)
        now = datetime.now(UTC)
        lab = Lab(LabSettings(seed=5), SimClock(now - timedelta(hours=2)))
        lab.generate_history(days=2 / 24, incidents=False)
        base = OodaSettings()
        settings = replace(
            base,
            namespace=namespace,
            services=SERVICES,
            loop=replace(base.loop, tick=timedelta(seconds=tick_s), act_in_background=background),
        )
        kube = KubeClients(c.core_v1, c.apps_v1, c.autoscaling_v2, c.policy_v1, c.custom_objects)
        loop = ControlLoop(
            settings,
            clock=WallClock(),
            source=lab.source,
            scorer=RuleScorer(),
            kube=kube,
            audit=AuditLog(":memory:"),
        )
        sick = _ready(c, namespace, "checkout")[0].spec.node_name
        marks: dict[str, float] = {}
        director = threading.Thread(
            target=_direct, args=(cluster, namespace, sick, hold_s, marks), daemon=True
        )
        cluster.set_fault("node-not-ready", "node", sick)
        began = time.monotonic()
        director.start()
        restarted = drained = None
        longest = 0.0
        while drained is None or restarted is None:
            if time.monotonic() - began > 600 or (marks == {} and not director.is_alive()):
                said = [
                    f"{e.kind} {e.action} {e.target}: {e.outcome}" for e in loop.audit.entries()
                ]
                problems = loop.journal.current_problems()
                raise RuntimeError(
                    f"drain applied: {drained is not None}, restart applied:"
                    f" {restarted is not None}, marks {marks}; audit {said}; problems {problems}"
                )
            lab.step(timedelta(seconds=tick_s))  # the metrics stay level with now
            start = time.monotonic()
            loop.tick()
            longest = max(longest, time.monotonic() - start)
            if restarted is None and _first(loop, "action", "restart_pod", "applied"):
                restarted = time.monotonic()
            if drained is None and _first(loop, "action", "drain_node", "applied"):
                drained = time.monotonic()
            time.sleep(max(0.0, tick_s - (time.monotonic() - start)))
        director.join(timeout=hold_s + 30)
        loop.close()
        return Timings(
            marks["cordoned"] - began,
            restarted - marks["crashed"],
            drained - marks["cordoned"],
            longest,
        )
    finally:
        if sick is not None:
            cluster.set_fault("node-not-ready", "node", sick, on=False)
            c.core_v1.patch_node(
                sick,
                {"spec": {"unschedulable": None}},
                _content_type="application/merge-patch+json",
            )
        c.core_v1.delete_namespace(namespace)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hold", type=float, default=60.0, help="seconds the budget holds")
    parser.add_argument("--tick", type=float, default=5.0, help="the loop's tick, seconds")
    args = parser.parse_args()
    quiet_warnings()
    console = Console()
    ensure_binaries()
    cluster = KubeCluster()
    cluster.start()
    results: dict[bool, list[Timings]] = {False: [], True: []}
    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("runs", total=2 * args.runs)
            for _ in range(args.runs):
                for background in (False, True):
                    results[background].append(one_run(cluster, background, args.hold, args.tick))
                    progress.advance(task)
    finally:
        cluster.stop()

    table = Table(
        title=f"A held drain and a crash loop elsewhere ({args.runs} runs, budget held"
        f" {args.hold:.0f} s, tick {args.tick:.0f} s; median, min-max)"
    )
    table.add_column("seconds")
    table.add_column("drain inside the tick", justify="right")
    table.add_column("drain beside the ticks", justify="right")

    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"

    rows = [
        ("node NotReady to its cordon", lambda t: t.drain_began),
        ("crash loop to its restart applied", lambda t: t.crash_restarted),
        ("cordon to the drain recorded applied", lambda t: t.drain_applied),
        ("longest tick", lambda t: t.longest_tick),
    ]
    for label, get in rows:
        table.add_row(
            label, cell([get(t) for t in results[False]]), cell([get(t) for t in results[True]])
        )
    console.print(table)
    console.print(f"{machine_description()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()
