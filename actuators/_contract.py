"""The contract every registered action passes, shipped with the library (as river ships
``check_estimator``): a new action module is tested by calling :func:`check_action` on it.

It runs the action in dry-run behind a spy over all five API objects and asserts what a user
relies on: the preview makes no mutating call, says what it would do, cannot be undone, and
the action can judge an empty verification window without crashing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from actuators._base import Action, registered_actions
from actuators._context import ActionContext
from contracts import ActionKind, KubeClients, Outcome, VerifyWindow

MUTATING_PREFIXES = ("create_", "patch_", "replace_", "delete_", "connect_post_")


@dataclass
class CallSpy:
    """Wraps an API object and records every method call by name."""

    api: Any
    calls: list[str] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.api, name)
        if name.startswith("_") or not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return attr(*args, **kwargs)

        return call

    @property
    def mutations(self) -> list[str]:
        """The calls that would change the cluster."""
        return [c for c in self.calls if c.startswith(MUTATING_PREFIXES)]


def spy_on(kube: KubeClients) -> tuple[KubeClients, list[CallSpy]]:
    """``kube`` with a :class:`CallSpy` around each API object, and the spies."""
    spies = [
        CallSpy(api)
        for api in (
            kube.core_v1,
            kube.apps_v1,
            kube.autoscaling_v2,
            kube.policy_v1,
            kube.custom_objects,
        )
    ]
    return KubeClients(*spies), spies


def check_action(action: Action, ctx: ActionContext) -> None:
    """Assert the action contract for ``action`` on the cluster behind ``ctx``.

    ``action`` must target an object that exists there; nothing is changed.
    """
    kind = ActionKind(action.kind)
    assert registered_actions().get(kind) is type(action), f"{kind} is not registered"
    assert action.target and "/" in action.target, f"{kind}: target {action.target!r}"
    assert action.workload == f"{action.namespace}/{action.service}"
    spied, spies = spy_on(ctx.kube)
    result = action.apply(replace(ctx, kube=spied, dry_run=True))
    mutations = [m for spy in spies for m in spy.mutations]
    assert not mutations, f"{kind}: dry-run made mutating calls {mutations}"
    assert result.dry_run and result.kind == kind and result.target == action.target
    assert action.undo(replace(ctx, kube=spied), result) is None, f"{kind}: undid a dry run"
    now = datetime(2026, 1, 1, tzinfo=UTC)
    window = VerifyWindow(
        metrics=pd.DataFrame(columns=["timestamp", "p95_latency_ms", "error_rate"]),
        workload=None,
        applied_at=now,
        now=now + timedelta(minutes=1),
        deadline=now + timedelta(minutes=10),
        p95_ms=150.0,
        max_error_rate=0.001,
        healthy_minutes=2,
    )
    assert isinstance(action.check(result, window), Outcome)
