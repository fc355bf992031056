"""The contract every scenario must keep, as a check anyone can run (like river's
``check_estimator``).

A new scenario is one module; this check is what makes that safe: it builds a small lab,
draws and injects an instance, and compares the estate with an untouched deep copy of itself
run with the same seed, so the difference it finds is the fault's and nothing else's.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from contracts import FAMILIES, ActionKind, MetricFamily, ScenarioId, SimClock
from lab._faults import FaultRecord
from lab._settings import LabSettings
from lab.scenarios._registry import Scenario, registered

START = datetime(2025, 1, 8, 11, 50, tzinfo=UTC)
"""A Wednesday shortly before noon: ordinary daytime traffic."""
_WARM_UP = timedelta(minutes=10)


def _expect(ok: bool, scenario: Scenario, what: str) -> None:
    if not ok:
        raise AssertionError(f"scenario {scenario.id.value!r}: {what}")


def _visible(faulty: pd.DataFrame, control: pd.DataFrame) -> list[str]:
    """Which of a service's signals the fault moved clearly beyond the model's jitter."""
    moved = []
    error_gap = (faulty.error_rate.to_numpy() - control.error_rate.to_numpy()).astype(float)
    if np.nanmax(np.abs(error_gap), initial=0.0) > 0.005:
        moved.append("error_rate")
    for column in ("p95_latency_ms", "request_rate"):
        ratio = faulty[column].to_numpy(float) / control[column].to_numpy(float)
        ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
        if ratio.size and np.abs(np.log(ratio)).max() > np.log(1.2):
            moved.append(column)
    return moved


def _async_moved(faulty: pd.DataFrame, control: pd.DataFrame, family: MetricFamily) -> list[str]:
    """Which series of a family of asynchronous work (Kafka, queues) the fault moved by more
    than 20 %: a backlog shows in no request metric, only in its freshness."""
    if len(faulty) != len(control):
        return [family.value]
    moved = []
    for column in FAMILIES[family].values:
        a, b = faulty[column].to_numpy(float), control[column].to_numpy(float)
        if not np.allclose(a, b, rtol=0.2, atol=1.0, equal_nan=True):
            moved.append(column)
    return moved


def check_scenario(
    scenario: Scenario, seed: int = 0, minutes: float = 20.0, settings: LabSettings | None = None
) -> FaultRecord:
    """Check ``scenario`` against the scenario contract; raises AssertionError naming a breach.

    On a fresh lab (``settings``, default ``LabSettings(seed=seed)``) warmed up for ten
    minutes: ``draw`` is deterministic for a seeded generator and names a known service; the
    injection records a ``FaultRecord`` with the scenario's id, a known target, the instance's
    service and the scenario's ``felt_by``; the estate keeps running for ``minutes``; at least
    one felt service's error rate, p95, request rate or asynchronous backlog (its Kafka
    groups', its queues' series) clearly differs from a deep copy of
    the lab taken just before the injection and stepped alike; ``Lab.clear`` ends the fault.
    Returns the final record.
    """
    from lab._estate import Lab  # the estate imports the registry; import it only when run

    _expect(isinstance(scenario.id, ScenarioId), scenario, "id is not a ScenarioId")
    _expect(registered().get(scenario.id) is scenario, scenario, "is not the registered one")
    _expect(bool(scenario.title), scenario, "has no title")
    _expect(
        all(isinstance(kind, ActionKind) for kind in scenario.heals),
        scenario,
        f"heals {scenario.heals!r} are not all ActionKinds",
    )
    lab = Lab(settings or LabSettings(seed=seed), SimClock(START))
    lab.step(_WARM_UP)

    instance = scenario.draw(np.random.default_rng(seed), lab)
    again = scenario.draw(np.random.default_rng(seed), lab)
    _expect(instance == again, scenario, f"draw is not deterministic: {instance} != {again}")
    _expect(instance.scenario == scenario.id, scenario, f"drew a {instance.scenario} instance")
    _expect(instance.service in lab.services, scenario, f"drew unknown {instance.service!r}")

    control = copy.deepcopy(lab)
    record = lab.inject(instance)
    injected = lab.clock.now()
    felt = scenario.felt_by(lab, instance)
    known = set(lab.services) | set(lab.cluster.pods) | {n.name for n in lab.cluster.nodes}
    _expect(lab.ground_truth[-1] == record, scenario, "the record is not the newest truth")
    _expect(record.scenario == scenario.id, scenario, f"recorded as {record.scenario}")
    _expect(record.service == instance.service, scenario, f"recorded on {record.service}")
    _expect(record.target in known, scenario, f"target {record.target!r} is no pod/node/service")
    _expect(bool(record.root_cause), scenario, "records no root cause")
    _expect(record.injected_at == injected, scenario, "injected_at is not now")
    _expect(record.felt_by == felt, scenario, f"felt_by {record.felt_by} != {felt}")
    _expect(bool(felt) and set(felt) <= set(lab.services), scenario, f"felt by unknown {felt}")
    if instance.duration is not None:
        _expect(record.ends_at == injected + instance.duration, scenario, "ends_at != duration")

    for estate in (lab, control):
        estate.step(timedelta(minutes=minutes))
    now = lab.clock.now()
    _expect(now == injected + timedelta(minutes=minutes), scenario, "the clock did not move on")
    span = (START, now, timedelta(minutes=1))
    faulty, untouched = lab.source.query_range(*span), control.source.query_range(*span)
    before = faulty.timestamp <= pd.Timestamp(injected)
    pd.testing.assert_frame_equal(
        faulty[before].reset_index(drop=True), untouched[before].reset_index(drop=True)
    )
    after = ~before
    _expect(faulty[after].request_rate.notna().all(), scenario, "the estate stopped scraping")
    moved = {
        service: _visible(
            faulty[after & (faulty.service == service)],
            untouched[after & (untouched.service == service)],
        )
        for service in felt
    }
    for family in (MetricFamily.KAFKA, MetricFamily.QUEUE):
        frames = [estate.source.query_family(family, *span) for estate in (lab, control)]
        if not all(len(f) for f in frames):
            continue
        late = [f[(f.timestamp > pd.Timestamp(injected)) & f.service.isin(felt)] for f in frames]
        for service in felt:
            mine = [f[f.service == service].reset_index(drop=True) for f in late]
            moved[service] = moved.get(service, []) + _async_moved(mine[0], mine[1], family)
    _expect(any(moved.values()), scenario, f"no felt service's metrics changed visibly: {moved}")

    final = lab.clear(record)
    _expect(final.ends_at is not None and final.ends_at <= now, scenario, "clear did not end it")
    lab.step(timedelta(minutes=5))
    _expect(lab.ground_truth[-1].ends_at == final.ends_at, scenario, "ended twice")
    return final
