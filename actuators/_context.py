"""The one context every action runs in: clients, time, retries, dry-run, audit reference.

Before this, each action took the same five keyword arguments and the loop passed a no-op
sleep, so PDB and API retries fired in milliseconds on a real cluster. Here the sleep is real
unless a simulated clock is injected, and every Kubernetes call carries a timeout: a hung API
server costs a bounded wait, never a stuck loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from actuators._retry import RetryPolicy
from contracts import CloudClients, KubeClients

#: Annotations ooda leaves on every object it changes.
CHANGED_BY = "ooda.dev/changed-by"
CHANGED_AT = "ooda.dev/changed-at"
AUDIT_ID = "ooda.dev/audit-id"
ACTION = "ooda.dev/action"

#: Evictions wait for a PodDisruptionBudget far longer than a plain API retry: a replacement
#: pod has to start.
PDB_RETRY = RetryPolicy(attempts=10, initial_backoff_s=1.0, multiplier=2.0, max_backoff_s=15.0)


class _Timed:
    """An API object whose every method call carries ``_request_timeout`` unless it has one."""

    def __init__(self, api: Any, timeout_s: float) -> None:
        self._api = api
        self._timeout_s = timeout_s

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._api, name)
        if name.startswith("_") or not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("_request_timeout", self._timeout_s)
            return attr(*args, **kwargs)

        return call


def with_timeouts(kube: KubeClients, timeout_s: float) -> KubeClients:
    """``kube`` with a request timeout on every call of every API object."""
    return KubeClients(
        *(None if api is None else _Timed(api, timeout_s) for api in api_objects(kube))
    )


def api_objects(kube: KubeClients) -> tuple[Any, ...]:
    """Every API object, in ``KubeClients``' field order."""
    return (
        kube.core_v1,
        kube.apps_v1,
        kube.autoscaling_v2,
        kube.policy_v1,
        kube.custom_objects,
        kube.networking_v1,
    )


@dataclass(frozen=True)
class ActionContext:
    """What an action needs to run: the cluster, time, patience and whether to change anything."""

    kube: KubeClients
    """The cluster's API objects, as given (wrapped with timeouts in :attr:`api`)."""
    dry_run: bool = False
    """Read and describe, change nothing."""
    sleep: Callable[[float], None] = time.sleep
    """Backoff between retries: real by default, a simulated clock's in the lab."""
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    """The time written into the annotations of changed objects."""
    retry: RetryPolicy = RetryPolicy()
    """Retries of temporary API errors."""
    pdb_retry: RetryPolicy = PDB_RETRY
    """Retries of evictions a PodDisruptionBudget refuses."""
    api_timeout_s: float = 10.0
    """Timeout of every Kubernetes API call, seconds."""
    audit_ref: str = ""
    """Id of the audit entry that records the intent; written into the annotations."""
    cloud: CloudClients = field(default_factory=CloudClients)
    """The cloud API clients (SQS), for the actions that act outside Kubernetes; their
    timeouts and retries are the clients' own (``botocore.config.Config``)."""

    @cached_property
    def api(self) -> KubeClients:
        """The API objects with :attr:`api_timeout_s` on every call."""
        return with_timeouts(self.kube, self.api_timeout_s)

    def annotations(self, kind: str) -> dict[str, str]:
        """The annotations that say ooda changed an object, when, and under which audit entry."""
        return {
            CHANGED_BY: "ooda",
            CHANGED_AT: self.now().astimezone(UTC).isoformat(timespec="seconds"),
            AUDIT_ID: self.audit_ref or "none",
            ACTION: kind,
        }
