"""Failure scenarios as self-registering modules: the contract, each scenario's behaviour,
background noise, pod-minutes, and deep copies of a lab with faults in flight."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from contracts import ActionKind, ScenarioId, UnknownIdError
from lab import (
    FaultRecord,
    Lab,
    LabSettings,
    NoTargetError,
    Scenario,
    ScenarioError,
    ScenarioInstance,
    SimClock,
    check_scenario,
    register_scenario,
    registered_scenarios,
    scenario,
)
from lab._faults import ActiveFault, TickEffects
from lab.scenarios import _registry
from tests._narrow import name_of, some

NS = "shop"
MERGE = "application/merge-patch+json"
NOON = datetime(2025, 1, 8, 12, tzinfo=UTC)  # a Wednesday
SHIPPED = set(ScenarioId)  # every scenario the issue names has a lab module


def warm_lab(seed: int = 7) -> Lab:
    lab = Lab(LabSettings(seed=seed), SimClock(NOON))
    lab.step(timedelta(minutes=10))
    return lab


def window(lab: Lab, minutes: float, service: str) -> pd.DataFrame:
    end = lab.clock.now()
    frame = lab.source.query_range(end - timedelta(minutes=minutes), end, timedelta(minutes=1))
    return frame[frame.service == service]


def pods_of(lab: Lab, service: str) -> dict[str, tuple[int, str | None]]:
    """Pod name -> (restart count, waiting reason) as the API reports them."""
    pods = lab.kube.core_v1.list_namespaced_pod(NS, label_selector=f"app={service}").items
    out = {}
    for pod in pods:
        status = some(some(pod.status).container_statuses)[0]
        waiting = some(status.state).waiting
        out[name_of(pod)] = (status.restart_count, waiting.reason if waiting else None)
    return out


# -- the contract ------------------------------------------------------------------------------


def test_the_shipped_scenarios_are_registered_with_their_ground_truth() -> None:
    found = registered_scenarios()
    assert set(found) == SHIPPED
    assert scenario("pod_crashloop") is found[ScenarioId.POD_CRASHLOOP]
    assert ActionKind.RESTART_POD in found[ScenarioId.POD_CRASHLOOP].heals
    assert found[ScenarioId.POD_CRASHLOOP_PERSISTENT].heals == ()  # only a human fixes it
    assert ActionKind.SET_HPA_MIN in found[ScenarioId.TRAFFIC_SURGE].heals


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("scenario_id", sorted(SHIPPED))
def test_every_registered_scenario_keeps_the_contract(scenario_id: ScenarioId, seed: int) -> None:
    record = check_scenario(scenario(scenario_id), seed=seed)
    assert record.scenario == scenario_id and record.ends_at is not None


class _Inert(Scenario):
    """Records a fault and does nothing: the contract check must refuse it."""

    id = ScenarioId.HTTP_5XX_SPIKE
    title = "does nothing"
    heals = ()

    def draw(self, rng: np.random.Generator, lab: Lab) -> ScenarioInstance:
        return ScenarioInstance(self.id, lab.services[int(rng.integers(len(lab.services)))])

    def inject(self, lab: Lab, instance: ScenarioInstance) -> FaultRecord:
        return lab.begin_fault(instance, target=instance.service)


class _Fickle(_Inert):
    """Draws from a fresh unseeded stream: not reproducible."""

    def draw(self, rng: np.random.Generator, lab: Lab) -> ScenarioInstance:
        return ScenarioInstance(self.id, "frontend", magnitude=float(np.random.random()))


class _Knobs(_Inert):
    """Bends the service model through the per-tick effects: errors, latency, capacity."""

    def effect(self, lab: Lab, fault: ActiveFault, t0: float, h: float, fx: TickEffects) -> None:
        i = lab.service_index(fault.instance.service)
        fx.errors[i] += float(fault.instance.params.get("errors", 0.0))
        fx.latency[i] *= float(fault.instance.params.get("latency", 1.0))
        fx.capacity[i] *= float(fault.instance.params.get("capacity", 1.0))


Register = Callable[[type[_Inert]], _Inert]


@pytest.fixture
def as_5xx_spike(monkeypatch: pytest.MonkeyPatch) -> Register:
    """Registers a test scenario under the http_5xx_spike id in place of the shipped one, for one
    test."""

    def use(cls: type[_Inert]) -> _Inert:
        instance = cls()
        monkeypatch.setitem(_registry._REGISTRY, ScenarioId.HTTP_5XX_SPIKE, instance)
        return instance

    return use


def test_the_contract_check_refuses_an_inert_or_irreproducible_scenario(
    as_5xx_spike: Register,
) -> None:
    with pytest.raises(AssertionError, match="changed visibly"):
        check_scenario(as_5xx_spike(_Inert))
    with pytest.raises(AssertionError, match="not deterministic"):
        check_scenario(as_5xx_spike(_Fickle))
    with pytest.raises(AssertionError, match="not the registered one"):
        check_scenario(_Inert())


def test_tick_effects_bend_errors_latency_and_capacity(as_5xx_spike: Register) -> None:
    as_5xx_spike(_Knobs)
    lab = warm_lab()
    calm = copy.deepcopy(lab)
    spike = ScenarioInstance(ScenarioId.HTTP_5XX_SPIKE, "checkout", params={"errors": 0.2})
    record = lab.inject(spike)
    assert record.felt_by == ("frontend", "checkout")
    for estate in (lab, calm):
        estate.step(timedelta(minutes=6))
    checkout = window(lab, 3, "checkout").error_rate
    assert checkout.between(0.18, 0.22).all()
    frontend = window(lab, 3, "frontend").error_rate
    assert frontend.between(0.05, 0.1).all()  # 0.2 x fan-out 0.5 x propagation 0.7
    assert (window(lab, 3, "payments").error_rate == 0).all()
    lab.clear(record)

    slow = ScenarioInstance(ScenarioId.HTTP_5XX_SPIKE, "payments", params={"latency": 3.0})
    lab.inject(slow)
    lab.step(timedelta(minutes=4))
    calm.step(timedelta(minutes=4))
    ratio = window(lab, 2, "payments").p95_latency_ms / window(calm, 2, "payments").p95_latency_ms
    assert ratio.between(2.7, 3.3).all()

    lab.clear(lab.ground_truth[-1])
    weak = ScenarioInstance(ScenarioId.HTTP_5XX_SPIKE, "frontend", params={"capacity": 0.5})
    lab.inject(weak)
    lab.step(timedelta(minutes=1))
    assert window(lab, 1, "frontend").error_rate.iloc[-1] > 0.05  # sheds until scaled out
    lab.step(timedelta(minutes=4))
    calm.step(timedelta(minutes=5))
    pods = window(lab, 1, "frontend").desired_pods.iloc[-1]
    assert pods >= 1.8 * window(calm, 1, "frontend").desired_pods.iloc[-1]


def test_registry_refuses_doubles_and_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ScenarioError, match="pod_crashloop"):

        @register_scenario
        class Again(_Inert):
            id = ScenarioId.POD_CRASHLOOP

    assert type(scenario(ScenarioId.POD_CRASHLOOP)).__name__ == "PodCrashLoop"
    monkeypatch.delitem(_registry._REGISTRY, ScenarioId.KAFKA_CONSUMER_LAG)
    with pytest.raises(ScenarioError, match="kafka_consumer_lag"):
        scenario("kafka_consumer_lag")
    with pytest.raises(UnknownIdError, match="cpu_hog"):
        scenario("cpu_hog")
    lab = warm_lab()
    monkeypatch.delitem(_registry._REGISTRY, ScenarioId.QUEUE_DEPTH)
    with pytest.raises(ScenarioError, match="queue_depth"):
        lab.inject(ScenarioInstance(ScenarioId.QUEUE_DEPTH, "checkout"))
    with pytest.raises(NoTargetError, match="frontend"):
        lab.inject(ScenarioInstance(ScenarioId.TRAFFIC_SURGE, "checkout", 3.0, timedelta(hours=1)))
    stranger = FaultRecord(ScenarioId.POD_CRASHLOOP, "x", "checkout", NOON, None, "checkout", ())
    with pytest.raises(NoTargetError, match="'x'"):
        lab.clear(stranger)


# -- drawing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario_id", sorted(SHIPPED))
def test_draw_is_deterministic_per_seed_and_varies_across_seeds(scenario_id: ScenarioId) -> None:
    lab = warm_lab()
    drawn = scenario(scenario_id)
    draws = [drawn.draw(np.random.default_rng(seed), lab) for seed in range(12)]
    assert draws == [drawn.draw(np.random.default_rng(seed), lab) for seed in range(12)]
    assert len({repr(d) for d in draws}) == len(draws)
    assert all(d.scenario == scenario_id and d.service in lab.services for d in draws)
    if scenario_id == ScenarioId.TRAFFIC_SURGE:
        assert all(2.5 <= d.magnitude <= 3.5 for d in draws)
        assert all(120 <= float(d.params["ramp_s"]) <= 360 for d in draws)
        assert all(
            timedelta(minutes=30) <= d.duration <= timedelta(minutes=45)
            for d in draws
            if d.duration is not None
        )
        assert len({d.magnitude for d in draws}) == len(draws)
    elif scenario_id == ScenarioId.KAFKA_CONSUMER_LAG:  # bound to the estate's one topic
        assert all(d.service == "payments" and d.params["topic"] == "orders" for d in draws)
        assert {d.params["kind"] for d in draws} == {"slow_consumer", "producer_burst"}
        assert all(
            d.duration is not None and timedelta(minutes=20) <= d.duration <= timedelta(hours=1)
            for d in draws
        )
    elif scenario_id == ScenarioId.QUEUE_DEPTH:  # bound to the estate's one queue
        assert all(d.service == "checkout" and d.params["queue"] == "receipts" for d in draws)
        kinds = {"poison_batch", "poison_release", "slow_workers", "send_burst"}
        assert {d.params["kind"] for d in draws} == kinds
        assert all(
            (d.duration is None) == str(d.params["kind"]).startswith("poison") for d in draws
        )
    elif scenario_id == ScenarioId.DB_READ_LATENCY:  # bound to the estate's one database
        assert all(d.service == "payments" and d.params["database"] == "payments-db" for d in draws)
        assert all(10.0 <= d.magnitude <= 40.0 and d.duration is None for d in draws)
    elif scenario_id == ScenarioId.UPSTREAM_THROTTLING:  # bound to the estate's one upstream
        assert all(d.service == "payments" and d.duration is not None for d in draws)
    elif scenario_id == ScenarioId.LATENCY_P95:  # creeps, then lasts until its fix is out
        assert len({d.service for d in draws}) > 1
        assert all(d.magnitude > 1 and d.duration is not None for d in draws)
    else:
        assert len({d.service for d in draws}) > 1
        assert all(d.duration is None for d in draws)


# -- crash loops ------------------------------------------------------------------------------


def delete_the_crashing_pod(scenario_id: ScenarioId) -> tuple[Lab, FaultRecord, set[str]]:
    """Inject in checkout, delete the crashing pod after 3 minutes, run 6 more."""
    lab = warm_lab()
    before = set(pods_of(lab, "checkout"))
    record = lab.inject(ScenarioInstance(scenario_id, "checkout"))
    assert record.felt_by == ("frontend", "checkout") and record.root_cause == "checkout"
    lab.step(timedelta(minutes=3))
    assert pods_of(lab, "checkout")[record.target][0] >= 2
    lab.kube.core_v1.delete_namespaced_pod(record.target, NS)
    lab.step(timedelta(minutes=6))
    return lab, record, before


def test_plain_crash_loop_is_healed_by_deleting_the_pod() -> None:
    lab, record, before = delete_the_crashing_pod(ScenarioId.POD_CRASHLOOP)
    now = pods_of(lab, "checkout")
    assert set(now) - before and record.target not in now  # replaced (and maybe scaled up)
    assert all(state == (0, None) for state in now.values())
    assert (window(lab, 2, "checkout").error_rate == 0).all()
    (truth,) = lab.ground_truth
    assert truth.ends_at == record.injected_at + timedelta(minutes=3)


def test_persistent_crash_loop_survives_deleting_the_crashing_pod() -> None:
    lab, record, before = delete_the_crashing_pod(ScenarioId.POD_CRASHLOOP_PERSISTENT)
    now = pods_of(lab, "checkout")
    new = set(now) - before
    assert new and record.target not in now
    assert all(now[name][0] >= 3 for name in new)  # crash-looping from their first start
    reasons = set()
    for _ in range(12):
        lab.step(timedelta(seconds=15))
        reasons |= {pods_of(lab, "checkout")[name][1] for name in new}
    assert "CrashLoopBackOff" in reasons
    old = {name: state for name, state in pods_of(lab, "checkout").items() if name in before}
    assert old and all(state == (0, None) for state in old.values())  # they keep serving
    assert window(lab, 3, "checkout").error_rate.max() > 0.01
    assert lab.ground_truth[0].ends_at is None

    # Scale-ups crash-loop too: the bad key is read by every new pod.
    replicas = some(lab.kube.apps_v1.read_namespaced_deployment("checkout", NS).spec.replicas)
    lab.kube.autoscaling_v2.patch_namespaced_horizontal_pod_autoscaler(
        "checkout", NS, {"spec": {"minReplicas": replicas + 2}}, _content_type=MERGE
    )
    lab.step(timedelta(minutes=3))
    scaled = {n: s for n, s in pods_of(lab, "checkout").items() if n not in before | new}
    assert len(scaled) >= 2 and all(restarts >= 2 for restarts, _ in scaled.values())


def test_clearing_the_persistent_fault_lets_pods_run() -> None:
    lab = warm_lab()
    broken: dict[str, float | str] = {"pick": 0.5, "configmap_key": "TLS_CA_BUNDLE"}
    instance = ScenarioInstance(ScenarioId.POD_CRASHLOOP_PERSISTENT, "payments", params=broken)
    record = lab.inject(instance)
    config = lab.kube.core_v1.read_namespaced_config_map("payments-config", NS)
    assert "TLS_CA_BUNDLE" not in some(config.data), "the story's edit is not in the ConfigMap"
    lab.step(timedelta(minutes=3))
    lab.kube.core_v1.delete_namespaced_pod(record.target, NS)
    lab.step(timedelta(minutes=2))
    crashing = {name for name, (restarts, _) in pods_of(lab, "payments").items() if restarts}
    assert crashing and window(lab, 1, "payments").error_rate.max() > 0.01
    cleared = lab.clear(record)
    assert cleared.ends_at == lab.clock.now() and lab.ground_truth == [cleared]
    config = lab.kube.core_v1.read_namespaced_config_map("payments-config", NS)
    assert some(config.data)["TLS_CA_BUNDLE"], "the fix did not put the key back"
    assert lab.clear(record) == cleared  # already over: left as it is
    lab.step(timedelta(minutes=4))
    settled = pods_of(lab, "payments")
    lab.step(timedelta(minutes=4))
    pods = pods_of(lab, "payments")
    assert all(pods[name] == settled[name] and pods[name][1] is None for name in crashing)
    payments = window(lab, 2, "payments")
    assert (payments.error_rate == 0).all()
    assert (payments.ready_pods == payments.desired_pods).all()
    for name in crashing:
        lab.kube.core_v1.delete_namespaced_pod(name, NS)
    lab.step(timedelta(minutes=3))
    fresh = {n: state for n, state in pods_of(lab, "payments").items() if n not in pods}
    assert fresh and all(state == (0, None) for state in fresh.values())


def test_clearing_a_surge_ends_it_early() -> None:
    lab = warm_lab()
    base = window(lab, 1, "frontend").request_rate.iloc[-1]
    instance = scenario(ScenarioId.TRAFFIC_SURGE).draw(np.random.default_rng(5), lab)
    record = lab.inject(instance)
    assert record.felt_by == lab.services and record.target == "frontend"
    lab.step(timedelta(minutes=10))
    assert window(lab, 1, "frontend").request_rate.iloc[-1] > 2 * base
    ended = lab.clear(record)
    assert ended.ends_at == lab.clock.now() < record.ends_at  # type: ignore[operator]
    lab.step(timedelta(minutes=3))
    assert window(lab, 1, "frontend").request_rate.iloc[-1] < 1.2 * base


def test_in_a_ramp_the_instant_rate_leads_the_minutes_mean() -> None:
    """Traffic x3 over two minutes, 45 s in: the last two scrapes read where the ramp stands
    (past x1.5, a surge), the minute's mean still well below it."""
    lab = warm_lab()
    base = window(lab, 1, "frontend").request_rate.iloc[-1]
    lab.inject(
        ScenarioInstance(
            ScenarioId.TRAFFIC_SURGE, "frontend", 3.0, timedelta(minutes=30), {"ramp_s": 120.0}
        )
    )
    lab.step(timedelta(seconds=45))
    newest = window(lab, 1, "frontend").iloc[-1]
    assert newest.request_rate < 1.3 * base < 1.5 * base < newest.request_rate_instant


# -- background, cost, copies -----------------------------------------------------------------


def test_background_events_change_nothing_but_load_and_revision() -> None:
    lab = warm_lab()
    calm = copy.deepcopy(lab)
    start = lab.clock.now()
    end = start + timedelta(hours=1)
    rng = np.random.default_rng(3)
    plan = lab.background(rng, start, end, rollouts=2, waves=1, config_edits=1)
    (wave,) = [e for e in plan if e.kind == "traffic_wave"]
    rollouts = [e for e in plan if e.kind == "rollout"]
    (edit,) = [e for e in plan if e.kind == "config_edit"]
    assert len(rollouts) == 2 and 1.2 <= wave.magnitude <= 1.4
    assert lab.background_events == []  # recorded when they happen
    for estate in (lab, calm):
        estate.step(timedelta(hours=1, minutes=10))
    assert lab.background_events == plan and lab.ground_truth == []
    for event in rollouts:
        dep = lab.kube.apps_v1.read_namespaced_deployment(event.service, NS)
        annotations = some(some(dep.metadata).annotations)
        assert int(annotations["deployment.kubernetes.io/revision"]) >= 2
        pods = lab.kube.core_v1.list_namespaced_pod(NS, label_selector=f"app={event.service}")
        assert {some(p.spec).containers[0].image for p in pods.items} <= {
            e.detail for e in rollouts if e.service == event.service
        }
    cm = lab.kube.core_v1.read_namespaced_config_map(f"{edit.service}-config", NS)
    assert some(cm.data)["FEATURE_FLAGS"] == edit.detail
    edited = {m.manager: m.time for m in some(some(cm.metadata).managed_fields)}
    assert timedelta(0) <= some(edited["kubectl-edit"]) - edit.at < timedelta(seconds=15)
    hour = lab.source.query_range(start, lab.clock.now(), timedelta(minutes=1))
    quiet = calm.source.query_range(start, calm.clock.now(), timedelta(minutes=1))
    assert hour.error_rate.max() < 0.001 and hour.p95_latency_ms.max() < 150
    assert (hour.restarts.fillna(0) == 0).all()
    entry = (hour.service == "frontend").to_numpy()
    rate = hour.request_rate.to_numpy()[entry] / quiet.request_rate.to_numpy()[entry]
    stamps = hour.timestamp[entry]
    assert wave.ends_at is not None
    riding = (stamps > pd.Timestamp(wave.at)) & (stamps <= pd.Timestamp(wave.ends_at))
    outside = (stamps < pd.Timestamp(wave.at)) | (
        stamps > pd.Timestamp(wave.ends_at) + pd.Timedelta(minutes=1)
    )
    assert np.nanmax(rate[riding.to_numpy()]) > 1 + 0.8 * (wave.magnitude - 1)
    assert np.nanmax(np.abs(rate[outside.to_numpy()] - 1)) < 0.01


def test_pod_minutes_grow_with_replicas() -> None:
    lab = warm_lab()
    spent = lab.pod_minutes
    replicas = some(lab.kube.apps_v1.read_namespaced_deployment("frontend", NS).spec.replicas)
    assert spent["frontend"] == pytest.approx(replicas * 10, rel=0.05)
    bigger = copy.deepcopy(lab)
    bigger.kube.autoscaling_v2.patch_namespaced_horizontal_pod_autoscaler(
        "frontend", NS, {"spec": {"minReplicas": 2 * replicas}}, _content_type=MERGE
    )
    for estate in (lab, bigger):
        estate.step(timedelta(minutes=20))
    grown = {e: e.pod_minutes["frontend"] - spent["frontend"] for e in (lab, bigger)}
    assert grown[bigger] > 1.8 * grown[lab]
    assert bigger.pod_minutes["payments"] == pytest.approx(lab.pod_minutes["payments"], rel=0.1)


def test_deep_copies_stepped_alike_stay_identical() -> None:
    lab = warm_lab()
    start = lab.clock.now()
    record = lab.inject(ScenarioInstance(ScenarioId.POD_CRASHLOOP_PERSISTENT, "checkout"))
    lab.inject(scenario(ScenarioId.TRAFFIC_SURGE).draw(np.random.default_rng(1), lab))
    later = start + timedelta(minutes=40)
    lab.background(np.random.default_rng(2), start, later, rollouts=1, waves=1, config_edits=0)
    twins = [copy.deepcopy(lab) for _ in range(2)]
    for twin in twins:
        twin.step(timedelta(minutes=4))
        twin.kube.core_v1.delete_namespaced_pod(record.target, NS)
        twin.step(timedelta(minutes=20))
        twin.clear(record)
        twin.step(timedelta(minutes=20))
    a, b = twins
    assert lab.clock.now() == start and a.clock.now() == start + timedelta(minutes=44)
    span = (start, a.clock.now(), timedelta(minutes=1))
    pd.testing.assert_frame_equal(a.source.query_range(*span), b.source.query_range(*span))
    assert a.ground_truth == b.ground_truth and a.ground_truth != lab.ground_truth
    assert a.background_events == b.background_events and len(a.background_events) == 2
    assert set(a.cluster.pods) == set(b.cluster.pods) != set(lab.cluster.pods)
    assert a.pod_minutes == b.pod_minutes
    assert window(a, 2, "checkout").error_rate.max() == 0  # the fix held in the copies
