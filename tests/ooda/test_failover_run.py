"""``ooda failover`` on real parts: two regions (two lab estates on the wall clock, scraped by
the session's real Prometheus, their Deployments in two namespaces of the real control
plane), Route 53 on moto's server and each region's ``/healthz`` probed over HTTP. The home
region goes down; the CLI, run as a user runs it, moves the users to the standby."""

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
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from kubernetes import client

from lab import Lab, LabSettings, LiveLab, SimClock
from lab.k8s import KubeCluster
from lab.servers import PrometheusServer, SqsServer
from ooda import OodaSettings
from ooda.cli import main
from tests.actuators._route53 import NAME as RECORD
from tests.actuators._route53 import weighted_name
from tests.k8s._backends import create_deployment, create_hpa

REPO = Path(__file__).resolve().parents[2]
SERVICES = OodaSettings().services
HOME, STANDBY = "eu-west-1", "eu-central-1"


@dataclass(frozen=True)
class Regions:
    config: Path
    labs: dict[str, LiveLab]
    route53: Any
    zone: str

    def weights(self) -> dict[str, int]:
        answer = self.route53.list_resource_record_sets(
            HostedZoneId=self.zone, StartRecordName=RECORD, StartRecordType="A"
        )
        return {r["SetIdentifier"]: r["Weight"] for r in answer["ResourceRecordSets"]}


def _namespace(cluster: KubeCluster, name: str) -> None:
    c = cluster.clients()
    c.core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    for service in SERVICES:
        create_deployment(c.apps_v1, name, service, f"registry.example.com/shop/{service}:1.0.0")
        create_hpa(c.autoscaling_v2, name, service, 3, 10)


@pytest.fixture(scope="module")
def regions(
    kube_cluster: KubeCluster,
    prometheus: PrometheusServer,
    sqs_server: SqsServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Regions]:
    tag = uuid.uuid4().hex[:6]
    namespaces = {HOME: f"fo-{tag}-home", STANDBY: f"fo-{tag}-standby"}
    now = datetime.now(UTC)
    labs: dict[str, LiveLab] = {}
    for region, namespace in namespaces.items():
        settings = LabSettings(seed=31)
        topology = replace(settings.topology, region=region, namespace=namespace)
        lab = Lab(replace(settings, topology=topology), SimClock(now - timedelta(minutes=30)))
        lab.traffic_share = 1.0 if region == HOME else 0.0
        lab.step(timedelta(minutes=30))
        prometheus.backfill(lab.source.history_openmetrics(), name=namespace)
        labs[region] = LiveLab(lab).start()
        _namespace(kube_cluster, namespace)
    prometheus.scrape(
        f"fo-{tag}",
        [f"127.0.0.1:{live.port}" for live in labs.values()],
        continues_backfill=True,
    )
    sqs_server.reset()
    route53 = boto3.client(
        "route53",
        endpoint_url=sqs_server.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    zone = route53.create_hosted_zone(Name="example.com.", CallerReference=tag)["HostedZone"]["Id"]
    weighted_name(route53, zone)
    workdir = tmp_path_factory.mktemp("failover-run")
    raw = yaml.safe_load((REPO / "deploy" / "lab.yaml").read_text())
    for i, region in enumerate((HOME, STANDBY)):
        raw["regions"][i] = {
            "name": region,
            "namespace": namespaces[region],
            "kubeconfig": str(kube_cluster.kubeconfig),
            "prometheus": {
                "url": prometheus.url,
                "selector": f'namespace="{namespaces[region]}"',
                "scrape_interval": "15s",
            },
        }
    raw["loop"]["tick"] = "1s"
    raw["audit"] = {"path": str(workdir / "audit.db")}
    raw["failover"] = {
        "record": RECORD,
        "hosted_zone_id": zone,
        "probes": {r: f"http://127.0.0.1:{live.port}/healthz" for r, live in labs.items()},
        "probe_timeout": "2s",
        "aws": {"region_name": "us-east-1", "endpoint_url": sqs_server.url},
        "down_minutes": 1,
    }
    config = workdir / "ooda.yaml"
    config.write_text(yaml.safe_dump(raw))
    try:
        yield Regions(config, labs, route53, zone)
    finally:
        prometheus.scrape(f"fo-{tag}", [])
        for live in labs.values():
            live.stop()
        for namespace in namespaces.values():
            kube_cluster.clients().core_v1.delete_namespace(namespace)


def _until(predicate: Any, what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.5)


def test_a_dead_home_region_sends_its_users_to_the_standby(regions: Regions) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OODA__")},
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "ooda.cli", "failover", "--config", str(regions.config)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[dict[str, Any]] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("{"):
                lines.append(json.loads(line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        time.sleep(8)  # a few ticks of a healthy home: nobody moves
        assert proc.poll() is None, proc.communicate()
        assert not [e for e in lines if e["kind"] in ("intent", "action")], lines
        assert regions.weights() == {HOME: 100, STANDBY: 0}
        home = regions.labs[HOME]
        with home.lock:
            home.lab.region_down = True

        def moved() -> bool:
            return any(
                e["kind"] == "action" and e["action"] == "shift_region_traffic" for e in lines
            )

        _until(lambda: moved() or proc.poll() is not None, "the failover", 180)
        assert proc.poll() is None, proc.communicate()
        assert regions.weights() == {HOME: 0, STANDBY: 100}
        shift = next(
            e for e in lines if e["kind"] == "action" and e["action"] == "shift_region_traffic"
        )
        intent = next(e for e in lines if e["kind"] == "intent" and e["action"] == shift["action"])
        assert shift["outcome"] == "applied" and shift["ref"] == intent["audit_id"]
        assert shift["target"].endswith(RECORD) and not shift["dry_run"]
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "SIGTERM: finishing the tick in progress" in err and "Traceback" not in err


def test_a_failover_section_without_a_probe_per_region_exits_2(
    regions: Regions, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = yaml.safe_load(regions.config.read_text())
    raw["failover"]["probes"].pop(STANDBY)
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert main(["failover", "--config", str(config), "--once"]) == 2
    assert "failover.probes: one per region; missing ['eu-central-1']" in capsys.readouterr().out
