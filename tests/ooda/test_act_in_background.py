"""An action that waits on its PodDisruptionBudget runs beside the loop's ticks (``ooda run``
on the wall clock): the loop goes on watching and healing the other workloads meanwhile, and
records the action at the first tick after it returned. Closing the loop stops it before its
next round of evictions. On the real control plane of ``lab/k8s``, with real sleeps."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import cast

import pytest
from kubernetes import client

from actuators import Action, RestartPod, SetHpaMinReplicas
from contracts import KubeClients, ScenarioId, WallClock
from lab import Lab, LabSettings, SimClock
from lab.k8s import KubeCluster
from ooda import AuditEntry, AuditLog, ControlLoop, OodaSettings, RuleScorer
from ooda._leader import LeaderElector
from ooda._records import Diagnosis, Snapshot
from ooda._run import Runner
from ooda._run_metrics import RunMetrics
from ooda._settings import LeaderSettings
from ooda.cli import main
from ooda.runbooks import Runbook
from tests._narrow import name_of, some
from tests.k8s._backends import create_deployment, create_hpa, ready_pods

IMAGE = "registry.example.com/shop/app:1.0.0"


class _Asked(Runbook):
    """Proposes ``action`` for its service once armed (the test decides when)."""

    name = "asked"
    scenarios = (ScenarioId.POD_CRASHLOOP,)
    action: Action | None = None

    def matches(self, snapshot: Snapshot, service: str) -> Diagnosis | None:
        if self.action is None or service != self.action.service:
            return None
        return self.diagnose(snapshot, service, 0.9, {})

    def propose(self, diagnosis: Diagnosis, snapshot: Snapshot) -> Action | None:
        return self.action


@dataclass
class _Estate:
    namespace: str
    kube: KubeClients
    loop: ControlLoop
    restart: _Asked
    floor: _Asked
    pod: str
    audit: Path

    def entries(self, kind: str, action: str) -> list[AuditEntry]:
        return [e for e in self.loop.audit.entries(kind) if e.action == action]

    def release_budget(self) -> None:
        self.kube.policy_v1.delete_namespaced_pod_disruption_budget("checkout", self.namespace)


def _until(predicate: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _two_ready(kube: KubeClients, namespace: str, service: str) -> bool:
    return len(ready_pods(kube, namespace, service)) == 2


@pytest.fixture
def estate(kube_cluster: KubeCluster, tmp_path: Path) -> Iterator[_Estate]:
    """checkout (2 pods, a PodDisruptionBudget that lets none go) and payments (2 pods, an
    HPA) in a namespace of their own; a loop on the wall clock that acts in the background,
    reading a lab's metrics made level with now, so both services are fresh and usable."""
    c = kube_cluster.clients()
    namespace = f"bg-{uuid.uuid4().hex[:6]}"
    c.core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    kube = KubeClients(c.core_v1, c.apps_v1, c.autoscaling_v2, c.policy_v1, c.custom_objects)
    try:
        for service in ("checkout", "payments"):
            create_deployment(c.apps_v1, namespace, service, IMAGE, replicas=2)
        create_hpa(c.autoscaling_v2, namespace, "payments", 2, 10)
        held = client.V1PodDisruptionBudget(
            metadata=client.V1ObjectMeta(name="checkout"),
            spec=client.V1PodDisruptionBudgetSpec(
                max_unavailable=0,
                selector=client.V1LabelSelector(match_labels={"app": "checkout"}),
            ),
        )
        c.policy_v1.create_namespaced_pod_disruption_budget(namespace, held)
        for service in ("checkout", "payments"):
            _until(partial(_two_ready, kube, namespace, service), f"{service} Ready")
        pod = sorted(name_of(p) for p in ready_pods(kube, namespace, "checkout"))[0]

        now = datetime.now(UTC)
        lab = Lab(LabSettings(seed=5), SimClock(now - timedelta(hours=2)))
        lab.generate_history(days=2 / 24, incidents=False)
        base = OodaSettings()
        settings = replace(
            base,
            namespace=namespace,
            services=("checkout", "payments"),
            loop=replace(base.loop, act_in_background=True),
        )
        restart, floor = _Asked(settings), _Asked(settings)
        loop = ControlLoop(
            settings,
            clock=WallClock(),
            source=lab.source,
            scorer=RuleScorer(),
            kube=kube,
            audit=AuditLog(tmp_path / "audit.db"),
            runbooks=[restart, floor],
        )
        found = _Estate(namespace, kube, loop, restart, floor, pod, tmp_path / "audit.db")
        restart.action = RestartPod(namespace, "checkout", pod=pod)
        yield found
        loop.close(timeout=30)
    finally:
        c.core_v1.delete_namespace(namespace)


def test_a_restart_waiting_on_its_budget_does_not_hold_the_loop(
    estate: _Estate, capsys: pytest.CaptureFixture[str]
) -> None:
    """While checkout's restart waits on a budget that lets no pod go, the next tick heals
    payments; the restart is recorded at the first tick after the budget let it through, with
    its result referring to its intent, and awaits its verdict. Meanwhile ``ooda status``
    names it as begun with no result yet."""
    estate.loop.tick()
    assert [r.plan.action.kind for r in estate.loop.running] == ["restart_pod"]
    (intent,) = estate.entries("intent", "restart_pod")
    assert not estate.entries("action", "restart_pod")
    # ``ooda status`` and /metrics say it is under way.
    assert main(["status", "--audit", str(estate.audit)]) == 0
    said = " ".join(capsys.readouterr().out.split())
    begun = "no result yet (running beside the ticks, or its process stopped): restart_pod"
    assert f"{begun} pod/{estate.namespace}/{estate.pod}" in said
    metrics = RunMetrics()
    metrics.observe_tick(estate.loop, 0.1, [], estate.loop.clock.now())
    assert metrics.registry.get_sample_value("ooda_actions_running") == 1

    estate.floor.action = SetHpaMinReplicas(
        estate.namespace, "payments", reason="test", hpa="payments", min_replicas=3
    )
    estate.loop.tick()
    (floor,) = estate.entries("action", "set_hpa_min")
    assert floor.outcome == "applied"
    running = estate.loop.running
    assert running and not running[0].job.done()  # the restart still waits on its budget
    assert len(estate.entries("intent", "restart_pod")) == 1  # and is not started again
    hpa = estate.kube.autoscaling_v2.read_namespaced_horizontal_pod_autoscaler(
        "payments", estate.namespace
    )
    assert hpa.spec.min_replicas == 3
    assert estate.pod in {name_of(p) for p in ready_pods(estate.kube, estate.namespace, "checkout")}

    estate.release_budget()
    _until(lambda: running[0].job.done(), "the restart to return once its budget allows")
    estate.loop.tick()
    (restarted,) = estate.entries("action", "restart_pod")
    assert restarted.outcome == "applied" and restarted.ref == intent.id
    assert some(intent.id) < some(floor.id) < some(restarted.id)
    assert not estate.loop.running
    assert [p.action.kind for p in estate.loop.pending] == ["set_hpa_min", "restart_pod"]


def test_closing_the_loop_stops_a_waiting_restart_refused_not_failed(estate: _Estate) -> None:
    """A loop that stops (SIGTERM, a lost Lease) does not leave its restart evicting behind
    it: the restart stops before its next round, is recorded as refused, and the pod stays."""
    estate.loop.tick()
    assert estate.loop.running
    estate.loop.close(timeout=30)
    (stopped,) = estate.entries("action", "restart_pod")
    assert stopped.outcome.startswith("refused: this replica may act no more"), stopped.outcome
    assert not estate.loop.running
    assert estate.loop.budget.failed("restart_pod", estate.loop.clock.now()) == 0
    assert estate.pod in {name_of(p) for p in ready_pods(estate.kube, estate.namespace, "checkout")}


class _Elector:
    """Leads until stopped; remembers what was still running when it let go of the Lease."""

    settings = LeaderSettings()
    identity = holder = "replica-a"

    def __init__(self, loop: ControlLoop) -> None:
        self.loop = loop
        self.running_at_release: list[object] | None = None

    def start(self) -> None:
        pass

    def is_leader(self) -> bool:
        return self.running_at_release is None

    def stop(self) -> None:
        self.running_at_release = list(self.loop.running)


def test_a_stopping_replica_stops_its_restart_before_it_lets_go_of_the_lease(
    estate: _Estate, tmp_path: Path
) -> None:
    """SIGTERM (``Runner.stop``) while a restart waits on its budget: the restart is stopped
    and recorded before the Lease is released, so the next leader never acts beside it."""
    elector = _Elector(estate.loop)
    runner = Runner(
        lambda: estate.loop,
        estate.loop.settings,
        elector=cast(LeaderElector, elector),
        state_path=tmp_path / "run-state.json",
    )
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    _until(lambda: bool(estate.loop.running), "the restart under way")
    runner.stop.set()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert elector.running_at_release == []
    outcomes = [e.outcome for e in AuditLog(estate.audit).entries("action")]
    assert outcomes and outcomes[0].startswith("refused: this replica may act no more"), outcomes
