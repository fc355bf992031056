"""ShiftRegionTraffic on Route 53's weighted records: the lab's Route 53, moto in-process and
moto's server over HTTP answer alike. It moves the weights in one batch that names the audit
entry, undoes its own move and nobody else's, and refuses what would send users to a sick
region or to no region."""

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
    ShiftRegionTraffic,
    spy_on_cloud,
)
from contracts import KubeClients
from lab import FakeRoute53
from tests.actuators._route53 import NAME, weighted_name

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)


def _records(client: Any, zone: str) -> None:
    # A plain record under the same name: not the action's.
    txt = {"Name": NAME, "Type": "TXT", "TTL": 300, "ResourceRecords": [{"Value": '"shop"'}]}
    weighted_name(client, zone, txt)


@pytest.fixture(params=["lab", "moto", "moto-server"])
def route53(request: pytest.FixtureRequest) -> Iterator[tuple[Any, str]]:
    """A Route 53 client and a zone where ``shop.example.com`` is weighted over two regions."""
    if request.param == "lab":
        fake = FakeRoute53(lambda: NOW)
        zone = fake.add_zone("example.com.")
        _records(fake, zone)
        yield fake, zone
        return
    if request.param == "moto":
        with mock_aws():
            client = boto3.client("route53", region_name="us-east-1")
            zone = client.create_hosted_zone(Name="example.com.", CallerReference="t")
            _records(client, zone["HostedZone"]["Id"])
            yield client, zone["HostedZone"]["Id"]
        return
    server = request.getfixturevalue("sqs_server")  # moto's server answers every service
    server.reset()
    client = boto3.client(
        "route53",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    zone = client.create_hosted_zone(Name="example.com.", CallerReference="t")
    _records(client, zone["HostedZone"]["Id"])
    yield client, zone["HostedZone"]["Id"]


def _ctx(client: Any, dry_run: bool = False, audit_ref: str = "") -> ActionContext:
    return ActionContext(
        KubeClients(None, None, None),
        dry_run=dry_run,
        sleep=lambda s: None,
        audit_ref=audit_ref,
        cloud=CloudClients(route53=client),
    )


def _shift(zone: str, **kwargs: Any) -> ShiftRegionTraffic:
    weights = kwargs.pop("weights", (("eu-west-1", 0), ("eu-central-1", 100)))
    return ShiftRegionTraffic(
        "example.com.", NAME, reason="home is down", hosted_zone_id=zone, weights=weights, **kwargs
    )


def _weights(client: Any, zone: str) -> dict[str, int]:
    answer = client.list_resource_record_sets(
        HostedZoneId=zone, StartRecordName=NAME, StartRecordType="A"
    )
    return {
        r["SetIdentifier"]: r["Weight"]
        for r in answer["ResourceRecordSets"]
        if r["Name"] == NAME and "Weight" in r
    }


def test_a_failover_moves_the_weights_and_undo_moves_them_back(route53: tuple[Any, str]) -> None:
    """Apply writes the new weights, leaving the records' other fields and the TXT record as
    they were; undo writes the old ones."""
    client, zone = route53
    action = _shift(zone)
    result = action.apply(_ctx(client, audit_ref="41"))
    assert _weights(client, zone) == {"eu-west-1": 0, "eu-central-1": 100}
    assert result.before == {"weights": {"eu-west-1": 100, "eu-central-1": 0}}
    answer = client.list_resource_record_sets(HostedZoneId=zone, StartRecordName=NAME)
    kept = {(r["Type"], r.get("SetIdentifier")): r for r in answer["ResourceRecordSets"]}
    assert kept[("A", "eu-central-1")]["ResourceRecords"] == [{"Value": "198.51.100.11"}]
    assert kept[("A", "eu-central-1")]["TTL"] == 60
    assert ("TXT", None) in kept
    undone = action.undo(_ctx(client), result)
    assert undone is not None and undone.after == {"weights": result.before["weights"]}
    assert _weights(client, zone) == {"eu-west-1": 100, "eu-central-1": 0}


def test_the_batch_names_the_audit_entry() -> None:
    """Route 53 records carry no annotations: the change batch's comment says ooda did it
    and under which audit entry."""
    fake = FakeRoute53(lambda: NOW)
    zone = fake.add_zone("example.com.")
    _records(fake, zone)
    _shift(zone).apply(_ctx(fake, audit_ref="41"))
    comment = fake.history[-1].comment
    assert "ooda shift_region_traffic" in comment and "audit entry 41" in comment
    assert "home is down" in comment


def test_dry_run_changes_nothing(route53: tuple[Any, str]) -> None:
    client, zone = route53
    cloud, spies = spy_on_cloud(CloudClients(route53=client))
    ctx = _ctx(client, dry_run=True)
    result = _shift(zone).apply(ActionContext(ctx.kube, dry_run=True, cloud=cloud))
    assert result.dry_run and result.after == {"weights": {"eu-west-1": 0, "eu-central-1": 100}}
    assert not [m for spy in spies for m in spy.mutations]
    assert _weights(client, zone) == {"eu-west-1": 100, "eu-central-1": 0}


def test_undo_leaves_weights_someone_else_moved(route53: tuple[Any, str]) -> None:
    client, zone = route53
    action = _shift(zone)
    result = action.apply(_ctx(client))
    _shift(zone, weights=(("eu-west-1", 50), ("eu-central-1", 50))).apply(_ctx(client))
    with pytest.raises(ConflictError, match="someone else"):
        action.undo(_ctx(client), result)
    assert _weights(client, zone) == {"eu-west-1": 50, "eu-central-1": 50}


def test_no_more_users_for_an_unhealthy_region(route53: tuple[Any, str]) -> None:
    """The decision marks the regions it found sick: none of them may gain weight."""
    client, zone = route53
    with pytest.raises(GuardRejectedError, match="unhealthy regions"):
        _shift(zone, unhealthy=("eu-central-1",)).apply(_ctx(client))
    assert _weights(client, zone) == {"eu-west-1": 100, "eu-central-1": 0}
    # Taking weight away from a sick region is what a failover is.
    _shift(zone, unhealthy=("eu-west-1",)).apply(_ctx(client))
    assert _weights(client, zone) == {"eu-west-1": 0, "eu-central-1": 100}


def test_no_split_that_sends_users_nowhere(route53: tuple[Any, str]) -> None:
    client, zone = route53
    with pytest.raises(GuardRejectedError, match="sum to 0"):
        _shift(zone, weights=(("eu-west-1", 0),)).apply(_ctx(client))
    assert _weights(client, zone) == {"eu-west-1": 100, "eu-central-1": 0}


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ((("eu-west-1", 256),), "within 0..255"),
        ((("eu-west-1", -1),), "within 0..255"),
        ((("eu-west-1", True),), "must be an int"),
        ((("us-east-1", 100),), "no weighted records for regions \\['us-east-1'\\]"),
    ],
)
def test_bad_weights_are_refused_by_name(
    route53: tuple[Any, str], weights: tuple[tuple[str, Any], ...], message: str
) -> None:
    client, zone = route53
    with pytest.raises(PermanentActuatorError, match=message):
        _shift(zone, weights=weights).apply(_ctx(client))
    assert _weights(client, zone) == {"eu-west-1": 100, "eu-central-1": 0}


def test_a_name_without_weighted_records_or_a_client_is_a_clear_error(
    route53: tuple[Any, str],
) -> None:
    client, zone = route53
    other = ShiftRegionTraffic(
        "example.com.", "api.example.com.", hosted_zone_id=zone, weights=(("eu-west-1", 1),)
    )
    with pytest.raises(PermanentActuatorError, match="no weighted A records"):
        other.apply(_ctx(client))
    with pytest.raises(PermanentActuatorError, match="needs a Route 53 client"):
        _shift(zone).apply(_ctx(None))
