from __future__ import annotations

import pytest
from kubernetes.client.exceptions import ApiException

from actuators import (
    PermanentActuatorError,
    RetryPolicy,
    TemporaryActuatorError,
    call_with_retry,
    classify_api_error,
)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (404, PermanentActuatorError),
        (422, PermanentActuatorError),
        (403, PermanentActuatorError),
        (409, TemporaryActuatorError),
        (429, TemporaryActuatorError),
        (503, TemporaryActuatorError),
    ],
)
def test_api_errors_are_classified_by_status(status: int, kind: type) -> None:
    error = classify_api_error(ApiException(status=status, reason="x"), "patch hpa shop/frontend")
    assert isinstance(error, kind)
    assert "patch hpa shop/frontend" in str(error) and str(status) in str(error)


def test_temporary_errors_are_retried_with_growing_backoff() -> None:
    calls: list[int] = []
    sleeps: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ApiException(status=429, reason="Too Many Requests")
        return "ok"

    policy = RetryPolicy(attempts=4, initial_backoff_s=0.5, multiplier=2.0)
    assert call_with_retry(flaky, "read pod", policy, sleeps.append) == "ok"
    assert len(calls) == 3
    assert sleeps == [0.5, 1.0]


def test_permanent_errors_are_not_retried() -> None:
    calls: list[int] = []

    def missing() -> None:
        calls.append(1)
        raise ApiException(status=404, reason="Not Found")

    with pytest.raises(PermanentActuatorError, match="404"):
        call_with_retry(missing, "read pod shop/x", RetryPolicy(attempts=5), lambda _s: None)
    assert len(calls) == 1


def test_retries_give_up_after_the_last_attempt() -> None:
    sleeps: list[float] = []

    def down() -> None:
        raise ApiException(status=503, reason="Unavailable")

    with pytest.raises(TemporaryActuatorError):
        call_with_retry(down, "x", RetryPolicy(attempts=3, max_backoff_s=0.6), sleeps.append)
    assert sleeps == [0.5, 0.6]
