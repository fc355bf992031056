"""Clocks: everything that needs the time takes it from an injected clock.

A simulated week must run in seconds in tests, chaos runs and the demo, while the same loop
code runs on wall time against a real cluster, so nothing in ooda calls ``datetime.now()``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

from contracts._errors import InvalidTimeError


class Clock(Protocol):
    """Tells the current time (timezone-aware, UTC) and waits."""

    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class SimClock:
    """A clock that only moves when told to (simulated time); ``sleep`` moves it."""

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

    def sleep(self, seconds: float) -> None:
        """A backoff in simulated time: the clock moves, no wall time passes."""
        self.advance(timedelta(seconds=max(0.0, seconds)))


class WallClock:
    """The real clock (UTC) and a real sleep."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))
