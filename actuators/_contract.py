"""The contract every registered action passes, shipped with the library (as river ships
``check_estimator``): a new action module is tested by calling :func:`check_action` on it.

It runs the action in dry-run behind a spy over every Kubernetes API object and every cloud
client and asserts what a user relies on: the preview makes no mutating call, says what it
would do, cannot be undone, and the action can judge an empty verification window without
crashing; an action that verifies on an idle service (``verifies_idle``) heals none whose
workload it could not read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from actuators._base import Action, registered_actions
from actuators._context import ActionContext, api_objects
from contracts import ActionKind, CloudClients, KubeClients, Outcome, Verdict, VerifyWindow

#: Kubernetes client methods that change the cluster; ``connect_`` ones run something in a pod
#: (``connect_get_namespaced_pod_exec`` is a GET that upgrades to a websocket).
MUTATING_PREFIXES = ("create_", "patch_", "replace_", "delete_", "connect_")
#: boto3 client methods that change the cloud. A ``receive_message`` is one: it raises the
#: message's receive count and hides it for the visibility timeout.
CLOUD_MUTATING_PREFIXES = (
    "send_",
    "delete_",
    "receive_",
    "purge_",
    "change_",
    "start_",
    "cancel_",
    "set_",
    "create_",
    "tag_",
    "untag_",
    "add_",
    "remove_",
    "failover_",
    "promote_",
    "reboot_",
    "modify_",
    "stop_",
)


@dataclass
class CallSpy:
    """Wraps an API object and records every method call by name."""

    api: Any
    calls: list[str] = field(default_factory=list)
    prefixes: tuple[str, ...] = MUTATING_PREFIXES
    """Method name prefixes of the calls that change something."""

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
        return [c for c in self.calls if c.startswith(self.prefixes)]


def spy_on(kube: KubeClients) -> tuple[KubeClients, list[CallSpy]]:
    """``kube`` with a :class:`CallSpy` around each API object it has (an absent one stays
    None), and the spies."""
    wrapped = [None if api is None else CallSpy(api) for api in api_objects(kube)]
    return KubeClients(*wrapped), [spy for spy in wrapped if spy is not None]


def spy_on_cloud(cloud: CloudClients) -> tuple[CloudClients, list[CallSpy]]:
    """``cloud`` with a :class:`CallSpy` around each client it has, and the spies."""
    spies: dict[str, CallSpy] = {
        name: CallSpy(client, prefixes=CLOUD_MUTATING_PREFIXES)
        for name, client in (("sqs", cloud.sqs), ("rds", cloud.rds), ("route53", cloud.route53))
        if client is not None
    }
    return replace(cloud, **spies), list(spies.values())


def check_action(action: Action, ctx: ActionContext) -> None:
    """Assert the action contract for ``action`` on the cluster behind ``ctx``.

    ``action`` must target an object that exists there; nothing is changed.
    """
    kind = ActionKind(action.kind)
    assert registered_actions().get(kind) is type(action), f"{kind} is not registered"
    assert action.target and "/" in action.target, f"{kind}: target {action.target!r}"
    assert action.workload == f"{action.namespace}/{action.service}"
    spied, spies = spy_on(ctx.kube)
    cloud, cloud_spies = spy_on_cloud(ctx.cloud)
    result = action.apply(replace(ctx, kube=spied, cloud=cloud, dry_run=True))
    mutations = [m for spy in (*spies, *cloud_spies) for m in spy.mutations]
    assert not mutations, f"{kind}: dry-run made mutating calls {mutations}"
    assert result.dry_run and result.kind == kind and result.target == action.target
    assert action.undo(replace(ctx, kube=spied, cloud=cloud), result) is None, (
        f"{kind}: undid a dry run"
    )
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
    if action.verifies_idle:
        minutes = [now + timedelta(minutes=i + 1) for i in range(3)]
        idle = replace(
            window,
            metrics=pd.DataFrame(
                {
                    "timestamp": minutes,
                    "request_rate": 0.0,
                    "p95_latency_ms": math.nan,
                    "error_rate": math.nan,
                }
            ),
            now=minutes[-1],
        )
        assert action.check(result, idle).verdict is not Verdict.HEALED, (
            f"{kind}: verifies_idle, yet healed an idle service whose workload it could not read"
        )
