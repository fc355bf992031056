"""The upstream-throttling runbook: when it reroutes, how much weight it moves, the secondary
it refuses to load when that one is unhealthy, what it leaves alone; and its chaos
certification."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from actuators import ActionContext, GuardRejectedError, Reroute
from contracts import MetricFamily, ScenarioId, SimClock
from lab import Lab, LabSettings
from lab._upstream import GATEWAY_GROUP, GATEWAY_VERSION, HTTPROUTES
from ooda import OodaSettings, RuleScorer
from ooda._chaos import ChaosSettings, certified, run_chaos
from ooda._chaos_report import to_json
from ooda._records import Snapshot
from ooda.runbooks import check_runbook
from ooda.runbooks.upstream_throttling import UpstreamThrottling
from tests.ooda._snapshots import region_snapshot

NOW = datetime(2025, 1, 8, 12, tzinfo=UTC)
PRIMARY, SECONDARY = "card-gateway", "card-gateway-dr"


def _at(i: int, n: int) -> pd.Timestamp:
    return pd.Timestamp(NOW - timedelta(minutes=n - 1 - i))


def upstream_frame(
    primary: list[tuple[float, float]],
    secondary: tuple[float, float, float] = (0.0, 0.0, 25.0),
) -> pd.DataFrame:
    """Per minute the primary's (attempts/s, 429s/s); the secondary's newest (attempts/s,
    429s/s, p95 ms) every minute."""
    rows = []
    n = len(primary)
    for i, (attempts, throttled) in enumerate(primary):
        for name, values in (
            (PRIMARY, (attempts, throttled, 13.0)),
            (SECONDARY, secondary),
        ):
            rows.append(
                {
                    "timestamp": _at(i, n),
                    "region": "eu-west-1",
                    "service": "payments",
                    "upstream": name,
                    "http_client_requests_rate": values[0],
                    "http_client_requests_throttled_rate": values[1],
                    "http_client_request_duration_p95_ms": values[2],
                }
            )
    return pd.DataFrame(rows)


def history(p95: list[float], errors: list[float]) -> pd.DataFrame:
    n = len(p95)
    return pd.DataFrame(
        {
            "timestamp": [_at(i, n) for i in range(n)],
            "service": "payments",
            "request_rate": 120.0,
            "p95_latency_ms": p95,
            "error_rate": errors,
        }
    )


def snapshot(frame: pd.DataFrame, suffering: bool = True) -> Snapshot:
    p95 = [70.0] * 13 + ([900.0, 950.0] if suffering else [72.0, 71.0])
    errors = [0.0] * 13 + ([0.3, 0.4] if suffering else [0.0, 0.0])
    return region_snapshot(
        NOW, {}, {"payments": history(p95, errors)}, families={MetricFamily.UPSTREAM: frame}
    )


#: Half the quota: 120 calls/s, 79 % of the attempts throttled, 58 accepted.
THROTTLED = [(120.0, 0.0)] * 13 + [(290.0, 230.0)] * 2


def _runbook() -> UpstreamThrottling:
    return UpstreamThrottling(OodaSettings())


def test_the_runbook_keeps_the_contract() -> None:
    check_runbook(UpstreamThrottling)
    assert UpstreamThrottling.families == (MetricFamily.UPSTREAM,)
    assert UpstreamThrottling.priority == 35


def test_a_throttling_primary_sends_what_it_does_not_accept_to_the_secondary() -> None:
    snap = snapshot(upstream_frame(THROTTLED))
    rb = _runbook()
    diagnosis = rb.matches(snap, "payments")
    assert diagnosis is not None
    assert diagnosis.target == f"httproute/shop/{PRIMARY}"
    share = 230.0 / 290.0
    calls = 290.0 / (1 + share + share**2)
    keep = 0.8 * 290.0 * (1 - share) / calls
    action = rb.propose(diagnosis, snap)
    assert isinstance(action, Reroute)
    assert action.route == PRIMARY
    weight = int(100 * keep)
    assert 30 <= weight <= 45
    assert action.weights == ((PRIMARY, weight), (SECONDARY, 100 - weight))
    assert action.unhealthy == ()


def test_a_healthy_service_or_a_short_blip_is_left_alone() -> None:
    rb = _runbook()
    assert rb.matches(snapshot(upstream_frame(THROTTLED), suffering=False), "payments") is None
    blip = [(120.0, 0.0)] * 14 + [(290.0, 230.0)]
    assert rb.matches(snapshot(upstream_frame(blip)), "payments") is None
    calm = [(120.0, 0.0)] * 15
    assert rb.matches(snapshot(upstream_frame(calm)), "payments") is None
    # Another service: its rows are not payments'.
    snap = snapshot(upstream_frame(THROTTLED))
    assert rb.matches(snap, "checkout") is None


def test_without_a_secondary_there_is_nothing_to_shift_to() -> None:
    frame = upstream_frame(THROTTLED)
    only = frame[frame["upstream"] == PRIMARY]
    assert _runbook().matches(snapshot(only), "payments") is None


@pytest.mark.parametrize(
    "secondary",
    [(50.0, 20.0, 25.0), (50.0, 0.0, 400.0), (50.0, 0.0, float("nan"))],
    ids=["throttling", "slow", "unknown"],
)
def test_an_unhealthy_secondary_is_marked_and_the_action_refuses(
    secondary: tuple[float, float, float],
) -> None:
    snap = snapshot(upstream_frame(THROTTLED, secondary))
    rb = _runbook()
    diagnosis = rb.matches(snap, "payments")
    assert diagnosis is not None and diagnosis.evidence["secondary_healthy"] is False
    action = rb.propose(diagnosis, snap)
    assert isinstance(action, Reroute) and action.unhealthy == (SECONDARY,)
    # On the lab's route, the action refuses and leaves the weights alone.
    lab = Lab(LabSettings(), SimClock(NOW))
    ctx = ActionContext(lab.kube.clients(), sleep=lambda _s: None)
    with pytest.raises(GuardRejectedError, match="unhealthy"):
        action.apply(ctx)
    api: Any = lab.kube.custom_objects
    route = api.get_namespaced_custom_object(
        GATEWAY_GROUP, GATEWAY_VERSION, "shop", HTTPROUTES, PRIMARY
    )
    refs = route["spec"]["rules"][0]["backendRefs"]
    assert {r["name"]: r["weight"] for r in refs} == {PRIMARY: 100, SECONDARY: 0}


def test_a_healthy_secondarys_reroute_moves_the_lab_route() -> None:
    snap = snapshot(upstream_frame(THROTTLED))
    rb = _runbook()
    diagnosis = rb.matches(snap, "payments")
    assert diagnosis is not None
    action = rb.propose(diagnosis, snap)
    assert action is not None
    lab = Lab(LabSettings(), SimClock(NOW))
    action.apply(ActionContext(lab.kube.clients(), sleep=lambda _s: None))
    api: Any = lab.kube.custom_objects
    route = api.get_namespaced_custom_object(
        GATEWAY_GROUP, GATEWAY_VERSION, "shop", HTTPROUTES, PRIMARY
    )
    refs = route["spec"]["rules"][0]["backendRefs"]
    weights = {r["name"]: r["weight"] for r in refs}
    assert weights[SECONDARY] > 50 and sum(weights.values()) == 100


def test_the_loop_heals_upstream_throttling_in_chaos() -> None:
    result = run_chaos(
        OodaSettings(),
        ChaosSettings(
            (ScenarioId.UPSTREAM_THROTTLING,),
            runs=2,
            seed=5,
            clean_week_days=0,
            duration=timedelta(minutes=25),
        ),
        RuleScorer(),
    )
    assert certified(result) == {ScenarioId.UPSTREAM_THROTTLING: []}
    assert to_json(result)["confusion"] == {"upstream_throttling": {"upstream_throttling": 2}}
