"""Traffic x3 past the HPA's maximum: the floor goes to the maximum, then the entry's Ingress is
rate-limited so the requests let in stay fast, and the limit is lifted after the surge."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from actuators import LIMIT_RPS
from lab import Lab, LabSettings, SimClock, TopologySettings, TrafficSurgeFault
from ooda import OodaSettings
from tests._narrow import some

from ._harness import START, make_loop, run


def small_lab() -> Lab:
    """The default estate with frontend's HPA capped at 6 pods (5 carry its normal load)."""
    services = TopologySettings().services
    capped = (replace(services[0], max_replicas=6), *services[1:])
    settings = LabSettings(seed=3, topology=TopologySettings(services=capped))
    lab = Lab(settings, SimClock(START - timedelta(hours=2)))
    lab.generate_history(days=2 / 24, incidents=False)
    return lab


def _limit(lab: Lab) -> str | None:
    ingress = lab.kube.networking_v1.read_namespaced_ingress("frontend", "shop")
    return (some(ingress.metadata).annotations or {}).get(LIMIT_RPS)


def test_a_surge_past_the_maximum_is_limited_at_the_ingress_then_lifted() -> None:
    lab = small_lab()
    loop = make_loop(lab, OodaSettings(), kube=lab.kube.clients())
    run(lab, loop, 5)
    lab.inject(TrafficSurgeFault(3.0, ramp=timedelta(minutes=2), duration=timedelta(minutes=30)))
    run(lab, loop, 12)
    actions = [(e.action, e.target) for e in loop.audit.entries("action")]
    assert ("set_hpa_min", "hpa/shop/frontend") in actions
    assert ("rate_limit", "ingress/shop/frontend") in actions
    limit = _limit(lab)
    assert limit is not None
    # 6 pods at 85 % of ~100 rps each, never below the pods' own floor of work.
    assert 300 <= float(limit) <= 600
    run(lab, loop, 8)
    frame = lab.source.query_range(
        lab.clock.now() - timedelta(minutes=5), lab.clock.now(), timedelta(minutes=1)
    )
    frontend = frame[frame["service"] == "frontend"]
    # The requests let in are fast; the excess is turned away at the edge (errors).
    assert (frontend["p95_latency_ms"] <= 150).all(), frontend["p95_latency_ms"].tolist()
    assert (frontend["error_rate"] > 0.05).all()
    run(lab, loop, 40)
    assert _limit(lab) is None, "lifted once the load fits the pods again"
    lifts = [
        e
        for e in loop.audit.entries("action")
        if e.action == "rate_limit" and "lifting" in str(e.evidence.get("reason"))
    ]
    assert len(lifts) == 1
    verdicts = [e.outcome for e in loop.audit.entries("verification") if e.action == "rate_limit"]
    assert verdicts == ["healed", "healed"], verdicts


def test_no_limit_while_the_hpa_can_still_grow() -> None:
    lab = Lab(LabSettings(seed=3), SimClock(START - timedelta(hours=2)))
    lab.generate_history(days=2 / 24, incidents=False)
    loop = make_loop(lab, OodaSettings(), kube=lab.kube.clients())
    run(lab, loop, 5)
    lab.inject(TrafficSurgeFault(3.0, ramp=timedelta(minutes=2), duration=timedelta(minutes=30)))
    run(lab, loop, 12)
    assert not [e for e in loop.audit.entries("action") if e.action == "rate_limit"]
    assert _limit(lab) is None
