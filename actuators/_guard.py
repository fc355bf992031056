"""The guard rails every action passes before it touches the cluster.

A guard remembers, per target, when it last acted and how its verifications went. It refuses
an action in cooldown, one that would restart too many pods of a service in a short window,
a second node action (cordon, drain, move) while another one has not been verified yet, and
anything on a target whose circuit breaker is open (repeated failed heals: the healer is
probably wrong about this target, so it stops and escalates instead of flapping).
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from actuators._actions import Action
from actuators._errors import GuardRejectedError


@dataclass(frozen=True)
class GuardSettings:
    """Limits the guard enforces."""

    dry_run: bool = False
    """Plan and log every action but change nothing."""
    cooldown: timedelta = timedelta(minutes=5)
    """Minimum time between two actions of the same kind on the same target."""
    cooldown_by_kind: dict[str, timedelta] = field(
        default_factory=lambda: {"set_hpa_min": timedelta(minutes=1)}
    )
    """Per-kind overrides of ``cooldown`` (scaling ahead of a ramp must be able to step up)."""
    max_disruptions_per_service: int = 2
    """Disruptive actions (pod restarts) allowed per service within ``disruption_window``."""
    disruption_window: timedelta = timedelta(minutes=30)
    """Window over which ``max_disruptions_per_service`` is counted."""
    breaker_failures: int = 3
    """Failed verifications on one target within ``breaker_window`` that open its breaker."""
    breaker_window: timedelta = timedelta(hours=1)
    """Window over which failures are counted."""
    breaker_open_for: timedelta = timedelta(hours=1)
    """How long an open breaker refuses actions on its target."""
    node_action_timeout: timedelta = timedelta(minutes=30)
    """A node action counts as in flight until its outcome is recorded, or this long."""


class Guard:
    """Decides whether an action may run now, and records what ran and how it ended."""

    def __init__(self, settings: GuardSettings = GuardSettings()) -> None:
        self.settings = settings
        self._last_applied: dict[tuple[str, str], datetime] = {}
        self._disruptions: dict[str, deque[datetime]] = defaultdict(deque)
        self._failures: dict[str, deque[datetime]] = defaultdict(deque)
        self._open_until: dict[str, datetime] = {}
        self._node_actions: dict[str, datetime] = {}

    def check(self, action: Action, now: datetime) -> None:
        """Raise :class:`GuardRejectedError` if ``action`` must not run at ``now``."""
        open_until = self._open_until.get(action.target)
        if open_until is not None and now < open_until:
            raise GuardRejectedError(
                action.kind,
                action.target,
                f"circuit breaker open until {open_until.isoformat()} after "
                f"{self.settings.breaker_failures} failed heals; escalated to a human",
            )
        cooldown = self.settings.cooldown_by_kind.get(action.kind, self.settings.cooldown)
        last = self._last_applied.get((action.kind, action.target))
        if last is not None and now - last < cooldown:
            raise GuardRejectedError(
                action.kind,
                action.target,
                f"in cooldown: last applied {last.isoformat()}, cooldown {cooldown}",
            )
        if action.node_scoped:
            self._check_node_actions(action, now)
        if action.disruptive:
            recent = self._prune(
                self._disruptions[action.service], now, self.settings.disruption_window
            )
            if len(recent) >= self.settings.max_disruptions_per_service:
                raise GuardRejectedError(
                    action.kind,
                    action.target,
                    f"blast radius: {len(recent)} disruptive actions on service "
                    f"{action.service!r} in the last {self.settings.disruption_window}",
                )

    def _check_node_actions(self, action: Action, now: datetime) -> None:
        timeout = self.settings.node_action_timeout
        for target, since in list(self._node_actions.items()):
            if now - since >= timeout:
                del self._node_actions[target]
            elif target != action.target:
                raise GuardRejectedError(
                    action.kind,
                    action.target,
                    f"one node action at a time: {target} (applied {since.isoformat()}) is not"
                    " verified yet",
                )

    def record_applied(self, action: Action, now: datetime) -> None:
        """Remember that ``action`` ran at ``now`` (cooldown and blast radius start here)."""
        self._last_applied[(action.kind, action.target)] = now
        if action.node_scoped:
            self._node_actions[action.target] = now
        if action.disruptive:
            self._disruptions[action.service].append(now)

    def record_outcome(self, action: Action, success: bool, now: datetime) -> bool:
        """Record a verification result; return True when this failure opened the breaker."""
        self._node_actions.pop(action.target, None)
        if success:
            return False
        failures = self._prune(self._failures[action.target], now, self.settings.breaker_window)
        failures.append(now)
        if len(failures) >= self.settings.breaker_failures:
            self._open_until[action.target] = now + self.settings.breaker_open_for
            failures.clear()
            return True
        return False

    def is_open(self, target: str, now: datetime) -> bool:
        """Whether the breaker of ``target`` refuses actions at ``now``."""
        until = self._open_until.get(target)
        return until is not None and now < until

    @staticmethod
    def _prune(times: deque[datetime], now: datetime, window: timedelta) -> deque[datetime]:
        while times and now - times[0] > window:
            times.popleft()
        return times
