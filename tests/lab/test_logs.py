"""The lab's pod logs through ``read_namespaced_pod_log``: the API's shape, the same lines on
every read, noise all the time, and a fault's lines only while it lasts and only where it
hits."""

from __future__ import annotations

import copy
import pickle
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from kubernetes.client.exceptions import ApiException

from contracts import ScenarioId
from lab import Lab, LabSettings, SimClock
from lab.scenarios import scenario
from tests._narrow import name_of

NS = "shop"


def _lab() -> Lab:
    lab = Lab(LabSettings(seed=3), SimClock(datetime(2025, 1, 8, 10, tzinfo=UTC)))
    lab.step(timedelta(minutes=20))
    return lab


def _pods(lab: Lab, service: str) -> list[str]:
    items = lab.kube.core_v1.list_namespaced_pod(NS, label_selector=f"app={service}").items
    return [name_of(p) for p in items]


def test_a_pods_log_reads_like_the_apis_and_the_same_every_time() -> None:
    lab = _lab()
    core = lab.kube.core_v1
    pod = _pods(lab, "checkout")[0]
    body = core.read_namespaced_pod_log(pod, NS, since_seconds=300)
    assert isinstance(body, str) and body.endswith("\n")
    assert body == core.read_namespaced_pod_log(pod, NS, since_seconds=300)
    lines = body.splitlines()
    assert 90 <= len(lines) <= 210  # about 30 a minute
    assert (
        core.read_namespaced_pod_log(pod, NS, since_seconds=300, tail_lines=3).splitlines()
        == (lines[-3:])
    )
    stamped = core.read_namespaced_pod_log(pod, NS, since_seconds=60, timestamps=True)
    first = stamped.splitlines()[0].split(" ", 1)[0]
    assert first.endswith("Z") and datetime.fromisoformat(first) >= lab.clock.now() - timedelta(
        seconds=60
    )
    assert {line.split(" ", 1)[0] for line in lines} <= {"INFO", "DEBUG", "WARN"}
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_pod_log("nope", NS)
    assert missing.value.status == 404


def test_a_faults_lines_come_while_it_lasts_and_where_it_hits() -> None:
    lab = _lab()
    core = lab.kube.core_v1
    record = lab.inject(scenario(ScenarioId.DB_READ_LATENCY).draw(np.random.default_rng(1), lab))
    assert record.service == "payments"
    lab.step(timedelta(minutes=5))

    def timeouts(service: str, since: int) -> int:
        return sum(
            core.read_namespaced_pod_log(pod, NS, since_seconds=since).count("query timeout")
            for pod in _pods(lab, service)
        )

    assert timeouts("payments", 300) > 20
    assert timeouts("checkout", 300) == 0
    lab.clear(record)
    lab.step(timedelta(minutes=5))
    assert timeouts("payments", 240) == 0


def test_a_pod_crash_looping_on_a_removed_config_key_names_the_key() -> None:
    lab = _lab()
    instance = scenario(ScenarioId.POD_CRASHLOOP_PERSISTENT).draw(np.random.default_rng(2), lab)
    record = lab.inject(instance)
    key = instance.params["configmap_key"]
    assert record.detail == key
    lab.step(timedelta(minutes=3))
    core = lab.kube.core_v1
    said = core.read_namespaced_pod_log(record.target, NS, since_seconds=120)
    assert f"required environment variable {key} is not set" in said
    others = [p for p in _pods(lab, record.service) if p != record.target]
    assert all(
        "environment variable" not in core.read_namespaced_pod_log(p, NS, since_seconds=120)
        for p in others
    )


def test_a_pod_crash_looping_on_a_bug_panics_and_names_no_config() -> None:
    lab = _lab()
    record = lab.inject(scenario(ScenarioId.POD_CRASHLOOP).draw(np.random.default_rng(2), lab))
    lab.step(timedelta(minutes=3))
    said = lab.kube.core_v1.read_namespaced_pod_log(record.target, NS, since_seconds=120)
    assert "panic: runtime error" in said and "environment variable" not in said


def test_a_copied_or_pickled_lab_logs_its_own_faults() -> None:
    """Chaos runs deep-copy the lab, the restart tests pickle it: the logs must follow."""
    lab = _lab()
    twin = copy.deepcopy(lab)
    record = lab.inject(scenario(ScenarioId.DB_READ_LATENCY).draw(np.random.default_rng(1), lab))
    lab.step(timedelta(minutes=3))
    twin.step(timedelta(minutes=3))
    pod = _pods(lab, record.service)[0]
    assert "query timeout" in lab.kube.core_v1.read_namespaced_pod_log(pod, NS, since_seconds=120)
    assert all(
        "query timeout" not in twin.kube.core_v1.read_namespaced_pod_log(p, NS, since_seconds=120)
        for p in _pods(twin, record.service)
    )
    thawed: Lab = pickle.loads(pickle.dumps(lab))
    assert thawed.kube.core_v1.read_namespaced_pod_log(
        pod, NS, since_seconds=120
    ) == lab.kube.core_v1.read_namespaced_pod_log(pod, NS, since_seconds=120)
