"""What the loop tells people: the audit log, a timeline of events, counters, and warnings.

Every stage writes through one journal, so a problem is reported once (not every tick), an
audit write that fails is logged instead of killing the loop, and the timeline a scorecard
reads holds the same facts as the audit log.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from actuators import Action
from ooda._audit import AuditEntry, AuditStore

log = logging.getLogger("ooda.loop")


@dataclass(frozen=True)
class LoopEvent:
    """Something worth putting on a timeline: a detection, an action, a verdict."""

    at: datetime
    kind: str
    service: str
    detail: str


@dataclass
class LoopStats:
    """Counters of what the loop did, for scorecards."""

    ticks: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    healed: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    proposed: Counter[str] = field(default_factory=Counter)
    escalations: Counter[str] = field(default_factory=Counter)
    problems: Counter[str] = field(default_factory=Counter)
    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    """Wall seconds spent per part of the tick (metrics, cluster, anomaly, decide, ...)."""

    @contextmanager
    def timed(self, part: str) -> Iterator[None]:
        """Add the wall time of the block to ``seconds[part]``."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[part] += time.perf_counter() - began


class Journal:
    """Audit log, events, stats and de-duplicated problem reports of one loop."""

    def __init__(self, audit: AuditStore) -> None:
        self.audit = audit
        self.events: list[LoopEvent] = []
        self.stats = LoopStats()
        self._last_problem: dict[tuple[str, str], str] = {}
        self._written: list[AuditEntry] = []

    def write(
        self,
        at: datetime,
        kind: str,
        service: str,
        action: str,
        target: str,
        outcome: str,
        evidence: dict[str, Any],
        *,
        dry_run: bool = False,
        ref: int | None = None,
    ) -> int:
        """Append one audit entry and return its id (raises if the log cannot be written)."""
        entry = AuditEntry(at, kind, service, action, target, dry_run, outcome, evidence, ref)
        written = self.audit.write(entry)
        self._written.append(replace(entry, id=written))
        return written

    def write_action(
        self,
        at: datetime,
        kind: str,
        action: Action,
        outcome: str,
        evidence: dict[str, Any],
        *,
        dry_run: bool = False,
        ref: int | None = None,
    ) -> int:
        """Append one entry about ``action`` (its workload, kind and target) and return its id."""
        return self.write(
            at,
            kind,
            action.service,
            str(action.kind),
            action.target,
            outcome,
            evidence,
            dry_run=dry_run,
            ref=ref,
        )

    def drain(self) -> list[AuditEntry]:
        """The entries written since the last call, with their ids."""
        out, self._written = self._written, []
        return out

    def event(self, at: datetime, kind: str, service: str, detail: str) -> None:
        """Put something on the timeline."""
        self.events.append(LoopEvent(at, kind, service, detail))

    def recently(self, service: str, kind: str, now: datetime, within_s: float = 300.0) -> bool:
        """Whether an event of ``kind`` for ``service`` happened in the last ``within_s``."""
        for event in reversed(self.events):
            if (now - event.at).total_seconds() > within_s:
                return False
            if event.service == service and event.kind == kind:
                return True
        return False

    def problem(
        self,
        service: str,
        now: datetime,
        reason: str,
        stage: str = "input",
        limits: str = "no action on it this tick",
    ) -> None:
        """Report why ``service`` (``*``: everything) is not acted on (or, ``limits``, on what
        only); once per new reason of each channel (``input``: what was observed; else the
        stage that raised), so a stage failing every tick is not re-reported because another
        went well."""
        self.stats.problems[service] += 1
        if self._last_problem.get((service, stage)) == reason:
            return
        self._last_problem[(service, stage)] = reason
        log.warning("%s: %s (%s)", service, reason, limits)
        try:
            self.write(now, "observation", service, "none", service, f"skipped: {reason}", {})
        except Exception as exc:  # the audit log failing must not stop the loop
            log.error("audit log write failed: %s: %s", type(exc).__name__, exc)

    def current_problems(self) -> dict[tuple[str, str], str]:
        """What is not trusted now: (service or ``*``, channel) -> the reason last reported."""
        return dict(self._last_problem)

    def clear(self, service: str, stage: str = "input") -> None:
        """``stage`` went well for ``service``: its next problem there is reported anew."""
        self._last_problem.pop((service, stage), None)
