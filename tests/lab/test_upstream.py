"""The lab's upstream API: a quota answered with 429s, the caller's retries, the HTTPRoute
whose weights split the calls, and the ``upstream_throttling`` scenario on top."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from contracts import FAMILIES, MetricFamily, ScenarioId, SimClock
from lab import Lab, LabSettings, ScenarioInstance
from lab._errors import SettingsError
from lab._kube import MERGE_PATCH
from lab._settings import TopologySettings, UpstreamSettings
from lab._upstream import GATEWAY_GROUP, GATEWAY_VERSION, HTTPROUTES, Upstream, throttled_share
from lab.scenarios import check_scenario, scenario

NS = "shop"
START = datetime(2025, 1, 8, 12, tzinfo=UTC)


@pytest.fixture
def lab() -> Lab:
    lab = Lab(LabSettings(), SimClock(START))
    lab.step(timedelta(minutes=5))
    return lab


def _gateway(lab: Lab) -> Upstream:
    found = lab.dependency("card-gateway")
    assert isinstance(found, Upstream)
    return found


def _family(lab: Lab, minutes: int = 3) -> pd.DataFrame:
    now = lab.clock.now()
    frame = lab.source.query_family(
        MetricFamily.UPSTREAM, now - timedelta(minutes=minutes), now, timedelta(minutes=1)
    )
    return frame[frame["timestamp"] == frame["timestamp"].max()].set_index("upstream")


def _payments(lab: Lab) -> pd.Series:
    now = lab.clock.now()
    frame = lab.source.query_range(now - timedelta(minutes=2), now, timedelta(minutes=1))
    rows = frame[frame["service"] == "payments"]
    return rows.iloc[-1]


def _set_weights(lab: Lab, primary: int, secondary: int) -> None:
    api: Any = lab.kube.custom_objects
    route = api.get_namespaced_custom_object(
        GATEWAY_GROUP, GATEWAY_VERSION, NS, HTTPROUTES, "card-gateway"
    )
    rules = route["spec"]["rules"]
    for ref in rules[0]["backendRefs"]:
        ref["weight"] = primary if ref["name"] == "card-gateway" else secondary
    api.patch_namespaced_custom_object(
        GATEWAY_GROUP,
        GATEWAY_VERSION,
        NS,
        HTTPROUTES,
        "card-gateway",
        {"spec": {"rules": rules}},
        _content_type=MERGE_PATCH,
    )


def test_the_route_is_installed_at_start_without_a_counted_call() -> None:
    lab = Lab(LabSettings(), SimClock(START))
    api: Any = lab.kube.custom_objects
    route = api.get_namespaced_custom_object(
        GATEWAY_GROUP, GATEWAY_VERSION, NS, HTTPROUTES, "card-gateway"
    )
    refs = route["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["weight"]) for r in refs] == [
        ("card-gateway", 100),
        ("card-gateway-dr", 0),
    ]
    crd = lab.kube.apiextensions_v1.read_custom_resource_definition(f"{HTTPROUTES}.{GATEWAY_GROUP}")
    assert crd.spec.names.kind == "HTTPRoute"
    assert lab.kube.calls() == 2  # the two reads above, nothing at start


def test_the_route_draws_nothing_from_the_estates_random_stream() -> None:
    """An estate without upstreams runs exactly as one whose upstream is healthy: installing
    the route drew no uid from the random stream the latency jitter also comes from."""
    without = Lab(LabSettings(topology=TopologySettings(upstreams=())), SimClock(START))
    with_ = Lab(LabSettings(), SimClock(START))
    for estate in (without, with_):
        estate.step(timedelta(minutes=3))
    end = START + timedelta(minutes=3)
    pd.testing.assert_frame_equal(
        without.source.query_range(START, end, timedelta(minutes=1)),
        with_.source.query_range(START, end, timedelta(minutes=1)),
    )


def test_the_series_follow_the_family_schema(lab: Lab) -> None:
    frame = _family(lab)
    assert tuple(frame.reset_index()[list(FAMILIES[MetricFamily.UPSTREAM].columns)].columns) == (
        FAMILIES[MetricFamily.UPSTREAM].columns
    )
    assert set(frame["service"]) == {"payments"}
    assert sorted(frame.index) == ["card-gateway", "card-gateway-dr"]
    calls = frame.loc["card-gateway", "http_client_requests_rate"]
    assert calls == pytest.approx(_payments(lab)["request_rate"], rel=0.1)
    assert frame.loc["card-gateway-dr", "http_client_requests_rate"] == 0
    assert (frame["http_client_requests_throttled_rate"] == 0).all()
    assert (
        frame.loc["card-gateway-dr", "http_client_request_duration_p95_ms"]
        > frame.loc["card-gateway", "http_client_request_duration_p95_ms"]
    )


def test_beyond_the_quota_calls_are_answered_429_and_retried() -> None:
    assert throttled_share(100.0, 100.0, 2) == 0.0
    p = throttled_share(100.0, 50.0, 2)
    # Every retry is one more attempt against the same quota: the accepted ones fill it.
    assert 100.0 * (1 + p + p**2) * (1 - p) == pytest.approx(50.0, rel=1e-6)
    assert throttled_share(100.0, 50.0, 0) == pytest.approx(0.5)


def test_a_cut_quota_throttles_slows_and_fails_the_caller(lab: Lab) -> None:
    gateway = _gateway(lab)
    before = _payments(lab)
    instance = ScenarioInstance(
        ScenarioId.UPSTREAM_THROTTLING,
        "payments",
        magnitude=0.5,
        duration=timedelta(minutes=10),
        params={"upstream": "card-gateway", "quota_rps": round(0.5 * gateway.call_rps, 1)},
    )
    record = lab.inject(instance)
    assert record.root_cause == "card-gateway" and record.target == "payments"
    assert record.felt_by == ("frontend", "checkout", "payments")
    lab.step(timedelta(minutes=3))
    frame = _family(lab)
    primary = frame.loc["card-gateway"]
    share = primary["http_client_requests_throttled_rate"] / primary["http_client_requests_rate"]
    assert share > 0.5
    assert primary["http_client_requests_rate"] > 1.5 * _payments(lab)["request_rate"]  # retries
    assert primary["http_client_request_duration_p95_ms"] > 1000  # waits of Retry-After
    after = _payments(lab)
    assert after["error_rate"] > 0.3
    assert after["p95_latency_ms"] > 5 * before["p95_latency_ms"]
    # The quota comes back when the fault's duration is up.
    lab.step(timedelta(minutes=9))
    assert lab.ground_truth[-1].ends_at is not None
    assert _family(lab).loc["card-gateway", "http_client_requests_throttled_rate"] == 0
    assert _payments(lab)["error_rate"] < 0.001


def test_the_routes_weights_move_the_calls(lab: Lab) -> None:
    gateway = _gateway(lab)
    cut = round(0.5 * gateway.call_rps, 1)
    lab.inject(
        ScenarioInstance(
            ScenarioId.UPSTREAM_THROTTLING,
            "payments",
            params={"upstream": "card-gateway", "quota_rps": cut},
        )
    )
    _set_weights(lab, 30, 70)
    lab.step(timedelta(minutes=3))
    frame = _family(lab)
    rates = frame["http_client_requests_rate"]
    assert rates["card-gateway-dr"] / (rates.sum()) == pytest.approx(0.7, abs=0.03)
    assert (frame["http_client_requests_throttled_rate"] == 0).all()  # 30 % fits the cut
    healed = _payments(lab)
    assert healed["error_rate"] < 0.001 and healed["p95_latency_ms"] < 150
    # A weight sum of 0 fails every call, as the Gateway answers 500.
    _set_weights(lab, 0, 0)
    lab.step(timedelta(minutes=2))
    assert _payments(lab)["error_rate"] > 0.9


def test_a_secondary_over_its_own_quota_throttles_too() -> None:
    upstream = UpstreamSettings(
        "card-gateway", "payments", secondary="card-gateway-dr", secondary_quota_rps=20.0
    )
    lab = Lab(LabSettings(topology=TopologySettings(upstreams=(upstream,))), SimClock(START))
    lab.step(timedelta(minutes=3))
    _set_weights(lab, 0, 100)
    lab.step(timedelta(minutes=3))
    secondary = _family(lab).loc["card-gateway-dr"]
    assert (
        secondary["http_client_requests_throttled_rate"]
        > 0.5 * (secondary["http_client_requests_rate"])
    )


def test_a_secondary_must_be_named_after_its_upstream() -> None:
    upstream = UpstreamSettings("card-gateway", "payments", secondary="backup")
    with pytest.raises(SettingsError, match="'backup'"):
        Lab(LabSettings(topology=TopologySettings(upstreams=(upstream,))), SimClock(START))


def test_the_scenario_keeps_the_contract() -> None:
    record = check_scenario(scenario(ScenarioId.UPSTREAM_THROTTLING), seed=3)
    assert record.root_cause == "card-gateway"
