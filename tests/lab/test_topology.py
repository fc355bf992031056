"""Large estates: ``call_forest`` topologies, several entry services, shared downstreams."""

from __future__ import annotations

import copy
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from contracts import ScenarioId
from lab import (
    CrashLoopFault,
    Lab,
    LabSettings,
    NoTargetError,
    ScenarioInstance,
    ServiceModelSettings,
    ServiceSettings,
    SettingsError,
    SimClock,
    TopologySettings,
    call_forest,
)
from lab._graph import ServiceModel

NOON = datetime(2025, 1, 8, 12, tzinfo=UTC)  # a Wednesday


def callers_of(topology: TopologySettings) -> dict[str, list[str]]:
    callers: dict[str, list[str]] = defaultdict(list)
    for svc in topology.services:
        for name, _ in svc.downstream:
            callers[name].append(svc.name)
    return callers


def window(lab: Lab, minutes: float) -> pd.DataFrame:
    end = lab.clock.now()
    return lab.source.query_range(end - timedelta(minutes=minutes), end, timedelta(minutes=1))


@pytest.fixture(scope="module")
def forest() -> Lab:
    """24 services in 3 trees, warmed up for ten minutes."""
    lab = Lab(LabSettings(topology=call_forest(24, 3, seed=1)), SimClock(NOON))
    lab.step(timedelta(minutes=10))
    return lab


def test_call_forest_builds_independent_trees_in_topological_order() -> None:
    topology = call_forest(40, 4, replicas=2, seed=3)
    assert topology == call_forest(40, 4, replicas=2, seed=3)  # deterministic per seed
    services = topology.services
    assert len(services) == 40 and len({s.name for s in services}) == 40
    entries = [s for s in services if s.external_share > 0]
    assert [s.name for s in entries] == ["t0-s0", "t1-s0", "t2-s0", "t3-s0"]
    assert sum(s.external_share for s in entries) == pytest.approx(1.0)
    position = {s.name: i for i, s in enumerate(services)}
    for svc in services:
        for name, fanout in svc.downstream:
            assert position[name] > position[svc.name] and 0.3 <= fanout <= 1.0
            assert name.split("-")[0] == svc.name.split("-")[0]  # trees stay apart
    callers = callers_of(topology)
    assert all(callers[s.name] for s in services if s.external_share == 0)
    assert any(len(c) > 1 for c in callers.values())  # some downstreams are shared
    assert {(s.min_replicas, s.max_replicas) for s in services} == {(2, 8)}
    cores = sum(s.min_replicas * s.cpu_request_cores for s in services)
    assert topology.nodes * topology.node_cpu_cores >= 2 * cores
    LabSettings(topology=topology)  # a valid estate
    with pytest.raises(SettingsError):
        call_forest(3, 4)


def test_traffic_enters_every_tree_and_reaches_every_service(forest: Lab) -> None:
    assert forest.entries == ("t0-s0", "t1-s0", "t2-s0")
    frame = window(forest, 5)
    assert set(frame.service) == set(forest.services)
    assert (frame.groupby("service").request_rate.min() > 0).all()
    assert frame.error_rate.max() == 0 and frame.p95_latency_ms.max() < 150
    assert frame.cpu_utilisation.between(0.4, 0.6).all()  # sized for ~50 % at this load
    # The entries share the external traffic the default estate's frontend gets alone.
    alone = Lab(LabSettings(), SimClock(NOON))
    alone.step(timedelta(minutes=10))
    frontend = window(alone, 5).query("service == 'frontend'").request_rate.to_numpy()
    entries = frame[frame.service.isin(forest.entries)].groupby("timestamp").request_rate.sum()
    np.testing.assert_allclose(entries.to_numpy(), frontend, rtol=1e-9)


def test_fan_in_adds_the_load_of_every_caller() -> None:
    diamond = (
        ServiceSettings("a", calls=("b", "c"), fanout=(0.5, 0.4), external_share=1.0),
        ServiceSettings("b", calls="d", fanout=1.0),
        ServiceSettings("c", calls="d", fanout=0.5),
        ServiceSettings("d", capacity_rps=40.0),
    )
    lab = Lab(LabSettings(topology=TopologySettings(services=diamond)), SimClock(NOON))
    lab.step(timedelta(minutes=10))
    rates = {s: window(lab, 5).query(f"service == '{s}'").request_rate.to_numpy() for s in "ad"}
    np.testing.assert_allclose(rates["d"], (0.5 * 1.0 + 0.4 * 0.5) * rates["a"], rtol=1e-9)
    assert lab.upstream_of("d") == ("a", "b", "c", "d")
    assert lab.downstream_of("b") == ("b", "d")


def test_failures_of_several_callees_add_up_to_at_most_what_was_served() -> None:
    diamond = (
        ServiceSettings("a", calls=("b", "c"), fanout=(1.0, 1.0)),
        ServiceSettings("b", calls="d", fanout=1.0),
        ServiceSettings("c", calls="d", fanout=0.5),
        ServiceSettings("d"),
    )
    model = ServiceModel(diamond, ServiceModelSettings(error_propagation=1.0))
    ones, zeros = np.ones(4), np.zeros(4)
    out = model.serve(
        np.array([100.0, 0, 0, 0]), np.full(4, 10.0), zeros, ones, ones, np.eye(4)[3], zeros
    )
    np.testing.assert_allclose(out.load, [100, 100, 100, 150])
    np.testing.assert_allclose(out.failed, [100, 100, 50, 150])  # a: 1 + 0.5, capped at 1
    assert out.median_s[0] > out.median_s[1] > out.median_s[3]  # callees' time included


def test_a_crash_loop_in_a_shared_service_is_felt_by_every_caller(forest: Lab) -> None:
    callers = callers_of(forest.settings.topology)
    shared = next(name for name in forest.services if len(callers[name]) > 1)
    lab, control = copy.deepcopy(forest), copy.deepcopy(forest)
    record = lab.inject(CrashLoopFault(shared))
    assert record.felt_by == lab.upstream_of(shared)
    assert set(callers[shared]) < set(record.felt_by)
    for estate in (lab, control):
        estate.step(timedelta(minutes=8))
    errors = window(lab, 8).groupby("service").error_rate.max()
    assert (window(control, 8).error_rate == 0).all()
    assert (errors[list(record.felt_by)] > 0.001).all()
    assert (errors.drop(list(record.felt_by)) == 0).all()


def test_a_surge_at_one_entry_leaves_the_other_trees_alone(forest: Lab) -> None:
    lab, control = copy.deepcopy(forest), copy.deepcopy(forest)
    entry = lab.entries[1]
    surge = ScenarioInstance(
        ScenarioId.TRAFFIC_SURGE, entry, 3.0, timedelta(minutes=30), {"ramp_s": 60.0}
    )
    record = lab.inject(surge)
    assert record.felt_by == lab.downstream_of(entry)
    assert {name.split("-")[0] for name in record.felt_by} == {"t1"}
    with pytest.raises(NoTargetError, match="t1-s1"):
        lab.inject(ScenarioInstance(ScenarioId.TRAFFIC_SURGE, "t1-s1", 2.0, timedelta(minutes=5)))
    for estate in (lab, control):
        estate.step(timedelta(minutes=10))
    surged, calm = window(lab, 5), window(control, 5)
    felt = surged.service.isin(record.felt_by).to_numpy()
    ratio = surged.request_rate.to_numpy()[felt] / calm.request_rate.to_numpy()[felt]
    assert (ratio > 2.5).all()
    # Other trees: the same load, CPU and pods (latency jitter draws from a shared stream).
    columns = ["request_rate", "error_rate", "cpu_utilisation", "ready_pods", "desired_pods"]
    pd.testing.assert_frame_equal(
        surged.loc[~felt, columns].reset_index(drop=True),
        calm.loc[~felt, columns].reset_index(drop=True),
    )


def test_settings_name_a_bad_call_graph() -> None:
    def estate(*services: ServiceSettings) -> LabSettings:
        return LabSettings(topology=TopologySettings(services=services))

    b, c = ServiceSettings("b"), ServiceSettings("c")
    with pytest.raises(SettingsError, match="2 services with 1 fanouts"):
        estate(ServiceSettings("a", calls=("b", "c"), fanout=(0.5,)), b, c)
    with pytest.raises(SettingsError, match="not a later service"):
        estate(b, ServiceSettings("a", calls="b", fanout=1.0))
    with pytest.raises(SettingsError, match="twice"):
        estate(ServiceSettings("a", calls=("b", "b"), fanout=0.5), b)
    with pytest.raises(SettingsError, match="external_share"):
        estate(ServiceSettings("a", external_share=-0.5))
    default = Lab(LabSettings(), SimClock(NOON))
    assert default.entries == ("frontend",)
    assert default.downstream_of("checkout") == ("checkout", "payments")
    assert estate(ServiceSettings("a", calls=("b", "c"), fanout=0.5), b, c)  # one for all
