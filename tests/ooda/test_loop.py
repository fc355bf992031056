"""The control loop on the lab: it heals, verifies, respects dry-run, and keeps running
(acting on nothing it cannot trust) when metrics or the models go bad."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from actuators import spy_on
from lab import CrashLoopFault, TrafficSurgeFault
from ooda import OodaSettings, RuleScorer
from ooda._settings import PolicySettings
from tests._narrow import some
from tests.ooda._harness import crashlooping, make_lab, make_loop, run


def test_crashloop_is_restarted_and_verified() -> None:
    lab = make_lab()
    loop = make_loop(lab)
    record = lab.inject(CrashLoopFault(service="checkout"))
    run(lab, loop, 8)
    actions = loop.audit.entries("action")
    assert [a.action for a in actions] == ["restart_pod"]
    assert actions[0].target == f"pod/shop/{record.target}"
    intents = loop.audit.entries("intent")
    assert [i.id for i in intents] == [actions[0].ref], "the intent is written before the act"
    assert crashlooping(lab, "checkout") == []
    verdicts = loop.audit.entries("verification")
    assert [v.outcome for v in verdicts] == ["healed"]
    assert verdicts[0].ref == actions[0].id
    assert loop.stats.healed["restart_pod"] == 1
    assert loop.audit.verify().ok


def test_dry_run_decides_and_logs_but_changes_nothing() -> None:
    lab = make_lab()
    spied, spies = spy_on(make_loop(lab).kube)
    loop = make_loop(lab, OodaSettings(dry_run=True), kube=spied)
    record = lab.inject(CrashLoopFault(service="checkout"))
    run(lab, loop, 6)
    actions = loop.audit.entries("action")
    assert actions and all(a.outcome == "dry-run" and a.dry_run for a in actions)
    assert len(actions) == 2, "a preview repeats once per cooldown, not every tick"
    assert [m for spy in spies for m in spy.mutations] == []
    assert record.target in crashlooping(lab, "checkout")
    assert loop.pending == []
    key = ("restart_pod", "shop/checkout")
    assert key not in loop.guard._last_applied, "dry-run used a cooldown slot"


def test_a_scoring_outage_is_logged_and_capacity_is_not_planned_on_it() -> None:
    lab = make_lab()
    loop = make_loop(lab, scorer=RuleScorer(down=True))
    lab.inject(CrashLoopFault(service="checkout"))
    run(lab, loop, 8)
    assert loop.stats.ticks == 32
    problems = [e.outcome for e in loop.audit.entries("observation")]
    assert any("anomaly scores unavailable" in p for p in problems)
    assert any("forecast unavailable" in p for p in problems)
    assert not [a for a in loop.audit.entries("action") if a.action == "set_hpa_min"]
    # CrashLoopBackOff is evidence from the cluster itself: the heal does not need a model.
    assert [v.outcome for v in loop.audit.entries("verification")] == ["healed"]


class NaNSource:
    """Wraps a source and blanks the newest p95 and error rate of one service."""

    def __init__(self, inner: Any, service: str) -> None:
        self.inner = inner
        self.service = service

    def query_range(self, start: datetime, end: datetime, step: Any) -> pd.DataFrame:
        frame = self.inner.query_range(start, end, step)
        newest = frame[frame["service"] == self.service]["timestamp"].max()
        rows = (frame["service"] == self.service) & (frame["timestamp"] == newest)
        frame.loc[rows, ["p95_latency_ms", "error_rate"]] = np.nan
        return frame


def test_nan_metrics_block_action_on_that_service_only() -> None:
    lab = make_lab()
    loop = make_loop(lab, source=NaNSource(lab.source, "checkout"))
    lab.inject(CrashLoopFault(service="checkout"))
    run(lab, loop, 4)
    assert not loop.audit.entries("action")
    problems = [e for e in loop.audit.entries("observation") if e.service == "checkout"]
    assert problems and "NaN in ['p95_latency_ms', 'error_rate']" in problems[0].outcome
    assert loop.stats.problems["checkout"] == 16
    assert loop.stats.problems.get("frontend", 0) == 0


def test_a_stage_failing_every_tick_is_reported_once_while_others_are_fine() -> None:
    """Observe clears a service's problems each tick it looks fine; that must not re-open
    the report of a decide stage that keeps failing for the same reason."""
    lab = make_lab()
    loop = make_loop(lab)

    def broken(snapshot: Any, service: str, awaiting: bool = False) -> None:
        raise ValueError(f"malformed annotation on {service}")

    loop.actor.decide = broken  # type: ignore[method-assign]
    run(lab, loop, 4)
    reports = [e for e in loop.audit.entries("observation") if e.service == "checkout"]
    assert [e.outcome for e in reports] == [
        "skipped: decide failed: ValueError: malformed annotation on checkout"
    ]
    assert loop.stats.problems["checkout"] == 16, "every failing tick is still counted"


def test_a_stale_source_is_reported_not_acted_on() -> None:
    lab = make_lab()
    frozen_at = lab.clock.now()

    class Frozen:
        def query_range(self, start: datetime, end: datetime, step: Any) -> pd.DataFrame:
            return lab.source.query_range(start, min(end, frozen_at), step)

    loop = make_loop(lab, source=Frozen())
    run(lab, loop, 4)
    lab.inject(CrashLoopFault(service="checkout"))
    run(lab, loop, 4)
    assert not loop.audit.entries("action")
    stale = [e for e in loop.audit.entries("observation") if e.service == "checkout"]
    assert len(stale) == 1, "a problem that persists is logged once, not every tick"
    assert "no sample in the last 0:03:00" in stale[0].outcome


def surge() -> TrafficSurgeFault:
    return TrafficSurgeFault(factor=3.0, ramp=timedelta(minutes=3), duration=timedelta(minutes=20))


def test_a_surge_raises_the_hpa_floor_and_a_human_floor_is_never_lowered() -> None:
    lab = make_lab()
    loop = make_loop(lab)
    lab.inject(surge())
    run(lab, loop, 4)
    raised = [a for a in loop.audit.entries("action") if a.action == "set_hpa_min"]
    assert raised, "a x3 surge raises the floor ahead of the ramp"
    assert raised[0].evidence["rate_ratio_1h"] >= PolicySettings().surge_ratio
    hpa = lab.kube.autoscaling_v2.read_namespaced_horizontal_pod_autoscaler("frontend", "shop")
    assert hpa.spec is not None and hpa.metadata is not None
    annotations = some(hpa.metadata.annotations)
    assert annotations["ooda.dev/changed-by"] == "ooda"
    mine = [a for a in raised if a.service == "frontend"][-1]
    assert annotations["ooda.dev/audit-id"] == str(mine.ref)
    # A human raises the floor further; the surge ends and load stays normal long after.
    human = some(hpa.spec.min_replicas) + 2
    lab.kube.autoscaling_v2.patch_namespaced_horizontal_pod_autoscaler(
        "frontend",
        "shop",
        {"spec": {"minReplicas": human}},
        _content_type="application/merge-patch+json",
    )
    run(lab, loop, 40)
    hpa = lab.kube.autoscaling_v2.read_namespaced_horizontal_pod_autoscaler("frontend", "shop")
    assert hpa.spec.min_replicas == human, "ooda lowered a floor a human set"


def test_a_floor_ooda_raised_is_released_once_load_stays_low() -> None:
    lab = make_lab()
    loop = make_loop(lab)
    start = lab.kube.autoscaling_v2.read_namespaced_horizontal_pod_autoscaler("frontend", "shop")
    lab.inject(surge())
    run(lab, loop, 45)
    hpa = lab.kube.autoscaling_v2.read_namespaced_horizontal_pod_autoscaler("frontend", "shop")
    actions = [a for a in loop.audit.entries("action") if a.service == "frontend"]
    after = [a.evidence["result"]["after"]["min_replicas"] for a in actions]
    assert max(after) > start.spec.min_replicas, "the floor was never raised"
    assert hpa.spec.min_replicas == start.spec.min_replicas, "the raised floor stayed"
    released = actions[-1]
    assert released.evidence["direction"] == "in"
    assert released.at - actions[0].at > timedelta(minutes=10)


def test_a_loop_that_loses_the_lease_stops_acting_at_once() -> None:
    lab = make_lab()
    leading = [True]
    loop = make_loop(lab)
    loop._may_act = lambda: leading[0]
    leading[0] = False  # the Lease lapsed: the renew deadline passed mid-tick
    lab.inject(CrashLoopFault(service="checkout"))
    run(lab, loop, 8)
    assert loop.audit.entries("intent") == [] and loop.audit.entries("action") == []
    stopped = [e for e in loop.audit.entries("observation") if "not the leader" in e.outcome]
    assert stopped, "the loop says why it did not act"
    leading[0] = True
    run(lab, loop, 3)
    assert [a.action for a in loop.audit.entries("action")] == ["restart_pod"]
