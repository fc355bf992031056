"""Decide and act: from a snapshot to at most one guarded action per service and tick.

Runbooks are tried in priority order, those that heal the service's diagnosed root cause
first; the first diagnosis wins and its runbook proposes one bounded action. A symptom whose
root cause is another service's to heal (a caller slowed by its callee's database) is left
to that service's diagnosis, when the runbook that matched it follows root causes (latency,
errors, lag: symptoms a callee's fault shows upstream; never a service's own load or pods).
The plan's autonomy comes from the settings and the healer's own record (dry-run,
propose-only when the kind has used its failed-heal budget). Then the guard; then
the intent goes into the audit log *before* the mutating call and the result after it, so a
crash in between leaves a trace that the next start-up turns into a cooldown, not a repeat.
A guard or precondition refusal is recorded as refused: it is not a failed heal and never
trips a breaker; one that only more room in the cluster lifts (no node for a pod the action
would move) is escalated too, since waiting will not lift it. A preview (dry-run or
propose-only) is repeated at most once per cooldown. On the wall clock, an action that may
wait minutes on the cluster (a drain paced by its budgets) starts in a thread once its intent
is written, and its result is written at the first tick after it returned (``finish``).
A service no runbook diagnosed gets the forecast's floor when predictive scaling is on.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import numpy as np

from actuators import (
    Action,
    ActionContext,
    ActionResult,
    ActuatorError,
    Guard,
    GuardKey,
    GuardRejectedError,
    NoRoomError,
)
from contracts import ScenarioId
from ooda._autonomy import ErrorBudget
from ooda._journal import Journal
from ooda._predictive import PREDICTIVE, predictive_floor
from ooda._records import (
    FOLLOW_UP,
    Autonomy,
    ComponentKind,
    Diagnosis,
    Finding,
    PendingAction,
    Plan,
    Snapshot,
)
from ooda._settings import OodaSettings
from ooda.runbooks import Runbook


def action_record(action: Action) -> dict[str, Any]:
    """The action as the audit log keeps it (enough to rebuild it after a restart)."""
    return {"kind": str(action.kind), "fields": asdict(action)}


def result_record(result: ActionResult) -> dict[str, Any]:
    """The result as the audit log keeps it."""
    return asdict(result)


@dataclass(frozen=True)
class Running:
    """An action started beside the loop's ticks that has not been recorded yet."""

    plan: Plan
    key: GuardKey
    evidence: dict[str, Any]
    intent: int
    """The audit entry that announced it; its result will refer to it."""
    job: Future[ActionResult]


#: The scenario of an escalated SLO breach no runbook explains.
UNEXPLAINED = "unexplained"


class Actor:
    """Turns diagnoses into plans and plans into guarded, audited actions."""

    def __init__(
        self,
        settings: OodaSettings,
        runbooks: list[Runbook],
        guard: Guard,
        budget: ErrorBudget,
        journal: Journal,
        context: ActionContext,
    ) -> None:
        self.settings = settings
        self.runbooks = runbooks
        self.guard = guard
        self.budget = budget
        self.journal = journal
        self.context = context
        self._quiet: dict[tuple[str, str], tuple[str, datetime]] = {}
        self._blocked: dict[tuple[str, str], datetime] = {}
        self._follow = settings.loop.follow_root_cause
        self._diagnosed_at: datetime | None = None
        self._diagnosed: dict[str, tuple[Runbook, Diagnosis] | None] = {}

    # -- decide ---------------------------------------------------------------------------
    def decide(self, snapshot: Snapshot, service: str, awaiting: bool = False) -> Plan | None:
        """The plan for ``service``: its root cause's runbook (or else the first matching
        one) proposes; a symptom whose root cause another service heals is left to it.
        ``awaiting``: an action of ooda's for the service awaits its verdict, so a runbook
        with nothing more to do is not escalated yet (the consumers just added may be the
        partition count's last; the verdict, or the next tick after it, says whether a human
        is needed)."""
        found = self.diagnose(snapshot, service)
        idle = snapshot.views[service].idle
        if found is None:
            return None if idle else self._predict(snapshot, service)
        runbook, diagnosis = found
        if awaiting and runbook.last_resort:
            return None
        healer = (
            self._healer(snapshot, service) if runbook.follows_root_cause and not idle else None
        )
        if healer is not None:
            cause, owner = healer
            if not self.journal.recently(service, "deferred", snapshot.at):
                self.journal.event(
                    snapshot.at,
                    "deferred",
                    service,
                    f"{diagnosis.scenario} left to {owner}: its root cause is {cause}",
                )
            return None
        if not self.journal.recently(service, "diagnosis", snapshot.at):
            self.journal.event(
                snapshot.at,
                "diagnosis",
                service,
                f"{diagnosis.scenario} ({diagnosis.confidence:.2f})",
            )
        action = runbook.propose(diagnosis, snapshot)
        if action is None and awaiting:
            return None
        if action is None:
            why = diagnosis.evidence.get("escalate_because") or "no safe action"
            self._once(snapshot.at, diagnosis, "none", f"{why}; escalated", {})
            return None
        if idle and not action.verifies_idle:
            why = f"{action.kind} is verified on its users' SLIs and {service} serves none"
            self._once(snapshot.at, diagnosis, "none", f"{why}; escalated", {})
            return None
        finding = runbook.follow_up(diagnosis, action, snapshot)
        if finding is not None:
            evidence = {**diagnosis.evidence, FOLLOW_UP: finding.record()}
            diagnosis = replace(diagnosis, evidence=evidence)
        return self._plan(diagnosis, action, runbook.deadline, snapshot.at)

    def unexplained(self, snapshot: Snapshot, busy: set[str]) -> None:
        """Escalate each served service that has been outside its SLO for
        ``unexplained_after`` in a row while no runbook diagnoses it and nothing ooda did for
        it (``busy``) awaits its verdict: a burn ooda cannot explain is a human's at once."""
        minutes = max(1, int(self.settings.escalation.unexplained_after / timedelta(minutes=1)))
        for service in snapshot.usable():
            if service in busy or self.diagnose(snapshot, service) is not None:
                continue
            rows = snapshot.views[service].history.tail(minutes)
            slo = self.settings.slo_for(service)
            p95 = rows["p95_latency_ms"].to_numpy(dtype=float)
            errors = rows["error_rate"].to_numpy(dtype=float)
            breached = (p95 > slo.p95_ms) | (errors > slo.max_error_rate)
            if len(rows) < minutes or not breached.all():
                continue  # a minute without requests (NaN) or inside the SLO breaks the run
            if self._owned_elsewhere(snapshot, service, busy):
                continue  # a callee's incident, diagnosed, healing or escalated there
            why = (
                f"outside its SLO for {minutes} minutes (p95 up to {np.nanmax(p95):.0f} ms,"
                f" errors up to {np.nanmax(errors):.1%}) and no runbook explains it; escalated"
            )
            evidence = {
                "scenario": UNEXPLAINED,
                "minutes_outside_slo": minutes,
                "p95_ms": [round(float(v), 1) for v in p95],
                "error_rate": [round(float(v), 4) for v in errors],
            }
            orientation = snapshot.orientation.get(service)
            if orientation is not None and orientation.causes:
                evidence["root_causes"] = orientation.summary()
            workload = snapshot.workloads[service].workload
            self._escalate(snapshot.at, service, "none", workload, why, evidence)

    def _owned_elsewhere(self, snapshot: Snapshot, service: str, busy: set[str]) -> bool:
        """Whether ``service``'s symptom is ranked as another service's fault that ooda
        already diagnoses, is healing (``busy``: its action awaits the verdict) or has
        escalated: that incident speaks for this one."""
        orientation = snapshot.orientation.get(service)
        cause = orientation.elsewhere() if orientation is not None else None
        if cause is None:
            return False
        return any(
            owner in snapshot.views
            and owner in snapshot.workloads
            and (
                owner in busy
                or self.diagnose(snapshot, owner) is not None
                or self.journal.recently(owner, "escalation", snapshot.at, within_s=1800)
            )
            for owner in cause.owners
            if owner != service
        )

    def diagnose(self, snapshot: Snapshot, service: str) -> tuple[Runbook, Diagnosis] | None:
        """The first diagnosis of ``service``, trying the runbooks for its root cause's kind
        first; with the ranked causes in its evidence. Computed once per snapshot."""
        if self._diagnosed_at != snapshot.at:
            self._diagnosed_at, self._diagnosed = snapshot.at, {}
        if service in self._diagnosed:
            return self._diagnosed[service]
        orientation = snapshot.orientation.get(service)
        books = self.runbooks
        if snapshot.views[service].idle:
            books = [rb for rb in books if rb.acts_when_idle]
        top = orientation.top if orientation is not None else None
        if self._follow and top is not None and top.kind is not ComponentKind.SERVICE:
            # The service uses the faulty component: its healer goes first.
            books = sorted(books, key=lambda rb: rb.heals is not top.kind)
        found = None
        for runbook in books:
            diagnosis = runbook.matches(snapshot, service)
            if diagnosis is not None:
                if orientation is not None:
                    evidence = {
                        **diagnosis.evidence,
                        "symptom": orientation.why,
                        "root_causes": orientation.summary(),
                    }
                    diagnosis = replace(diagnosis, evidence=evidence)
                found = (runbook, diagnosis)
                break
        self._diagnosed[service] = found
        return found

    def _healer(self, snapshot: Snapshot, service: str) -> tuple[str, str] | None:
        """``(cause, service)`` when ``service``'s root cause is another service's to heal and
        that service's diagnosis this tick heals it (a runbook for its kind; for a service,
        any): else the symptom is healed where it shows."""
        orientation = snapshot.orientation.get(service)
        cause = orientation.elsewhere() if orientation is not None and self._follow else None
        if cause is None:
            return None
        usable = set(snapshot.usable())
        for owner in cause.owners:
            found = self.diagnose(snapshot, owner) if owner in usable else None
            if owner != service and found is not None:
                runbook, _ = found
                if cause.kind is ComponentKind.SERVICE or runbook.heals is cause.kind:
                    return cause.component, owner
        return None

    def _predict(self, snapshot: Snapshot, service: str) -> Plan | None:
        """The forecast's floor for a service no runbook diagnosed (predictive scaling)."""
        action = predictive_floor(snapshot, service, self.settings)
        if action is None:
            return None
        diagnosis = Diagnosis(
            ScenarioId.TRAFFIC_SURGE,
            snapshot.region,
            service,
            snapshot.workloads[service].workload,
            1.0,
            {"forecast_version": snapshot.forecast.source(service) if snapshot.forecast else ""},
            PREDICTIVE,
        )
        return self._plan(diagnosis, action, timedelta(0), snapshot.at)

    def _plan(
        self, diagnosis: Diagnosis, action: Action, deadline: timedelta, now: datetime
    ) -> Plan:
        if self.settings.dry_run or self.settings.guard.dry_run:
            return Plan(diagnosis, action, Autonomy.DRY_RUN, deadline, "dry-run mode")
        standing = self.budget.standing(str(action.kind), now)
        if standing.propose_only:
            return Plan(diagnosis, action, Autonomy.PROPOSE, deadline, standing.why)
        return Plan(diagnosis, action, Autonomy.ACT, deadline)

    # -- act ------------------------------------------------------------------------------
    def act(
        self, plan: Plan, now: datetime, background: Executor | None = None
    ) -> PendingAction | Running | None:
        """Carry ``plan`` out as far as its autonomy and the guard allow. With ``background``,
        an action that may wait on the cluster (``Action.waits``) is started there and
        returned running; :meth:`finish` records it once it has returned."""
        action, diagnosis = plan.action, plan.diagnosis
        key = GuardKey.of(action)
        evidence = {
            **diagnosis.evidence,
            "scenario": str(diagnosis.scenario),
            "confidence": diagnosis.confidence,
            "runbook": diagnosis.runbook,
            "reason": action.reason,
            "action": action_record(action),
            "guard": key.as_dict(),
            "deadline_s": plan.deadline.total_seconds(),
        }
        if plan.autonomy is Autonomy.PROPOSE:
            if self._fresh(key, "propose", now):
                self.journal.write_action(
                    now, "decision", action, f"proposed: {plan.why}", evidence
                )
                self.journal.stats.proposed[action.kind] += 1
                self.journal.event(now, "proposed", action.service, f"{action.kind}: {plan.why}")
            return None
        try:
            self.guard.check(action, now)
        except GuardRejectedError as exc:
            self._refused(now, action, key, exc.reason, evidence)
            return None
        if plan.autonomy is Autonomy.DRY_RUN:
            if self._fresh(key, "preview", now):
                self._preview(now, action, evidence)
            return None
        blocked = self._blocked.get((key.kind, key.breaker))
        if blocked is not None and now - blocked < self._cooldown(key):
            return None  # its precondition refused it lately; the state has not had time to change
        self.journal.write_action(now, "decision", action, "approved", evidence)
        intent = self.journal.write_action(now, "intent", action, "applying", evidence)
        context = replace(self.context, audit_ref=str(intent))
        if background is not None and action.waits:
            self.guard.start(key)
            job = background.submit(action.apply, context)
            return Running(plan, key, evidence, intent, job)
        return self._conclude(plan, key, evidence, intent, now, partial(action.apply, context))

    def finish(self, running: Running, now: datetime) -> PendingAction | None:
        """Record what an action run beside the ticks came to, once it has returned: as if it
        had been applied at ``now``, the tick that saw it return."""
        self.guard.finish(running.key)
        return self._conclude(
            running.plan, running.key, running.evidence, running.intent, now, running.job.result
        )

    def _conclude(
        self,
        plan: Plan,
        key: GuardKey,
        evidence: dict[str, Any],
        intent: int,
        now: datetime,
        apply: Callable[[], ActionResult],
    ) -> PendingAction | None:
        """Apply (or collect) the action announced by audit entry ``intent`` and record its
        result: applied and awaiting its verdict, refused, or failed."""
        action, diagnosis = plan.action, plan.diagnosis
        try:
            result = apply()
        except GuardRejectedError as exc:
            # Nothing of this action is in the guard yet; releasing its key would free the slot
            # of an earlier action on the same node or workload that still awaits its verdict.
            self.journal.write_action(
                now, "action", action, f"refused: {exc.reason}", evidence, ref=intent
            )
            self._refused(now, action, key, exc.reason, evidence, audit=False)
            self._blocked[(key.kind, key.breaker)] = now
            if isinstance(exc, NoRoomError):
                why = f"{action.kind} on {action.target} refused: {exc.reason}; escalated"
                self._escalate(now, action.service, str(action.kind), action.target, why, evidence)
            return None
        except ActuatorError as exc:
            self.guard.record_applied(key, now)
            self.guard.record_outcome(key, False, now)
            self.budget.record_failure(str(action.kind), now)
            self.journal.stats.failed[action.kind] += 1
            self.journal.write_action(now, "action", action, f"error: {exc}", evidence, ref=intent)
            self.journal.event(now, "action-error", action.service, str(exc))
            return None
        self.guard.record_applied(key, now)
        self.journal.stats.actions[action.kind] += 1
        record = {**evidence, "result": result_record(result)}
        entry = self.journal.write_action(now, "action", action, "applied", record, ref=intent)
        self.journal.event(now, "action", action.service, f"{action.kind} {action.target}")
        return PendingAction(
            action,
            result,
            now,
            now + plan.deadline,
            entry,
            diagnosis.scenario,
            Finding.of(diagnosis.evidence.get(FOLLOW_UP)),
        )

    def _preview(self, now: datetime, action: Action, evidence: dict[str, Any]) -> None:
        result = action.apply(replace(self.context, dry_run=True))
        self.journal.write_action(now, "decision", action, "approved", evidence, dry_run=True)
        record = {**evidence, "result": result_record(result)}
        self.journal.write_action(now, "action", action, "dry-run", record, dry_run=True)
        self.journal.stats.actions[action.kind] += 1
        self.journal.event(now, "action", action.service, f"{action.kind} (dry-run)")

    def _refused(
        self,
        now: datetime,
        action: Action,
        key: GuardKey,
        reason: str,
        evidence: dict[str, Any],
        audit: bool = True,
    ) -> None:
        last = self._quiet.get((key.kind, key.breaker))
        if last is not None and last[0] == reason and now - last[1] < timedelta(minutes=5):
            return
        self._quiet[(key.kind, key.breaker)] = (reason, now)
        self.journal.stats.refused[action.kind] += 1
        if audit:
            self.journal.write_action(now, "refusal", action, f"refused: {reason}", evidence)
        self.journal.event(now, "refused", action.service, f"{action.kind}: {reason}")

    def _cooldown(self, key: GuardKey) -> timedelta:
        return self.settings.guard.cooldown_by_kind.get(key.kind, self.settings.guard.cooldown)

    def _fresh(self, key: GuardKey, what: str, now: datetime) -> bool:
        """Whether a preview of ``key`` is due (at most one per cooldown)."""
        cooldown = self._cooldown(key)
        last = self._quiet.get((key.kind + ":" + what, key.breaker))
        if last is not None and now - last[1] < cooldown:
            return False
        self._quiet[(key.kind + ":" + what, key.breaker)] = (what, now)
        return True

    def _once(
        self,
        now: datetime,
        diagnosis: Diagnosis,
        action: str,
        outcome: str,
        evidence: dict[str, Any],
    ) -> None:
        evidence = {**diagnosis.evidence, **evidence, "scenario": str(diagnosis.scenario)}
        self._escalate(now, diagnosis.service, action, diagnosis.target, outcome, evidence)

    def _escalate(
        self,
        now: datetime,
        service: str,
        action: str,
        target: str,
        outcome: str,
        evidence: dict[str, Any],
    ) -> None:
        """Tell a human about ``service``, at most once per half hour."""
        if self.journal.recently(service, "escalation", now, within_s=1800):
            return
        self.journal.write(now, "escalation", service, action, target, outcome, evidence)
        self.journal.stats.escalations[service] += 1
        self.journal.event(now, "escalation", service, outcome)
