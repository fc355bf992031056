"""Retry with exponential backoff for temporary API errors.

The sleep function is injected so the lab's simulated clock (and the tests) never wait on the
wall clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from actuators._errors import TemporaryActuatorError, classify_api_error

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a temporary error is retried."""

    attempts: int = 4
    """Total tries, the first one included."""
    initial_backoff_s: float = 0.5
    """Wait before the second try."""
    multiplier: float = 2.0
    """Each further wait is this many times the previous one."""
    max_backoff_s: float = 8.0
    """Upper bound of a single wait."""


def call_with_retry(
    fn: Callable[[], T],
    what: str,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn``; retry temporary errors with backoff, raise permanent ones at once."""
    backoff = policy.initial_backoff_s
    for attempt in range(1, policy.attempts + 1):
        try:
            return fn()
        except Exception as exc:  # classified right below
            error = classify_api_error(exc, what)
            if not isinstance(error, TemporaryActuatorError) or attempt == policy.attempts:
                raise error from exc
            sleep(backoff)
            backoff = min(backoff * policy.multiplier, policy.max_backoff_s)
    raise AssertionError("unreachable")  # pragma: no cover
