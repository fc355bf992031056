"""Clocks: the lab and the control loop read time from an injected clock.

A simulated week must run in seconds in tests and demos, while the same loop code runs on wall
time against a real cluster, so nothing in ooda calls ``datetime.now()`` directly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

from lab._errors import InvalidTimeError


class Clock(Protocol):
    """Anything that tells the current time as a timezone-aware UTC datetime."""

    def now(self) -> datetime: ...


class SimClock:
    """A clock that only moves when told to (simulated time)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise InvalidTimeError(f"SimClock start must be timezone-aware, got naive {start!r}")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, dt: timedelta) -> None:
        """Move the clock forward by ``dt`` (must not be negative)."""
        if dt < timedelta(0):
            raise InvalidTimeError(f"cannot move a clock backwards by {dt}")
        self._now += dt


class WallClock:
    """The real clock (UTC)."""

    def now(self) -> datetime:
        return datetime.now(UTC)
