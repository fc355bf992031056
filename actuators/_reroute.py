"""Reroute traffic by moving the weights of a Gateway API ``HTTPRoute``'s backends.

Where a service reaches an upstream (or is reached) through a Gateway, an HTTPRoute rule splits
requests over its ``backendRefs`` by ``weight``. Moving weight shifts traffic from a throttling
upstream to its second region, or away from the pods behind a lossy path, without touching a
Deployment. The route is a custom resource (gateway.networking.k8s.io/v1), changed through
``CustomObjectsApi`` with a merge patch, which replaces the ``rules`` list whole: the rules are
written back as read, with only the weights changed.

The action refuses to give more weight to a backend the runbook marks unhealthy and a split
whose weights sum to nothing (every request would fail). Undo puts the weights back unless
someone moved them since.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from actuators._base import Action, ActionResult, register_action
from actuators._context import ActionContext
from actuators._errors import ConflictError, GuardRejectedError, PermanentActuatorError
from actuators._kube import MERGE_PATCH
from contracts import ActionKind

GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_VERSION = "v1"
HTTPROUTES = "httproutes"
#: The largest ``weight`` the Gateway API allows.
MAX_WEIGHT = 1_000_000


def rule_weights(route: dict[str, Any], rule: int) -> dict[str, int]:
    """Backend name -> weight of rule ``rule`` (an absent weight is the API's default, 1)."""
    rules = (route.get("spec") or {}).get("rules") or []
    if not 0 <= rule < len(rules):
        name = (route.get("metadata") or {}).get("name")
        raise PermanentActuatorError(f"httproute {name!r} has {len(rules)} rules, no rule {rule}")
    weights: dict[str, int] = {}
    for ref in rules[rule].get("backendRefs") or []:
        if ref["name"] in weights:
            raise PermanentActuatorError(
                f"backend {ref['name']!r} appears twice in rule {rule}; weights by name are"
                " ambiguous"
            )
        weights[ref["name"]] = int(ref.get("weight", 1))
    return weights


@register_action
@dataclass(frozen=True)
class Reroute(Action):
    """Set the weights of backends of one rule of an HTTPRoute."""

    route: str = ""
    weights: tuple[tuple[str, int], ...] = ()
    """(backend name, new weight) pairs; backends not named keep their weight."""
    unhealthy: tuple[str, ...] = ()
    """Backends the runbook found unhealthy: none of them may be given more weight."""
    rule: int = 0
    """Index of the rule in ``spec.rules``."""

    kind = ActionKind.REROUTE

    @property
    def target(self) -> str:
        return f"httproute/{self.namespace}/{self.route}"

    def _api(self, ctx: ActionContext) -> Any:
        if ctx.kube.custom_objects is None:
            raise PermanentActuatorError("reroute needs a CustomObjectsApi, got None")
        return ctx.api.custom_objects

    def _read(self, ctx: ActionContext) -> dict[str, Any]:
        api = self._api(ctx)
        route: dict[str, Any] = self.call(
            ctx,
            lambda: api.get_namespaced_custom_object(
                GATEWAY_GROUP, GATEWAY_VERSION, self.namespace, HTTPROUTES, self.route
            ),
            f"read httproute {self.namespace}/{self.route}",
        )
        return route

    def _patch(self, ctx: ActionContext, route: dict[str, Any], weights: dict[str, int]) -> None:
        rules = copy.deepcopy(route["spec"]["rules"])
        for ref in rules[self.rule].get("backendRefs") or []:
            ref["weight"] = weights[ref["name"]]
        body = {"metadata": {"annotations": ctx.annotations(self.kind)}, "spec": {"rules": rules}}
        api = self._api(ctx)
        self.call(
            ctx,
            lambda: api.patch_namespaced_custom_object(
                GATEWAY_GROUP,
                GATEWAY_VERSION,
                self.namespace,
                HTTPROUTES,
                self.route,
                body,
                _content_type=MERGE_PATCH,
            ),
            f"set weights {weights} on httproute {self.namespace}/{self.route}",
        )

    def _validate(self) -> None:
        if not self.route or not self.weights:
            raise PermanentActuatorError(
                f"reroute needs a route and weights, got {self.route!r} and {self.weights!r}"
            )
        for name, weight in self.weights:
            if isinstance(weight, bool) or not isinstance(weight, int):
                raise PermanentActuatorError(f"weight of {name!r} must be an int, got {weight!r}")
            if not 0 <= weight <= MAX_WEIGHT:
                raise PermanentActuatorError(
                    f"weight of {name!r} must be within 0..{MAX_WEIGHT}, got {weight}"
                )

    def apply(self, ctx: ActionContext) -> ActionResult:
        self._validate()
        route = self._read(ctx)
        before = rule_weights(route, self.rule)
        unknown = sorted({name for name, _ in self.weights} - before.keys())
        if unknown:
            raise PermanentActuatorError(
                f"httproute {self.namespace}/{self.route} rule {self.rule} has no backends"
                f" {unknown}; it has {sorted(before)}"
            )
        after = {**before, **dict(self.weights)}
        raised = sorted(n for n in self.unhealthy if after.get(n, 0) > before.get(n, 0))
        if raised:
            raise GuardRejectedError(
                self.kind,
                self.target,
                f"would send more traffic to unhealthy backends {raised}: {after}",
            )
        if sum(after.values()) <= 0:
            raise GuardRejectedError(
                self.kind, self.target, f"weights {after} sum to 0: every request would fail"
            )
        changed = after != before
        if changed and not ctx.dry_run:
            self._patch(ctx, route, after)
        return ActionResult(
            self.kind,
            self.target,
            ctx.dry_run,
            {"rule": self.rule, "weights": before},
            {"rule": self.rule, "weights": after},
            undoable=changed,
        )

    def undo(self, ctx: ActionContext, result: ActionResult) -> ActionResult | None:
        """Put the weights back, unless they moved since ooda set them."""
        if result.dry_run or not result.undoable:
            return None
        route = self._read(ctx)
        now = rule_weights(route, self.rule)
        ours = result.after["weights"]
        if now != ours:
            raise ConflictError(
                f"httproute {self.namespace}/{self.route} rule {self.rule} has weights {now}"
                f" since ooda set {ours}; someone else changed them, so they are left alone"
            )
        previous = dict(result.before["weights"])
        self._patch(ctx, route, previous)
        return self.undone(result, {"rule": self.rule, "weights": previous})
