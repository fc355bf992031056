"""What an action is, and the registry every action module adds itself to.

An action is a small value object a runbook proposes. It knows how to carry itself out
(``apply``), how to tell whether that healed the service (``check``, judged on the minutes
after it ran), and how to step back (``undo``) without trampling a change someone else made
since. Each action class lives in its own module and registers itself under its
:class:`~contracts.ActionKind`; :func:`check_action` is the contract every one must pass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import pandas as pd

from actuators._context import ActionContext
from actuators._retry import call_with_retry
from contracts import ActionKind, Outcome, UnknownIdError, Verdict, VerifyWindow

T = TypeVar("T")


@dataclass(frozen=True)
class ActionResult:
    """What an action did (or, in dry-run, would have done)."""

    kind: str
    target: str
    dry_run: bool
    before: dict[str, Any]
    after: dict[str, Any]
    undoable: bool


@dataclass(frozen=True)
class Action(ABC):
    """A healing action on one bounded target of one workload (``namespace/service``)."""

    namespace: str
    service: str
    """The workload (Deployment) the action heals; its breaker, cooldown and blast radius."""
    reason: str = field(default="", compare=False)

    kind: ClassVar[ActionKind]
    disruptive: ClassVar[bool] = False
    """Whether the action takes capacity away while it runs (counted by the blast radius)."""
    node_scoped: ClassVar[bool] = False
    """Whether the action takes a node out: one such action per cluster at a time."""
    repeatable: ClassVar[bool] = True
    """Whether the action may be tried again on a workload where it just failed to heal
    (False: a second try would fail the same way, as a restart into a broken config does)."""
    continues: ClassVar[bool] = False
    """Whether a second action of this kind on the same target, applied while the first
    awaits its verdict, continues it: one heal in steps, judged once, after the last step
    (a redrive moves the poison messages that have shown themselves since the one before)."""
    waits: ClassVar[bool] = False
    """Whether the action may wait on the cluster for minutes (evictions paced by
    PodDisruptionBudgets and replacements starting): a loop on the wall clock runs it beside
    its ticks, so that the wait never stops it looking at the rest of the estate."""
    verifies_idle: ClassVar[bool] = False
    """Whether ``healthy`` judges the action's goal on the workload alone (its pods back and
    Ready), so that a minute with no requests counts as inside the SLO: the heal of a warm
    standby that serves nobody can then be verified. An action judged on its users' SLIs
    alone would pass on an idle service whatever it did, so it never is."""

    @property
    @abstractmethod
    def target(self) -> str:
        """``kind/namespace/name`` of the object acted on."""

    @property
    def disrupts(self) -> bool:
        """Whether this action, with its arguments, is disruptive: the class's ``disruptive``
        unless an action's arguments decide (a database switch that fails a cluster over)."""
        return self.disruptive

    @property
    def workload(self) -> str:
        """``namespace/service``: a crash that survives restarts still hits the same key."""
        return f"{self.namespace}/{self.service}"

    @property
    def breaker_key(self) -> str:
        """What a circuit breaker and a cooldown are keyed on: the workload, or the node."""
        return self.workload

    @abstractmethod
    def apply(self, ctx: ActionContext) -> ActionResult:
        """Carry the action out (or, when ``ctx.dry_run``, only read and describe it)."""

    def undo(self, ctx: ActionContext, result: ActionResult) -> ActionResult | None:
        """Step back from ``result``; None where there is nothing to undo.

        Raises :class:`~actuators.ConflictError` when the object changed since the action
        (someone else's change is never reverted).
        """
        return None

    def undo_when_failed(self, result: ActionResult) -> bool:
        """Whether a failed verification should step back from ``result`` (else escalate)."""
        return False

    def check(self, result: ActionResult, window: VerifyWindow) -> Outcome:
        """Healed once the service has met its SLO for ``healthy_minutes`` after the action."""
        return slo_outcome(window, self.healthy(result, window), idle=self.verifies_idle)

    def healthy(self, result: ActionResult, window: VerifyWindow) -> str | None:
        """Why the action's own goal is not met yet (None: met); the SLO is judged apart."""
        return None

    def call(self, ctx: ActionContext, fn: Callable[[], T], what: str) -> T:
        """One API call with the context's retry policy and sleep."""
        return call_with_retry(fn, what, ctx.retry, ctx.sleep)

    def undone(
        self, result: ActionResult, after: dict[str, Any], target: str | None = None
    ) -> ActionResult:
        """The result of stepping back from ``result`` to ``after`` (itself not undoable)."""
        return ActionResult(
            "undo_" + self.kind, target or self.target, False, dict(result.after), after, False
        )


def slo_minutes(window: VerifyWindow, idle: bool = False) -> list[bool]:
    """Per minute after the action: inside the latency and error objectives and, for a service
    with asynchronous work, the freshness objective (NaN counts as outside). With ``idle``, a
    minute that served no request (no p95, no error ratio) counts as inside: no user was
    failed."""
    rows = window.metrics
    if rows.empty:
        return []
    p95 = pd.to_numeric(rows["p95_latency_ms"], errors="coerce")
    err = pd.to_numeric(rows["error_rate"], errors="coerce")
    ok = (p95 <= window.p95_ms) & (err <= window.max_error_rate)
    if idle and "request_rate" in rows:
        rate = pd.to_numeric(rows["request_rate"], errors="coerce")
        ok |= (rate == 0) & p95.isna() & err.isna()
    if window.freshness is not None:
        stamps = pd.DatetimeIndex(rows["timestamp"])
        age = window.freshness.reindex(stamps).to_numpy(dtype=float)
        ok &= age <= window.max_freshness_s
    return [bool(v) for v in ok.fillna(False)]


def serves_users(window: VerifyWindow) -> bool:
    """Whether any minute after the action served a request (else its SLIs say nothing)."""
    rows = window.metrics
    if rows.empty or "request_rate" not in rows:
        return False
    return bool((pd.to_numeric(rows["request_rate"], errors="coerce") > 0).any())


def slo_outcome(window: VerifyWindow, not_yet: str | None, idle: bool = False) -> Outcome:
    """The common verdict: SLO held for the last ``healthy_minutes`` (idle minutes counting as
    held with ``idle``, see :func:`slo_minutes`) and the goal met."""
    n = window.healthy_minutes
    ok = slo_minutes(window, idle)
    if len(ok) >= n and all(ok[-n:]) and not_yet is None:
        return Outcome(Verdict.HEALED, f"SLO met for the last {n} minutes")
    if window.now >= window.deadline:
        why = not_yet or f"SLO not met for {n} minutes in a row"
        return Outcome(Verdict.FAILED, f"not healed by {window.deadline:%H:%M:%S}: {why}")
    return Outcome(Verdict.PENDING, not_yet or "waiting for the SLO")


def no_room(window: VerifyWindow, wanted: int) -> str | None:
    """Why ``wanted`` Ready replicas will not come however long verification waits: the
    shortfall is pods no node has room for (None: there is no shortfall, or it is not that)."""
    workload = window.workload
    if workload is None or workload.ready_replicas >= wanted:
        return None
    pending = len(workload.unschedulable)
    if pending and workload.ready_replicas + pending >= wanted:
        return f"{pending} pod(s) unschedulable: no node has room for them"
    return None


def scaled_outcome(window: VerifyWindow, not_yet: str | None, wanted: int) -> Outcome:
    """:func:`slo_outcome` for an action that asked for ``wanted`` Ready replicas. Where the
    cluster has no room for some of them, the SLO alone judges the heal (the pods that did fit
    may carry the load) and the verdict names the pods left Pending, for a human to add
    nodes; waiting for them would fail a heal that worked."""
    short = no_room(window, wanted)
    if short is None:
        return slo_outcome(window, not_yet)
    outcome = slo_outcome(window, None)
    if outcome.verdict is Verdict.PENDING:
        return outcome
    return Outcome(outcome.verdict, f"{outcome.reason}; {short}")


_REGISTRY: dict[ActionKind, type[Action]] = {}
A = TypeVar("A", bound=type[Action])


def register_action(cls: A) -> A:
    """Class decorator: make ``cls`` the action of its ``kind``."""
    kind = ActionKind(cls.kind)
    if kind in _REGISTRY and _REGISTRY[kind] is not cls:
        raise ValueError(f"action kind {kind!r} is registered twice: {_REGISTRY[kind]} and {cls}")
    _REGISTRY[kind] = cls
    return cls


def registered_actions() -> dict[ActionKind, type[Action]]:
    """Every registered action class by kind."""
    return dict(_REGISTRY)


def action_class(kind: ActionKind | str) -> type[Action]:
    """The action class of ``kind``; :class:`~contracts.UnknownIdError` for an unknown one."""
    try:
        return _REGISTRY[ActionKind(kind)]
    except (ValueError, KeyError) as exc:
        raise UnknownIdError(
            f"no action {kind!r}; registered: {sorted(k.value for k in _REGISTRY)}"
        ) from exc
