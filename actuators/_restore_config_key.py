"""Put a removed ConfigMap key back, with the value it had.

The seeds' operator example: someone removed a key a service reads at start-up (``envFrom``),
its pods crash-loop saying the variable is not set, and a restart only re-reads the broken
config. The heal is the config itself: a merge patch that sets ``data[key]`` to the value the
loop last saw there. It is a change to a person's configuration, so it is proposed by default
(``AutonomySettings.propose_only``) and applied only where an operator allows it.

It refuses when the key is back already, with any value (someone fixed it their way, and
ooda never overwrites a person's change), and when the ConfigMap is gone. Crash-looping
containers pick the key up at their next start. Undo removes the key again, unless it was
changed since.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actuators._base import Action, ActionResult, register_action
from actuators._context import ActionContext
from actuators._errors import ConflictError, GuardRejectedError, PermanentActuatorError
from actuators._kube import MERGE_PATCH
from actuators._restart_pod import pods_recovered
from contracts import ActionKind, VerifyWindow

#: The key ooda restored, on the ConfigMap it restored it in.
RESTORED_KEY = "ooda.dev/restored-key"


@register_action
@dataclass(frozen=True)
class RestoreConfigKey(Action):
    """Set ``config_map``'s ``key`` back to ``value``, the value it had before it was removed."""

    config_map: str = ""
    key: str = ""
    value: str = ""
    """The value the loop last saw under ``key``."""

    kind = ActionKind.RESTORE_CONFIG_KEY

    @property
    def target(self) -> str:
        return f"configmap/{self.namespace}/{self.config_map}"

    def _read(self, ctx: ActionContext) -> Any:
        return self.call(
            ctx,
            lambda: ctx.api.core_v1.read_namespaced_config_map(self.config_map, self.namespace),
            f"read configmap {self.namespace}/{self.config_map}",
        )

    def _patch(self, ctx: ActionContext, value: str | None, note: str | None) -> None:
        body = {
            "metadata": {"annotations": {**ctx.annotations(self.kind), RESTORED_KEY: note}},
            "data": {self.key: value},
        }
        self.call(
            ctx,
            lambda: ctx.api.core_v1.patch_namespaced_config_map(
                self.config_map, self.namespace, body, _content_type=MERGE_PATCH
            ),
            f"set {self.key} in configmap {self.namespace}/{self.config_map}",
        )

    def apply(self, ctx: ActionContext) -> ActionResult:
        if not (self.config_map and self.key):
            raise PermanentActuatorError(
                f"restore_config_key needs a ConfigMap and a key, got {self.config_map!r},"
                f" {self.key!r}"
            )
        data = dict(self._read(ctx).data or {})
        if self.key in data:
            raise GuardRejectedError(
                self.kind,
                self.target,
                f"key {self.key} is back already (someone set it); nothing to restore",
            )
        before = {"key": self.key, "present": False}
        after = {"key": self.key, "present": True, "value": self.value}
        if not ctx.dry_run:
            self._patch(ctx, self.value, self.key)
        return ActionResult(self.kind, self.target, ctx.dry_run, before, after, undoable=True)

    def undo(self, ctx: ActionContext, result: ActionResult) -> ActionResult | None:
        """Remove the key again, unless its value changed since ooda set it."""
        if result.dry_run or not result.undoable:
            return None
        now = dict(self._read(ctx).data or {}).get(self.key)
        if now != result.after["value"]:
            raise ConflictError(
                f"{self.key} in configmap {self.namespace}/{self.config_map} is {now!r} since"
                " ooda restored it; someone else changed it, so it is left alone"
            )
        self._patch(ctx, None, None)
        return self.undone(result, {"key": self.key, "present": False})

    def healthy(self, result: ActionResult, window: VerifyWindow) -> str | None:
        return pods_recovered(window)
