"""The actuator exception tree and the mapping from Kubernetes and AWS API errors onto it.

Whether an error is worth retrying is decided once, here, from the HTTP status the Kubernetes
API answered with or the error code AWS did, so every action retries the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from kubernetes.client.exceptions import ApiException

#: Statuses where the same request may succeed later (conflict, throttled, server trouble).
_TEMPORARY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


class ActuatorError(Exception):
    """Base class of every error raised by an actuator."""


class PermanentActuatorError(ActuatorError):
    """The API refused the request for good (not found, invalid, forbidden)."""


class TemporaryActuatorError(ActuatorError):
    """The request may succeed if tried again later."""


class ConflictError(PermanentActuatorError):
    """Undo refused: the object changed since ooda acted, and that change is someone else's."""


class MalformedAnnotationError(PermanentActuatorError, ValueError):
    """An ``ooda.dev/`` annotation on an object does not parse: someone edited it, so what ooda
    changed there can no longer be told apart from a human's change."""

    def __init__(self, obj: str, key: str, value: str, expected: str) -> None:
        super().__init__(f"{obj}: annotation {key}={value!r} is not {expected}; left alone")
        self.key = key
        self.value = value


class GuardRejectedError(ActuatorError):
    """A guard rail or a precondition refused the action: recorded as refused, not failed."""

    def __init__(self, action: str, target: str, reason: str) -> None:
        super().__init__(f"{action} on {target} refused: {reason}")
        self.action = action
        self.target = target
        self.reason = reason


class BudgetRefusedError(GuardRejectedError):
    """A PodDisruptionBudget still refused an eviction after the retries: the cluster's own
    guard rail doing its job, so recorded as refused (not a failed heal) and tried again after
    the cooldown; the pod is never deleted instead."""


class NotLeaderError(GuardRejectedError):
    """This replica lost its Lease, or is stopping, while the action was under way (a drain
    waiting on its budgets): it stops changing the estate at once, as client-go's controllers
    do, and leaves what it began (a cordoned node with pods on it) to the next leader or its
    own next start. Recorded as refused."""


class NoRoomError(GuardRejectedError):
    """A serving pod the action would move fits on no other node (the scheduler's filters,
    simulated): only more room, a human's to add, lets the action go ahead."""


def classify_api_error(exc: Exception, what: str) -> ActuatorError:
    """Turn an exception from a Kubernetes client call into a permanent or temporary error."""
    if isinstance(exc, ApiException):
        status = exc.status or 0
        message = f"{what}: HTTP {status} {exc.reason or ''}".strip()
        if status in _TEMPORARY_STATUSES or status == 0:
            return TemporaryActuatorError(message)
        return PermanentActuatorError(message)
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return TemporaryActuatorError(f"{what}: {type(exc).__name__}: {exc}")
    return PermanentActuatorError(f"{what}: {type(exc).__name__}: {exc}")


#: AWS error codes worth another try (boto3 has retried them already by then).
_TEMPORARY_CODES = frozenset(
    {"Throttling", "ThrottlingException", "RequestThrottled", "ServiceUnavailable", "InternalError"}
)


def cloud_error(exc: Exception, what: str) -> ActuatorError:
    """A boto3 (botocore) exception as a temporary or permanent actuator error."""
    response = getattr(exc, "response", None) or {}
    code = str((response.get("Error") or {}).get("Code", ""))
    message = f"{what}: {type(exc).__name__}: {exc}"
    if code in _TEMPORARY_CODES or isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return TemporaryActuatorError(message)
    return PermanentActuatorError(message)


T = TypeVar("T")


def call_cloud(fn: Callable[[], T], what: str) -> T:
    """``fn()`` (one boto3 call), its exception raised as :func:`cloud_error`'s."""
    try:
        return fn()
    except Exception as exc:  # classified right here
        raise cloud_error(exc, what) from exc
