"""A human approves a proposal: ``ooda approve ID`` applies the action the loop proposed.

A propose-only action (a person's config edited back, say) waits in the audit log as a
``decision`` whose outcome is ``proposed: ...``. Approving it goes through everything the
loop's own actions go through: the guard (rebuilt from the log, so cooldowns, blast radius
and breakers hold), an intent before the call and the result after it, and the same
evidence. The result names the approver; a running loop adopts it at its next tick and
verifies it like its own (and a loop that starts later finds it in the log).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from actuators import (
    ActionContext,
    ActuatorError,
    Guard,
    GuardRejectedError,
    action_class,
)
from contracts import KubeClients
from ooda._act import result_record
from ooda._audit import AuditEntry, AuditStore
from ooda._autonomy import ErrorBudget
from ooda._errors import OodaError
from ooda._recover import recover
from ooda._settings import OodaSettings


class ApprovalError(OodaError):
    """The entry is not a proposal that may be approved (unknown, not proposed, done)."""


@dataclass(frozen=True)
class Approval:
    """What approving did."""

    proposal: AuditEntry
    outcome: str
    """``applied``, ``dry-run``, ``refused: ...`` or ``error: ...``."""
    result: dict[str, Any] | None = None


def proposal(audit: AuditStore, proposal_id: int) -> AuditEntry:
    """The proposal ``proposal_id`` (:class:`ApprovalError` when it is none, or is done)."""
    entries = audit.entries()
    found = next((e for e in entries if e.id == proposal_id), None)
    if found is None:
        raise ApprovalError(f"no audit entry {proposal_id}")
    if found.kind != "decision" or not found.outcome.startswith("proposed"):
        raise ApprovalError(
            f"entry {proposal_id} is a {found.kind} ({found.outcome!r}), not a proposal"
        )
    if "action" not in found.evidence:
        raise ApprovalError(f"entry {proposal_id} does not record its action")
    done = next(
        (e for e in entries if e.ref == proposal_id and e.kind == "decision" and not e.dry_run),
        None,
    )
    if done is not None:
        raise ApprovalError(f"proposal {proposal_id} was {done.outcome} at {done.at:%H:%M:%S}")
    return found


def approve(
    audit: AuditStore,
    proposal_id: int,
    kube: KubeClients,
    settings: OodaSettings,
    approver: str,
    now: datetime,
    *,
    dry_run: bool = False,
) -> Approval:
    """Apply proposal ``proposal_id`` as ``approver``, guarded and audited like the loop."""
    found = proposal(audit, proposal_id)
    record = found.evidence["action"]
    action = action_class(record["kind"])(**record["fields"])
    guard = Guard(settings.guard)
    recover(audit, guard, ErrorBudget(settings.autonomy))
    evidence = {**found.evidence, "approved_by": approver, "proposal": proposal_id}

    def write(kind: str, outcome: str, ev: dict[str, Any], ref: int | None) -> int:
        entry = AuditEntry(
            now, kind, found.service, str(action.kind), action.target, dry_run, outcome, ev, ref
        )
        return audit.write(entry)

    try:
        if not dry_run:
            guard.check(action, now)
    except GuardRejectedError as exc:
        write("decision", f"refused: {exc.reason}", evidence, proposal_id)
        return Approval(found, f"refused: {exc.reason}")
    write("decision", f"approved by {approver}", evidence, proposal_id)
    intent = write("intent", "applying", evidence, None)
    context = ActionContext(kube, dry_run=dry_run, now=lambda: now, audit_ref=str(intent))
    try:
        result = action.apply(context)
    except GuardRejectedError as exc:
        write("action", f"refused: {exc.reason}", evidence, intent)
        return Approval(found, f"refused: {exc.reason}")
    except ActuatorError as exc:
        write("action", f"error: {exc}", evidence, intent)
        return Approval(found, f"error: {exc}")
    outcome = "dry-run" if dry_run else "applied"
    done = {**evidence, "result": result_record(result)}
    write("action", outcome, done, intent)
    return Approval(found, outcome, done["result"])
