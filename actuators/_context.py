"""The one context every action runs in: clients, time, retries, dry-run, audit reference.

Before this, each action took the same five keyword arguments and the loop passed a no-op
sleep, so PDB and API retries fired in milliseconds on a real cluster. Here the sleep is real
unless a simulated clock is injected, and every Kubernetes call carries a timeout: a hung API
server costs a bounded wait, never a stuck loop. Every write names ooda as its field manager,
so ``managedFields`` (and the change events read from it) say who changed an object.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from typing import Any

from actuators._retry import RetryPolicy
from contracts import CloudClients, KubeClients

#: Annotations ooda leaves on every object it changes.
CHANGED_BY = "ooda.dev/changed-by"
CHANGED_AT = "ooda.dev/changed-at"
AUDIT_ID = "ooda.dev/audit-id"
ACTION = "ooda.dev/action"
#: The field manager of ooda's writes (``metadata.managedFields[].manager``).
FIELD_MANAGER = "ooda"
_WRITES = ("patch_", "create_", "replace_")

#: Evictions wait for a PodDisruptionBudget far longer than a plain API retry: a replacement
#: pod has to start.
PDB_RETRY = RetryPolicy(attempts=10, initial_backoff_s=1.0, multiplier=2.0, max_backoff_s=15.0)


@lru_cache(maxsize=512)
def _takes_field_manager(method: Callable[..., Any]) -> bool:
    try:
        return "field_manager" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


class _Timed:
    """An API object whose every method call carries ``_request_timeout`` unless it has one,
    and whose every write names ooda its field manager where the method takes one."""

    def __init__(self, api: Any, timeout_s: float) -> None:
        self._api = api
        self._timeout_s = timeout_s

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._api, name)
        if name.startswith("_") or not callable(attr):
            return attr

        method = getattr(type(self._api), name, attr)
        write = name.startswith(_WRITES) and _takes_field_manager(method)

        def call(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("_request_timeout", self._timeout_s)
            if write:
                kwargs.setdefault("field_manager", FIELD_MANAGER)
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
        kube.coordination_v1,
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
    may_act: Callable[[], bool] = field(default=lambda: True)
    """Whether this process may still change the estate: False once a replica's Lease has
    lapsed. Asked before every round of evictions, so a drain that waits on its budgets stops
    the moment another replica may take over."""

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
