"""Autonomy bounded by the healer's own record: the failed-heal budget per action kind.

The user's third SLO is "fewer than 5 failed auto-heals a week". Each action kind's failed
verifications over a rolling week are counted (from the audit log at start-up, live after);
a kind that has used its budget drops to propose-only: its plans are logged and reported for
a human, not applied, until old failures age out of the window.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime

from ooda._settings import AutonomySettings


@dataclass(frozen=True)
class KindBudget:
    """One action kind's standing."""

    kind: str
    failed: int
    budget: int
    propose_only: bool
    why: str


class ErrorBudget:
    """Failed heals per action kind in the rolling window."""

    def __init__(self, settings: AutonomySettings) -> None:
        self.settings = settings
        self._failures: dict[str, deque[datetime]] = defaultdict(deque)

    def record_failure(self, kind: str, at: datetime) -> None:
        """Count one failed heal of ``kind`` at ``at``."""
        self._failures[kind].append(at)

    def failed(self, kind: str, now: datetime) -> int:
        """Failed heals of ``kind`` in the window ending at ``now``."""
        times = self._failures[kind]
        while times and now - times[0] > self.settings.budget_window:
            times.popleft()
        return len(times)

    def standing(self, kind: str, now: datetime) -> KindBudget:
        """Whether ``kind`` may act on its own at ``now``, and why not."""
        failed = self.failed(kind, now)
        budget = self.settings.failed_heals_per_week
        if kind in self.settings.propose_only:
            return KindBudget(kind, failed, budget, True, "configured propose-only")
        if failed >= budget:
            why = (
                f"{failed} failed heals in the last {self.settings.budget_window.days} days"
                f" (budget: fewer than {budget}); propose-only"
            )
            return KindBudget(kind, failed, budget, True, why)
        return KindBudget(kind, failed, budget, False, "")

    def kinds(self) -> list[str]:
        """Kinds with any failure on record."""
        return sorted(self._failures)
