"""Two regions behind one DNS name: the estate a regional failover is tried on.

Each region is a whole :class:`~lab.Lab` (its own cluster, API, metrics and clock) built from
the same settings but its region label, so both see the same users: the users' traffic is
split between them by the weighted records of one public name in Route 53
(:class:`~lab._route53.FakeRoute53`), primary first with all the weight, the others warm
standbys at weight 0 whose HPAs idle at their floors. Resolvers honour the records' TTL, so
a change of weights moves the users over one TTL, not at once.

``fail_region`` is the region-wide failure: every request the region serves fails (a
regional dependency, its network or its load balancers gone) while its pods and its API stay
up; the outage is kept as ground truth. ``probe`` is the synthetic check people run against
each region's public endpoint from outside it (the blackbox exporter's ``probe_success``):
it answers whether the region serves, whatever its weight.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np

from contracts import CloudClients, SimClock
from lab._errors import InvalidTimeError, SettingsError, UnknownRegionError
from lab._estate import Lab
from lab._route53 import FakeRoute53, absolute
from lab._settings import LabSettings

_EPS = 1e-6


@dataclass(frozen=True)
class FleetSettings:
    """Regions, the public name that splits users between them, and the lab of each."""

    regions: tuple[str, ...] = ("eu-west-1", "eu-central-1")
    """Region names, the primary first; the others are standbys at weight 0."""
    lab: LabSettings = field(default_factory=LabSettings)
    """Settings of every region's lab (its ``topology.region`` is replaced per region)."""
    zone: str = "example.com."
    """The hosted zone."""
    record: str = "shop.example.com."
    """The public name users resolve: one weighted A record per region."""
    ttl_s: int = 60
    """The records' TTL: resolvers move to new weights over this long."""
    primary_weight: int = 100
    """The primary's weight at start."""

    def __post_init__(self) -> None:
        if len(self.regions) < 2 or len(set(self.regions)) != len(self.regions):
            raise SettingsError(f"a fleet needs two or more distinct regions, got {self.regions}")
        if self.ttl_s <= 0:
            raise SettingsError(f"ttl_s must be positive, got {self.ttl_s}")


@dataclass(frozen=True)
class RegionOutage:
    """Ground truth of one region-wide failure."""

    region: str
    start: datetime
    end: datetime | None = None
    share: float = 1.0
    """Share of the users' requests the region failed (1: all, below 1: a brownout)."""


class Fleet:
    """The regions, the DNS in front of them and the outages they were given."""

    def __init__(self, settings: FleetSettings, start: datetime) -> None:
        self.settings = settings
        self.clock = SimClock(start)
        self.regions: dict[str, Lab] = {}
        for name in settings.regions:
            topology = replace(settings.lab.topology, region=name)
            self.regions[name] = Lab(replace(settings.lab, topology=topology), SimClock(start))
        self.route53 = FakeRoute53(self.clock.now)
        self.zone_id = self.route53.add_zone(settings.zone)
        self.route53.change_resource_record_sets(
            HostedZoneId=self.zone_id,
            ChangeBatch={
                "Comment": "the fleet's records at start",
                "Changes": [
                    {
                        "Action": "CREATE",
                        "ResourceRecordSet": {
                            "Name": absolute(settings.record),
                            "Type": "A",
                            "SetIdentifier": name,
                            "Weight": settings.primary_weight if i == 0 else 0,
                            "TTL": settings.ttl_s,
                            "ResourceRecords": [{"Value": f"198.51.100.{10 + i}"}],
                        },
                    }
                    for i, name in enumerate(settings.regions)
                ],
            },
        )
        self.cloud = CloudClients(route53=self.route53)
        """The global cloud API (Route 53) a failover acts through."""
        self.outages: list[RegionOutage] = []
        self._shares = self.weights_share()
        for name, lab in self.regions.items():
            lab.traffic_share = self._shares[name]

    @property
    def primary(self) -> str:
        """The region that takes the traffic at start."""
        return self.settings.regions[0]

    def region(self, name: str) -> Lab:
        """The lab of region ``name``."""
        try:
            return self.regions[name]
        except KeyError:
            raise UnknownRegionError(
                f"no region {name!r} in the fleet; it has {sorted(self.regions)}"
            ) from None

    def weights(self) -> dict[str, int]:
        """The region -> weight of the public name's records now."""
        answer = self.route53.list_resource_record_sets(
            HostedZoneId=self.zone_id, StartRecordName=self.settings.record, StartRecordType="A"
        )
        record = absolute(self.settings.record)
        return {
            str(r["SetIdentifier"]): int(r.get("Weight", 0))
            for r in answer["ResourceRecordSets"]
            if r["Name"] == record and r.get("Type") == "A" and "SetIdentifier" in r
        }

    def weights_share(self) -> dict[str, float]:
        """Share of the users each region's records draw (equal shares when all are 0, as
        Route 53 answers then)."""
        weights = self.weights()
        total = sum(weights.get(r, 0) for r in self.regions)
        if total <= 0:
            return {r: 1.0 / len(self.regions) for r in self.regions}
        return {r: weights.get(r, 0) / total for r in self.regions}

    @property
    def shares(self) -> dict[str, float]:
        """Share of the users each region serves now (moving toward the records' over a TTL)."""
        return dict(self._shares)

    def step(self, dt: timedelta) -> None:
        """Advance every region and the clock by ``dt``, one scrape interval at a time."""
        if dt <= timedelta(0):
            raise InvalidTimeError(f"step needs a positive duration, got {dt}")
        interval = self.settings.lab.scrape.interval_s
        left = dt.total_seconds()
        while left > _EPS:
            h = min(interval, left)
            target = self.weights_share()
            move = h / self.settings.ttl_s
            for name, lab in self.regions.items():
                now = self._shares[name]
                self._shares[name] = now + float(np.clip(target[name] - now, -move, move))
                lab.traffic_share = self._shares[name]
                lab.step(timedelta(seconds=h))
            self.clock.advance(timedelta(seconds=h))
            left -= h

    def fail_region(self, name: str) -> RegionOutage:
        """Every request ``name`` serves fails from now until ``restore_region``."""
        lab = self.region(name)
        if lab.region_down or lab.region_error_share > 0:
            raise UnknownRegionError(f"region {name!r} is already down or browned out")
        lab.region_down = True
        outage = RegionOutage(name, self.clock.now())
        self.outages.append(outage)
        return outage

    def degrade_region(self, name: str, share: float) -> RegionOutage:
        """``name`` fails ``share`` of its users' requests (0 < share < 1) from now until
        ``restore_region``: a brownout. Its health endpoint still answers, as a shallow
        ``/healthz`` does when a dependency fails some calls."""
        lab = self.region(name)
        if not 0.0 < share < 1.0:
            raise ValueError(f"a brownout fails a share in (0, 1) of requests, got {share}")
        if lab.region_down or lab.region_error_share > 0:
            raise UnknownRegionError(f"region {name!r} is already down or browned out")
        lab.region_error_share = share
        outage = RegionOutage(name, self.clock.now(), share=share)
        self.outages.append(outage)
        return outage

    def restore_region(self, name: str) -> RegionOutage:
        """End ``name``'s outage or brownout."""
        lab = self.region(name)
        for i, outage in enumerate(self.outages):
            if outage.region == name and outage.end is None:
                lab.region_down = False
                lab.region_error_share = 0.0
                self.outages[i] = replace(outage, end=self.clock.now())
                return self.outages[i]
        raise UnknownRegionError(f"region {name!r} has no outage to end")

    def probe(self, name: str) -> float:
        """Share of synthetic requests to ``name``'s public endpoint that succeed now (a
        brownout's region passes: its health endpoint is not what fails)."""
        lab = self.region(name)
        return 0.0 if lab.region_down else 1.0
