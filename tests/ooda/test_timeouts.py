"""Real timeouts and a real backoff: a hung API server costs a bounded wait, never the loop.

The loop talks to a TCP server that accepts connections and never answers, through the
official ``kubernetes.client`` objects, so the timeout under test is the one urllib3 really
applies on a socket, not a fake's idea of one.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import kubernetes.client as k8s
import pytest
from kubernetes.client.exceptions import ApiException

from actuators import (
    ActionContext,
    PermanentActuatorError,
    RetryPolicy,
    TemporaryActuatorError,
    call_with_retry,
)
from contracts import KubeClients, WallClock
from lab import CrashLoopFault
from ooda import AuditLog, ControlLoop, LoopSettings, OodaSettings, RuleScorer
from tests.ooda._harness import make_lab

#: What one tick may cost against a hung API server (the timeout is 1 s per call).
TICK_BOUND_S = 10.0


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never answers a byte."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port: int = self._sock.getsockname()[1]
        self._sock.settimeout(0.1)
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.accepted.append(conn)  # held open, never read from or written to

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def hung_kube(port: int) -> KubeClients:
    """Official API objects pointed at the silent server."""
    configuration = k8s.Configuration(host=f"http://127.0.0.1:{port}")
    # urllib3 retries a timed-out GET 3 more times by default, which turns a 1 s timeout
    # into 4 s per call without the loop knowing. A real deployment should set this too:
    # the loop bounds each call itself and retries only where an action asks for it.
    configuration.retries = False
    api = k8s.ApiClient(configuration)
    return KubeClients(
        k8s.CoreV1Api(api),
        k8s.AppsV1Api(api),
        k8s.AutoscalingV2Api(api),
        k8s.PolicyV1Api(api),
        k8s.CustomObjectsApi(api),
    )


def test_a_hung_api_server_costs_one_bounded_tick_and_no_action(silent: SilentServer) -> None:
    """Every API call carries the loop's timeout: the tick returns in bounded time, says why,
    and acts on nothing it could not read."""
    lab = make_lab()
    lab.inject(CrashLoopFault(service="checkout"))
    loop = ControlLoop(
        OodaSettings(loop=LoopSettings(api_timeout_s=1.0)),
        clock=lab.clock,
        source=lab.source,
        scorer=RuleScorer(),
        kube=hung_kube(silent.port),
        audit=AuditLog(":memory:"),
    )
    errors: list[BaseException] = []

    def tick() -> None:
        try:
            loop.tick()
        except BaseException as exc:  # tick must never raise; keep it for the assertion
            errors.append(exc)

    for _ in range(2):
        # In a thread: without the timeout the call would hang for good, and the test with it.
        started = time.monotonic()
        worker = threading.Thread(target=tick, daemon=True)
        worker.start()
        worker.join(TICK_BOUND_S)
        elapsed = time.monotonic() - started
        assert not worker.is_alive(), f"tick still blocked after {TICK_BOUND_S} s"
        assert elapsed < TICK_BOUND_S
        lab.step(timedelta(seconds=15))
    assert errors == []
    assert silent.accepted, "the loop never reached the API server"
    problems = [e.outcome for e in loop.audit.entries("observation")]
    assert any("reading cluster state failed" in p and "timed out" in p for p in problems)
    assert loop.audit.entries("action") == []
    assert loop.audit.entries("intent") == []
    assert loop.stats.ticks == 2


def test_the_default_sleep_is_real_and_the_loop_passes_its_clocks() -> None:
    """Backoff in production sleeps for real; a loop's actions sleep on the loop's clock."""
    assert ActionContext(KubeClients(None, None, None, None, None)).sleep is time.sleep
    lab = make_lab()
    loop = ControlLoop(
        OodaSettings(),
        clock=lab.clock,
        source=lab.source,
        scorer=RuleScorer(),
        kube=KubeClients(None, None, None, None, None),
        audit=AuditLog(":memory:"),
    )
    assert loop.actor.context.sleep == lab.clock.sleep
    assert loop.verifier.context.sleep == lab.clock.sleep
    wall = WallClock()
    loop = ControlLoop(
        OodaSettings(),
        clock=wall,
        source=lab.source,
        scorer=RuleScorer(),
        kube=KubeClients(None, None, None, None, None),
        audit=AuditLog(":memory:"),
    )
    assert loop.actor.context.sleep == wall.sleep
    started = time.monotonic()
    loop.actor.context.sleep(0.2)
    assert time.monotonic() - started >= 0.19, "the wall clock's sleep did not wait"


def busy(failures: int) -> tuple[Any, list[datetime]]:
    """A call that answers 503 ``failures`` times, then "ok"; and the times it was called."""
    calls: list[datetime] = []

    def fn() -> str:
        calls.append(datetime.now(UTC))
        if len(calls) <= failures:
            raise ApiException(status=503, reason="Service Unavailable")
        return "ok"

    return fn, calls


def test_call_with_retry_backs_off_exponentially_up_to_the_cap() -> None:
    """Temporary errors are retried after waits that grow by the multiplier, capped."""
    slept: list[float] = []
    fn, calls = busy(5)
    policy = RetryPolicy(attempts=6, initial_backoff_s=0.5, multiplier=2.0, max_backoff_s=3.0)
    assert call_with_retry(fn, "list pods", policy, sleep=slept.append) == "ok"
    assert len(calls) == 6
    assert slept == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_call_with_retry_gives_up_after_its_attempts_and_raises_temporary() -> None:
    """Out of attempts, the last temporary error is raised, after attempts-1 waits."""
    slept: list[float] = []
    fn, calls = busy(10)
    with pytest.raises(TemporaryActuatorError):
        call_with_retry(fn, "list pods", RetryPolicy(attempts=3), sleep=slept.append)
    assert len(calls) == 3
    assert slept == [0.5, 1.0]


def test_call_with_retry_does_not_retry_a_permanent_error() -> None:
    """A 404 is raised at once: no sleep, one call."""
    slept: list[float] = []
    calls: list[int] = []

    def fn() -> None:
        calls.append(1)
        raise ApiException(status=404, reason="Not Found")

    with pytest.raises(PermanentActuatorError):
        call_with_retry(fn, "read pod", sleep=slept.append)
    assert calls == [1]
    assert slept == []


def test_call_with_retry_sleeps_for_real_by_default() -> None:
    """Without an injected sleep the waits are wall-clock time."""
    fn, calls = busy(2)
    policy = RetryPolicy(attempts=3, initial_backoff_s=0.1, multiplier=2.0)
    started = time.monotonic()
    assert call_with_retry(fn, "list pods", policy) == "ok"
    assert time.monotonic() - started >= 0.29
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(calls)]
    assert gaps[0] >= 0.09 and gaps[1] >= 0.19, f"waits {gaps} did not grow"
