"""The configuration file: the checked-in example, every mistake named, env overrides, and
the SQS client a region's ``sqs`` key gives ``ooda run``."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from actuators import ActionContext, CloudClients, KubeClients, RedriveQueue
from contracts import MetricFamily
from ooda import ConfigError, OodaSettings, SloSettings, load_config
from ooda._config import validate
from ooda._queue_policies import QueuePolicyReader
from ooda._records import QueuePolicy
from ooda._run import connect_cloud

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "deploy" / "lab.yaml"


def _raw() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text())


def test_the_example_describes_the_labs_estate() -> None:
    config = load_config(EXAMPLE, environ={})
    settings = config.settings()
    demo = OodaSettings()
    assert (settings.namespace, settings.services, settings.calls) == (
        demo.namespace,
        demo.services,
        demo.calls,
    )
    assert (
        settings.region == "eu-west-1" and config.settings("eu-central-1").region == "eu-central-1"
    )
    assert settings.loop.tick == timedelta(seconds=15) and settings.guard.cooldown == timedelta(
        minutes=5
    )
    prom = config.prometheus()
    assert prom.selector == 'namespace="shop"' and prom.region == "eu-west-1"
    assert prom.owners["consumergroup"] == {"payments": "payments"}
    assert prom.owners["queue_name"] == {"receipts": "checkout"}


def test_every_mistake_is_named_by_its_path_at_once() -> None:
    raw = _raw()
    raw["services"][1]["replicas"] = 3
    raw["services"][2]["slo"]["availability"] = 1.5
    raw["guard"]["cooldown"] = "five minutes"
    raw["autonomy"]["propose_only"] = ["restart_pods"]
    raw["regions"][0]["prometheus"]["url"] = "prometheus:9090"
    del raw["namespace"]
    with pytest.raises(ConfigError) as caught:
        validate(raw, "lab.yaml")
    text = str(caught.value)
    for expected in (
        "services[1].replicas: unknown key",
        "services[2].slo.availability: Input should be less than 1 (got 1.5)",
        "guard.cooldown: not a duration: 'five minutes'",
        "autonomy.propose_only[0]: Input should be",
        "regions[0].prometheus.url: String should match pattern",
        "namespace: required key missing",
    ):
        assert expected in text, (expected, text)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["services"].append(dict(r["services"][0])), "frontend named more than once"),
        (lambda r: r["services"][0].update(calls=["basket"]), "services[0].calls: basket not"),
        (lambda r: r.update(regions=[]), "regions: List should have at least 1 item"),
        (
            lambda r: r["regions"][0].update(in_cluster=True),
            "in_cluster: true takes no kubeconfig",
        ),
        (lambda r: r["services"][0].update(name="Front_End"), "services[0].name: String should"),
    ],
)
def test_inconsistent_files_are_refused(
    change: Callable[[dict[str, Any]], object], message: str
) -> None:
    raw = _raw()
    change(raw)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate(raw)


def test_environment_overrides_the_file_at_the_edge(tmp_path: Path) -> None:
    config = load_config(
        EXAMPLE,
        environ={
            "OODA__GUARD__DRY_RUN": "true",
            "OODA__regions__0__prometheus__url": "http://prometheus.monitoring:9090",
            "OODA__loop__tick": "30s",
            "OODA__loop__act_in_background": "false",
            "UNRELATED": "x",
        },
    )
    settings = config.settings()
    assert settings.dry_run and settings.guard.dry_run
    assert settings.loop.tick == timedelta(seconds=30)
    assert not settings.loop.act_in_background and settings.loop.forecast_in_background
    assert load_config(EXAMPLE, environ={}).settings().loop.act_in_background
    assert config.prometheus().url == "http://prometheus.monitoring:9090"
    with pytest.raises(ConfigError, match="OODA__regions__7__name: '7' does not index a list of 2"):
        load_config(EXAMPLE, environ={"OODA__regions__7__name": "x"})
    with pytest.raises(ConfigError, match=r"guard\.dry_run: Input should be a valid boolean"):
        load_config(EXAMPLE, environ={"OODA__guard__dry_run": "perhaps"})


def test_a_region_whose_cluster_adds_nodes_drains_into_pending() -> None:
    raw = _raw()
    raw["regions"][1]["nodes_on_demand"] = True
    config = validate(raw)
    assert not config.settings().nodes_on_demand
    assert config.settings("eu-central-1").nodes_on_demand


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read configuration .*missing\.yaml"):
        load_config(tmp_path / "missing.yaml", environ={})
    broken = tmp_path / "broken.yaml"
    broken.write_text("namespace: [shop\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml is not valid YAML"):
        load_config(broken, environ={})
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping at the top, got list"):
        load_config(listed, environ={})


def test_the_watches_are_set_from_the_file_and_the_rest_keep_their_defaults() -> None:
    raw = _raw()
    raw["watches"] = {
        "forecaster": {"judge_after": "1h", "rollback": False},
        "detector": {"judge_every": "10m", "enabled": False},
    }
    settings = validate(raw).settings()
    demo = OodaSettings()
    assert settings.watch.judge_after == timedelta(hours=1) and not settings.watch.rollback
    assert settings.watch.window == demo.watch.window
    assert settings.detector_watch.judge_every == timedelta(minutes=10)
    assert not settings.detector_watch.enabled
    assert settings.detector_watch.margin == demo.detector_watch.margin
    example = load_config(EXAMPLE, environ={}).settings()
    assert (example.watch, example.detector_watch) == (demo.watch, demo.detector_watch)
    raw["watches"]["detector"] = {"margin": 2, "lead": "soon"}
    with pytest.raises(ConfigError) as caught:
        validate(raw, "lab.yaml")
    text = str(caught.value)
    assert "watches.detector.margin: Input should be less than or equal to 1" in text, text
    assert "watches.detector.lead: not a duration: 'soon'" in text, text


def test_a_services_own_objectives_override_the_estates() -> None:
    raw = _raw()
    raw["services"][1]["slo"] = {"p95_ms": 90}
    raw["slo"]["availability"] = 0.99
    settings = validate(raw).settings()
    assert settings.slo_for("checkout") == SloSettings(p95_ms=90, availability=0.99)
    assert settings.slo_for("frontend") == SloSettings(p95_ms=150, availability=0.99)
    assert settings.slo_for("unknown") == settings.slo


def test_recipe_overrides_reach_the_prometheus_source() -> None:
    raw = _raw()
    prom = raw["regions"][0]["prometheus"]
    prom["recipes"] = {"request_rate": "sum by (service) (rate(istio_requests_total[{w}]))"}
    prom["family_recipes"] = {"kafka": {"kafka_consumergroup_lag": "sum(lag)"}}
    settings = validate(raw).prometheus()
    assert settings.service_recipes["request_rate"].startswith("sum by (service) (rate(istio")
    assert settings.family_recipes[MetricFamily.KAFKA] == {"kafka_consumergroup_lag": "sum(lag)"}
    raw["regions"][0]["prometheus"]["family_recipes"] = {"kafkaa": {}}
    with pytest.raises(ConfigError, match=r"regions\[0\]\.prometheus\.family_recipes\.kafkaa"):
        validate(raw)


def test_a_regions_aws_reaches_the_queue_and_database_actions(
    sqs_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``regions[].aws`` gives ``ooda run`` boto3 clients for an AWS-compatible endpoint
    (moto's server over HTTP here): the loop reads a queue's redrive policy through SQS and
    the redrive lowers it; RDS answers for the database actions. Without the key there is no
    client, and no cloud action."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")  # the SDK's own chain, not the file
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    sqs_server.reset()
    raw = _raw()
    assert connect_cloud(validate(raw, "lab.yaml").regions[0]) == CloudClients()
    raw["regions"][0]["aws"] = {"region_name": "eu-west-1", "endpoint_url": sqs_server.url}
    cloud = connect_cloud(validate(raw, "lab.yaml").regions[0])
    sqs = cloud.sqs
    dlq = sqs.create_queue(QueueName="receipts-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]
    policy = json.dumps({"deadLetterTargetArn": arn["QueueArn"], "maxReceiveCount": 50})
    sqs.create_queue(QueueName="receipts", Attributes={"RedrivePolicy": policy})
    reader = QueuePolicyReader(sqs)
    assert reader.read(["receipts"]) == ({"receipts": QueuePolicy("receipts", 50, None, None)}, [])
    ctx = ActionContext(KubeClients(None, None, None), cloud=cloud)
    RedriveQueue("shop", "checkout", queue="receipts", dead_letter_after=5).apply(ctx)
    lowered = reader.read(["receipts"])[0]["receipts"]
    assert (lowered.max_receive_count, lowered.found_max_receive_count) == (5, 50)
    assert cloud.rds.describe_db_clusters()["DBClusters"] == []
    raw["regions"][0]["aws"]["region_name"] = "Ireland"
    raw["regions"][0]["aws"]["endpoints"] = {"dynamodb": sqs_server.url}
    with pytest.raises(ConfigError) as bad:
        validate(raw, "lab.yaml")
    assert "regions[0].aws.region_name" in str(bad.value)
    assert "regions[0].aws.endpoints.dynamodb" in str(bad.value)


def _failover(**extra: Any) -> dict[str, Any]:
    raw = _raw()
    raw["failover"] = {
        "record": "shop.example.com",
        "hosted_zone_id": "Z0123456789ABC",
        "probes": {
            "eu-west-1": "https://eu-west-1.shop.example.com/healthz",
            "eu-central-1": "https://eu-central-1.shop.example.com/healthz",
        },
        **extra,
    }
    return raw


def test_the_failover_section_becomes_the_controllers_settings() -> None:
    config = validate(
        _failover(
            down_minutes=3,
            failback_after="30m",
            failback_backoff=3,
            failback_after_max="2h",
            brownout_minutes=15,
        )
    )
    cfg = config.failover_settings().failover
    assert cfg.regions == ("eu-west-1", "eu-central-1")
    assert cfg.record == "shop.example.com." and cfg.hosted_zone_id == "Z0123456789ABC"
    assert cfg.entries == ("frontend",)  # the first service, unless named
    assert cfg.down_minutes == 3 and cfg.failback_after == timedelta(minutes=30)
    assert cfg.failback_backoff == 3 and cfg.failback_after_max == timedelta(hours=2)
    assert cfg.brownout_minutes == 15
    assert cfg.brownout_error_rate == OodaSettings().failover.brownout_error_rate
    assert cfg.max_replica_lag_s == OodaSettings().failover.max_replica_lag_s
    with pytest.raises(ConfigError, match="no failover section"):
        validate(_raw()).failover_settings()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["failover"]["probes"].pop("eu-west-1"), "missing ['eu-west-1']"),
        (lambda r: r["failover"]["probes"].update({"us-east-1": "http://x"}), "['us-east-1']"),
        (lambda r: r["failover"].update(entries=["basket"]), "failover.entries: basket not"),
        (lambda r: r.update(regions=r["regions"][:1]), "failover: needs two or more regions"),
        (lambda r: r["failover"].update(down_minutes=0), "failover.down_minutes: Input should"),
        (lambda r: r["failover"].update(failback_backoff=0.5), "failover.failback_backoff: Inp"),
    ],
)
def test_a_bad_failover_section_is_refused_by_name(
    change: Callable[[dict[str, Any]], object], message: str
) -> None:
    raw = _failover()
    change(raw)
    with pytest.raises(ConfigError) as caught:
        validate(raw)
    assert message in str(caught.value)
