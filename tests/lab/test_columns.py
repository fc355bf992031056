"""The column-at-a-time paths (pod table, pod samples, served models) against plain loops."""

from __future__ import annotations

import copy
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from lab import CrashLoopFault, Lab, LabSettings, SimClock, TrafficSurgeFault
from tests._narrow import name_of, some

NS = "shop"
NOON = datetime(2025, 1, 8, 12, tzinfo=UTC)
Snapshot = dict[str, tuple[int, float, float, int]]
"""Pod name -> (service, CPU seconds, working set, restarts) of the pods on a node."""


def snapshot(lab: Lab) -> Snapshot:
    return {
        name: (pod.service, pod.cpu_seconds, pod.memory_bytes, pod.restarts)
        for name, pod in lab.cluster.pods.items()
        if pod.node is not None
    }


def pod_columns(
    lab: Lab, scrapes: list[Snapshot], times: list[float], ends: list[float], step_s: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The documented PromQL recipes, one step end, one pod and one sample at a time."""
    services = lab.settings.topology.services
    order: dict[str, None] = {}  # series in the order they were first scraped
    for scrape in scrapes:
        order.update(dict.fromkeys(scrape))
    shape = (len(ends), len(services))
    cpu, memory, restarts = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    for r, end in enumerate(ends):

        def window(width: float, end: float = end) -> list[int]:
            return [i for i, t in enumerate(times) if end - width - 1e-6 <= t <= end + 1e-6]

        rate_window, restart_window = window(max(step_s, 60.0)), window(300.0)
        last = rate_window[-1]
        sums = [[0.0, 0] for _ in services]
        for name in order:
            for samples, column in ((rate_window, 1), (restart_window, 3)):
                seen = [i for i in samples if name in scrapes[i]]
                if len(samples) < 2 or len(seen) < 2:
                    continue
                service = scrapes[seen[0]][name][0]
                a, b = scrapes[seen[0]][name][column], scrapes[seen[-1]][name][column]
                if column == 1:
                    rate = (b - a) / (times[seen[-1]] - times[seen[0]])
                    sums[service][0] += rate / services[service].cpu_request_cores
                    sums[service][1] += 1
                else:
                    restarts[r, service] = np.nan_to_num(restarts[r, service]) + (b - a)
            if name in scrapes[last]:
                service, _, working_set, _ = scrapes[last][name]
                used = working_set / services[service].memory_limit_bytes
                memory[r, service] = np.fmax(memory[r, service], used)
        for service, (total, count) in enumerate(sums):
            cpu[r, service] = total / count if count else math.nan
    return cpu, memory, restarts


def test_pod_columns_equal_a_plain_loop_over_pods_and_samples() -> None:
    lab = Lab(LabSettings(seed=3), SimClock(NOON))
    scrapes, times = [snapshot(lab)], [NOON.timestamp()]
    events = {
        80: lambda: lab.inject(CrashLoopFault("payments")),
        140: lambda: lab.kube.core_v1.delete_namespaced_pod(lab.ground_truth[0].target, NS),
        200: lambda: lab.inject(TrafficSurgeFault(factor=3.0, duration=timedelta(minutes=30))),
    }
    for tick in range(1, 8 * 60 + 1):  # two hours of 15 s scrapes, pods coming and going
        events.get(tick, lambda: None)()
        lab.step(timedelta(seconds=15))
        scrapes.append(snapshot(lab))
        times.append(lab.clock.now().timestamp())
    assert len({name for scrape in scrapes for name in scrape}) > 40
    start = NOON + timedelta(minutes=6)
    for step in (timedelta(seconds=15), timedelta(minutes=1), timedelta(minutes=5)):
        frame = lab.source.query_range(start, lab.clock.now(), step)
        ends = sorted({t.timestamp() for t in frame.timestamp})
        expected = pod_columns(lab, scrapes, times, ends, step.total_seconds())
        n = len(lab.services)
        for column, want in zip(
            ("cpu_utilisation", "memory_utilisation", "restarts"), expected, strict=True
        ):
            got = frame[column].to_numpy().reshape(-1, n)
            np.testing.assert_array_equal(got, want, err_msg=f"{column} at step {step}")
        assert np.nanmax(expected[2]) >= 3  # the crash loop is in there


def test_pods_keep_their_state_through_churn_and_compaction() -> None:
    lab = Lab(LabSettings(), SimClock(NOON))
    table = lab.cluster.pod_table
    for _ in range(80):  # every deletion creates a replacement: more rows than the table had
        pod = lab.kube.core_v1.list_namespaced_pod(NS, label_selector="app=frontend").items[0]
        lab.kube.core_v1.delete_namespaced_pod(name_of(pod), NS)
        lab.step(timedelta(seconds=15))
    lab.step(timedelta(minutes=3))
    rows = range(table.compact())
    assert [table.pod(row) for row in rows] == list(lab.cluster.pods.values())
    assert len(rows) < int(table.serial[: len(rows)].max())  # rows of removed pods dropped
    assert not table.alive[len(rows) :].any()
    for row, state in zip(rows, lab.cluster.pods.values(), strict=True):
        assert state.cpu_seconds == table.cpu_seconds[row] > 0 and state.node is not None
    served = lab.kube.core_v1.list_namespaced_pod(NS).items
    assert [name_of(p) for p in served] == list(lab.cluster.pods)
    end = lab.clock.now()
    started = [
        p
        for p in served
        if some(some(p.metadata).creation_timestamp) <= end - timedelta(seconds=70)
    ]
    assert len(started) >= 9 and all(
        some(some(p.status).container_statuses)[0].ready for p in started
    )
    window = lab.source.query_range(end - timedelta(minutes=2), end, timedelta(minutes=1))
    assert window.request_rate.notna().all() and window.cpu_utilisation.notna().all()


def test_unchanged_objects_are_served_as_the_same_model() -> None:
    lab = Lab(LabSettings(), SimClock(NOON))
    lab.step(timedelta(minutes=2))
    served = lab.kube.core_v1.list_namespaced_pod(NS).items
    lists = (
        lambda: lab.kube.core_v1.list_namespaced_pod(NS).items,
        lambda: lab.kube.apps_v1.list_namespaced_deployment(NS).items,
        lambda: lab.kube.apps_v1.list_namespaced_replica_set(NS).items,
        lambda: lab.kube.core_v1.list_node().items,
    )
    for read in lists:
        first, again = read(), read()
        assert all(a is b for a, b in zip(first, again, strict=True))
    pod = served[0]
    deleted = lab.kube.core_v1.delete_namespaced_pod(name_of(pod), NS)
    assert some(deleted.metadata).deletion_timestamp is not None
    assert some(pod.metadata).deletion_timestamp is None  # the served model was left alone
    before = {name_of(p): p for p in lab.kube.core_v1.list_namespaced_pod(NS).items}
    (replacement,) = set(before) - {name_of(p) for p in served}
    lab.step(timedelta(minutes=2))  # the replacement became Ready
    after = {name_of(p): p for p in lab.kube.core_v1.list_namespaced_pod(NS).items}
    changed = {name for name in before if after[name] is not before[name]}
    assert changed == {replacement}
    new, old = some(after[replacement].metadata), some(before[replacement].metadata)
    assert new.resource_version != old.resource_version


@pytest.mark.parametrize("step", [timedelta(seconds=15), timedelta(minutes=1)])
def test_a_deep_copy_serves_its_own_objects(step: timedelta) -> None:
    lab = Lab(LabSettings(), SimClock(NOON))
    lab.kube.core_v1.list_namespaced_pod(NS)
    twin = copy.deepcopy(lab)
    name = name_of(lab.kube.core_v1.list_namespaced_pod(NS).items[0])
    lab.kube.core_v1.delete_namespaced_pod(name, NS)
    lab.step(step)
    twin.step(step)
    assert name in {name_of(p) for p in twin.kube.core_v1.list_namespaced_pod(NS).items}
    assert name not in {name_of(p) for p in lab.kube.core_v1.list_namespaced_pod(NS).items}
