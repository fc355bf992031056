"""Regional failover and failback: move the users of a public name off a region that is down,
onto a standby that can take them, and home again once home has served for a while.

It sits above the regional loops: each region is read through its own ports (metric source,
Kubernetes API) and a probe from outside it (the blackbox exporter's ``probe_success``), and
users move by the weights of the name's Route 53 records (:class:`actuators.ShiftRegionTraffic`).
A region is **down** when most of its users' requests fail, or its probes fail, for
``down_minutes`` in a row: longer than a regional heal takes, so one sick service is the
regional loop's, a dead region is this controller's. A region **browns out** when a smaller
share of its users' requests fail (``brownout_error_rate``) for ``brownout_minutes`` while its
probes pass: long enough for its own loop to have healed and verified what it can, so what
is left is the region's (a zone, a regional dependency). The gates a failover passes, in
order:

1. a standby that serves (its probes pass) and whose database replicas lag no more than
   ``max_replica_lag_s`` (else writes would be lost: refused, and a human is told);
2. capacity: the standby's HPA floors are raised to the pods the home ran in its last
   healthy minute (:class:`actuators.SetHpaMinReplicas`), and users move once it runs
   ``capacity_share`` of them, after ``prepare_timeout`` at the latest, or at once when the
   home fails nearly every request (an overloaded standby beats a dead home);
3. the guard (cooldown and breaker on the public name, dry-run) and the failed-heal budget.

Verification: healed once the standby's users meet the SLO for ``healthy_minutes``; a
failover that does not heal by the deadline is a failed heal and is escalated, never undone
(undo would send users back to a dead region). Failback waits until the home has served for
``failback_after``, raises the home's floors to what the standby runs, then moves users home
in ``failback_steps``, each held for ``step_minutes`` within the SLO; a home that breaches on
the way sends everyone back to the standby and the wait starts again, ``failback_backoff``
times longer for each failback aborted in a row (at most ``failback_after_max``; a human is
told from the second). At the end both regions' floors are set back. Every decision,
refusal, action and verdict is in the audit log. A restarted controller finds where users
are from the records, not how many failbacks aborted: it waits ``failback_after`` again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from actuators import (
    Action,
    ActionContext,
    ActionResult,
    ActuatorError,
    Guard,
    GuardRejectedError,
    SetHpaMinReplicas,
    ShiftRegionTraffic,
    floor_purpose,
    ooda_floor,
)
from contracts import CloudClients, KubeClients
from ooda._autonomy import ErrorBudget
from ooda._journal import Journal
from ooda._region_health import MINUTE, Probe, RegionHealth, RegionObserver, RegionPorts
from ooda._settings import OodaSettings

#: What the controller writes in ``ooda.dev/floor-for`` of the floors it raises.
PURPOSE = "region_failover"


class FailoverState(StrEnum):
    """Where the users of the public name are."""

    HOME = "home"
    """All at home (the first region)."""
    PREPARING = "preparing"
    """Home is down; the standby's floors are raised, users not moved yet."""
    FAILED_OVER = "failed_over"
    """All on the standby."""
    FAILING_BACK = "failing_back"
    """Moving home, one step at a time."""


@dataclass(frozen=True)
class FailoverStatus:
    """The controller's state, for a timeline or a status page."""

    state: FailoverState
    active: str
    """The region users are moving to or are on."""
    since: datetime | None
    step: int = 0
    """Failback step reached (index into ``failback_steps``)."""


@dataclass
class _Applied:
    action: Action
    result: ActionResult
    ctx: ActionContext
    guard: Guard
    at: datetime
    entry: int


class FailoverController:
    """Fails the users of one public name over between regions, and back."""

    def __init__(
        self,
        settings: OodaSettings,
        regions: Mapping[str, RegionPorts],
        route53: Any,
        probe: Probe,
        journal: Journal,
        sleep: Callable[[float], None],
    ) -> None:
        cfg = settings.failover
        missing = [r for r in cfg.regions if r not in regions]
        if missing or len(cfg.regions) < 2:
            raise ValueError(
                f"failover needs ports for two or more regions {cfg.regions}, missing {missing}"
            )
        self.settings = settings
        self.cfg = cfg
        self.observer = RegionObserver(settings, regions, probe)
        self.journal = journal
        self.home = cfg.regions[0]
        guard_settings = replace(settings.guard, dry_run=settings.dry_run)
        self.guards = {r: Guard(guard_settings) for r in cfg.regions}
        self.dns_guard = Guard(guard_settings)
        self.budget = ErrorBudget(settings.autonomy)
        self._context = {
            r: ActionContext(ports.kube, dry_run=settings.dry_run, sleep=sleep)
            for r, ports in regions.items()
        }
        self._dns = ActionContext(
            KubeClients(None, None, None),
            dry_run=settings.dry_run,
            sleep=sleep,
            cloud=CloudClients(route53=route53),
        )
        self.status = FailoverStatus(FailoverState.HOME, self.home, None)
        self._baseline: dict[str, int] = {}
        self._floors: dict[str, list[_Applied]] = {r: [] for r in cfg.regions}
        self._verifying: _Applied | None = None
        self._serving_since: datetime | None = None
        self._aborts = 0
        self._preview_every = settings.guard.cooldown
        self._step_healthy = 0
        self._last_minute: dict[str, datetime] = {}
        self._said: dict[str, tuple[str, datetime]] = {}
        self._resumed = False

    # -- observe ------------------------------------------------------------------------------

    # -- decide and act -----------------------------------------------------------------------

    def tick(self, now: datetime) -> FailoverStatus:
        """Observe every region and take at most one step; returns where users are."""
        if not self._resumed:
            self._resume(now)
            if not self._resumed:
                return self.status  # where users are is unknown: nothing is done
        health = {r: self.observer.observe(r, now) for r in self.cfg.regions}
        state = self.status.state
        if state is FailoverState.HOME:
            self._at_home(health, now)
        elif state is FailoverState.PREPARING:
            self._preparing(health, now)
        elif state is FailoverState.FAILED_OVER:
            self._failed_over(health, now)
        else:
            self._failing_back(health, now)
        return self.status

    def _resume(self, now: datetime) -> None:
        """Where the users are, from the records: a controller that restarts mid-failover
        carries on from there (the floors an earlier process raised stay, annotated)."""
        try:
            records = self._shift_action((), "read the records").records(self._dns)
        except ActuatorError as exc:
            self._say(now, "problem", f"cannot read the records of {self.cfg.record}: {exc}")
            return
        self._resumed = True
        weights = {r: int(rec["Weight"]) for r, rec in records.items()}
        total = sum(weights.values())
        home = weights.get(self.home, 0)
        if total <= 0 or home == total:
            return
        away = [r for r in self.cfg.regions[1:] if weights.get(r, 0) > 0]
        if not away:
            return
        active = max(away, key=lambda r: weights[r])
        share = 100 * home / total
        steps = [i for i, s in enumerate(self.cfg.failback_steps) if s <= share]
        if home == 0 or not steps:
            self.status = FailoverStatus(FailoverState.FAILED_OVER, active, now)
        else:
            self.status = FailoverStatus(FailoverState.FAILING_BACK, active, now, steps[-1])
        self._event(now, "resumed", active, f"users found where the records send them: {weights}")

    def _failing(self, home: RegionHealth) -> tuple[str, str] | None:
        """The event kind (down, or browned out) and why the home's users should leave it;
        None while it serves them."""
        if self.observer.down(home):
            return "region-down", f"{self.home} is down ({_why_down(home, self.cfg.down_minutes)})"
        if self.observer.browned_out(home):
            n = self.cfg.brownout_minutes
            why = f"{self.home} browns out ({_why_down(home, n)}, {n} minutes in a row)"
            return "region-brownout", why
        return None

    def _at_home(self, health: dict[str, RegionHealth], now: datetime) -> None:
        home = health[self.home]
        failing = self._failing(home)
        if failing is None:
            if home.workloads and self.observer.within_slo(home) is not False:
                self._baseline = home.ready
            return
        standby = self._standby(health, now)
        if standby is None:
            return
        kind, why = failing
        if self.settings.dry_run:
            # A preview once per cooldown, not every tick of the outage.
            said = f"would fail over to {standby}"
            if self._say(now, "preview", said, within=self._preview_every):
                self._raise_floors(standby, self._baseline, health[standby], now)
                self._shift(standby, now, why)
            return
        self._event(now, kind, self.home, why)
        self._raise_floors(standby, self._baseline, health[standby], now)
        self.status = FailoverStatus(FailoverState.PREPARING, standby, now)
        self._preparing(health, now)

    def _standby(self, health: dict[str, RegionHealth], now: datetime) -> str | None:
        """The first other region that serves and whose replicas keep up; says why not."""
        reasons = []
        for region in self.cfg.regions[1:]:
            h = health[region]
            if not self.observer.serves(h):
                why = h.problem or f"probe {h.probe}"
                reasons.append(f"{region} does not serve ({why})")
                continue
            lag = self.observer.replica_lag(region, now)
            if lag is not None and lag > self.cfg.max_replica_lag_s:
                reasons.append(
                    f"{region}'s database replicas lag {lag:.0f} s, more than"
                    f" {self.cfg.max_replica_lag_s:.0f} s: writes would be lost"
                )
                continue
            return region
        self._escalate(
            now,
            f"{self.home} is failing and no standby may take its users: {reasons}",
            "no-standby",
        )
        return None

    def _preparing(self, health: dict[str, RegionHealth], now: datetime) -> None:
        standby = self.status.active
        home = health[self.home]
        failing = self._failing(home)
        if failing is None:
            self._event(now, "region-back", self.home, "home serves again before users moved")
            self._release_floors(standby, now, health[standby])
            self.status = FailoverStatus(FailoverState.HOME, self.home, None)
            return
        if not self.observer.serves(health[standby]):
            lost = f"standby {standby} stopped serving while it was prepared"
            self._escalate(now, lost, "standby-lost")
            return
        short = _short(health[standby].ready, self._baseline, self.cfg.capacity_share)
        newest = home.error_rates[-1] if home.error_rates else math.nan
        hard = newest >= self.cfg.hard_down_error_rate or self.observer.probes_failing(
            self.home, now
        )
        waited = (
            self.status.since is not None and now - self.status.since >= self.cfg.prepare_timeout
        )
        if short and not hard and not waited:
            return
        _, why = failing
        if short:
            why += f"; {standby} still short of {short} pods, moving anyway"
        self._shift(standby, now, why)

    def _shift(self, to: str, now: datetime, why: str) -> bool:
        """Send every user to ``to``; whether they were sent (not refused, not a dry run)."""
        weights = tuple((r, self.cfg.weight if r == to else 0) for r in self.cfg.regions)
        action = self._shift_action(weights, why, tuple(r for r in self.cfg.regions if r != to))
        applied = self._apply(action, self._dns, self.dns_guard, now, why)
        if applied is None or applied.result.dry_run:
            return False
        self._verifying = applied
        self.status = FailoverStatus(FailoverState.FAILED_OVER, to, now)
        self._serving_since = None
        self._event(now, "failover", to, why)
        return True

    def _shift_action(
        self, weights: tuple[tuple[str, int], ...], why: str, unhealthy: tuple[str, ...] = ()
    ) -> ShiftRegionTraffic:
        return ShiftRegionTraffic(
            _zone_name(self.cfg.record),
            self.cfg.record,
            reason=why,
            hosted_zone_id=self.cfg.hosted_zone_id,
            weights=weights,
            unhealthy=unhealthy,
        )

    def _failed_over(self, health: dict[str, RegionHealth], now: datetime) -> None:
        standby = self.status.active
        self._verify(health[standby], now)
        home = health[self.home]
        if not self.observer.serves(home) or self._verifying is not None:
            self._serving_since = None
            return
        if self._serving_since is None:
            self._serving_since = now
            return
        if now - self._serving_since < self.failback_wait:
            return
        if not self._floors[self.home]:
            self._raise_floors(self.home, health[standby].ready, home, now)
        short = _short(home.ready, health[standby].ready, self.cfg.capacity_share)
        if short:
            self._say(now, "failback-wait", f"home {self.home} short of {short} pods")
            return
        self.status = FailoverStatus(FailoverState.FAILING_BACK, standby, now, step=0)
        self._step_healthy = 0
        self._failback_step(0, now)

    @property
    def failback_wait(self) -> timedelta:
        """How long the home must serve before the next failback: ``failback_after``, times
        ``failback_backoff`` for each failback aborted in a row, at most
        ``failback_after_max``."""
        cfg = self.cfg
        longest = max(cfg.failback_after, cfg.failback_after_max)
        wait = cfg.failback_after
        for _ in range(self._aborts):
            wait *= max(1.0, cfg.failback_backoff)
            if wait >= longest:
                return longest
        return wait

    def _failback_step(self, step: int, now: datetime) -> None:
        share = self.cfg.failback_steps[step]
        home_weight = round(self.cfg.weight * share / 100)
        standby = self.status.active
        weights = ((self.home, home_weight), (standby, self.cfg.weight - home_weight))
        why = f"failback step {step + 1}/{len(self.cfg.failback_steps)}: {share}% home"
        action = self._shift_action(weights, why)
        applied = self._apply(action, self._dns, self.dns_guard, now, why)
        if applied is None:
            return
        self.dns_guard.record_outcome(action, True, now)
        self.status = replace(self.status, step=step, since=now)
        self._step_healthy = 0
        self._event(now, "failback-step", self.home, why)

    def _failing_back(self, health: dict[str, RegionHealth], now: datetime) -> None:
        home = health[self.home]
        minute = home.newest_minute
        if (
            self.observer.down(home)
            or not self.observer.serves(home)
            or self.observer.within_slo(home) is False
        ):
            step = self.status.step + 1
            why = f"home {self.home} breached at failback step {step}"
            standby = self.status.active
            if not self._shift(standby, now, why):
                return  # refused (the last step's cooldown): tried again next tick
            self._aborts += 1
            wait = self.failback_wait
            self._event(now, "failback-abort", self.home, f"{why}; next try after {wait}")
            if self._aborts > 1:
                self._escalate(
                    now,
                    f"home {self.home} breached at {self._aborts} failbacks in a row (the last"
                    f" at step {step}); users stay on {standby}, the next try once the home"
                    f" has served for {wait}",
                    "failback-aborts",
                )
            return
        if minute is None or self._last_minute.get(self.home) == minute:
            return
        self._last_minute[self.home] = minute
        if self.observer.within_slo(home) is not True:
            return
        # A minute counts once the resolvers have had the TTL to follow the step's weights.
        if self.status.since is None or minute < self.status.since + self.cfg.settle:
            return
        self._step_healthy += 1
        if self._step_healthy < self.cfg.step_minutes:
            return
        if self.status.step + 1 < len(self.cfg.failback_steps):
            self._failback_step(self.status.step + 1, now)
            return
        for region in self.cfg.regions:
            self._release_floors(region, now, health[region])
        self._aborts = 0
        self._event(now, "failed-back", self.home, "users are home; floors set back")
        self.status = FailoverStatus(FailoverState.HOME, self.home, None)

    def _verify(self, standby: RegionHealth, now: datetime) -> None:
        pending = self._verifying
        if pending is None:
            return
        n = self.settings.verify.healthy_minutes
        rates, p95 = standby.error_rates[-n:], standby.p95_ms[-n:]
        slo = self.settings.slo
        ok = len(rates) == n and all(
            e <= slo.max_error_rate and p <= slo.p95_ms for e, p in zip(rates, p95, strict=True)
        )
        settled = now - pending.at >= n * MINUTE + self.cfg.settle
        if ok and settled:
            self._verdict(pending, True, now, f"{standby.region} met the SLO for {n} minutes")
        elif now - pending.at >= self.settings.verify.deadline:
            self._verdict(pending, False, now, f"{standby.region} missed the SLO by the deadline")

    def _verdict(self, pending: _Applied, healed: bool, now: datetime, why: str) -> None:
        self._verifying = None
        key = pending.action
        pending.guard.record_outcome(key, healed, now)
        for applied in self._floors[self.status.active]:
            applied.guard.record_outcome(applied.action, True, now)
        outcome = "healed" if healed else "failed"
        if not healed:
            self.budget.record_failure(str(key.kind), now)
            why = f"failover to {self.status.active} did not heal: {why}"
            self._escalate(now, why, "not-healed")
        self.journal.write_action(
            now, "verification", key, f"{outcome}: {why}", {}, ref=pending.entry
        )
        self._event(now, outcome, self.status.active, why)

    # -- floors -------------------------------------------------------------------------------

    def _raise_floors(
        self, region: str, pods: Mapping[str, int], health: RegionHealth, now: datetime
    ) -> None:
        for service, want in sorted(pods.items()):
            workload = health.workloads.get(service)
            if workload is None or workload.hpa is None:
                continue
            hpa = workload.hpa
            floor = min(hpa.max_replicas, int(want))
            if floor <= hpa.min_replicas:
                continue
            why = f"{region} takes the users of {self.cfg.record}: {service} to {floor} pods"
            action = SetHpaMinReplicas(
                self.observer.regions[region].namespace,
                service,
                reason=why,
                hpa=hpa.name,
                min_replicas=floor,
                purpose=PURPOSE,
            )
            applied = self._apply(action, self._context[region], self.guards[region], now, why)
            if applied is not None and not applied.result.dry_run:
                self._floors[region].append(applied)

    def _release_floors(
        self, region: str, now: datetime, health: RegionHealth | None = None
    ) -> None:
        """Set back the floors this process raised in ``region`` and, given its ``health``,
        those an earlier process raised (still annotated as the failover's own: a controller
        restarted mid-failover finds them there)."""
        held = {a.action.target for a in self._floors[region]}
        for applied in self._floors[region]:
            applied.guard.record_outcome(applied.action, True, now)
            try:
                undone = applied.action.undo(applied.ctx, applied.result)
            except ActuatorError as exc:
                self.journal.write_action(now, "undo", applied.action, f"not undone: {exc}", {})
                continue
            if undone is not None:
                what = (
                    "floor left to the one raised over it"
                    if undone.after.get("left_stack")
                    else "floor set back"
                )
                self.journal.write_action(
                    now, "undo", applied.action, what, {"result": undone.after}
                )
        self._floors[region] = []
        if health is None:
            return
        for service, workload in sorted(health.workloads.items()):
            hpa = workload.hpa
            if hpa is None or floor_purpose(hpa.annotations) != PURPOSE:
                continue
            try:
                original = ooda_floor(hpa.annotations, hpa.min_replicas, hpa.name)
            except ActuatorError:
                original = None  # unreadable: not provably ours, left to a human
            if original is None:
                continue
            action = SetHpaMinReplicas(
                workload.namespace,
                service,
                reason=f"a failover's floor left by an earlier process: back to {original}",
                hpa=hpa.name,
                min_replicas=original,
                purpose=PURPOSE,
            )
            if action.target not in held:
                self._apply(action, self._context[region], self.guards[region], now, action.reason)

    # -- the guarded, audited call ------------------------------------------------------------

    def _apply(
        self, action: Action, ctx: ActionContext, guard: Guard, now: datetime, why: str
    ) -> _Applied | None:
        evidence: dict[str, Any] = {"reason": why, "action": str(action.kind)}
        standing = self.budget.standing(str(action.kind), now)
        if standing.propose_only:
            if self._say(now, f"proposed:{action.target}", f"{standing.why}: {why}"):
                self.journal.write_action(now, "decision", action, f"proposed: {why}", evidence)
            return None
        try:
            guard.check(action, now)
        except GuardRejectedError as exc:
            self._refused(now, action, exc.reason, evidence)
            return None
        intent = self.journal.write_action(
            now, "intent", action, "applying", evidence, dry_run=ctx.dry_run
        )
        try:
            result = action.apply(replace(ctx, audit_ref=str(intent), now=lambda: now))
        except GuardRejectedError as exc:
            self._refused(now, action, exc.reason, evidence)
            return None
        except ActuatorError as exc:
            self.budget.record_failure(str(action.kind), now)
            self.journal.write_action(now, "action", action, f"error: {exc}", evidence, ref=intent)
            self._escalate(now, f"{action.kind} on {action.target} failed: {exc}", "error")
            return None
        if not result.dry_run:
            guard.record_applied(action, now)
        outcome = "dry-run" if result.dry_run else "applied"
        record = {**evidence, "before": result.before, "after": result.after}
        entry = self.journal.write_action(
            now, "action", action, outcome, record, ref=intent, dry_run=ctx.dry_run
        )
        self._event(now, "action", action.target, f"{action.kind} ({outcome}): {why}")
        return _Applied(action, result, ctx, guard, now, entry)

    def _refused(
        self, now: datetime, action: Action, reason: str, evidence: dict[str, Any]
    ) -> None:
        if self._say(now, f"refused:{action.target}", f"{action.kind} refused: {reason}"):
            self.journal.write_action(now, "refusal", action, f"refused: {reason}", evidence)

    def _escalate(self, now: datetime, why: str, key: str) -> None:
        """Tell a human once per ``key`` (what went wrong, not its changing numbers) in 30 min."""
        if self._say(now, f"escalation:{key}", why, within=timedelta(minutes=30), key=key):
            self.journal.write(now, "escalation", self.cfg.record, "none", self.cfg.record, why, {})
            self.journal.stats.escalations[self.cfg.record] += 1

    def _say(
        self,
        now: datetime,
        channel: str,
        what: str,
        within: timedelta = timedelta(minutes=5),
        key: str | None = None,
    ) -> bool:
        """Put ``what`` on the timeline unless the same (``key``, else the words) was said on
        ``channel`` lately."""
        said = key or what
        last = self._said.get(channel)
        if last is not None and last[0] == said and now - last[1] < within:
            return False
        self._said[channel] = (said, now)
        self._event(now, channel.split(":", 1)[0], self.cfg.record, what)
        return True

    def _event(self, now: datetime, kind: str, where: str, detail: str) -> None:
        self.journal.event(now, kind, where, detail)


def _zone_name(record: str) -> str:
    """The zone a public name sits in (its parent domain)."""
    parts = record.rstrip(".").split(".")
    return ".".join(parts[1:]) + "." if len(parts) > 2 else record


def _short(have: Mapping[str, int], baseline: Mapping[str, int], share: float) -> dict[str, int]:
    """Service -> pods missing before ``have`` runs ``share`` of ``baseline``."""
    need = {s: math.ceil(n * share) for s, n in baseline.items()}
    return {s: n - have.get(s, 0) for s, n in need.items() if have.get(s, 0) < n}


def _why_down(health: RegionHealth, minutes: int) -> str:
    rates = ", ".join(f"{r:.0%}" for r in health.error_rates[-minutes:])
    return f"failed requests per minute [{rates}], probe {health.probe}"
