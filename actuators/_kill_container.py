"""Kill a stuck container: ``kubectl exec POD -c CONTAINER -- kill 1``, else evict the pod.

A container that hangs (a deadlock, a wedged event loop) but still passes its liveness probe is
never restarted by the kubelet. Signalling its PID 1 through the ``pods/exec`` subresource makes
the kubelet restart just that container, in place: the pod keeps its node, its IP and its
volumes, and no replacement has to be scheduled. Exec is not always there: RBAC may not grant
``pods/exec`` (403), the node may have no real kubelet (KWOK's simulated nodes, the lab), the
image may have no ``kill``. Then the pod is evicted through the Eviction API instead, which
honours PodDisruptionBudgets, and its controller replaces it. Either way capacity drops for a
while, so the action is disruptive. Only a pod of the healed service with a controller is
touched (an evicted bare pod would be gone for good).
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream

from actuators._base import Action, ActionResult, register_action
from actuators._context import ActionContext
from actuators._errors import PermanentActuatorError
from actuators._kube import evict_pod, read_service_pod
from contracts import ActionKind, VerifyWindow

COMMAND = ("kill", "1")
#: Annotation and kubelet version prefix of a KWOK node: no kubelet there serves exec.
KWOK_NODE = "kwok.x-k8s.io/node"
_ERROR_CHANNEL = 3
#: Exit statuses of an exec whose container died under it (SIGKILL, SIGTERM): the kill worked.
_KILLED = frozenset({137, 143})


class _ExecUnavailableError(Exception):
    """Exec could not run the command in the container (internal: the action falls back)."""


def _exec_status(channel: str) -> str | None:
    """Why an exec failed, from its error channel (a v1 ``Status``); None when it succeeded."""
    if not channel:
        return None
    status = yaml.safe_load(channel) or {}
    if status.get("status") == "Success":
        return None
    causes = (status.get("details") or {}).get("causes") or []
    codes = [c.get("message") for c in causes if c.get("reason") == "ExitCode"]
    if status.get("reason") == "NonZeroExitCode" and codes and int(codes[0]) in _KILLED:
        return None
    return str(status.get("message") or status)


def run_exec(ctx: ActionContext, pod: str, namespace: str, container: str) -> str:
    """Run :data:`COMMAND` in ``container`` through ``pods/exec``; its output.

    A real client's ``connect_get_namespaced_pod_exec`` is a websocket upgrade that only
    ``kubernetes.stream.stream`` can make; an API object without an ``api_client`` (a twin)
    is called directly and returns the output as a string. Raises
    :class:`_ExecUnavailableError` whenever the command did not run, whatever the cause.
    """
    api = ctx.api.core_v1
    kwargs: dict[str, Any] = {
        "command": list(COMMAND),
        "container": container,
        "stderr": True,
        "stdin": False,
        "stdout": True,
        "tty": False,
    }
    try:
        method = api.connect_get_namespaced_pod_exec
        if getattr(api, "api_client", None) is None:
            return str(method(pod, namespace, **kwargs))
        # stream() reaches the ApiClient through the method's __self__; binding the wrapped
        # call to the wrapper keeps its timeout (and any spy) on the call.
        bound = types.MethodType(lambda _api, *a, **k: method(*a, **k), api)
        session = stream(bound, pod, namespace, _preload_content=False, **kwargs)
        try:
            session.run_forever(timeout=ctx.api_timeout_s)
            output = session.read_stdout() + session.read_stderr()
            failure = _exec_status(session.read_channel(_ERROR_CHANNEL))
        finally:
            session.close()
    except (AttributeError, ApiException) as exc:  # no exec here; refused; no kubelet
        raise _ExecUnavailableError(f"{type(exc).__name__}: {exc}") from exc
    if failure is not None:
        raise _ExecUnavailableError(failure)
    return str(output)


def _kwok(node: Any) -> bool:
    info = node.status.node_info if node.status is not None else None
    version = (info.kubelet_version if info is not None else None) or ""
    return KWOK_NODE in (node.metadata.annotations or {}) or version.startswith("kwok")


@register_action
@dataclass(frozen=True)
class KillContainer(Action):
    """Signal PID 1 of one container so the kubelet restarts it; evict the pod if exec fails."""

    pod: str = ""
    container: str = ""
    """The container to kill; empty: the pod's only container."""

    kind = ActionKind.KILL_CONTAINER
    disruptive = True
    repeatable = False
    waits = True
    verifies_idle = True

    @property
    def target(self) -> str:
        return f"pod/{self.namespace}/{self.pod}"

    def _container(self, pod: Any) -> str:
        names = [c.name for c in pod.spec.containers]
        if not self.container and len(names) == 1:
            return str(names[0])
        if self.container not in names:
            raise PermanentActuatorError(
                f"pod {self.namespace}/{self.pod} has containers {names}, not {self.container!r}"
            )
        return self.container

    def _no_kubelet(self, ctx: ActionContext, node: str | None) -> str | None:
        """Why exec cannot work on ``node`` without trying it (None: it may)."""
        if not node:
            return "the pod is not bound to a node"
        read = self.call(ctx, lambda: ctx.api.core_v1.read_node(node), f"read node {node}")
        return f"node {node} is simulated by KWOK (no kubelet)" if _kwok(read) else None

    def apply(self, ctx: ActionContext) -> ActionResult:
        if not self.pod:
            raise PermanentActuatorError("kill_container needs a pod name, got ''")
        pod = read_service_pod(ctx, self.kind, self.pod, self.namespace, self.service)
        container = self._container(pod)
        restarts = sum(s.restart_count or 0 for s in pod.status.container_statuses or [])
        before = {
            "pod": self.pod,
            "container": container,
            "node": pod.spec.node_name,
            "restarts": restarts,
        }
        no_exec = self._no_kubelet(ctx, pod.spec.node_name)
        if ctx.dry_run:
            plan = {"would_exec": list(COMMAND), "container": container}
            if no_exec is not None:
                plan = {"would_evict": self.pod, "exec_unavailable": no_exec}
            return ActionResult(self.kind, self.target, True, before, plan, undoable=False)
        if no_exec is None:
            try:
                run_exec(ctx, self.pod, self.namespace, container)
                after: dict[str, Any] = {"method": "exec", "command": list(COMMAND)}
                return ActionResult(self.kind, self.target, False, before, after, False)
            except _ExecUnavailableError as exc:
                no_exec = str(exc)
        outcome = evict_pod(ctx, self.pod, self.namespace)
        after = {
            "method": "eviction",
            "exec_unavailable": no_exec,
            "evicted": True,
            "pdb_refusals": outcome.refusals,
        }
        return ActionResult(self.kind, self.target, False, before, after, undoable=False)

    def healthy(self, result: ActionResult, window: VerifyWindow) -> str | None:
        """Killed: the container restarted (a PID 1 without a SIGTERM handler ignores
        ``kill 1``), or the evicted pod is gone; and every replica is Ready again."""
        workload = window.workload
        if workload is None:
            return "workload state unknown"
        pod = next((p for p in workload.pods if p.name == self.pod), None)
        if result.after.get("method") == "exec" and pod is not None:
            if pod.restarts <= int(result.before["restarts"]):
                return f"pod {self.pod} has not restarted: PID 1 may have ignored the signal"
        elif pod is not None:
            return f"evicted pod {self.pod} is still there"
        if workload.ready_replicas < workload.replicas:
            return f"{workload.ready_replicas} of {workload.replicas} replicas Ready"
        return None
