"""The fleet: two regions behind one weighted Route 53 name. Users follow the weights over
the TTL, a region-wide outage fails every request of that region and its probe, and the lab's
Route 53 refuses what Route 53 refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from lab import (
    FakeRoute53,
    Fleet,
    FleetSettings,
    InvalidTimeError,
    SettingsError,
    UnknownRegionError,
)

START = datetime(2026, 3, 2, 12, tzinfo=UTC)
HOME, STANDBY = "eu-west-1", "eu-central-1"


def _entry(fleet: Fleet, region: str) -> tuple[float, float]:
    """The frontend's request rate and error rate in ``region``'s newest minute."""
    lab = fleet.region(region)
    now = lab.clock.now()
    frame = lab.source.query_range(now - timedelta(minutes=2), now, timedelta(minutes=1))
    row = frame[frame["service"] == "frontend"].iloc[-1]
    return float(row["request_rate"]), float(row["error_rate"])


def _set(fleet: Fleet, weights: dict[str, int]) -> None:
    fleet.route53.change_resource_record_sets(
        HostedZoneId=fleet.zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": fleet.settings.record,
                        "Type": "A",
                        "SetIdentifier": region,
                        "Weight": weight,
                        "TTL": 60,
                        "ResourceRecords": [{"Value": "198.51.100.1"}],
                    },
                }
                for region, weight in weights.items()
            ]
        },
    )


def test_the_home_region_takes_every_user_until_the_weights_move() -> None:
    fleet = Fleet(FleetSettings(), START)
    fleet.step(timedelta(minutes=5))
    assert fleet.regions[HOME].clock.now() == fleet.clock.now() == START + timedelta(minutes=5)
    assert fleet.weights() == {HOME: 100, STANDBY: 0}
    home_rate, _ = _entry(fleet, HOME)
    standby_rate, _ = _entry(fleet, STANDBY)
    assert home_rate > 50 and standby_rate == 0
    # Every node carries its region's label.
    node: Any = fleet.region(STANDBY).kube.core_v1.list_node().items[0]
    assert node.metadata.labels["topology.kubernetes.io/region"] == STANDBY

    _set(fleet, {HOME: 0, STANDBY: 100})
    fleet.step(timedelta(seconds=30))
    assert 0.4 < fleet.shares[HOME] < 0.6  # half a TTL later, half the users have moved
    fleet.step(timedelta(minutes=2))
    assert fleet.shares == {HOME: 0.0, STANDBY: 1.0}
    moved_rate, _ = _entry(fleet, STANDBY)
    assert moved_rate == pytest.approx(home_rate, rel=0.3)
    assert _entry(fleet, HOME)[0] == 0


def test_a_region_outage_fails_every_request_and_its_probe_until_restored() -> None:
    fleet = Fleet(FleetSettings(), START)
    fleet.step(timedelta(minutes=3))
    assert fleet.probe(HOME) == 1.0
    outage = fleet.fail_region(HOME)
    assert outage.start == START + timedelta(minutes=3) and outage.end is None
    fleet.step(timedelta(minutes=2))
    assert _entry(fleet, HOME)[1] == 1.0
    assert fleet.probe(HOME) == 0.0 and fleet.probe(STANDBY) == 1.0
    with pytest.raises(UnknownRegionError, match="already down"):
        fleet.fail_region(HOME)
    ended = fleet.restore_region(HOME)
    assert ended.end == START + timedelta(minutes=5)
    fleet.step(timedelta(minutes=2))
    assert _entry(fleet, HOME)[1] == 0.0 and fleet.probe(HOME) == 1.0
    assert fleet.outages == [ended]
    with pytest.raises(UnknownRegionError, match="no outage"):
        fleet.restore_region(HOME)


def test_a_brownout_fails_its_share_of_the_users_requests_and_passes_its_probe() -> None:
    fleet = Fleet(FleetSettings(), START)
    fleet.step(timedelta(minutes=3))
    brownout = fleet.degrade_region(HOME, 0.2)
    assert brownout.share == 0.2
    fleet.step(timedelta(minutes=2))
    assert _entry(fleet, HOME)[1] == pytest.approx(0.2, abs=0.02)
    assert fleet.probe(HOME) == 1.0  # a shallow health check does not see it
    with pytest.raises(UnknownRegionError, match="already down or browned out"):
        fleet.fail_region(HOME)
    with pytest.raises(ValueError, match=r"share in \(0, 1\)"):
        fleet.degrade_region(STANDBY, 1.0)
    fleet.restore_region(HOME)
    fleet.step(timedelta(minutes=2))
    assert _entry(fleet, HOME)[1] < 0.01


def test_bad_settings_and_names_are_clear_errors() -> None:
    with pytest.raises(SettingsError, match="two or more distinct regions"):
        FleetSettings(regions=(HOME,))
    with pytest.raises(SettingsError, match="two or more distinct regions"):
        FleetSettings(regions=(HOME, HOME))
    with pytest.raises(SettingsError, match="ttl_s"):
        FleetSettings(ttl_s=0)
    fleet = Fleet(FleetSettings(), START)
    with pytest.raises(UnknownRegionError, match=r"us-east-1.*has"):
        fleet.region("us-east-1")
    with pytest.raises(InvalidTimeError):
        fleet.step(timedelta(0))


def test_the_labs_route53_refuses_what_route53_refuses() -> None:
    """Atomic batches: a bad change leaves every record as it was."""
    fleet = Fleet(FleetSettings(), START)
    before = fleet.weights()
    codes = []
    bad_batches = [
        [{"Action": "UPSERT", "ResourceRecordSet": {"Name": "x", "Type": "A", "Weight": 256}}],
        [{"Action": "RENAME", "ResourceRecordSet": {"Name": "x", "Type": "A"}}],
        [{"Action": "DELETE", "ResourceRecordSet": {"Name": "nope.example.com", "Type": "A"}}],
        [],
    ]
    for changes in bad_batches:
        with pytest.raises(ClientError) as caught:
            fleet.route53.change_resource_record_sets(
                HostedZoneId=fleet.zone_id, ChangeBatch={"Changes": changes}
            )
        codes.append(caught.value.response["Error"]["Code"])
    assert codes == ["InvalidInput", "InvalidInput", "InvalidChangeBatch", "InvalidInput"]
    record = fleet.settings.record
    duplicate = {"Name": record, "Type": "A", "SetIdentifier": HOME, "Weight": 1}
    mixed = [
        {"Action": "UPSERT", "ResourceRecordSet": {**duplicate, "SetIdentifier": STANDBY}},
        {"Action": "CREATE", "ResourceRecordSet": duplicate},
    ]
    with pytest.raises(ClientError, match="already exists"):
        fleet.route53.change_resource_record_sets(
            HostedZoneId=fleet.zone_id, ChangeBatch={"Changes": mixed}
        )
    assert fleet.weights() == before
    with pytest.raises(ClientError, match="NoSuchHostedZone"):
        FakeRoute53(lambda: START).list_resource_record_sets(HostedZoneId="Z404")
