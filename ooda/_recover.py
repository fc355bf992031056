"""Rebuild the loop's memory from the audit log at start-up.

A loop that forgets on restart repeats itself: a cooldown, a blast-radius count, an open
breaker, the failed-heal budget and the actions still awaiting verification are all
replayed from the log, through the same ``record_*`` calls the loop makes live. An intent
without a result (the process died between the two) is taken as applied: the cooldown
holds and nothing is repeated, and the entry is closed as interrupted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from actuators import ActionResult, Guard, GuardKey, action_class
from contracts import ScenarioId
from ooda._audit import AuditEntry, AuditStore
from ooda._autonomy import ErrorBudget
from ooda._predictive import PREDICTIVE
from ooda._records import CONTINUED, FOLLOW_UP, Finding, PendingAction

log = logging.getLogger("ooda.recover")


@dataclass
class Recovered:
    """What a restart found in the audit log."""

    pending: list[PendingAction] = field(default_factory=list)
    interrupted: list[AuditEntry] = field(default_factory=list)
    """Intents with no result: the process stopped in between."""
    skipped: list[str] = field(default_factory=list)
    """Entries that could not be replayed, and why."""
    findings: list[AuditEntry] = field(default_factory=list)
    """Findings opened and not yet resolved, oldest first."""
    findings_opened: dict[tuple[str, str], datetime] = field(default_factory=dict)
    """When a finding was last opened, per scenario and subject, resolved or not (one a day
    per subject: a restart does not open the same finding again)."""


def pending_of(entry: AuditEntry, deadline: datetime | None = None) -> PendingAction:
    """The verification ``entry`` (an applied action) awaits; ``deadline``: an earlier one,
    inherited from the step it continues."""
    ev = entry.evidence
    action = action_class(ev["action"]["kind"])(**ev["action"]["fields"])
    result = ActionResult(**ev["result"])
    assert entry.id is not None
    own = entry.at + timedelta(seconds=float(ev["deadline_s"]))
    return PendingAction(
        action,
        result,
        entry.at,
        own if deadline is None else min(own, deadline),
        entry.id,
        ScenarioId(ev["scenario"]),
        Finding.of(ev.get(FOLLOW_UP)),
    )


def approved_since(
    audit: AuditStore, guard: Guard, after_id: int
) -> tuple[list[PendingAction], int]:
    """Actions a human approved (``ooda approve``) and applied after entry ``after_id``, taken
    into ``guard`` and returned as verifications to run; and the newest id read."""
    found: list[PendingAction] = []
    last = after_id
    for entry in audit.entries("action", after_id=after_id):
        last = max(last, entry.id or last)
        if entry.dry_run or entry.outcome != "applied" or "approved_by" not in entry.evidence:
            continue
        try:
            guard.record_applied(GuardKey.from_dict(entry.evidence["guard"]), entry.at)
            found.append(pending_of(entry))
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("approved action %s not adopted: %s: %s", entry.id, type(exc).__name__, exc)
    return found, last


def recover(audit: AuditStore, guard: Guard, budget: ErrorBudget) -> Recovered:
    """Replay ``audit`` into ``guard`` and ``budget``; return the pending verifications."""
    out = Recovered()
    intents: dict[int, AuditEntry] = {}
    applied: dict[int, tuple[AuditEntry, GuardKey]] = {}
    inherited: dict[int, datetime] = {}  # a step's deadline: the first step's
    for entry in audit.entries():
        if entry.dry_run:
            continue
        try:
            if entry.kind == "intent" and "guard" in entry.evidence and entry.id is not None:
                intents[entry.id] = entry
            elif entry.kind == "action" and entry.ref in intents:
                intent = intents.pop(entry.ref)
                if entry.outcome.startswith("interrupted"):
                    # Closed by an earlier restart: still taken as applied at its intent.
                    key = GuardKey.from_dict(intent.evidence["guard"])
                    guard.record_applied(key, intent.at)
                elif entry.outcome == "applied" and entry.id is not None:
                    key = GuardKey.from_dict(entry.evidence["guard"])
                    guard.record_applied(key, entry.at)
                    if entry.evidence.get("runbook") != PREDICTIVE:  # a floor is not a heal
                        applied[entry.id] = (entry, key)
                elif entry.outcome.startswith("error"):
                    key = GuardKey.from_dict(entry.evidence["guard"])
                    guard.record_applied(key, entry.at)
                    guard.record_outcome(key, False, entry.at)
                    budget.record_failure(key.kind, entry.at)
            elif entry.kind == "verification" and entry.ref in applied:
                earlier, key = applied.pop(entry.ref)
                if entry.outcome == CONTINUED:  # a later step of the same heal has the verdict
                    first = pending_of(earlier, inherited.get(earlier.id or 0)).deadline
                    inherited[int(entry.evidence["continued_by"])] = first
                    continue
                healed = entry.outcome == "healed"
                guard.record_outcome(key, healed, entry.at)
                if not healed:
                    budget.record_failure(key.kind, entry.at)
            elif entry.kind == "reset":
                guard.reset(entry.target)
            elif entry.kind == "finding" and entry.outcome == "open":
                out.findings.append(entry)
                out.findings_opened[(str(entry.evidence["scenario"]), entry.target)] = entry.at
            elif entry.kind == "finding":
                out.findings = [f for f in out.findings if f.id != entry.ref]
        except (KeyError, TypeError, ValueError) as exc:
            out.skipped.append(f"entry {entry.id}: {type(exc).__name__}: {exc}")
    for entry in intents.values():
        guard.record_applied(GuardKey.from_dict(entry.evidence["guard"]), entry.at)
        out.interrupted.append(entry)
    for entry, _ in applied.values():
        try:
            out.pending.append(pending_of(entry, inherited.get(entry.id or 0)))
        except (KeyError, TypeError, ValueError) as exc:
            out.skipped.append(f"entry {entry.id}: {type(exc).__name__}: {exc}")
    return out


def reset_breaker(audit: AuditStore, breaker: str, who: str, why: str, now: datetime) -> int:
    """Record that a human closed the breaker of ``breaker``; the loop honours it on start."""
    return audit.write(
        AuditEntry(
            now,
            "reset",
            breaker,
            "none",
            breaker,
            False,
            "breaker reset",
            {"by": who, "reason": why},
        )
    )
