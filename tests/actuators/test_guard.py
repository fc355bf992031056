from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from actuators import (
    CordonNode,
    DrainNode,
    Guard,
    GuardRejectedError,
    GuardSettings,
    RestartPod,
    SetHpaMinReplicas,
    SwitchDatabase,
)

T0 = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)


def restart(pod: str = "checkout-abc") -> RestartPod:
    return RestartPod("shop", "checkout", pod=pod)


def test_cooldown_refuses_the_same_action_on_the_same_target() -> None:
    guard = Guard(GuardSettings(cooldown=timedelta(minutes=5)))
    guard.check(restart(), T0)
    guard.record_applied(restart(), T0)
    guard.record_outcome(restart(), True, T0 + timedelta(minutes=2))
    with pytest.raises(GuardRejectedError, match="cooldown"):
        guard.check(restart(), T0 + timedelta(minutes=4))
    guard.check(restart(), T0 + timedelta(minutes=5, seconds=1))


def test_cooldown_is_per_workload_not_per_pod_and_per_kind_override() -> None:
    guard = Guard(GuardSettings(cooldown_by_kind={"set_hpa_min": timedelta(seconds=30)}))
    hpa = SetHpaMinReplicas("shop", "frontend", hpa="frontend", min_replicas=6)
    guard.record_applied(restart("a"), T0)
    guard.record_outcome(restart("a"), True, T0)
    with pytest.raises(GuardRejectedError, match="cooldown"):
        guard.check(restart("b"), T0 + timedelta(seconds=1))  # the replacement pod, same workload
    guard.check(RestartPod("shop", "payments", pod="b"), T0 + timedelta(seconds=1))
    guard.record_applied(hpa, T0)
    with pytest.raises(GuardRejectedError):
        guard.check(hpa, T0 + timedelta(seconds=20))
    guard.check(hpa, T0 + timedelta(seconds=31))


def test_blast_radius_limits_disruptions_per_workload() -> None:
    guard = Guard(
        GuardSettings(
            max_disruptions_per_workload=2,
            disruption_window=timedelta(minutes=30),
            cooldown=timedelta(0),
        )
    )
    for i, pod in enumerate(["a", "b"]):
        guard.check(restart(pod), T0 + timedelta(minutes=i))
        guard.record_applied(restart(pod), T0 + timedelta(minutes=i))
        guard.record_outcome(restart(pod), True, T0 + timedelta(minutes=i))
    with pytest.raises(GuardRejectedError, match="blast radius"):
        guard.check(restart("c"), T0 + timedelta(minutes=3))
    guard.check(restart("c"), T0 + timedelta(minutes=31))


def test_one_disruptive_action_per_workload_awaits_its_verdict() -> None:
    guard = Guard(GuardSettings(cooldown=timedelta(0), max_disruptions_per_workload=9))
    guard.record_applied(restart("a"), T0)
    with pytest.raises(GuardRejectedError, match="awaits its verdict"):
        guard.check(restart("b"), T0 + timedelta(minutes=20))
    hpa = SetHpaMinReplicas("shop", "checkout", hpa="checkout", min_replicas=6)
    guard.check(hpa, T0 + timedelta(minutes=1))  # scaling takes nothing away: not held back
    guard.record_outcome(restart("a"), True, T0 + timedelta(minutes=21))
    guard.check(restart("b"), T0 + timedelta(minutes=21))


def test_the_next_step_of_a_drain_is_the_same_heal() -> None:
    """A drain its budgets stopped is continued by the next drain of the same node for the
    same workload once the cooldown has passed, however many steps it takes: no new
    disruption, not held back by the first one's pending verdict. Another workload's drain of
    that node, or a drain of another node, still waits for the verdict."""
    guard = Guard(GuardSettings(max_disruptions_per_workload=2))
    step = DrainNode("shop", "checkout", node="n1")
    guard.record_applied(step, T0)
    with pytest.raises(GuardRejectedError, match="cooldown"):
        guard.check(step, T0 + timedelta(minutes=4))
    for minutes in (5, 10, 15):
        guard.check(step, T0 + timedelta(minutes=minutes))
        guard.record_applied(step, T0 + timedelta(minutes=minutes))
    later = T0 + timedelta(minutes=21)
    with pytest.raises(GuardRejectedError, match="awaits its verdict"):
        guard.check(DrainNode("shop", "payments", node="n1"), later)
    with pytest.raises(GuardRejectedError, match="one node action at a time"):
        guard.check(DrainNode("shop", "checkout", node="n2"), later)
    guard.record_outcome(step, True, later)
    guard.check(restart(), later)  # one disruption of checkout so far


def test_a_cluster_failover_is_disruptive_a_reads_switch_is_not() -> None:
    guard = Guard(GuardSettings(cooldown=timedelta(0), max_disruptions_per_workload=9))
    reads = SwitchDatabase("shop", "checkout", db_service="orders-db-ro", secondary="replica")
    writes = SwitchDatabase(
        "shop", "checkout", db_service="orders-db", secondary="replica", cluster="orders"
    )
    guard.record_applied(reads, T0)
    guard.check(restart("a"), T0 + timedelta(minutes=1))  # repointing reads takes nothing away
    guard.record_applied(writes, T0 + timedelta(minutes=2))
    with pytest.raises(GuardRejectedError, match=r"switch_database .* awaits its verdict"):
        guard.check(restart("a"), T0 + timedelta(minutes=3))
    guard.record_outcome(writes, True, T0 + timedelta(minutes=4))
    guard.check(restart("a"), T0 + timedelta(minutes=4))


def test_breaker_opens_after_repeated_failures_and_closes_later() -> None:
    settings = GuardSettings(breaker_failures=3, breaker_open_for=timedelta(hours=1))
    guard = Guard(settings)
    action = restart()
    opened = [guard.record_outcome(action, False, T0 + timedelta(minutes=i)) for i in range(3)]
    assert opened == [False, False, True]
    assert guard.is_open("shop/checkout", T0 + timedelta(minutes=10))
    with pytest.raises(GuardRejectedError, match="circuit breaker"):
        guard.check(action, T0 + timedelta(minutes=10))
    assert not guard.is_open("shop/checkout", T0 + timedelta(hours=2))


def test_the_breaker_is_keyed_on_the_workload_so_new_pod_names_do_not_reset_it() -> None:
    guard = Guard(
        GuardSettings(breaker_failures=3, cooldown=timedelta(0), max_disruptions_per_workload=9)
    )
    for i, pod in enumerate(["checkout-1", "checkout-2", "checkout-3"]):
        guard.record_applied(restart(pod), T0 + timedelta(minutes=10 * i))
        guard.record_outcome(restart(pod), False, T0 + timedelta(minutes=10 * i + 5))
    with pytest.raises(GuardRejectedError, match="circuit breaker of shop/checkout"):
        guard.check(restart("checkout-4"), T0 + timedelta(minutes=40))
    guard.reset("shop/checkout")
    guard.check(restart("checkout-4"), T0 + timedelta(minutes=40))


def test_successes_do_not_count_towards_the_breaker() -> None:
    guard = Guard(GuardSettings(breaker_failures=2))
    action = restart()
    assert not guard.record_outcome(action, False, T0)
    assert not guard.record_outcome(action, True, T0 + timedelta(minutes=1))
    assert not guard.is_open(action.workload, T0 + timedelta(minutes=1))


def test_one_node_action_at_a_time_until_its_outcome() -> None:
    guard = Guard()
    drain_a = DrainNode("shop", "checkout", node="node-a")
    drain_b = DrainNode("shop", "checkout", node="node-b")
    guard.check(drain_a, T0)
    guard.record_applied(drain_a, T0)
    with pytest.raises(GuardRejectedError, match="one node action at a time: node/node-a"):
        guard.check(CordonNode("shop", "checkout", node="node-b"), T0 + timedelta(minutes=1))
    guard.check(restart(), T0 + timedelta(minutes=1))  # pod actions are not node actions
    guard.record_outcome(drain_a, True, T0 + timedelta(minutes=2))
    guard.check(drain_b, T0 + timedelta(minutes=2))


def test_an_action_still_running_holds_its_breaker_and_the_node_slot() -> None:
    """A drain running beside the loop's ticks (not yet applied, so neither in cooldown nor
    awaiting a verdict) holds its node against any other action and every other node
    action; a pod action elsewhere goes on. Its return frees both."""
    guard = Guard()
    drain = DrainNode("shop", "checkout", node="node-a")
    guard.check(drain, T0)
    guard.start(drain)
    with pytest.raises(GuardRejectedError, match="drain_node on node/node-a is still running"):
        guard.check(CordonNode("shop", "payments", node="node-a"), T0)
    with pytest.raises(GuardRejectedError, match="one node action at a time: drain_node"):
        guard.check(DrainNode("shop", "payments", node="node-b"), T0)
    guard.check(restart(), T0)
    guard.start(restart())
    with pytest.raises(GuardRejectedError, match="restart_pod on pod/shop/checkout-abc"):
        guard.check(restart("checkout-def"), T0)
    guard.finish(drain)
    guard.check(DrainNode("shop", "payments", node="node-b"), T0)


def test_a_node_action_that_never_reports_stops_blocking_after_the_timeout() -> None:
    guard = Guard(GuardSettings(node_action_timeout=timedelta(minutes=10)))
    guard.record_applied(DrainNode("shop", "checkout", node="node-a"), T0)
    other = DrainNode("shop", "payments", node="node-b")
    with pytest.raises(GuardRejectedError):
        guard.check(other, T0 + timedelta(minutes=9))
    guard.check(other, T0 + timedelta(minutes=10))


def test_a_restart_that_failed_is_not_tried_again_on_its_workload() -> None:
    """A restart into a crash that survives it fails the same way on the next pod: refused
    for the breaker window, on any pod of the workload; other kinds and workloads may act,
    and a human's reset lifts it."""
    guard = Guard(GuardSettings(cooldown=timedelta(0), max_disruptions_per_workload=9))
    guard.record_applied(restart("checkout-1"), T0)
    assert not guard.record_outcome(restart("checkout-1"), False, T0 + timedelta(minutes=6))
    later = T0 + timedelta(minutes=30)
    with pytest.raises(GuardRejectedError, match="would fail the same way"):
        guard.check(restart("checkout-2"), later)
    guard.check(SetHpaMinReplicas("shop", "checkout", hpa="checkout", min_replicas=6), later)
    guard.check(RestartPod("shop", "payments", pod="payments-1"), later)
    guard.check(restart("checkout-2"), T0 + timedelta(hours=2, minutes=7))
    guard.reset("shop/checkout")
    guard.check(restart("checkout-2"), later)


def test_a_repeatable_action_that_failed_may_be_tried_again() -> None:
    guard = Guard(GuardSettings(cooldown=timedelta(0)))
    hpa = SetHpaMinReplicas("shop", "checkout", hpa="checkout", min_replicas=6)
    guard.record_applied(hpa, T0)
    guard.record_outcome(hpa, False, T0 + timedelta(minutes=6))
    guard.check(hpa, T0 + timedelta(minutes=7))
