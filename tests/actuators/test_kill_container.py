"""KillContainer on stub clusters: ``kill 1`` through pods/exec where exec works, an eviction
through the Eviction API wherever it does not (no exec method, a 403, a KWOK node, a command
that could not run), and the pods it must not touch."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

import actuators._kill_container as kill_module
from actuators import (
    ActionContext,
    GuardRejectedError,
    KillContainer,
    KubeClients,
    PermanentActuatorError,
)
from actuators._kill_container import _exec_status
from contracts import PodState, Verdict, VerifyWindow, WorkloadState
from tests.actuators._stubs import (
    NS,
    StubCore,
    context,
    make_node,
    make_pod,
    mutations,
    verify_window,
)


class ExecCore(StubCore):
    """A StubCore whose pods/exec runs nothing but records the call, or raises ``error``."""

    def __init__(self, nodes: list[Any], pods: list[Any], error: Exception | None = None) -> None:
        super().__init__(nodes, pods)
        self.execs: list[tuple[str, dict[str, Any]]] = []
        self.error = error

    def connect_get_namespaced_pod_exec(self, name: str, namespace: str, **kwargs: Any) -> str:
        self.execs.append((name, kwargs))
        if self.error is not None:
            raise self.error
        return ""


def _kwok_node(name: str) -> Any:
    node = make_node(name)
    node.metadata.annotations = {"kwok.x-k8s.io/node": "fake"}
    return node


def test_exec_kills_pid_1_of_the_container_and_evicts_nothing() -> None:
    core = ExecCore([make_node("n1")], [make_pod("web-1")])
    ctx, spies = context(core)
    result = KillContainer(NS, "checkout", "stuck", pod="web-1").apply(ctx)
    assert result.after == {"method": "exec", "command": ["kill", "1"]}
    ((pod, call),) = core.execs
    assert pod == "web-1" and call["command"] == ["kill", "1"] and call["container"] == "checkout"
    assert core.evicted == [] and mutations(spies) == ["connect_get_namespaced_pod_exec"]
    assert not result.undoable and KillContainer.disruptive


@pytest.mark.parametrize("status", [403, 404, 0], ids=["forbidden", "not-found", "handshake"])
def test_an_exec_the_api_refuses_falls_back_to_an_eviction(status: int) -> None:
    core = ExecCore([make_node("n1")], [make_pod("web-1")], ApiException(status=status))
    ctx, spies = context(core)
    result = KillContainer(NS, "checkout", pod="web-1").apply(ctx)
    assert len(core.execs) == 1 and core.evicted == ["web-1"]
    assert (
        result.after["method"] == "eviction" and f"({status})" in result.after["exec_unavailable"]
    )
    assert mutations(spies) == ["connect_get_namespaced_pod_exec", "create_namespaced_pod_eviction"]


def test_an_api_without_exec_falls_back_to_an_eviction() -> None:
    """The lab's CoreV1 twin has no pods/exec: the pod is evicted (PDBs hold)."""
    core = StubCore([make_node("n1")], [make_pod("web-1")])
    ctx, _ = context(core)
    result = KillContainer(NS, "checkout", pod="web-1").apply(ctx)
    assert core.evicted == ["web-1"] and "AttributeError" in result.after["exec_unavailable"]


def test_a_kwok_node_is_never_exec_ed_into() -> None:
    """KWOK nodes have no kubelet: exec is not even tried (the API server would dial a node
    that does not exist), the pod is evicted."""
    core = ExecCore([_kwok_node("n1")], [make_pod("web-1")])
    ctx, _ = context(core)
    result = KillContainer(NS, "checkout", pod="web-1").apply(ctx)
    assert core.execs == [] and core.evicted == ["web-1"]
    assert "KWOK" in result.after["exec_unavailable"]


def test_the_preview_says_which_way_it_would_go() -> None:
    core = ExecCore([make_node("n1"), _kwok_node("n2")], [make_pod("a"), make_pod("b", "n2")])
    ctx, spies = context(core)
    dry = ActionContext(ctx.kube, dry_run=True, sleep=ctx.sleep)
    assert KillContainer(NS, "checkout", pod="a").apply(dry).after["would_exec"] == ["kill", "1"]
    assert KillContainer(NS, "checkout", pod="b").apply(dry).after["would_evict"] == "b"
    assert mutations(spies) == [] and core.execs == []


def test_refuses_a_pod_without_a_controller() -> None:
    """Exec might fail over to an eviction, and an evicted bare pod is gone for good."""
    core = ExecCore([make_node("n1")], [make_pod("bare", owner=None)])
    ctx, spies = context(core)
    with pytest.raises(GuardRejectedError, match="no controller"):
        KillContainer(NS, "checkout", pod="bare").apply(ctx)
    assert mutations(spies) == [] and core.execs == []


def test_refuses_a_container_the_pod_does_not_have() -> None:
    core = ExecCore([make_node("n1")], [make_pod("web-1")])
    ctx, spies = context(core)
    with pytest.raises(PermanentActuatorError, match=r"containers \['checkout'\], not 'sidecar'"):
        KillContainer(NS, "checkout", pod="web-1", container="sidecar").apply(ctx)
    assert mutations(spies) == []


class _Session:
    """What ``kubernetes.stream.stream`` returns with ``_preload_content=False``."""

    def __init__(self, error_channel: str) -> None:
        self.error_channel = error_channel
        self.closed = False

    def run_forever(self, timeout: float | None = None) -> None:
        assert timeout is not None, "an exec must not wait unbounded"

    def read_stdout(self) -> str:
        return ""

    def read_stderr(self) -> str:
        return self.error_channel and "kill: not found\n"

    def read_channel(self, channel: int) -> str:
        assert channel == 3
        return self.error_channel

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    ("channel", "method"),
    [
        ("", "exec"),
        ('{"status": "Success"}', "exec"),
        (
            """{"status": "Failure", "reason": "NonZeroExitCode", "message": "exit 137",
           "details": {"causes": [{"reason": "ExitCode", "message": "137"}]}}""",
            "exec",
        ),
        (
            """{"status": "Failure", "reason": "InternalError", "message": "exec: kill: not found",
           "details": {"causes": [{"message": "exec: kill: not found"}]}}""",
            "eviction",
        ),
    ],
    ids=["closed", "success", "killed-with-pid-1", "no-kill-binary"],
)
def test_a_real_client_execs_through_stream_and_reads_the_error_channel(
    monkeypatch: pytest.MonkeyPatch, channel: str, method: str
) -> None:
    """A client with an ``api_client`` goes through ``kubernetes.stream.stream``, which finds
    the ApiClient through the method's ``__self__``; the timeout wrapper stays on the call."""
    core = ExecCore([make_node("n1")], [make_pod("web-1")])
    core.api_client = object()  # type: ignore[attr-defined]
    sessions: list[_Session] = []

    def stream(func: Any, *args: Any, **kwargs: Any) -> _Session:
        assert func.__self__.api_client is core.api_client  # type: ignore[attr-defined]
        assert kwargs["_preload_content"] is False
        func(*args, **kwargs)
        sessions.append(_Session(channel))
        return sessions[-1]

    monkeypatch.setattr(kill_module, "stream", stream)
    ctx = ActionContext(KubeClients(core, None, None), sleep=lambda _s: None, api_timeout_s=3)
    result = KillContainer(NS, "checkout", pod="web-1").apply(ctx)
    assert result.after["method"] == method and sessions[0].closed
    assert core.execs[0][1]["_request_timeout"] == 3
    assert core.evicted == ([] if method == "exec" else ["web-1"])


def test_exec_status_parsing() -> None:
    assert _exec_status("") is None
    assert _exec_status('{"status": "Failure", "message": "boom"}') == "boom"
    exit_1 = '{"status": "Failure", "reason": "NonZeroExitCode", "message": "exit 1",'
    exit_1 += ' "details": {"causes": [{"reason": "ExitCode", "message": "1"}]}}'
    assert _exec_status(exit_1) == "exit 1"


def _window(restarts: int, pod: str = "web-1", ready: int = 3) -> VerifyWindow:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    pods = (PodState(pod, "n1", True, restarts, None, True),)
    workload = WorkloadState(NS, "checkout", "checkout", 3, ready, 1, None, pods, None)
    minutes = {"p95_latency_ms": [80.0, 90.0], "error_rate": [0.0, 0.0]}
    return verify_window(workload, minutes, now, judged_after=2)


def test_a_kill_heals_only_once_the_container_restarted() -> None:
    """A PID 1 without a SIGTERM handler ignores ``kill 1``: the SLO alone is not enough."""
    core = ExecCore([make_node("n1")], [make_pod("web-1")])
    ctx, _ = context(core)
    action = KillContainer(NS, "checkout", pod="web-1")
    result = action.apply(ctx)
    assert action.check(result, _window(restarts=0)).verdict == Verdict.PENDING
    assert action.check(result, _window(restarts=1)).verdict == Verdict.HEALED
    assert action.check(result, _window(restarts=1, ready=2)).verdict == Verdict.PENDING


def test_an_eviction_heals_once_the_pod_is_replaced() -> None:
    core = StubCore([make_node("n1")], [make_pod("web-1")])
    ctx, _ = context(core)
    action = KillContainer(NS, "checkout", pod="web-1")
    result = action.apply(ctx)
    assert action.check(result, _window(restarts=0)).verdict == Verdict.PENDING
    assert action.check(result, _window(0, pod="web-2")).verdict == Verdict.HEALED
