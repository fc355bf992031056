"""The guard rails every action passes before it touches the cluster.

A guard remembers when it acted on what, and how its verifications went. It refuses a
disruptive action on a workload whose last one still awaits its verdict, one in cooldown, one
past the blast radius of its workload, a second node action while another is in flight, a
second try of a non-repeatable action (a restart) where it just failed, and anything on a
workload whose circuit breaker is open; while an action that runs beside the loop's ticks
(a drain waiting on its budgets) has not returned, anything else on its breaker and any other
node action. The next step of an action that awaits its verdict
(a drain that its budgets stopped, ``Action.continues``) is the same heal: neither held back
by it nor counted as a new disruption. Every key is the **workload** (namespace/Deployment),
never the pod: a crash that survives replacement comes back under a new pod name each time,
and a breaker keyed on the pod would never trip.

Dry-run uses no slot: a preview must not change what the real run would be allowed to do.
The guard's memory is rebuilt at start-up by replaying the audit log (``record_*`` are the
same calls the loop makes live).
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from actuators._base import Action
from actuators._errors import GuardRejectedError


@dataclass(frozen=True)
class GuardSettings:
    """Limits the guard enforces."""

    dry_run: bool = False
    """Plan and log every action but change nothing."""
    cooldown: timedelta = timedelta(minutes=5)
    """Minimum time between two actions of the same kind on the same workload."""
    cooldown_by_kind: dict[str, timedelta] = field(
        default_factory=lambda: {
            "set_hpa_min": timedelta(minutes=2),
            "redrive_queue": timedelta(minutes=2),
            "shift_region_traffic": timedelta(minutes=1),
        }
    )
    """Per-kind overrides of ``cooldown``: scaling ahead of a ramp must be able to step up;
    a redrive moves the poison messages that have shown themselves since the last one (each
    comes back once a visibility timeout, 30 s by default, has passed); a failback moves users
    home in steps, and a step the home cannot hold is taken back at once."""
    max_disruptions_per_workload: int = 2
    """Disruptive actions (pod restarts, drains) allowed per workload in ``disruption_window``."""
    disruption_window: timedelta = timedelta(minutes=30)
    """Window over which ``max_disruptions_per_workload`` is counted."""
    breaker_failures: int = 3
    """Failed heals of one workload within ``breaker_window`` that open its breaker."""
    breaker_window: timedelta = timedelta(hours=2)
    """Window over which failures are counted."""
    breaker_open_for: timedelta = timedelta(hours=4)
    """How long an open breaker refuses actions, unless a human resets it sooner."""
    node_action_timeout: timedelta = timedelta(minutes=30)
    """A node action counts as in flight until its outcome is recorded, or this long."""
    verify_timeout: timedelta = timedelta(hours=1)
    """An action awaits its verdict at most this long before its workload may be acted on
    again (a verdict normally comes by the runbook's deadline)."""


@dataclass(frozen=True)
class GuardKey:
    """What the guard needs to know of an action (rebuilt from the audit log on restart)."""

    kind: str
    target: str
    workload: str
    breaker: str
    disruptive: bool
    node_scoped: bool
    repeatable: bool = True
    continues: bool = False

    @classmethod
    def of(cls, action: Action) -> GuardKey:
        """The key of ``action``."""
        return cls(
            str(action.kind),
            action.target,
            action.workload,
            action.breaker_key,
            action.disrupts,
            action.node_scoped,
            action.repeatable,
            action.continues,
        )

    def as_dict(self) -> dict[str, Any]:
        """For the audit log's evidence."""
        return {
            "kind": self.kind,
            "target": self.target,
            "workload": self.workload,
            "breaker": self.breaker,
            "disruptive": self.disruptive,
            "node_scoped": self.node_scoped,
            "repeatable": self.repeatable,
            "continues": self.continues,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GuardKey:
        """Inverse of :meth:`as_dict`; KeyError/TypeError for a malformed entry."""
        return cls(
            str(data["kind"]),
            str(data["target"]),
            str(data["workload"]),
            str(data["breaker"]),
            bool(data["disruptive"]),
            bool(data["node_scoped"]),
            bool(data.get("repeatable", True)),
            bool(data.get("continues", False)),
        )


class Guard:
    """Decides whether an action may run now, and records what ran and how it ended."""

    def __init__(self, settings: GuardSettings = GuardSettings()) -> None:
        self.settings = settings
        self._last_applied: dict[tuple[str, str], datetime] = {}
        self._disruptions: dict[str, deque[datetime]] = defaultdict(deque)
        self._failures: dict[str, deque[datetime]] = defaultdict(deque)
        self._failed_kind: dict[tuple[str, str], datetime] = {}
        self._open_until: dict[str, datetime] = {}
        self._node_actions: dict[str, datetime] = {}
        self._in_flight: dict[str, tuple[GuardKey, datetime]] = {}
        self._running: dict[str, GuardKey] = {}

    def check(self, action: Action | GuardKey, now: datetime) -> None:
        """Raise :class:`GuardRejectedError` if the action must not run at ``now``."""
        key = action if isinstance(action, GuardKey) else GuardKey.of(action)

        def refuse(reason: str) -> GuardRejectedError:
            return GuardRejectedError(key.kind, key.target, reason)

        open_until = self._open_until.get(key.breaker)
        if open_until is not None and now < open_until:
            raise refuse(
                f"circuit breaker of {key.breaker} open until {open_until.isoformat()} after"
                f" {self.settings.breaker_failures} failed heals; escalated to a human"
            )
        failed = None if key.repeatable else self._failed_kind.get((key.kind, key.breaker))
        if failed is not None and now - failed <= self.settings.breaker_window:
            raise refuse(
                f"{key.kind} failed to heal {key.breaker} at {failed.isoformat()}; another"
                " try would fail the same way (escalated to a human)"
            )
        running = self._running.get(key.breaker)
        if running is not None:
            raise refuse(
                f"{running.kind} on {running.target} is still running; one action per"
                f" {key.breaker} at a time"
            )
        if key.node_scoped:
            for other in self._running.values():
                if other.node_scoped:
                    raise refuse(
                        f"one node action at a time: {other.kind} on {other.target} is still"
                        " running"
                    )
        step = self._continues(key, now)
        flight = self._in_flight.get(key.breaker) if key.disruptive else None
        if flight is not None and now - flight[1] < self.settings.verify_timeout and not step:
            raise refuse(
                f"{flight[0].kind} on {key.breaker} (applied {flight[1].isoformat()}) awaits its"
                " verdict; one action per workload at a time"
            )
        cooldown = self.settings.cooldown_by_kind.get(key.kind, self.settings.cooldown)
        last = self._last_applied.get((key.kind, key.breaker))
        if last is not None and now - last < cooldown:
            raise refuse(f"in cooldown: last applied {last.isoformat()}, cooldown {cooldown}")
        if key.node_scoped:
            timeout = self.settings.node_action_timeout
            for target, since in list(self._node_actions.items()):
                if now - since >= timeout:
                    del self._node_actions[target]
                elif target != key.target:
                    raise refuse(
                        f"one node action at a time: {target} (applied {since.isoformat()})"
                        " is not verified yet"
                    )
        if key.disruptive and not step:
            window = self.settings.disruption_window
            recent = self._prune(self._disruptions[key.workload], now, window)
            if len(recent) >= self.settings.max_disruptions_per_workload:
                raise refuse(
                    f"blast radius: {len(recent)} disruptive actions on {key.workload} in the"
                    f" last {window}"
                )

    def start(self, action: Action | GuardKey) -> None:
        """Hold the slots of an action that has begun and not returned yet (one that runs
        beside the loop's ticks): nothing else may act on its breaker, nor any other node
        action, until :meth:`finish`. Cooldown and blast radius start when it is recorded
        applied, as for any action."""
        key = action if isinstance(action, GuardKey) else GuardKey.of(action)
        self._running[key.breaker] = key

    def finish(self, action: Action | GuardKey) -> None:
        """The action :meth:`start` announced has returned (applied, refused or failed)."""
        key = action if isinstance(action, GuardKey) else GuardKey.of(action)
        self._running.pop(key.breaker, None)

    def record_applied(self, action: Action | GuardKey, now: datetime) -> None:
        """Remember that the action ran at ``now`` (cooldown and blast radius start here).

        Never call it for a dry run: a preview uses no slot.
        """
        key = action if isinstance(action, GuardKey) else GuardKey.of(action)
        step = self._continues(key, now)
        self._last_applied[(key.kind, key.breaker)] = now
        if key.disruptive:
            self._in_flight[key.breaker] = (key, now)
        if key.node_scoped:
            self._node_actions[key.target] = now
        if key.disruptive and not step:
            self._disruptions[key.workload].append(now)

    def _continues(self, key: GuardKey, now: datetime) -> bool:
        """Whether ``key`` is the next step of the action that awaits its verdict on the same
        target for the same workload: one heal, so neither held back by it nor a new
        disruption."""
        flight = self._in_flight.get(key.breaker)
        if not key.continues or flight is None:
            return False
        (last, since), same = flight, (key.kind, key.target, key.workload)
        return (last.kind, last.target, last.workload) == same and (
            now - since < self.settings.verify_timeout
        )

    def record_outcome(self, action: Action | GuardKey, healed: bool, now: datetime) -> bool:
        """Record a verification; return True when this failure opened the breaker."""
        key = action if isinstance(action, GuardKey) else GuardKey.of(action)
        self._node_actions.pop(key.target, None)
        self._in_flight.pop(key.breaker, None)
        if healed:
            return False
        self._failed_kind[(key.kind, key.breaker)] = now
        failures = self._prune(self._failures[key.breaker], now, self.settings.breaker_window)
        failures.append(now)
        if len(failures) >= self.settings.breaker_failures:
            self._open_until[key.breaker] = now + self.settings.breaker_open_for
            failures.clear()
            return True
        return False

    def reset(self, breaker: str) -> None:
        """A human closed the breaker of ``breaker`` (a workload or a node)."""
        self._open_until.pop(breaker, None)
        self._failures.pop(breaker, None)
        for kind_breaker in [k for k in self._failed_kind if k[1] == breaker]:
            del self._failed_kind[kind_breaker]

    def open_breakers(self, now: datetime) -> dict[str, datetime]:
        """Breakers open at ``now``, with the time each closes by itself."""
        return {k: until for k, until in self._open_until.items() if now < until}

    def is_open(self, breaker: str, now: datetime) -> bool:
        """Whether the breaker of ``breaker`` refuses actions at ``now``."""
        until = self._open_until.get(breaker)
        return until is not None and now < until

    @staticmethod
    def _prune(times: deque[datetime], now: datetime, window: timedelta) -> deque[datetime]:
        while times and now - times[0] > window:
            times.popleft()
        return times
