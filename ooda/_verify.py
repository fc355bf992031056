"""Verify: did the action heal what it was meant to heal, before its deadline?

Each action judges itself (``Action.check``) on the minutes after it was applied and the
workload as observed this tick. A failed heal counts against the workload's breaker and the
kind's weekly budget; it is undone where stepping back is the fix (a floor lowered too far),
and escalated otherwise — with "circuit breaker open" once the workload has failed too often.
A heal that worked may still leave work for the owners (the runbook's ``follow_up``: a leak
restarts only postpone, a drained node to repair): it is opened as a finding.
A heal in steps (``Action.continues``: a second redrive of the same queue) is judged once, on
its last step; the earlier steps are closed as "continued".
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pandas as pd

from actuators import ActionContext, ActuatorError, Guard, GuardKey
from contracts import NodeState, Outcome, Verdict, VerifyWindow
from ooda._audit import AuditEntry
from ooda._autonomy import ErrorBudget
from ooda._freshness import service_freshness
from ooda._journal import Journal
from ooda._records import CONTINUED, Finding, PendingAction, Snapshot
from ooda._settings import OodaSettings


class Verifier:
    """Judges pending actions and concludes them: record, undo, escalate."""

    def __init__(
        self,
        settings: OodaSettings,
        guard: Guard,
        budget: ErrorBudget,
        journal: Journal,
        context: ActionContext,
    ) -> None:
        self.settings = settings
        self.guard = guard
        self.budget = budget
        self.journal = journal
        self.context = context
        self._verified: list[tuple[str, datetime, datetime]] = []
        self.findings_opened: dict[tuple[str, str], datetime] = {}
        """When a finding was last opened, per scenario and subject (rebuilt on a restart)."""
        self.open_findings: list[AuditEntry] = []
        """Findings opened and not resolved (only a node's is resolved by what ooda sees)."""

    def drain_verified(self) -> list[tuple[str, datetime, datetime]]:
        """The heals verified since the last call: (service, applied at, verified at)."""
        out, self._verified = self._verified, []
        return out

    def window(self, pending: PendingAction, snapshot: Snapshot) -> VerifyWindow | None:
        """What ``pending`` is judged on this tick (None while its service is not observed)."""
        view = snapshot.views.get(pending.action.service)
        if view is None or view.history.empty:
            return None
        applied = pd.Timestamp(pending.applied_at)
        after = view.history[view.history["timestamp"] > applied]
        fresh = service_freshness(snapshot.families, pending.action.service)
        slo = self.settings.slo_for(pending.action.service)
        return VerifyWindow(
            metrics=after.reset_index(drop=True),
            workload=snapshot.workloads.get(pending.action.service),
            applied_at=pending.applied_at,
            now=snapshot.at,
            deadline=pending.deadline,
            p95_ms=slo.p95_ms,
            max_error_rate=slo.max_error_rate,
            healthy_minutes=self.settings.verify.healthy_minutes,
            freshness=None if fresh is None else fresh[fresh.index > applied],
            max_freshness_s=slo.freshness_s,
        )

    def judge(self, pending: PendingAction, snapshot: Snapshot) -> bool:
        """Judge ``pending`` now; True when it is concluded."""
        window = self.window(pending, snapshot)
        if window is None:
            return False
        outcome = pending.action.check(pending.result, window)
        if outcome.verdict is Verdict.PENDING:
            return False
        self.conclude(pending, outcome, snapshot.at)
        return True

    def continued(self, earlier: PendingAction, later: PendingAction, now: datetime) -> bool:
        """Whether ``later`` continues ``earlier`` (``Action.continues``); if so ``earlier``
        is closed as "continued", neither healed nor failed: the heal is judged on ``later``."""
        old, new = earlier.action, later.action
        same = (old.kind, old.target, old.service) == (new.kind, new.target, new.service)
        if not (new.continues and same):
            return False
        evidence = {
            "continued_by": later.audit_id,
            "applied_at": earlier.applied_at.isoformat(),
            "scenario": str(earlier.scenario),
            "guard": GuardKey.of(old).as_dict(),
        }
        self.journal.write(
            now,
            "verification",
            old.service,
            str(old.kind),
            old.target,
            CONTINUED,
            evidence,
            ref=earlier.audit_id,
        )
        self.journal.event(now, CONTINUED, old.service, f"{old.kind}: judged with the next step")
        return True

    def conclude(self, pending: PendingAction, outcome: Outcome, now: datetime) -> None:
        """Record the verdict, then undo or escalate a failure."""
        action = pending.action
        key = GuardKey.of(action)
        healed = outcome.verdict is Verdict.HEALED
        evidence = {
            "reason": outcome.reason,
            "applied_at": pending.applied_at.isoformat(),
            "scenario": str(pending.scenario),
            "guard": key.as_dict(),
        }
        verification = self.journal.write(
            now,
            "verification",
            action.service,
            str(action.kind),
            action.target,
            str(outcome.verdict),
            evidence,
            ref=pending.audit_id,
        )
        (self.journal.stats.healed if healed else self.journal.stats.failed)[action.kind] += 1
        self.journal.event(
            now, str(outcome.verdict), action.service, f"{action.kind}: {outcome.reason}"
        )
        opened = self.guard.record_outcome(key, healed, now)
        if healed:
            self._verified.append((action.service, pending.applied_at, now))
            if pending.finding is not None:
                self._open_finding(pending, pending.finding, verification, now)
            return
        self.budget.record_failure(str(action.kind), now)
        if action.undo_when_failed(pending.result):
            self._undo(pending, now)
            if not opened:
                return
        outcome_text = "circuit breaker open" if opened else "heal failed"
        self.journal.write(
            now,
            "escalation",
            action.service,
            str(action.kind),
            action.target,
            outcome_text,
            {"reason": outcome.reason, "workload": action.workload},
            ref=pending.audit_id,
        )
        self.journal.stats.escalations[action.service] += 1
        self.journal.event(now, "escalation", action.service, f"{outcome_text}: {outcome.reason}")

    def _open_finding(
        self, pending: PendingAction, finding: Finding, verification: int, now: datetime
    ) -> None:
        """Tell the owners what the heal left for them, once per subject and scenario in
        ``finding_every`` (a restarted process leaks again; a drained node stays cordoned)."""
        key = (str(pending.scenario), finding.subject)
        last = self.findings_opened.get(key)
        if last is not None and now - last < self.settings.escalation.finding_every:
            return
        self.findings_opened[key] = now
        action = pending.action
        evidence = {"text": finding.text, "scenario": str(pending.scenario)}
        entry = self.journal.write(
            now,
            "finding",
            action.service,
            str(action.kind),
            finding.subject,
            "open",
            evidence,
            ref=verification,
        )
        self.journal.event(now, "finding", action.service, finding.text)
        self.open_findings.append(
            AuditEntry(now, "finding", action.service, str(action.kind), finding.subject, False,
                       "open", evidence, verification, entry)
        )  # fmt: skip

    def settle_findings(self, snapshot: Snapshot) -> None:
        """Resolve the findings whose work is seen done: a node the owners repaired and
        uncordoned (Ready, schedulable, no pressure), or replaced (gone from the cluster).
        The others stay open until their alert expires (``finding_for``): ooda cannot see a
        leak fixed or a quota raised."""
        still = []
        for finding in self.open_findings:
            kind, _, name = finding.target.partition("/")
            node = snapshot.nodes.get(name) if kind == "node" else None
            if kind != "node" or (node is not None and not _back_in_service(node)):
                still.append(finding)
                continue
            done = "replaced: gone from the cluster" if node is None else "Ready and uncordoned"
            self.journal.write(
                snapshot.at,
                "finding",
                finding.service,
                finding.action,
                finding.target,
                "resolved",
                {"text": f"{finding.target} {done}", "scenario": finding.evidence.get("scenario")},
                ref=finding.id,
            )
            self.journal.event(snapshot.at, "finding", finding.service, f"{finding.target} {done}")
        self.open_findings = still

    def _undo(self, pending: PendingAction, now: datetime) -> None:
        action = pending.action
        intent = self.journal.write(
            now,
            "intent",
            action.service,
            str(action.kind),
            action.target,
            "undoing",
            {"result": pending.result.after},
            ref=pending.audit_id,
        )
        try:
            undone = action.undo(replace(self.context, audit_ref=str(intent)), pending.result)
            outcome = "undone" if undone is not None else "nothing to undo"
        except ActuatorError as exc:
            outcome = f"undo refused: {exc}"
        self.journal.write(
            now, "undo", action.service, str(action.kind), action.target, outcome, {}, ref=intent
        )
        self.journal.event(now, "undo", action.service, outcome)


def _back_in_service(node: NodeState) -> bool:
    return node.ready == "True" and not node.unschedulable and not node.pressures
