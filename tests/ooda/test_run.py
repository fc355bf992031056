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
from lab.servers import AlertmanagerServer, PrometheusServer, free_port
from ooda import OodaSettings
from tests.conftest import Receiver
from tests.k8s._backends import create_deployment

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
        return [p for p in items if p.metadata.deletion_timestamp is None]

    def restarts(self, pod: str) -> int:
        p = self.cluster.clients().core_v1.read_namespaced_pod(pod, self.namespace)
        return sum(s.restart_count or 0 for s in p.status.container_statuses or [])


def _deploy(cluster: KubeCluster, namespace: str) -> None:
    c = cluster.clients()
    c.core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    for service in SERVICES:
        create_deployment(
            c.apps_v1, namespace, service, f"registry.example.com/shop/{service}:1.0.0"
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
    prometheus.scrape("lab-run", [f"127.0.0.1:{live.port}"], timedelta(seconds=5))
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
    ]
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
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OODA__")}
    args = ["run", "--config", str(config), "--scorer", "rules", "--metrics-port", str(port)]
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
    # The human's restart, so that the next test finds a healthy frontend.
    estate.cluster.clients().core_v1.delete_namespaced_pod(pod, estate.namespace)


def _dashboard_answers(prometheus: PrometheusServer) -> list[str]:
    """The titles of the dashboard's panels whose PromQL returns nothing."""
    dashboard = json.loads((REPO / "deploy" / "grafana" / "ooda.json").read_text())
    empty = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            body = httpx.get(
                f"{prometheus.url}/api/v1/query", params={"query": target["expr"]}, timeout=10
            ).json()
            assert body["status"] == "success", (panel["title"], body)
            values = [float(r["value"][1]) for r in body["data"]["result"]]
            if not values or all(v != v for v in values):  # empty, or only NaN
                empty.append(panel["title"])
    return empty


class Replica:
    """One ``ooda run`` process, its stdout read line by line as it comes."""

    def __init__(self, config: Path, name: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OODA__")}
        self.name = name
        self.lines: list[dict[str, Any]] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ooda.cli", "run", "--config", str(config), "--scorer", "rules"],
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
                self.lines.append(json.loads(line))

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
    estate: Estate,
) -> None:
    raw = yaml.safe_load(estate.config.read_text())
    raw["audit"]["path"] = str(estate.workdir / "replicas" / "audit.db")
    raw["loop"]["tick"] = "1s"
    raw["leader"] = {"enabled": True, "lease": "ooda-test"}
    config = estate.workdir / "replicas.yaml"
    config.write_text(yaml.safe_dump(raw))
    coordination = client.CoordinationV1Api(
        kube_config.new_client_from_config(str(estate.cluster.kubeconfig))
    )

    def holder() -> str | None:
        try:
            lease = coordination.read_namespaced_lease("ooda-test", estate.namespace)
        except client.exceptions.ApiException:
            return None
        return lease.spec.holder_identity or None

    replicas = [Replica(config, "a"), Replica(config, "b")]
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
        _until(lambda: len(standby.lines) > 0, "the new leader's first tick", 60)
        time.sleep(5)  # a few ticks of the new leader
        assert len(restarts()) == 1, restarts()
        print(f"takeover after SIGKILL: {takeover:.1f} s")
    finally:
        for replica in replicas:
            replica.end()


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
