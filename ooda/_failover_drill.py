"""``ooda failover-drill``: region-wide outages on a two-region fleet, with the failover
controller on against left alone, scored from the users' side.

Each run draws a time of day, an outage length and a seed; the home region fails every
request for the outage (or, as a brownout, a drawn share of them while its probes pass),
then recovers. ``off`` leaves the users where DNS sends them; ``on``
runs :class:`~ooda._failover.FailoverController` every loop tick. A clean run with no outage
checks that nothing moves. The users' minute is a breach when their failed share over both
regions is above the availability objective, or when a region carrying at least 5 % of them
has a p95 above the latency objective (the p95 of a mix is not derived from the regions' own).
With ``regional_loops`` each region's own loop (the rules scorer) runs beside it in both
modes, as in production: what they do in a dead region or a standby taking its users is
counted apart from the controller's actions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lab import Fleet, FleetSettings, LabSettings
from ooda._audit import AuditLog
from ooda._chaos import make_loop
from ooda._failover import FailoverController
from ooda._fakes import RuleScorer
from ooda._journal import Journal
from ooda._observe import clean_metrics
from ooda._region_health import RegionPorts
from ooda._settings import OodaSettings

#: The share of users a region must carry for its p95 to count in the users' minute.
P95_SHARE = 0.05


@dataclass(frozen=True)
class DrillSettings:
    """What the drill draws."""

    runs: int = 10
    seed: int = 7
    warmup: timedelta = timedelta(minutes=40)
    """Fleet time before the outage (the HPAs settle, the baseline is learnt)."""
    outage_minutes: tuple[float, float] = (20.0, 40.0)
    """Range the outage's length is drawn from."""
    after: timedelta = timedelta(minutes=45)
    """Fleet time after the outage ends (failback takes place in it)."""
    first_hour: int = 8
    last_hour: int = 20
    """The outage starts between these hours of the day (the busy part)."""
    clean_runs: int = 2
    """Runs with no outage: the controller must move nobody."""
    regional_loops: bool = False
    """Run each region's loop every tick too (``off``: the loops alone)."""
    brownout: tuple[float, float] | None = None
    """Draw each outage as a brownout failing a share in this range of the home's requests,
    its probes passing (None: the home fails every request)."""


@dataclass(frozen=True)
class DrillRun:
    """One run in one mode."""

    seed: int
    mode: str
    start: datetime
    """When the outage began (or, in a clean run, when it would have)."""
    outage_minutes: float
    breach_minutes: int
    failover_s: float | None
    """Outage start to most users on the standby (None: they never moved)."""
    failback_s: float | None
    """Outage end to all users home (None: not within the run)."""
    pod_minutes: float
    actions: int
    failed_heals: int
    escalations: int
    wrong_way: int
    """Shifts that gave users to a region that was down or browned out at the time (a
    failback step is the only way to see a brownout in a region with no users)."""
    loop_actions: int = 0
    """Actions of the regional loops (with ``regional_loops``)."""
    loop_failed_heals: int = 0
    share: float = 1.0
    """Share of the home's requests the outage failed (below 1: a brownout)."""


@dataclass(frozen=True)
class DrillReport:
    settings: DrillSettings
    runs: tuple[DrillRun, ...] = field(default_factory=tuple)

    def of(self, mode: str, clean: bool = False) -> list[DrillRun]:
        return [r for r in self.runs if r.mode == mode and (r.outage_minutes == 0) == clean]

    def summary(self) -> list[dict[str, Any]]:
        """One row per mode (and the clean runs): the scorecard's table."""
        rows = []
        for mode, clean in (("off", False), ("on", False), ("on", True)):
            runs = self.of(mode, clean)
            if not runs:
                continue
            moved = [r.failover_s for r in runs if r.failover_s is not None]
            back = [r.failback_s for r in runs if r.failback_s is not None]
            rows.append(
                {
                    "mode": f"{mode} (clean)" if clean else mode,
                    "runs": len(runs),
                    "breach_minutes": float(np.mean([r.breach_minutes for r in runs])),
                    "failed_over": len(moved),
                    "failover_s": float(np.median(moved)) if moved else math.nan,
                    "failed_back": len(back),
                    "failback_s": float(np.median(back)) if back else math.nan,
                    "pod_minutes": float(np.mean([r.pod_minutes for r in runs])),
                    "actions": float(np.mean([r.actions for r in runs])),
                    "failed_heals": sum(r.failed_heals for r in runs),
                    "wrong_way": sum(r.wrong_way for r in runs),
                    "loop_actions": float(np.mean([r.loop_actions for r in runs])),
                    "loop_failed_heals": sum(r.loop_failed_heals for r in runs),
                }
            )
        return rows


def _start(rng: np.random.Generator, cfg: DrillSettings) -> datetime:
    day = datetime(2026, 3, 2, tzinfo=UTC) + timedelta(days=int(rng.integers(0, 28)))
    minute = rng.uniform(cfg.first_hour * 60, cfg.last_hour * 60)
    return day + timedelta(minutes=float(minute))


def drill_fleet(settings: OodaSettings, seed: int, start: datetime) -> tuple[Fleet, OodaSettings]:
    """A fleet for one run, and ``settings`` pointed at its regions and records."""
    fleet = Fleet(
        FleetSettings(regions=settings.failover.regions, lab=LabSettings(seed=seed)), start
    )
    failover = replace(
        settings.failover,
        hosted_zone_id=fleet.zone_id,
        record=fleet.settings.record,
    )
    return fleet, replace(settings, failover=failover)


def controller_for(fleet: Fleet, settings: OodaSettings, journal: Journal) -> FailoverController:
    """The failover controller wired to the fleet's regions, probes and Route 53."""
    ports = {
        name: RegionPorts(name, lab.source, lab.kube.clients(), lab.settings.topology.namespace)
        for name, lab in fleet.regions.items()
    }
    return FailoverController(
        settings,
        ports,
        fleet.route53,
        fleet.probe,
        journal,
        sleep=lambda s: fleet.step(timedelta(seconds=max(s, 1.0))),
    )


def run_once(
    settings: OodaSettings,
    seed: int,
    start: datetime,
    outage: timedelta,
    mode: str,
    cfg: DrillSettings,
    workdir: Path,
    share: float = 1.0,
) -> DrillRun:
    """One run: warm up, fail the home region for ``outage`` (none: a clean run; ``share``
    below 1: a brownout failing that share of its requests), go on."""
    begin = start - cfg.warmup
    fleet, settings = drill_fleet(settings, seed, begin)
    home, tick = settings.failover.regions[0], settings.loop.tick
    log = workdir / f"failover-{seed}-{mode}-{round(outage.total_seconds())}.db"
    for stale in (log, log.with_name(log.name + ".head")):
        stale.unlink(missing_ok=True)  # the drill's own scratch log of an earlier drill
    journal = Journal(AuditLog(log))
    controller = controller_for(fleet, settings, journal) if mode == "on" else None
    loops = (
        [make_loop(lab, settings, RuleScorer()) for lab in fleet.regions.values()]
        if cfg.regional_loops
        else []
    )
    end = start + outage + cfg.after
    moved_at: datetime | None = None
    back_at: datetime | None = None
    wrong_way = 0
    seen_weights = fleet.weights()
    while fleet.clock.now() < end:
        now = fleet.clock.now()
        if outage > timedelta(0) and now >= start and not fleet.outages:
            if share < 1.0:
                fleet.degrade_region(home, share)
            else:
                fleet.fail_region(home)
        if fleet.outages and fleet.outages[-1].end is None and now >= start + outage:
            fleet.restore_region(home)
        if controller is not None:
            controller.tick(now)
            weights = fleet.weights()
            if weights != seen_weights:
                gained = [r for r in weights if weights[r] > seen_weights.get(r, 0)]
                wrong_way += sum(_failing(fleet, r) for r in gained)
                seen_weights = weights
        fleet.step(tick)
        for loop in loops:
            loop.tick()
        shares = fleet.shares
        if moved_at is None and fleet.outages and shares[home] < 0.5:
            moved_at = fleet.clock.now()
        outage_over = fleet.outages and fleet.outages[-1].end is not None
        if moved_at is not None and back_at is None and outage_over and shares[home] > 0.999:
            back_at = fleet.clock.now()
    breach = _users_breach_minutes(fleet, settings, start, end)
    pods = sum(sum(lab.pod_minutes.values()) for lab in fleet.regions.values())
    stats = journal.stats
    return DrillRun(
        seed=seed,
        mode=mode,
        start=start,
        outage_minutes=outage.total_seconds() / 60,
        breach_minutes=breach,
        failover_s=None if moved_at is None else (moved_at - start).total_seconds(),
        failback_s=None
        if back_at is None or not fleet.outages or fleet.outages[-1].end is None
        else (back_at - fleet.outages[-1].end).total_seconds(),
        pod_minutes=pods,
        actions=sum(1 for e in journal.events if e.kind == "action"),
        failed_heals=sum(1 for e in journal.events if e.kind == "failed"),
        escalations=sum(stats.escalations.values()),
        wrong_way=wrong_way,
        loop_actions=sum(1 for loop in loops for e in loop.events if e.kind == "action"),
        loop_failed_heals=sum(1 for loop in loops for e in loop.events if e.kind == "failed"),
        share=share if outage > timedelta(0) else 0.0,
    )


def _failing(fleet: Fleet, region: str) -> bool:
    lab = fleet.region(region)
    return lab.region_down or lab.region_error_share > 0


def _users_breach_minutes(
    fleet: Fleet, settings: OodaSettings, start: datetime, end: datetime
) -> int:
    """Minutes in [start, end) in which the users, over every region, missed the SLO."""
    entries = settings.failover.entries
    frames = []
    for lab in fleet.regions.values():
        raw = lab.source.query_range(start, end, timedelta(minutes=1))
        metrics, _ = clean_metrics(raw, end)
        rows = metrics[metrics["service"].isin(entries)].copy()
        rows["errors"] = rows["request_rate"] * rows["error_rate"].fillna(0.0)
        frames.append(
            rows.groupby("timestamp").agg(
                requests=("request_rate", "sum"),
                errors=("errors", "sum"),
                p95=("p95_latency_ms", "max"),
            )
        )
    requests = sum(f["requests"] for f in frames)
    assert isinstance(requests, pd.Series)
    errors = sum(f["errors"] for f in frames)
    slo = settings.slo
    with np.errstate(invalid="ignore", divide="ignore"):
        failed = (errors / requests).where(requests > 0)
    slow = pd.Series(False, index=requests.index)
    for f in frames:
        carried = f["requests"] / requests.where(requests > 0)
        slow |= (carried >= P95_SHARE) & (f["p95"] > slo.p95_ms)
    breach = (failed > slo.max_error_rate) | slow
    return int(breach.sum())


@dataclass(frozen=True)
class Outage:
    """One drawn run: the fleet's seed, when the outage starts, how long, how much fails."""

    seed: int
    start: datetime
    length: timedelta
    """Zero: a clean run."""
    share: float = 1.0


def draw_outages(cfg: DrillSettings) -> list[Outage]:
    """The drill's ``runs`` outages, then its ``clean_runs``, from ``cfg.seed``."""
    rng = np.random.default_rng([cfg.seed, 53])
    draws = [
        (int(rng.integers(1, 2**31 - 1)), _start(rng, cfg), rng.uniform(*cfg.outage_minutes))
        for _ in range(cfg.runs + cfg.clean_runs)
    ]
    # Their own stream: the outages' seeds, times and lengths are the same either way.
    shares = np.random.default_rng([cfg.seed, 59]).uniform(
        *(cfg.brownout or (1.0, 1.0)), len(draws)
    )
    return [
        Outage(
            seed,
            start,
            timedelta(0) if i >= cfg.runs else timedelta(minutes=round(float(minutes), 1)),
            round(float(shares[i]), 3) if cfg.brownout else 1.0,
        )
        for i, (seed, start, minutes) in enumerate(draws)
    ]


def run_outage(
    settings: OodaSettings, outage: Outage, mode: str, cfg: DrillSettings, workdir: Path
) -> DrillRun:
    """:func:`run_once` of a drawn outage."""
    return run_once(
        settings, outage.seed, outage.start, outage.length, mode, cfg, workdir, outage.share
    )


def run_drill(
    settings: OodaSettings,
    cfg: DrillSettings,
    workdir: Path,
    progress: Callable[[str], None] | None = None,
) -> DrillReport:
    """Every run of the drill in both modes, and the clean runs with the controller on."""
    workdir.mkdir(parents=True, exist_ok=True)
    runs: list[DrillRun] = []
    draws = draw_outages(cfg)
    for i, outage in enumerate(draws):
        clean = outage.length == timedelta(0)
        for mode in ("on",) if clean else ("off", "on"):
            runs.append(run_outage(settings, outage, mode, cfg, workdir))
            if progress is not None:
                progress(f"run {i + 1}/{len(draws)} {mode}{' (clean)' if clean else ''}")
    return DrillReport(cfg, tuple(runs))
