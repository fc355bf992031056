"""Regional failover on a two-region fleet: a dead home sends its users to the standby after
the standby's floors are raised, the move is verified, and users come home in steps once home
has served for a while. Each gate has a test that fails without it: a blip shorter than
``down_minutes``, a standby whose replicas lag, a standby that does not serve, an unreadable
home whose probes pass, dry-run, a home that breaches during the failback, and one that
breaches at every failback (each next try waits longer)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from actuators import ActionContext, SetHpaMinReplicas
from lab import Fleet
from ooda._audit import AuditLog, AuditStore
from ooda._failover import FailoverController, FailoverState
from ooda._failover_drill import controller_for, drill_fleet
from ooda._journal import Journal
from ooda._region_health import RegionPorts
from ooda._settings import OodaSettings
from ooda.cli import main

HOME, STANDBY = "eu-west-1", "eu-central-1"
OUTAGE = datetime(2026, 3, 3, 12, tzinfo=UTC)
Event = Callable[[Fleet], object]


@dataclass
class Drive:
    fleet: Fleet
    controller: FailoverController
    audit: AuditStore
    moved_at: datetime | None = None

    def run(self, until: datetime, events: dict[datetime, Event] | None = None) -> None:
        """Tick the controller and step the fleet to ``until``, firing ``events`` on time."""
        todo = dict(events or {})
        tick = self.controller.settings.loop.tick
        while self.fleet.clock.now() < until:
            now = self.fleet.clock.now()
            for at in sorted(t for t in todo if t <= now):
                todo.pop(at)(self.fleet)
            self.controller.tick(now)
            self.fleet.step(tick)
            if self.moved_at is None and self.fleet.shares[STANDBY] >= 0.5:
                self.moved_at = self.fleet.clock.now()

    def floors(self, region: str) -> dict[str, int]:
        kube: Any = self.fleet.region(region).kube
        hpas = kube.autoscaling_v2.list_namespaced_horizontal_pod_autoscaler("shop").items
        return {h.metadata.name: h.spec.min_replicas for h in hpas}

    def entries(self, kind: str | None = None) -> list[Any]:
        return [e for e in self.audit.entries() if kind is None or e.kind == kind]


def _drive(tmp_path: Path, settings: OodaSettings | None = None, seed: int = 11) -> Drive:
    fleet, wired = drill_fleet(settings or OodaSettings(), seed, OUTAGE - timedelta(minutes=40))
    audit = AuditLog(tmp_path / "failover.db")
    return Drive(fleet, controller_for(fleet, wired, Journal(audit)), audit)


def _fail(region: str) -> Event:
    return lambda fleet: fleet.fail_region(region)


def _restore(region: str) -> Event:
    return lambda fleet: fleet.restore_region(region)


def _degrade(region: str, share: float) -> Event:
    return lambda fleet: fleet.degrade_region(region, share)


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One whole outage: 25 minutes down, failover, failback; snapshots along the way."""
    drive = _drive(tmp_path_factory.mktemp("failover"))
    seen: dict[str, Any] = {"floors_before": None}
    drive.run(OUTAGE)
    seen["floors_before"] = {r: drive.floors(r) for r in (HOME, STANDBY)}
    drive.run(OUTAGE + timedelta(minutes=10), {OUTAGE: _fail(HOME)})
    seen["status_during"] = drive.controller.status
    seen["floors_during"] = drive.floors(STANDBY)
    seen["weights_during"] = drive.fleet.weights()
    drive.run(OUTAGE + timedelta(minutes=75), {OUTAGE + timedelta(minutes=25): _restore(HOME)})
    seen["drive"] = drive
    return seen


def test_a_dead_home_fails_over_to_the_standby_with_its_floors_raised(
    outage: dict[str, Any],
) -> None:
    drive: Drive = outage["drive"]
    assert outage["weights_during"] == {HOME: 0, STANDBY: 100}
    assert outage["status_during"].state is FailoverState.FAILED_OVER
    # Detected after two whole minutes of failing requests, users moved within a TTL more.
    assert drive.moved_at is not None
    assert drive.moved_at - OUTAGE <= timedelta(minutes=3, seconds=30)
    before, during = outage["floors_before"][STANDBY], outage["floors_during"]
    assert all(during[s] >= before[s] for s in before) and during != before
    # Intent before the act, the act, and a verdict that points at it.
    shifts = [e for e in drive.entries() if e.action == "shift_region_traffic"]
    assert [e.kind for e in shifts[:3]] == ["intent", "action", "verification"]
    assert shifts[1].ref == shifts[0].id and shifts[2].ref == shifts[1].id
    assert shifts[2].outcome.startswith("healed")


def test_users_come_home_in_steps_and_every_floor_is_set_back(outage: dict[str, Any]) -> None:
    drive: Drive = outage["drive"]
    history = drive.fleet.route53.history
    comments = [c.comment for c in history[1:]]
    assert len(comments) == 4, comments
    assert "is down" in comments[0]
    assert [c.split("failback step ")[1][:3] for c in comments[1:]] == ["1/3", "2/3", "3/3"]
    # Home served for ``failback_after`` before the first step; each step held its minutes.
    cfg = drive.controller.cfg
    restored = OUTAGE + timedelta(minutes=25)
    assert history[2].at - restored >= cfg.failback_after
    for a, b in itertools.pairwise(history[2:]):
        assert b.at - a.at >= timedelta(minutes=cfg.step_minutes)
    assert drive.fleet.weights() == {HOME: 100, STANDBY: 0}
    assert drive.controller.status.state is FailoverState.HOME
    assert {r: drive.floors(r) for r in (HOME, STANDBY)} == outage["floors_before"]


def test_a_blip_shorter_than_down_minutes_moves_nobody(tmp_path: Path) -> None:
    drive = _drive(tmp_path)
    blip = {OUTAGE: _fail(HOME), OUTAGE + timedelta(seconds=75): _restore(HOME)}
    drive.run(OUTAGE + timedelta(minutes=10), blip)
    assert drive.fleet.weights() == {HOME: 100, STANDBY: 0}
    assert not drive.entries("action")


def test_no_failover_to_a_standby_whose_replicas_lag(tmp_path: Path) -> None:
    drive = _drive(tmp_path)
    standby_db: Any = drive.fleet.region(STANDBY).dependency("payments-db")
    standby_db.replica_lag_s = 120.0
    drive.run(OUTAGE + timedelta(minutes=8), {OUTAGE: _fail(HOME)})
    assert drive.fleet.weights() == {HOME: 100, STANDBY: 0}
    (escalation,) = drive.entries("escalation")
    assert "lag" in escalation.outcome and "writes would be lost" in escalation.outcome


def test_no_failover_when_no_standby_serves(tmp_path: Path) -> None:
    drive = _drive(tmp_path)
    drive.run(OUTAGE + timedelta(minutes=8), {OUTAGE: _fail(HOME), OUTAGE + MINUTE: _fail(STANDBY)})
    assert drive.fleet.weights() == {HOME: 100, STANDBY: 0}
    (escalation,) = drive.entries("escalation")
    assert f"{STANDBY} does not serve" in escalation.outcome


MINUTE = timedelta(minutes=1)


class _Unreachable:
    def query_range(self, *args: Any) -> Any:
        raise ConnectionError("prometheus.eu-west-1:9090 refused the connection")

    def query_family(self, *args: Any) -> Any:
        raise ConnectionError("prometheus.eu-west-1:9090 refused the connection")


def test_an_unreadable_home_whose_probes_pass_is_not_failed_over(tmp_path: Path) -> None:
    """Not being able to read a region is no evidence that it is down: its probes decide."""
    drive = _drive(tmp_path)
    observer = drive.controller.observer
    home = observer.regions[HOME]
    observer.regions[HOME] = RegionPorts(HOME, _Unreachable(), home.kube, home.namespace)
    drive.run(OUTAGE + timedelta(minutes=8))
    assert drive.fleet.weights() == {HOME: 100, STANDBY: 0}
    assert not drive.entries("action")


def test_dry_run_moves_nobody_and_audits_what_it_would_do(tmp_path: Path) -> None:
    drive = _drive(tmp_path, OodaSettings(dry_run=True))
    floors = drive.floors(STANDBY)
    drive.run(OUTAGE + timedelta(minutes=6), {OUTAGE: _fail(HOME)})
    assert drive.fleet.weights() == {HOME: 100, STANDBY: 0}
    assert drive.floors(STANDBY) == floors
    previews = [e for e in drive.entries("action") if e.action == "shift_region_traffic"]
    assert len(previews) == 1  # once per cooldown (5 minutes), not every tick
    assert previews[0].dry_run and previews[0].outcome == "dry-run"
    assert len(drive.fleet.route53.history) == 1  # the fleet's own records at start


def test_a_home_that_breaches_during_failback_sends_users_back(tmp_path: Path) -> None:
    drive = _drive(tmp_path)
    restored = OUTAGE + timedelta(minutes=10)
    drive.run(restored, {OUTAGE: _fail(HOME)})
    cfg = drive.controller.cfg
    first_step = restored + cfg.failback_after + 3 * MINUTE
    drive.run(first_step, {restored: _restore(HOME)})
    assert drive.controller.status.state is FailoverState.FAILING_BACK
    assert drive.fleet.weights()[HOME] == 10
    drive.run(first_step + 6 * MINUTE, {first_step: _fail(HOME)})
    assert drive.fleet.weights() == {HOME: 0, STANDBY: 100}
    assert drive.controller.status.state is FailoverState.FAILED_OVER
    aborts = [e for e in drive.controller.journal.events if e.kind == "failback-abort"]
    assert aborts and "breached at failback step 1" in aborts[0].detail


def test_a_region_browned_out_for_brownout_minutes_sends_its_users_to_the_standby(
    tmp_path: Path,
) -> None:
    """A tenth of the requests failing, probes passing: the regional loop has its
    ``brownout_minutes`` to heal it; then the users move."""
    drive = _drive(tmp_path)
    n = drive.controller.cfg.brownout_minutes
    drive.run(OUTAGE + (n - 1) * MINUTE, {OUTAGE: _degrade(HOME, 0.1)})
    assert drive.fleet.weights() == {HOME: 100, STANDBY: 0}  # not before its minutes
    drive.run(OUTAGE + (n + 6) * MINUTE)
    assert drive.fleet.weights() == {HOME: 0, STANDBY: 100}
    (moved,) = [e for e in drive.controller.journal.events if e.kind == "failover"]
    assert f"{HOME} browns out" in moved.detail and f"{n} minutes in a row" in moved.detail
    kinds = {e.kind for e in drive.controller.journal.events}
    assert "region-brownout" in kinds and "region-down" not in kinds


@pytest.mark.parametrize(
    ("share", "minutes"),
    [(0.1, 7), (0.01, 20)],  # healed within its minutes; under the brownout rate
)
def test_a_short_or_slight_brownout_moves_nobody(
    tmp_path: Path, share: float, minutes: int
) -> None:
    drive = _drive(tmp_path)
    restored = OUTAGE + minutes * MINUTE
    drive.run(restored + 5 * MINUTE, {OUTAGE: _degrade(HOME, share), restored: _restore(HOME)})
    assert drive.fleet.weights() == {HOME: 100, STANDBY: 0}
    assert not [e for e in drive.controller.journal.events if e.kind == "failover"]


def _until(drive: Drive, state: FailoverState, within: timedelta) -> datetime:
    """Tick until the controller reaches ``state``; when it did."""
    limit = drive.fleet.clock.now() + within
    while drive.controller.status.state is not state:
        now = drive.fleet.clock.now()
        assert now < limit, f"not {state} by {limit}: {drive.controller.status}"
        drive.run(now + drive.controller.settings.loop.tick)
    return drive.fleet.clock.now()


def test_a_home_that_breaches_at_every_failback_waits_longer_each_time(tmp_path: Path) -> None:
    """Each failback the home breaches doubles the wait before the next (up to a cap), a
    human is told from the second, and a failback that lands sets the wait back."""
    minutes = partial(timedelta, minutes=1)
    failover = replace(
        OodaSettings().failover, failback_after=5 * minutes(), failback_after_max=12 * minutes()
    )
    drive = _drive(tmp_path, OodaSettings(failover=failover))
    drive.run(OUTAGE + 8 * minutes(), {OUTAGE: _fail(HOME)})
    assert drive.controller.status.state is FailoverState.FAILED_OVER
    waits = []
    for _ in range(3):
        restored = drive.fleet.clock.now()
        drive.fleet.restore_region(HOME)
        waits.append(_until(drive, FailoverState.FAILING_BACK, 30 * minutes()) - restored)
        drive.fleet.fail_region(HOME)
        aborted = _until(drive, FailoverState.FAILED_OVER, 5 * minutes())
        drive.run(aborted + 6 * minutes())  # the move back verified, as after the first
    # From the restore: the wait, plus up to two minutes for the home to be seen serving.
    for waited, wait in zip(waits, (5, 10, 12), strict=True):  # doubled, then the cap
        assert wait * minutes() <= waited <= (wait + 2) * minutes(), waits
    aborts = [e.detail for e in drive.controller.journal.events if e.kind == "failback-abort"]
    assert [a.split("next try after ")[1] for a in aborts] == ["0:10:00", "0:12:00", "0:12:00"]
    told = [e for e in drive.entries("escalation") if "failbacks in a row" in e.outcome]
    assert len(told) == 1 and "2 failbacks in a row" in told[0].outcome
    drive.fleet.restore_region(HOME)
    _until(drive, FailoverState.HOME, 45 * minutes())
    assert drive.controller.failback_wait == 5 * minutes()


def _one_drill(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[str, Any]:
    """``ooda failover-drill`` with one outage and no clean run: what it printed and wrote."""
    out = tmp_path / "drill.json"
    args = ["--workdir", str(tmp_path), "failover-drill", "--runs", "1", "--clean-runs", "0"]
    assert main([*args, *extra, "--json", str(out)]) == 0
    return capsys.readouterr().out, json.loads(out.read_text())


def test_the_drill_prints_its_scorecard_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    printed, data = _one_drill(tmp_path, capsys, "--regional-loops")
    assert "Region-wide outages" in printed and "failover s" in printed
    assert "regional loops" in printed
    modes = {row["mode"]: row for row in data["summary"]}
    assert modes["on"]["failed_over"] == 1 and modes["off"]["failed_over"] == 0
    assert {run["mode"] for run in data["runs"]} == {"on", "off"}
    # The users, over both regions, see a fraction of what an unattended outage costs them.
    on, off = (next(r for r in data["runs"] if r["mode"] == m) for m in ("on", "off"))
    assert off["breach_minutes"] >= 0.9 * off["outage_minutes"]
    assert on["breach_minutes"] <= 0.25 * off["breach_minutes"]
    assert on["wrong_way"] == 0 and on["failed_heals"] == 0 and on["failback_s"] is not None
    # Each region's own loop ran beside the controller and left the failover to it: users
    # arriving at the idle standby are no surge, the dead home's symptoms no heal of theirs.
    assert on["loop_actions"] == 0 and on["loop_failed_heals"] == 0


def test_the_brownout_drill_moves_the_users_of_a_region_failing_a_share_of_requests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    printed, data = _one_drill(tmp_path, capsys, "--brownout")
    assert "Regional brownouts" in printed
    runs = {r["mode"]: r for r in data["runs"]}
    assert 0.03 <= runs["on"]["share"] <= 0.3 and runs["on"]["share"] == runs["off"]["share"]
    assert runs["off"]["failover_s"] is None and runs["on"]["failover_s"] is not None
    cfg = OodaSettings().failover
    assert runs["on"]["failover_s"] >= cfg.brownout_minutes * 60  # its own loop's time first
    assert runs["on"]["breach_minutes"] < runs["off"]["breach_minutes"]


@pytest.mark.parametrize("bad", [["--runs", "0"], ["--clean-runs", "-1"]])
def test_drill_arguments_out_of_range_exit_2(
    bad: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--workdir", str(tmp_path), "failover-drill", *bad]) == 2
    assert "--runs must be >= 1" in capsys.readouterr().out


def test_a_restarted_controller_finds_the_users_on_the_standby_and_brings_them_home(
    tmp_path: Path,
) -> None:
    """Its memory is the records: users on the standby at start mean a failover is on. The
    floors the earlier process raised on the standby (annotated as the failover's) are set
    back with everything else once users are home."""
    drive = _drive(tmp_path)
    before = drive.floors(STANDBY)
    standby: Any = drive.fleet.region(STANDBY).kube
    ctx = ActionContext(standby.clients(), sleep=lambda s: None, now=drive.fleet.clock.now)
    for name, floor in before.items():
        SetHpaMinReplicas(
            "shop", name, hpa=name, min_replicas=floor + 2, purpose="region_failover"
        ).apply(ctx)
    drive.fleet.route53.change_resource_record_sets(
        HostedZoneId=drive.fleet.zone_id,
        ChangeBatch={
            "Changes": [
                {"Action": "UPSERT", "ResourceRecordSet": {**record, "Weight": weight}}
                for record, weight in zip(_records(drive.fleet), (0, 100), strict=True)
            ]
        },
    )
    start = drive.fleet.clock.now()
    drive.run(start + timedelta(seconds=30))
    assert drive.controller.status.state is FailoverState.FAILED_OVER
    assert drive.controller.status.active == STANDBY
    resumed = [e for e in drive.controller.journal.events if e.kind == "resumed"]
    assert resumed and "'eu-central-1': 100" in resumed[0].detail
    drive.run(start + drive.controller.cfg.failback_after + 15 * MINUTE)
    assert drive.fleet.weights() == {HOME: 100, STANDBY: 0}
    assert drive.controller.status.state is FailoverState.HOME
    assert drive.floors(STANDBY) == before
    assert drive.floors(STANDBY) == before


def _records(fleet: Fleet) -> list[dict[str, Any]]:
    """The home's and the standby's weighted records, in that order."""
    answer = fleet.route53.list_resource_record_sets(HostedZoneId=fleet.zone_id)
    by_region = {r["SetIdentifier"]: r for r in answer["ResourceRecordSets"]}
    return [by_region[HOME], by_region[STANDBY]]


class _Route53Down:
    def list_resource_record_sets(self, **kwargs: Any) -> Any:
        raise EndpointConnectionError(endpoint_url="https://route53.amazonaws.com/")

    def change_resource_record_sets(self, **kwargs: Any) -> Any:
        raise EndpointConnectionError(endpoint_url="https://route53.amazonaws.com/")


def test_an_unreachable_route53_is_said_and_nothing_is_done(tmp_path: Path) -> None:
    """Where users are cannot be read: the controller neither acts nor crashes, and says so
    once every five minutes, not every tick."""
    drive = _drive(tmp_path)
    drive.controller._dns = replace(
        drive.controller._dns, cloud=replace(drive.controller._dns.cloud, route53=_Route53Down())
    )
    drive.run(OUTAGE + timedelta(minutes=5), {OUTAGE: _fail(HOME)})
    assert drive.controller.status.state is FailoverState.HOME
    assert not drive.entries("intent")
    said = [e for e in drive.controller.journal.events if e.kind == "problem"]
    assert said and "EndpointConnectionError" in said[0].detail
    minutes = (drive.fleet.clock.now() - said[0].at) / MINUTE
    assert len(said) <= minutes / 5 + 1
