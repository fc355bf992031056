"""Rate-limit a service at its ingress, when demand has outrun every pod it can get.

Shedding the excess at the edge keeps the requests that are let in fast instead of making all
of them slow. The limit is ingress-nginx's ``nginx.ingress.kubernetes.io/limit-rps`` annotation
(requests per second per client address) on the service's Ingress (networking.k8s.io/v1). The
value ooda set is written next to it (``ooda.dev/limit-rps``), so an undo -- even by an ooda
restarted since -- can tell its own limit from one a human set, and never lifts a human's.
A floor (``min_rps``) keeps an eager policy from throttling a service into an outage. ``rps=0``
lifts the limit ooda set, once the load has come back within what the pods serve.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from actuators._base import Action, ActionResult, register_action, slo_outcome
from actuators._context import ActionContext
from actuators._errors import ConflictError, GuardRejectedError, PermanentActuatorError
from actuators._kube import MERGE_PATCH
from contracts import ActionKind, Outcome, Verdict, VerifyWindow

#: ingress-nginx's per-client request rate limit, and the value ooda set there.
LIMIT_RPS = "nginx.ingress.kubernetes.io/limit-rps"
RPS_SET = "ooda.dev/limit-rps"


@register_action
@dataclass(frozen=True)
class RateLimit(Action):
    """Set ``limit-rps`` on the service's Ingress to ``rps``, never below ``min_rps``."""

    ingress: str = ""
    """The Ingress in front of the service; its name when empty."""
    rps: int = 0
    """Requests per second (per client) the ingress lets through."""
    min_rps: int = 10
    """Floor: a limit below it is refused, however the policy asks for it."""

    kind = ActionKind.RATE_LIMIT

    @property
    def name(self) -> str:
        """The Ingress acted on."""
        return self.ingress or self.service

    @property
    def target(self) -> str:
        return f"ingress/{self.namespace}/{self.name}"

    def _api(self, ctx: ActionContext) -> Any:
        if ctx.kube.networking_v1 is None:
            raise PermanentActuatorError("rate_limit needs a NetworkingV1Api, got None")
        return ctx.api.networking_v1

    def _annotations(self, ctx: ActionContext) -> dict[str, str]:
        api = self._api(ctx)
        ingress = self.call(
            ctx,
            lambda: api.read_namespaced_ingress(self.name, self.namespace),
            f"read ingress {self.namespace}/{self.name}",
        )
        return dict(ingress.metadata.annotations or {})

    def _patch(self, ctx: ActionContext, limit: str | None, ours: str | None) -> None:
        api = self._api(ctx)
        notes: dict[str, str | None] = {**ctx.annotations(self.kind), LIMIT_RPS: limit}
        notes[RPS_SET] = ours
        body = {"metadata": {"annotations": notes}}
        self.call(
            ctx,
            lambda: api.patch_namespaced_ingress(
                self.name, self.namespace, body, _content_type=MERGE_PATCH
            ),
            f"set {LIMIT_RPS}={limit} on ingress {self.namespace}/{self.name}",
        )

    def apply(self, ctx: ActionContext) -> ActionResult:
        if self.rps < 0:
            raise PermanentActuatorError(f"rate_limit needs rps >= 0, got {self.rps}")
        if self.rps == 0:
            return self._lift(ctx)
        if self.rps < self.min_rps:
            raise GuardRejectedError(
                self.kind,
                self.target,
                f"limit {self.rps} rps is below the floor of {self.min_rps} rps",
            )
        notes = self._annotations(ctx)
        before = {"limit_rps": notes.get(LIMIT_RPS), "ooda_set": notes.get(RPS_SET)}
        wanted = str(self.rps)
        changed = before["limit_rps"] != wanted
        if changed and not ctx.dry_run:
            self._patch(ctx, wanted, wanted)
        after = {"limit_rps": wanted}
        return ActionResult(self.kind, self.target, ctx.dry_run, before, after, undoable=changed)

    def _lift(self, ctx: ActionContext) -> ActionResult:
        """Remove the limit ooda set; a limit a human set is refused, never lifted."""
        notes = self._annotations(ctx)
        before = {"limit_rps": notes.get(LIMIT_RPS), "ooda_set": notes.get(RPS_SET)}
        if before["limit_rps"] is None:
            return ActionResult(self.kind, self.target, ctx.dry_run, before, before, False)
        if before["ooda_set"] != before["limit_rps"]:
            raise GuardRejectedError(
                self.kind,
                self.target,
                f"{LIMIT_RPS}={before['limit_rps']!r} was not set by ooda; a human lifts it",
            )
        if not ctx.dry_run:
            self._patch(ctx, None, None)
        after = {"limit_rps": None}
        return ActionResult(self.kind, self.target, ctx.dry_run, before, after, undoable=True)

    @staticmethod
    def lifts(result: ActionResult) -> bool:
        """Whether ``result`` lifted a limit."""
        return result.before.get("limit_rps") is not None and result.after["limit_rps"] is None

    def undo_when_failed(self, result: ActionResult) -> bool:
        """A limit lifted too soon is put back at once."""
        return self.lifts(result)

    def check(self, result: ActionResult, window: VerifyWindow) -> Outcome:
        """A limit in place heals when the requests it lets in are fast again: the ones it
        turns away are errors by design, so availability is not its verdict (a human is told
        through the audit log). Lifting one heals only when the whole SLO holds after it."""
        if self.lifts(result) or result.after["limit_rps"] is None:
            return slo_outcome(window, None)
        n = window.healthy_minutes
        p95 = pd.to_numeric(window.metrics["p95_latency_ms"], errors="coerce").to_numpy(float)
        fast = p95[-n:] <= window.p95_ms
        if len(p95) >= n and bool(fast.all()):
            return Outcome(
                Verdict.HEALED, f"admitted requests inside the p95 objective for {n} min"
            )
        if window.now >= window.deadline:
            return Outcome(Verdict.FAILED, "admitted requests still slow at the deadline")
        return Outcome(Verdict.PENDING, "waiting for the admitted requests to be fast")

    def undo(self, ctx: ActionContext, result: ActionResult) -> ActionResult | None:
        """Put the previous limit back (none: remove it), unless it changed since ooda set it."""
        if result.dry_run or not result.undoable:
            return None
        notes = self._annotations(ctx)
        ours = result.after["limit_rps"]
        now = (notes.get(LIMIT_RPS), notes.get(RPS_SET))
        if now != (ours, ours):
            raise ConflictError(
                f"ingress {self.namespace}/{self.name}: {LIMIT_RPS}={now[0]!r} ({RPS_SET}="
                f"{now[1]!r}) since ooda set {ours!r}; someone else changed it, so it is left"
                " alone"
            )
        previous = result.before["limit_rps"]
        self._patch(ctx, previous, result.before.get("ooda_set"))
        return self.undone(result, {"limit_rps": previous})
