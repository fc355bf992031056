"""SwitchDatabase moving the writes of an Aurora cluster: the cluster is failed over to the
secondary through boto3's RDS client (moto in-process, and moto's server over HTTP as any
RDS-compatible endpoint) before the writer Service is repointed; undo fails it back; it
refuses a secondary outside the cluster, and fails nothing back that someone moved since."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from actuators import (
    ActionContext,
    CloudClients,
    ConflictError,
    GuardRejectedError,
    PermanentActuatorError,
    SwitchDatabase,
    spy_on,
    spy_on_cloud,
)
from lab import Lab, LabSettings, SimClock
from tests._narrow import some
from tests.k8s._backends import external_name_service

NS = "shop"
PRIMARY = "orders-1.eu-west-1.rds.amazonaws.com"
SECONDARY = "orders-2.eu-west-1.rds.amazonaws.com"


@pytest.fixture(params=["in-process", "server"])
def rds(request: pytest.FixtureRequest) -> Iterator[Any]:
    """An Aurora cluster ``orders`` with writer ``orders-1`` and reader ``orders-2``."""
    if request.param == "in-process":
        with mock_aws():
            client = boto3.client("rds", region_name="eu-west-1")
            _cluster(client)
            yield client
        return
    server = request.getfixturevalue("sqs_server")  # moto's server answers every service
    server.reset()
    client = boto3.client(
        "rds",
        endpoint_url=server.url,
        region_name=server.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    _cluster(client)
    yield client


def _cluster(rds: Any) -> None:
    rds.create_db_cluster(
        DBClusterIdentifier="orders",
        Engine="aurora-postgresql",
        MasterUsername="ooda",
        MasterUserPassword="not-a-secret-1",
    )
    for name in ("orders-1", "orders-2"):
        rds.create_db_instance(
            DBInstanceIdentifier=name,
            DBClusterIdentifier="orders",
            Engine="aurora-postgresql",
            DBInstanceClass="db.r6g.large",
        )


def _writer(rds: Any) -> str:
    (cluster,) = rds.describe_db_clusters(DBClusterIdentifier="orders")["DBClusters"]
    (writer,) = [m for m in cluster["DBClusterMembers"] if m["IsClusterWriter"]]
    return str(writer["DBInstanceIdentifier"])


@pytest.fixture
def lab() -> Lab:
    lab = Lab(LabSettings(), SimClock(datetime(2025, 1, 8, 6, tzinfo=UTC)))
    kube: Any = lab.kube
    kube.core_v1.create_namespaced_service(NS, external_name_service("orders-db", PRIMARY))
    return lab


def _switch(**fields: Any) -> SwitchDatabase:
    ok: dict[str, Any] = {
        "db_service": "orders-db",
        "secondary": SECONDARY,
        "replica_lag_s": 0.5,
        "secondary_healthy": True,
        "traffic": "reads_and_writes",
        "cluster": "orders",
        "secondary_instance": "orders-2",
    }
    return SwitchDatabase(NS, "checkout", "primary sick", **{**ok, **fields})


def _ctx(lab: Lab, rds: Any, dry_run: bool = False) -> ActionContext:
    clients = CloudClients(rds=rds)
    return ActionContext(lab.kube.clients(), sleep=lambda _s: None, cloud=clients, dry_run=dry_run)


def _endpoint(lab: Lab) -> str:
    return some(some(lab.kube.core_v1.read_namespaced_service("orders-db", NS).spec).external_name)


def test_the_writes_move_with_a_failover_and_undo_fails_back(lab: Lab, rds: Any) -> None:
    action = _switch()
    result = action.apply(_ctx(lab, rds))
    assert _writer(rds) == "orders-2" and _endpoint(lab) == SECONDARY
    assert result.before["cluster_writer"] == "orders-1" and result.undoable
    assert result.after["cluster_writer"] == "orders-2"
    undone = action.undo(_ctx(lab, rds), result)
    assert undone is not None and undone.after["cluster_writer"] == "orders-1"
    assert _writer(rds) == "orders-1" and _endpoint(lab) == PRIMARY


def test_reads_alone_fail_nothing_over(lab: Lab, rds: Any) -> None:
    _switch(traffic="reads").apply(_ctx(lab, rds))
    assert _writer(rds) == "orders-1" and _endpoint(lab) == SECONDARY


def test_a_dry_run_only_describes(lab: Lab, rds: Any) -> None:
    cloud, spies = spy_on_cloud(CloudClients(rds=rds))
    kube, kube_spies = spy_on(lab.kube.clients())
    ctx = ActionContext(kube, sleep=lambda _s: None, cloud=cloud, dry_run=True)
    result = _switch().apply(ctx)
    assert result.dry_run and result.after["cluster_writer"] == "orders-2"
    assert [m for spy in (*spies, *kube_spies) for m in spy.mutations] == []
    assert _writer(rds) == "orders-1" and _endpoint(lab) == PRIMARY


@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        ({"secondary_instance": "orders-9"}, GuardRejectedError, "no member of cluster orders"),
        ({"cluster": "nope"}, PermanentActuatorError, "describe cluster nope"),
    ],
    ids=["not-a-member", "no-such-cluster"],
)
def test_a_failover_it_cannot_make_is_refused_untouched(
    lab: Lab, rds: Any, fields: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        _switch(**fields).apply(_ctx(lab, rds))
    assert _writer(rds) == "orders-1" and _endpoint(lab) == PRIMARY


def test_without_an_rds_client_the_writes_stay(lab: Lab) -> None:
    ctx = ActionContext(lab.kube.clients(), sleep=lambda _s: None)
    with pytest.raises(PermanentActuatorError, match="needs an RDS client"):
        _switch().apply(ctx)
    assert _endpoint(lab) == PRIMARY


def test_undo_leaves_a_cluster_someone_failed_over_since(lab: Lab, rds: Any) -> None:
    """A third member became the writer after ooda's failover: undo fails nothing back."""
    rds.create_db_instance(
        DBInstanceIdentifier="orders-3",
        DBClusterIdentifier="orders",
        Engine="aurora-postgresql",
        DBInstanceClass="db.r6g.large",
    )
    action = _switch()
    result = action.apply(_ctx(lab, rds))
    rds.failover_db_cluster(DBClusterIdentifier="orders", TargetDBInstanceIdentifier="orders-3")
    with pytest.raises(ConflictError, match="writer is 'orders-3'"):
        action.undo(_ctx(lab, rds), result)
    assert _writer(rds) == "orders-3" and _endpoint(lab) == SECONDARY
