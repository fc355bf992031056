"""``ooda run`` on real parts: the session's real Prometheus (holding a lab history that ends
now) and its real control plane (the lab's three Deployments, one pod crash-looping under a
KWOK stage), the CLI run as a user runs it, one tick at a time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client
from kubernetes import config as kube_config
from prometheus_client.parser import text_string_to_metric_families

from lab import Lab, LabSettings, LiveLab, SimClock
from lab.k8s import KubeCluster
from lab.servers import AlertmanagerServer, PostgresServer, PrometheusServer, free_port
from ooda import AuditLog, OodaSettings
from ooda._audit import open_audit
from ooda._settings import LoopSettings
from tests._narrow import name_of, some
from tests.conftest import Receiver
from tests.k8s._backends import create_deployment, create_hpa
from tests.k8s._chart import ChartRelease

REPO = Path(__file__).resolve().parents[2]
SERVICES = OodaSettings().services


def _ooda(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OODA__")}
    return subprocess.run(
        [sys.executable, "-m", "ooda.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _until(predicate: Any, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@dataclass(frozen=True)
class Estate:
    """The lab's services on the real control plane, and a configuration that points at it."""

    cluster: KubeCluster
    namespace: str
    config: Path
    workdir: Path

    def pods(self, service: str) -> list[Any]:
        core = self.cluster.clients().core_v1
        items = core.list_namespaced_pod(self.namespace, label_selector=f"app={service}").items
        return [p for p in items if some(p.metadata).deletion_timestamp is None]

    def restarts(self, pod: str) -> int:
        p = self.cluster.clients().core_v1.read_namespaced_pod(pod, self.namespace)
        return sum(s.restart_count or 0 for s in some(p.status).container_statuses or [])


def _why(estate: Estate) -> list[tuple[str, str, object]]:
    """Each intent the audit log holds, with the evidence it rested on (a failure's message)."""
    audit = open_audit(estate.workdir / "audit.db")
    try:
        return [(e.action, e.target, e.evidence) for e in audit.entries("intent")]
    finally:
        audit.close()


def _deploy(cluster: KubeCluster, namespace: str) -> None:
    """The estate's Deployments, each with its HPA (3-10 replicas on CPU) and its PDB (at most
    one pod down; a pod that is not Ready may always be evicted, as the Kubernetes docs
    advise, so that a drain is not held up by the very pods a NotReady node stranded)."""
    c = cluster.clients()
    c.core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    for service in SERVICES:
        create_deployment(
            c.apps_v1, namespace, service, f"registry.example.com/shop/{service}:1.0.0"
        )
        create_hpa(c.autoscaling_v2, namespace, service, 3, 10)
        meta = client.V1ObjectMeta(name=service, labels={"app": service})
        c.policy_v1.create_namespaced_pod_disruption_budget(
            namespace,
            client.V1PodDisruptionBudget(
                metadata=meta,
                spec=client.V1PodDisruptionBudgetSpec(
                    max_unavailable=1,
                    selector=client.V1LabelSelector(match_labels={"app": service}),
                    unhealthy_pod_eviction_policy="AlwaysAllow",
                ),
            ),
        )


@pytest.fixture(scope="module")
def estate(
    kube_cluster: KubeCluster,
    prometheus: PrometheusServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Estate]:
    # An hour and a half of the lab's estate, backfilled; then the lab goes on, live, on the
    # wall clock, scraped every 5 s.
    now = datetime.now(UTC)
    lab = Lab(LabSettings(seed=21), SimClock(now - timedelta(minutes=90)))
    lab.step(timedelta(minutes=90))
    prometheus.backfill(lab.source.history_openmetrics(), name="recent")
    live = LiveLab(lab).start()
    prometheus.scrape(
        "lab-run", [f"127.0.0.1:{live.port}"], timedelta(seconds=5), continues_backfill=True
    )
    namespace = f"shop-{uuid.uuid4().hex[:6]}"
    _deploy(kube_cluster, namespace)
    workdir = tmp_path_factory.mktemp("run")
    raw = yaml.safe_load((REPO / "deploy" / "lab.yaml").read_text())
    raw["namespace"] = namespace
    raw["regions"][0]["kubeconfig"] = str(kube_cluster.kubeconfig)
    raw["regions"][0]["prometheus"]["url"] = prometheus.url
    raw["audit"]["path"] = str(workdir / "audit.db")
    config = workdir / "ooda.yaml"
    config.write_text(yaml.safe_dump(raw))
    found = Estate(kube_cluster, namespace, config, workdir)
    _until(lambda: all(len(found.pods(s)) == 3 for s in SERVICES), "the pods", 60)
    try:
        yield found
    finally:
        prometheus.scrape("lab-run", [])
        live.stop()
        kube_cluster.clients().core_v1.delete_namespace(namespace)


def test_a_crash_loop_is_restarted_once_and_only_once(estate: Estate) -> None:
    pod = estate.pods("checkout")[0].metadata.name
    estate.cluster.set_fault("crashloop", "pod", pod, estate.namespace)
    _until(lambda: estate.restarts(pod) >= 3, "the restart count to reach 3", 60)

    dry = _ooda("run", "--config", str(estate.config), "--once", "--scorer", "rules", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    previews = [e for e in _lines(dry.stdout) if e["kind"] == "action"]
    assert [(e["action"], e["target"], e["outcome"], e["dry_run"]) for e in previews] == [
        ("restart_pod", f"pod/{estate.namespace}/{pod}", "dry-run", True)
    ], _why(estate)
    assert pod in {p.metadata.name for p in estate.pods("checkout")}  # nothing changed

    real = _ooda("run", "--config", str(estate.config), "--once", "--scorer", "rules")
    assert real.returncode == 0, real.stdout + real.stderr
    lines = _lines(real.stdout)
    applied = [e for e in lines if e["kind"] == "action" and e["outcome"] == "applied"]
    assert applied, real.stdout + real.stderr
    assert [(e["action"], e["target"]) for e in applied] == [
        ("restart_pod", f"pod/{estate.namespace}/{pod}")
    ]
    intent = next(e for e in lines if e["kind"] == "intent")
    assert applied[0]["ref"] == intent["audit_id"]  # intent before the act, result after
    _until(lambda: pod not in {p.metadata.name for p in estate.pods("checkout")}, "the restart")
    state = json.loads((estate.workdir / "run-state.json").read_text())
    assert state["ticks"] == 1 and [p["kind"] for p in state["pending"]] == ["restart_pod"]
    assert not [p for p in state["problems"] if p["service"] == "*"]

    # A second process (a restart, a standby) rebuilds its memory from the audit log: the
    # action awaits its verdict and is not repeated.
    again = _ooda("run", "--config", str(estate.config), "--once", "--scorer", "rules")
    assert again.returncode == 0, again.stdout + again.stderr
    assert not [e for e in _lines(again.stdout) if e["kind"] in ("intent", "action")]
    status = _ooda("status", "--audit", str(estate.workdir / "audit.db"))
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"restart_pod pod/{estate.namespace}/{pod}" in status.stdout
    assert "ooda run: region eu-west-1" in status.stdout and "2 ticks" not in status.stdout


def test_an_unreachable_prometheus_is_reported_and_nothing_is_done(estate: Estate) -> None:
    env_url = f"http://127.0.0.1:{free_port()}"
    raw = yaml.safe_load(estate.config.read_text())
    raw["regions"][0]["prometheus"]["url"] = env_url
    raw["regions"][0]["prometheus"]["timeout"] = "2s"
    raw["audit"]["path"] = str(estate.workdir / "dark" / "audit.db")
    config = estate.workdir / "dark.yaml"
    config.write_text(yaml.safe_dump(raw))
    run = _ooda("run", "--config", str(config), "--once", "--scorer", "rules")
    assert run.returncode == 3, run.stdout + run.stderr
    lines = _lines(run.stdout)
    assert not [e for e in lines if e["kind"] in ("intent", "action")]
    skipped = [e for e in lines if e["kind"] == "observation" and e["service"] == "*"]
    assert skipped and "unreachable" in skipped[0]["outcome"], lines
    assert "Traceback" not in run.stderr
    state = json.loads((estate.workdir / "dark" / "run-state.json").read_text())
    assert any(p["service"] == "*" and "unreachable" in p["reason"] for p in state["problems"])


def test_sigterm_finishes_the_tick_and_metrics_count_the_ticks(
    estate: Estate, prometheus: PrometheusServer
) -> None:
    """Also: Prometheus scrapes ``ooda run``'s /metrics and every panel of the Grafana
    dashboard answers."""
    raw = yaml.safe_load(estate.config.read_text())
    raw["audit"]["path"] = str(estate.workdir / "served" / "audit.db")
    raw["loop"]["tick"] = "1s"
    config = estate.workdir / "served.yaml"
    config.write_text(yaml.safe_dump(raw))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OODA__")}
    args = ["run", "--config", str(config), "--scorer", "rules", "--metrics-port", "0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ooda.cli", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    state_file = estate.workdir / "served" / "run-state.json"
    try:
        assert proc.stderr is not None
        said = ""
        while "run: serving" not in said and proc.poll() is None:
            said = proc.stderr.readline()  # port 0: the run says which port it took
        assert "run: serving http://127.0.0.1:" in said, proc.communicate()
        port = int(said.split("127.0.0.1:")[1].split("/")[0])

        def ticks() -> int:
            try:
                return int(json.loads(state_file.read_text())["ticks"])
            except (OSError, ValueError, KeyError):
                return 0

        _until(lambda: ticks() >= 3 or proc.poll() is not None, "three ticks", 120)
        assert proc.poll() is None, proc.communicate()
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        families = {f.name: f for f in text_string_to_metric_families(body)}
        assert families["ooda_ticks"].samples[0].value >= 3
        assert families["ooda_tick_duration_seconds"].type == "histogram"
        left = {
            s.labels["action"]: s.value for s in families["ooda_error_budget_remaining"].samples
        }
        assert left["restart_pod"] == 5
        prometheus.scrape("ooda-run", [f"127.0.0.1:{port}"], timedelta(seconds=1))
        empty: list[str] = []

        def answered() -> bool:
            empty[:] = _dashboard_answers(prometheus)
            return not empty

        # The loop scores once a ``score_every`` (a minute): a rate over the scoring latency
        # has data only once a scoring falls between two scrapes, up to a minute from now.
        wait = 2 * LoopSettings().score_every + timedelta(seconds=30)
        try:
            _until(answered, "every panel to answer", wait.total_seconds())
        except AssertionError as exc:
            raise AssertionError(f"dashboard panels without data: {empty}") from exc
        finally:
            prometheus.scrape("ooda-run", [])
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "SIGTERM: finishing the tick in progress, then stopping" in err
    assert "Traceback" not in err


def test_a_propose_only_action_pages_a_human_through_alertmanager(
    estate: Estate, alertmanager: AlertmanagerServer, alert_receiver: Receiver
) -> None:
    raw = yaml.safe_load(estate.config.read_text())
    raw["audit"]["path"] = str(estate.workdir / "proposed" / "audit.db")
    raw["escalation"] = {"alertmanager_url": alertmanager.url, "webhook_url": alert_receiver.url}
    config = estate.workdir / "proposed.yaml"
    config.write_text(yaml.safe_dump(raw))
    pod = estate.pods("frontend")[0].metadata.name
    estate.cluster.set_fault("crashloop", "pod", pod, estate.namespace)
    _until(lambda: estate.restarts(pod) >= 3, "the restart count to reach 3", 60)
    run = _ooda(
        "run", "--config", str(config), "--once", "--scorer", "rules", "--propose-only",
        "restart_pod",
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    lines = _lines(run.stdout)
    assert not [e for e in lines if e["kind"] in ("intent", "action")]
    proposed = [e for e in lines if e["kind"] == "decision" and e["outcome"].startswith("proposed")]
    assert [e["target"] for e in proposed] == [f"pod/{estate.namespace}/{pod}"]
    assert pod in {p.metadata.name for p in estate.pods("frontend")}  # a human decides

    def paged() -> list[dict[str, Any]]:
        return [
            a
            for body in alert_receiver.bodies
            if body.get("receiver") == "hook"
            for a in body["alerts"]  # type: ignore[attr-defined]
            if a["labels"]["alertname"] == "OodaActionProposed"
            and a["annotations"]["audit_id"] == str(proposed[0]["audit_id"])
        ]

    _until(lambda: bool(paged()), "Alertmanager to page the receiver", 30)
    assert paged()[0]["labels"]["service"] == "frontend"
    # The human approves: the restart goes through the guard and the Eviction API, audited.
    audit = str(estate.workdir / "proposed" / "audit.db")
    pid = str(proposed[0]["audit_id"])
    approved = _ooda("approve", pid, "--config", str(config), "--audit", audit, "--actor", "ana")
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert "approved by ana: applied" in approved.stdout
    _until(lambda: pod not in {p.metadata.name for p in estate.pods("frontend")}, "eviction", 30)
    entries = AuditLog(Path(audit)).entries()
    decision = next(e for e in entries if e.ref == int(pid) and e.kind == "decision")
    assert decision.outcome == "approved by ana"
    applied = [e for e in entries if e.kind == "action" and e.evidence.get("approved_by") == "ana"]
    assert [e.outcome for e in applied] == ["applied"]
    again = _ooda("approve", pid, "--config", str(config), "--audit", audit)
    assert again.returncode == 2 and "was approved by ana" in again.stdout


#: What only a served model feeds: under ``--scorer rules`` there is no model to judge.
MODEL_ONLY = "ooda_model_live_quality"


def _dashboard_answers(prometheus: PrometheusServer) -> list[str]:
    """The titles of the dashboard's panels whose PromQL returns nothing (those that read a
    served model's live figures only checked to be valid PromQL)."""
    dashboard = json.loads((REPO / "deploy" / "grafana" / "ooda.json").read_text())
    empty = []
    for panel in dashboard["panels"]:
        model_only = all(MODEL_ONLY in t["expr"] for t in panel["targets"])
        for target in panel["targets"]:
            body = httpx.get(
                f"{prometheus.url}/api/v1/query", params={"query": target["expr"]}, timeout=10
            ).json()
            assert body["status"] == "success", (panel["title"], body)
            values = [float(r["value"][1]) for r in body["data"]["result"]]
            if model_only:
                continue
            if not values or all(v != v for v in values):  # empty, or only NaN
                empty.append(panel["title"])
    return empty


class Replica:
    """One ``ooda run`` process, its stdout read line by line as it comes (each line's arrival
    on the monotonic clock in ``stamps``)."""

    def __init__(self, config: Path, name: str, *extra: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OODA__")}
        self.name = name
        self.lines: list[dict[str, Any]] = []
        self.stamps: list[float] = []
        args = ["run", "--config", str(config), "--scorer", "rules", *extra]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ooda.cli", *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.stamps.append(time.monotonic())
                self.lines.append(json.loads(line))

    def first(self, kind: str, target: str, outcome: str = "") -> float | None:
        """When the first ``kind`` line about ``target`` (with ``outcome``) arrived."""
        for at, line in zip(list(self.stamps), list(self.lines), strict=False):
            if (
                line["kind"] == kind
                and line.get("target") == target
                and line.get("outcome", "").startswith(outcome)
            ):
                return at
        return None

    def intents(self) -> list[dict[str, Any]]:
        return [e for e in self.lines if e["kind"] == "intent"]

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def test_two_replicas_restart_a_crash_loop_once_and_the_standby_takes_over(
    estate: Estate, postgres: PostgresServer
) -> None:
    """The replicas share nothing but the Lease and the audit log in PostgreSQL, as on two
    machines: each has its own working directory."""
    audit_url = postgres.database()
    configs = []
    for name in ("a", "b"):
        raw = yaml.safe_load(estate.config.read_text())
        raw["audit"] = {
            "path": str(estate.workdir / f"replica-{name}" / "audit.db"),
            "url": audit_url,
        }
        raw["loop"]["tick"] = "1s"
        raw["leader"] = {"enabled": True, "lease": "ooda-test"}
        configs.append(estate.workdir / f"replica-{name}.yaml")
        configs[-1].write_text(yaml.safe_dump(raw))
    coordination = client.CoordinationV1Api(
        kube_config.new_client_from_config(str(estate.cluster.kubeconfig))
    )

    def holder() -> str | None:
        try:
            lease = coordination.read_namespaced_lease("ooda-test", estate.namespace)
        except client.exceptions.ApiException:
            return None
        return some(lease.spec).holder_identity or None

    replicas = [Replica(configs[0], "a"), Replica(configs[1], "b")]
    try:
        _until(lambda: holder() is not None, "a leader", 90)
        first = holder()
        pod = estate.pods("payments")[0].metadata.name
        estate.cluster.set_fault("crashloop", "pod", pod, estate.namespace)
        target = f"pod/{estate.namespace}/{pod}"

        def restarts() -> list[dict[str, Any]]:
            return [
                i
                for r in replicas
                for i in r.intents()
                if i["action"] == "restart_pod" and i["target"] == target
            ]

        _until(lambda: bool(restarts()), "the restart's intent", 120)
        leader = next(r for r in replicas if any(i["target"] == target for i in r.intents()))
        leader.proc.send_signal(signal.SIGKILL)  # mid-action, or just after it
        killed = time.monotonic()
        standby = next(r for r in replicas if r is not leader)
        _until(lambda: holder() not in (None, first), "the standby to take the lease", 30)
        takeover = time.monotonic() - killed
        # lease duration (15 s) after the last renewal it saw, plus its retry period (2 s)
        assert takeover <= 15 + 2 + 2, takeover
        state_file = estate.workdir / f"replica-{standby.name}" / "run-state.json"

        def ticked_as_leader() -> bool:
            try:
                state = json.loads(state_file.read_text())
            except (OSError, ValueError):
                return False
            return bool(state["role"] == "leader" and state["ticks"] >= 1)

        # Its first tick may print nothing: the restart, run beside the old leader's tick, may
        # have evicted the pod before the kill and been closed as interrupted at the takeover.
        _until(ticked_as_leader, "the new leader's first tick", 60)
        time.sleep(5)  # a few ticks of the new leader
        assert len(restarts()) == 1, restarts()
        print(f"takeover after SIGKILL: {takeover:.1f} s")
    finally:
        for replica in replicas:
            replica.end()
    assert not list((estate.workdir / "replica-a").glob("audit.db*"))  # nothing local
    status = _ooda("status", "--audit", audit_url)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "rows, intact" in status.stdout
    # Killed after the restart: the new leader verifies it; killed between intent and act:
    # the new leader closes the intent as interrupted. Either way, one action entry.
    audit = open_audit(audit_url)
    try:
        acted = [e for e in audit.entries("action") if e.target == target]
    finally:
        audit.close()
    assert len(acted) == 1, acted
    assert acted[0].outcome == "applied" or acted[0].outcome.startswith("interrupted"), acted
    if acted[0].outcome == "applied":
        assert f"restart_pod {target}" in status.stdout or any(
            e.kind == "verification" for e in _entries(audit_url, target)
        )


def test_an_unreachable_audit_log_means_no_action(estate: Estate) -> None:
    raw = yaml.safe_load(estate.config.read_text())
    raw["audit"]["url"] = f"postgresql://ooda@127.0.0.1:{free_port()}/ooda"
    config = estate.workdir / "no-audit.yaml"
    config.write_text(yaml.safe_dump(raw))
    run = _ooda("run", "--config", str(config), "--once", "--scorer", "rules")
    assert run.returncode == 3, run.stdout + run.stderr
    assert "audit log unavailable, acting on nothing until it is back" in run.stderr
    assert "Traceback" not in run.stderr
    assert not [e for e in _lines(run.stdout) if e["kind"] in ("intent", "action")]


def _entries(audit_url: str, target: str) -> list[Any]:
    audit = open_audit(audit_url)
    try:
        return [e for e in audit.entries() if e.target == target]
    finally:
        audit.close()


def _ticks(port: int) -> float:
    """``ooda run``'s tick count from its /metrics (0 until it answers)."""
    try:
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return 0.0
    return _metric(body, "ooda_ticks_total")


def _metric(body: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


@pytest.mark.k8s
@pytest.mark.e2e
def test_the_proof_the_charts_identity_heals_a_crash_loop_and_a_node_not_ready(
    estate: Estate, ooda_chart: ChartRelease, alert_receiver: Receiver, postgres: PostgresServer
) -> None:
    """Issue 11's proof: ``ooda run`` as the chart's ServiceAccount (its RBAC and nothing
    more: it cannot delete a pod), on the real control plane, reading the real Prometheus that
    scrapes the live lab. A KWOK crash loop is restarted and a NotReady node cordoned and
    drained, both through evictions and both verified; the audit log, ``/metrics`` and the
    receiver agree. Prints detection and healing times in wall-clock seconds."""
    cluster, ns = estate.cluster, estate.namespace
    core = cluster.clients().core_v1
    ooda_chart.grant(cluster, ns)
    raw = yaml.safe_load(estate.config.read_text())
    raw["regions"][0]["kubeconfig"] = str(ooda_chart.kubeconfig)
    raw["audit"] = {"path": str(estate.workdir / "proof" / "audit.db"), "url": postgres.database()}
    raw["loop"]["tick"] = "5s"
    raw["leader"] = {"enabled": True, "namespace": ooda_chart.namespace, "lease": "ooda-leader"}
    raw["escalation"] = {"webhook_url": alert_receiver.url, "notify": True}
    config = estate.workdir / "proof.yaml"
    config.write_text(yaml.safe_dump(raw))
    port = free_port()
    ooda = Replica(config, "proof", "--metrics-port", str(port))
    sick: str | None = None
    try:
        # A quiet tick writes no audit line; its metrics count it.
        _until(lambda: _ticks(port) >= 1 or ooda.proc.poll() is not None, "a first tick", 90)
        assert ooda.proc.poll() is None
        # 1. A crash loop.
        victim = estate.pods("checkout")[0]
        pod = f"pod/{ns}/{victim.metadata.name}"
        cluster.set_fault("crashloop", "pod", victim.metadata.name, ns)
        crashed = time.monotonic()
        _until(lambda: ooda.first("action", pod, "applied") is not None, "the restart", 180)
        # 2. Then a node NotReady under a payments pod (the crash loop's PDB budget is back).
        _until(lambda: len(ready_pods_of(estate, "checkout")) == 3, "checkout whole again", 120)
        sick = estate.pods("payments")[0].spec.node_name
        node = f"node/{sick}"
        cluster.set_fault("node-not-ready", "node", sick)
        broke = time.monotonic()
        _until(lambda: ooda.first("action", node, "applied") is not None, "the drain", 180)
        # 3. Both verified.
        for target in (pod, node):
            _until(
                lambda t=target: ooda.first("verification", t, "healed") is not None,
                f"{target} verified healed",
                420,
            )
        drained = core.read_node(sick)
        assert some(drained.spec).unschedulable
        left = [
            name_of(p)
            for p in core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={sick}").items
            if some(p.metadata).deletion_timestamp is None
        ]
        assert left == [], left
        assert victim.metadata.name not in {p.metadata.name for p in estate.pods("checkout")}

        times = {
            "crash loop detected": ooda.first("decision", pod) - crashed,  # type: ignore[operator]
            "crash loop restarted": ooda.first("action", pod, "applied") - crashed,  # type: ignore[operator]
            "crash loop verified": ooda.first("verification", pod, "healed") - crashed,  # type: ignore[operator]
            "NotReady detected": ooda.first("decision", node) - broke,  # type: ignore[operator]
            "node drained": ooda.first("action", node, "applied") - broke,  # type: ignore[operator]
            "drain verified": ooda.first("verification", node, "healed") - broke,  # type: ignore[operator]
        }
        print("proof, wall-clock seconds from the fault:", json.dumps(times, indent=1))

        # The audit log, /metrics and the receiver agree.
        audit = open_audit(raw["audit"]["url"])
        applied = {
            e.target: e
            for e in audit.entries("action")
            if e.outcome.startswith("applied") and e.target in (pod, node)
        }
        assert {t: e.action for t, e in applied.items()} == {
            pod: "restart_pod",
            node: "drain_node",
        }
        # Through the Eviction API: the identity could not have deleted a pod.
        assert applied[pod].evidence["result"]["after"]["evicted"] is True
        evicted = applied[node].evidence["result"]["after"]["evicted"]
        assert any(name.startswith(f"{ns}/payments-") for name in evicted), evicted
        healed = {e.target: e for e in audit.entries("verification") if e.outcome == "healed"}
        assert {pod, node} <= set(healed)
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        for action in ("restart_pod", "drain_node"):
            assert _metric(body, "ooda_actions_total", action=action, outcome="applied") == 1
            assert _metric(body, "ooda_verifications_total", action=action, verdict="healed") == 1
        assert _metric(body, "ooda_breakers_open") == 0
        assert (
            sum(
                _metric(body, "ooda_escalations_total", alertname=name)
                for name in ("OodaHealFailed", "OodaBreakerOpen", "OodaNeedsHuman")
            )
            == 0
        )

        def told(name: str) -> dict[str, str]:
            return {
                a["annotations"]["audit_id"]: a["labels"]["action"]
                for b in alert_receiver.bodies
                if b.get("source") == "ooda"
                for a in b["alerts"]  # type: ignore[attr-defined]
                if a["labels"]["alertname"] == name and a["labels"]["namespace"] == ns
            }

        _until(lambda: len(told("OodaHealed")) >= 2, "the receiver to hear of both heals", 30)
        assert told("OodaActionTaken") == {str(e.id): e.action for e in applied.values()}
        assert set(told("OodaHealed")) == {str(healed[pod].id), str(healed[node].id)}
        assert not told("OodaHealFailed") and not told("OodaBreakerOpen")
    finally:
        ooda.end()
        if sick is not None:
            cluster.set_fault("node-not-ready", "node", sick, on=False)
            core.patch_node(
                sick,
                {"spec": {"unschedulable": None}},
                _content_type="application/merge-patch+json",
            )


def ready_pods_of(estate: Estate, service: str) -> list[Any]:
    return [
        p
        for p in estate.pods(service)
        if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"guard": {"dry_rn": True}}, "guard.dry_rn: unknown key"),
        ({"regions": [{"name": "r", "kubeconfig": "/nonexistent/kubeconfig",
                       "prometheus": {"url": "http://127.0.0.1:9"}}]}, "no kubeconfig at"),
    ],
)  # fmt: skip
def test_a_bad_configuration_exits_2_with_the_reason(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    raw = yaml.safe_load((REPO / "deploy" / "lab.yaml").read_text())
    for key, value in change.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) else value
    config = tmp_path / "ooda.yaml"
    config.write_text(yaml.safe_dump(raw))
    run = _ooda("run", "--config", str(config), "--once")
    assert run.returncode == 2, run.stdout + run.stderr
    assert message in run.stdout + run.stderr and "Traceback" not in run.stderr


def test_an_unknown_action_kind_to_propose_only_exits_2() -> None:
    run = _ooda(
        "run", "--config", str(REPO / "deploy" / "lab.yaml"), "--once", "--propose-only", "reboot"
    )
    assert run.returncode == 2 and "unknown action kinds reboot" in run.stdout
