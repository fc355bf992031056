"""Rate limit, database switch and reroute on the lab: what each changes, how it steps back,
and each refusal (every one is checked to leave the object as it was, so a refusal rule that
went missing would fail here, not merely change a message)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from actuators import (
    ACTION,
    CHANGED_BY,
    GATEWAY_GROUP,
    GATEWAY_VERSION,
    HTTPROUTES,
    LIMIT_RPS,
    MERGE_PATCH,
    ORIGINAL_ENDPOINT,
    RPS_SET,
    SWITCHED_TRAFFIC,
    ActionContext,
    ConflictError,
    GuardRejectedError,
    PermanentActuatorError,
    RateLimit,
    Reroute,
    SwitchDatabase,
    spy_on,
)
from lab import Lab, LabSettings, SimClock
from tests.k8s._backends import HTTPROUTE_CRD, external_name_service, http_route

NS = "shop"
PRIMARY = "orders.primary.db.example.com"
SECONDARY = "orders.secondary.db.example.com"
ROUTE = (GATEWAY_GROUP, GATEWAY_VERSION, NS, HTTPROUTES)


@pytest.fixture
def lab() -> Lab:
    lab = Lab(LabSettings(), SimClock(datetime(2025, 1, 8, 6, tzinfo=UTC)))
    kube: Any = lab.kube
    kube.core_v1.create_namespaced_service(NS, external_name_service("orders-db", PRIMARY))
    # The lab installed Gateway API's HTTPRoute CRD (for its upstream's route) already.
    assert kube.apiextensions_v1.read_custom_resource_definition(HTTPROUTE_CRD["metadata"]["name"])
    route = http_route("payments", {"payments-eu": 100, "payments-us": 0})
    kube.custom_objects.create_namespaced_custom_object(*ROUTE, route)
    return lab


def _ctx(lab: Lab) -> ActionContext:
    return ActionContext(lab.kube.clients(), sleep=lambda _s: None, audit_ref="a-1")


def _refused_without_change(lab: Lab, action: Any, error: type[Exception], match: str) -> None:
    kube, spies = spy_on(lab.kube.clients())
    with pytest.raises(error, match=match):
        action.apply(ActionContext(kube, sleep=lambda _s: None))
    assert [m for spy in spies for m in spy.mutations] == []


# -- rate limit -----------------------------------------------------------------------------


def _ingress_notes(lab: Lab, name: str = "frontend") -> dict[str, str]:
    ingress: Any = lab.kube.networking_v1.read_namespaced_ingress(name, NS)
    return dict(ingress.metadata.annotations or {})


def test_rate_limit_sets_the_annotation_and_undo_removes_it(lab: Lab) -> None:
    """The lab's entry Ingress starts without a limit; ooda's limit is marked as ooda's."""
    action = RateLimit(NS, "frontend", "traffic surge beyond capacity", rps=200)
    result = action.apply(_ctx(lab))
    notes = _ingress_notes(lab)
    assert (notes[LIMIT_RPS], notes[RPS_SET], notes[CHANGED_BY], notes[ACTION]) == (
        "200",
        "200",
        "ooda",
        "rate_limit",
    )
    assert result.before == {"limit_rps": None, "ooda_set": None} and result.undoable
    assert result.target == "ingress/shop/frontend"
    assert lab.kube.networking_v1.limit_rps("frontend") == 200.0

    action.undo(_ctx(lab), result)
    notes = _ingress_notes(lab)
    assert LIMIT_RPS not in notes and RPS_SET not in notes
    assert lab.kube.networking_v1.limit_rps("frontend") is None


def test_rate_limit_undo_restores_a_human_limit_and_refuses_a_changed_one(lab: Lab) -> None:
    net = lab.kube.networking_v1
    net.patch_namespaced_ingress(
        "frontend", NS, {"metadata": {"annotations": {LIMIT_RPS: "500"}}}, _content_type=MERGE_PATCH
    )
    action = RateLimit(NS, "frontend", rps=150)
    result = action.apply(_ctx(lab))
    assert result.before["limit_rps"] == "500"
    action.undo(_ctx(lab), result)
    assert _ingress_notes(lab)[LIMIT_RPS] == "500" and RPS_SET not in _ingress_notes(lab)

    result = action.apply(_ctx(lab))
    net.patch_namespaced_ingress(
        "frontend", NS, {"metadata": {"annotations": {LIMIT_RPS: "90"}}}, _content_type=MERGE_PATCH
    )
    with pytest.raises(ConflictError, match="'90'"):
        action.undo(_ctx(lab), result)
    assert _ingress_notes(lab)[LIMIT_RPS] == "90"


def test_rate_limit_refuses_below_its_floor(lab: Lab) -> None:
    action = RateLimit(NS, "frontend", rps=5, min_rps=10)
    _refused_without_change(lab, action, GuardRejectedError, "5 rps is below the floor of 10")
    assert LIMIT_RPS not in _ingress_notes(lab)


def test_rate_limit_refuses_a_negative_limit(lab: Lab) -> None:
    """Even with a floor that would let it through (-10)."""
    action = RateLimit(NS, "frontend", rps=-5, min_rps=-10)
    _refused_without_change(lab, action, PermanentActuatorError, "rps >= 0, got -5")


def test_rps_0_lifts_ooda_s_limit_and_undo_puts_it_back(lab: Lab) -> None:
    RateLimit(NS, "frontend", rps=120).apply(_ctx(lab))
    lift = RateLimit(NS, "frontend", rps=0)
    result = lift.apply(_ctx(lab))
    assert LIMIT_RPS not in _ingress_notes(lab) and RPS_SET not in _ingress_notes(lab)
    assert lift.lifts(result) and lift.undo_when_failed(result)
    lift.undo(_ctx(lab), result)
    assert _ingress_notes(lab)[LIMIT_RPS] == "120" == _ingress_notes(lab)[RPS_SET]


def test_rps_0_never_lifts_a_human_s_limit(lab: Lab) -> None:
    lab.kube.networking_v1.patch_namespaced_ingress(
        "frontend", NS, {"metadata": {"annotations": {LIMIT_RPS: "90"}}}, _content_type=MERGE_PATCH
    )
    action = RateLimit(NS, "frontend", rps=0)
    _refused_without_change(lab, action, GuardRejectedError, "not set by ooda")
    assert _ingress_notes(lab)[LIMIT_RPS] == "90"


def test_rate_limit_of_a_missing_ingress_is_a_404(lab: Lab) -> None:
    with pytest.raises(PermanentActuatorError, match="404"):
        RateLimit(NS, "checkout", rps=100).apply(_ctx(lab))


# -- switch database ------------------------------------------------------------------------


def _switch(**fields: Any) -> SwitchDatabase:
    ok: dict[str, Any] = {
        "db_service": "orders-db",
        "secondary": SECONDARY,
        "replica_lag_s": 2.0,
        "max_replica_lag_s": 30.0,
        "secondary_healthy": True,
    }
    return SwitchDatabase(NS, "checkout", "db read latency", **{**ok, **fields})


def _endpoint(lab: Lab, name: str = "orders-db") -> tuple[str, dict[str, str]]:
    svc: Any = lab.kube.core_v1.read_namespaced_service(name, NS)
    return svc.spec.external_name, dict(svc.metadata.annotations or {})


def test_switch_database_repoints_the_service_and_undo_points_it_back(lab: Lab) -> None:
    action = _switch(traffic="reads_and_writes")
    result = action.apply(_ctx(lab))
    endpoint, notes = _endpoint(lab)
    assert endpoint == SECONDARY and result.target == "service/shop/orders-db"
    assert notes[ORIGINAL_ENDPOINT] == PRIMARY and notes[SWITCHED_TRAFFIC] == "reads_and_writes"
    assert notes[ACTION] == "switch_database"
    assert result.before["external_name"] == PRIMARY

    action.undo(_ctx(lab), result)
    endpoint, notes = _endpoint(lab)
    assert endpoint == PRIMARY and ORIGINAL_ENDPOINT not in notes


def test_switch_database_undo_refuses_a_service_repointed_since(lab: Lab) -> None:
    result = _switch().apply(_ctx(lab))
    lab.kube.core_v1.patch_namespaced_service(
        "orders-db",
        NS,
        {"spec": {"externalName": "orders.dr.example.com"}},
        _content_type=MERGE_PATCH,
    )
    with pytest.raises(ConflictError, match=r"orders\.dr\.example\.com"):
        _switch().undo(_ctx(lab), result)
    assert _endpoint(lab)[0] == "orders.dr.example.com"


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"replica_lag_s": 45.0}, "lags 45.0 s, more than the 30.0 s bound"),
        ({"replica_lag_s": float("nan")}, "lags nan s"),
        ({"secondary_healthy": False}, "is not healthy"),
    ],
    ids=["lag", "unknown-lag", "unhealthy"],
)
def test_switch_database_refuses_a_secondary_not_fit_to_serve(
    lab: Lab, fields: dict[str, Any], match: str
) -> None:
    _refused_without_change(lab, _switch(**fields), GuardRejectedError, match)
    assert _endpoint(lab)[0] == PRIMARY


def test_switch_database_refuses_a_service_that_is_not_external_name(lab: Lab) -> None:
    lab.kube.core_v1.create_namespaced_service(
        NS, {"metadata": {"name": "orders-proxy"}, "spec": {"ports": [{"port": 5432}]}}
    )
    action = _switch(db_service="orders-proxy")
    _refused_without_change(lab, action, GuardRejectedError, "'ClusterIP', not ExternalName")


@pytest.mark.parametrize(
    ("fields", "match"),
    [({"traffic": "writes"}, "got 'writes'"), ({"secondary": "Not A Name"}, "'Not A Name'")],
    ids=["traffic", "secondary"],
)
def test_switch_database_refuses_bad_values(lab: Lab, fields: dict[str, Any], match: str) -> None:
    _refused_without_change(lab, _switch(**fields), PermanentActuatorError, match)


# -- reroute --------------------------------------------------------------------------------


def _route(lab: Lab) -> dict[str, Any]:
    route: dict[str, Any] = lab.kube.custom_objects.get_namespaced_custom_object(*ROUTE, "payments")
    return route


def _weights(lab: Lab) -> dict[str, int]:
    return {r["name"]: r["weight"] for r in _route(lab)["spec"]["rules"][0]["backendRefs"]}


def test_reroute_moves_weight_and_undo_moves_it_back(lab: Lab) -> None:
    original = _route(lab)
    action = Reroute(
        NS,
        "checkout",
        "upstream throttling",
        route="payments",
        weights=(("payments-eu", 20), ("payments-us", 80)),
    )
    result = action.apply(_ctx(lab))
    assert _weights(lab) == {"payments-eu": 20, "payments-us": 80}
    route = _route(lab)
    assert route["metadata"]["annotations"][ACTION] == "reroute"
    assert route["spec"]["rules"][0]["matches"] == original["spec"]["rules"][0]["matches"]
    assert route["spec"]["parentRefs"] == original["spec"]["parentRefs"]
    assert result.before["weights"] == {"payments-eu": 100, "payments-us": 0}

    action.undo(_ctx(lab), result)
    assert _weights(lab) == {"payments-eu": 100, "payments-us": 0}


def test_reroute_undo_refuses_weights_moved_since(lab: Lab) -> None:
    action = Reroute(NS, "checkout", route="payments", weights=(("payments-us", 100),))
    result = action.apply(_ctx(lab))
    rules = _route(lab)["spec"]["rules"]
    rules[0]["backendRefs"][0]["weight"] = 7
    lab.kube.custom_objects.patch_namespaced_custom_object(
        *ROUTE, "payments", {"spec": {"rules": rules}}, _content_type=MERGE_PATCH
    )
    with pytest.raises(ConflictError, match="'payments-eu': 7"):
        action.undo(_ctx(lab), result)
    assert _weights(lab)["payments-eu"] == 7


def test_reroute_refuses_to_send_more_traffic_to_an_unhealthy_backend(lab: Lab) -> None:
    action = Reroute(
        NS,
        "checkout",
        route="payments",
        weights=(("payments-us", 50),),
        unhealthy=("payments-us",),
    )
    _refused_without_change(lab, action, GuardRejectedError, r"unhealthy backends \['payments-us'")
    assert _weights(lab) == {"payments-eu": 100, "payments-us": 0}


def test_reroute_may_take_weight_away_from_an_unhealthy_backend(lab: Lab) -> None:
    """The positive control of the rule above: moving traffic off a sick backend is allowed."""
    action = Reroute(
        NS,
        "checkout",
        route="payments",
        weights=(("payments-eu", 10), ("payments-us", 90)),
        unhealthy=("payments-eu",),
    )
    action.apply(_ctx(lab))
    assert _weights(lab) == {"payments-eu": 10, "payments-us": 90}


def test_reroute_refuses_weights_that_sum_to_nothing(lab: Lab) -> None:
    action = Reroute(NS, "checkout", route="payments", weights=(("payments-eu", 0),))
    _refused_without_change(lab, action, GuardRejectedError, "sum to 0")


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ((("payments-ap", 10),), r"no backends \['payments-ap'\]"),
        ((("payments-eu", -1),), "within 0..1000000, got -1"),
        ((), "needs a route and weights"),
    ],
    ids=["unknown-backend", "negative", "empty"],
)
def test_reroute_refuses_bad_weights(
    lab: Lab, weights: tuple[tuple[str, int], ...], match: str
) -> None:
    action = Reroute(NS, "checkout", route="payments", weights=weights)
    _refused_without_change(lab, action, PermanentActuatorError, match)
