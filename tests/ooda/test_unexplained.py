"""A burn no runbook explains is a human's at once: a service outside its SLO for
``unexplained_after`` with no diagnosis and nothing of ooda's awaiting a verdict is escalated
(``OodaNeedsHuman``), once, and not while something ooda did for it is being judged."""

from __future__ import annotations

from datetime import timedelta

from lab import Lab
from ooda import ControlLoop
from ooda._escalate import alert_of
from tests._narrow import some

from ._harness import make_lab, make_loop, run


def _brownout(share: float = 0.3) -> tuple[Lab, ControlLoop]:
    """A lab whose entry services fail ``share`` of their requests for no reason any runbook
    knows (a regional load balancer dropping them), and its loop."""
    lab = make_lab()
    loop = make_loop(lab)
    run(lab, loop, 2)
    lab.region_error_share = share
    return lab, loop


def test_an_unexplained_burn_is_escalated_once_after_five_minutes() -> None:
    lab, loop = _brownout()
    run(lab, loop, 4)
    assert loop.audit.entries("escalation") == [], "four minutes are not yet five"
    run(lab, loop, 12)
    escalations = loop.audit.entries("escalation")
    assert len(escalations) == 1, escalations
    (entry,) = escalations
    assert entry.evidence["scenario"] == "unexplained" and entry.action == "none"
    assert "no runbook explains it" in entry.outcome
    assert len(entry.evidence["p95_ms"]) == 5
    assert loop.audit.entries("action") == [], "nothing is done on a guess"
    alert = alert_of(entry, "shop", "eu-west-1")
    assert alert is not None and alert.name == "OodaNeedsHuman"


def test_nothing_is_escalated_while_an_action_for_the_service_awaits_its_verdict() -> None:
    lab, loop = _brownout()
    for _ in range(8 * 4):
        lab.step(timedelta(seconds=15))
        snapshot = some(loop.observe(lab.clock.now()))
        loop.actor.unexplained(snapshot, busy=set(snapshot.usable()))
    assert loop.audit.entries("escalation") == []
    loop.actor.unexplained(snapshot, busy=set())
    assert len(loop.audit.entries("escalation")) >= 1, "the same burn, once nothing is in flight"
