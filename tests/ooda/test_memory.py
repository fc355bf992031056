"""The loop's memory between ticks: a crash loop seen within the gap is still a crash loop
while its container runs between two crashes; a config change seen once stays seen after a
later write by the same manager hides its time in ``managedFields``."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from contracts import ConfigChange, PodState, WorkloadState
from ooda._memory import ClusterMemory

T = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
GAP = timedelta(minutes=5)


def pod(name: str, waiting: str | None = None, restarts: int = 0) -> PodState:
    return PodState(name, "node-1", waiting is None, restarts, waiting, True, "h1")


def workload(*pods: PodState, changes: tuple[ConfigChange, ...] = ()) -> WorkloadState:
    return WorkloadState(
        "shop", "checkout", "checkout", 3, 2, 1, None, pods, None, config_changes=changes
    )


def test_a_crash_loop_lasts_through_the_seconds_its_container_runs() -> None:
    memory = ClusterMemory(GAP, timedelta(hours=24))
    looping = workload(pod("a", "CrashLoopBackOff", 4), pod("b"))
    _, since, looped = memory.update(T, {"checkout": looping})
    assert since == {"checkout": T} and looped == {"checkout": frozenset({"a"})}
    running = workload(pod("a", None, 5), pod("b"))
    at = T + timedelta(minutes=2)
    _, since, looped = memory.update(at, {"checkout": running})
    assert since == {"checkout": T}, "the episode ended while a container ran"
    assert looped == {"checkout": frozenset({"a"})}
    _, since, looped = memory.update(T + timedelta(minutes=6), {"checkout": running})
    assert since == {} and looped == {}, "a pod that ran past the gap is healthy again"


def test_a_gone_pod_is_forgotten_and_a_new_episode_starts_after_the_gap() -> None:
    memory = ClusterMemory(GAP, timedelta(hours=24))
    memory.update(T, {"checkout": workload(pod("a", "CrashLoopBackOff", 4))})
    _, _, looped = memory.update(T + timedelta(minutes=1), {"checkout": workload(pod("c"))})
    assert looped == {}, "a deleted pod is no longer the loop's to restart"
    later = T + timedelta(minutes=10)
    _, since, _ = memory.update(later, {"checkout": workload(pod("c", "CrashLoopBackOff", 2))})
    assert since == {"checkout": later}


def test_a_config_change_stays_seen_after_a_later_write_hides_it() -> None:
    memory = ClusterMemory(GAP, timedelta(hours=24))
    first = ConfigChange("ConfigMap", "checkout-config", T, "kubectl-edit")
    memory.update(T, {"checkout": workload(pod("a"), changes=(first,))})
    second = replace(first, at=T + timedelta(minutes=10))
    out, _, _ = memory.update(second.at, {"checkout": workload(pod("a"), changes=(second,))})
    assert out["checkout"].config_changes == (second, first), "newest first"
    much_later = T + timedelta(hours=25)
    out, _, _ = memory.update(much_later, {"checkout": workload(pod("a"), changes=(second,))})
    assert out["checkout"].config_changes == (second,), "remembered past the horizon"


def test_a_key_removed_while_the_loop_watched_is_named_with_its_value() -> None:
    memory = ClusterMemory(GAP, timedelta(hours=24))
    whole = {"checkout-config": {"DB_POOL_SIZE": "20", "TLS_CA_BUNDLE": "/etc/ca.pem"}}
    memory.update(T, {"checkout": replace(workload(pod("a")), config_data=whole)})
    edit = ConfigChange("ConfigMap", "checkout-config", T + timedelta(minutes=1), "kubectl-edit")
    broken = {"checkout-config": {"DB_POOL_SIZE": "20"}}
    later = replace(workload(pod("a"), changes=(edit,)), config_data=broken)
    out, _, _ = memory.update(edit.at, {"checkout": later})
    assert out["checkout"].config_changes[0].removed == (("TLS_CA_BUNDLE", "/etc/ca.pem"),)
    out, _, _ = memory.update(edit.at + timedelta(minutes=1), {"checkout": later})
    assert out["checkout"].config_changes[0].removed == (("TLS_CA_BUNDLE", "/etc/ca.pem"),)
    fixed = replace(later, config_data=whole)
    out, _, _ = memory.update(edit.at + timedelta(minutes=2), {"checkout": fixed})
    assert out["checkout"].config_changes[0].removed == ()


def test_a_key_missing_from_the_first_look_is_not_named() -> None:
    memory = ClusterMemory(GAP, timedelta(hours=24))
    edit = ConfigChange("ConfigMap", "checkout-config", T, "kubectl-edit")
    first = replace(
        workload(pod("a"), changes=(edit,)), config_data={"checkout-config": {"A": "1"}}
    )
    out, _, _ = memory.update(T, {"checkout": first})
    assert out["checkout"].config_changes[0].removed == ()
