"""A warm standby serves no one, so its SLIs say nothing; its pods' own faults are still
healed by its region's loop, and verified on the workload, so the standby is whole when the
users come."""

from __future__ import annotations

from datetime import UTC, datetime

from contracts import ScenarioId
from lab import Fleet, Lab, ScenarioInstance
from ooda import OodaSettings
from ooda._chaos import make_loop
from ooda._failover_drill import drill_fleet
from ooda._fakes import RuleScorer
from ooda._loop import ControlLoop

START = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _standby(seed: int) -> tuple[Fleet, Lab, ControlLoop]:
    fleet, settings = drill_fleet(OodaSettings(), seed, START)
    lab = fleet.regions[fleet.settings.regions[1]]
    return fleet, lab, make_loop(lab, settings, RuleScorer())


def _run(fleet: Fleet, loop: ControlLoop, minutes: int) -> None:
    tick = loop.settings.loop.tick
    for _ in range(round(minutes * 60 / tick.total_seconds())):
        fleet.step(tick)
        loop.tick()


def test_a_crash_loop_on_an_idle_standby_is_restarted_and_verified() -> None:
    fleet, lab, loop = _standby(3)
    _run(fleet, loop, 5)
    assert fleet.shares[lab.settings.topology.region] == 0.0
    assert not loop.stats.actions, "an idle, healthy standby is left alone"
    record = lab.inject(ScenarioInstance(ScenarioId.POD_CRASHLOOP, "checkout"))
    _run(fleet, loop, 6)
    assert loop.stats.actions == {"restart_pod": 1}
    assert loop.stats.healed == {"restart_pod": 1}
    assert not loop.stats.failed
    assert record.target not in lab.cluster.pods, "the crashing pod was replaced"


def test_a_heal_that_needs_users_to_verify_is_escalated_on_an_idle_standby() -> None:
    """Restoring a ConfigMap key is judged on the users' SLIs: on a standby nobody uses, it
    would be "verified" whatever it did, so it is escalated instead of proposed."""
    fleet, lab, loop = _standby(4)
    _run(fleet, loop, 3)
    lab.inject(
        ScenarioInstance(
            ScenarioId.POD_CRASHLOOP_PERSISTENT,
            "checkout",
            params={"configmap_key": "DB_POOL_SIZE"},
        )
    )
    _run(fleet, loop, 4)
    assert not loop.stats.actions and not loop.stats.proposed
    escalations = [e for e in loop.journal.events if e.kind == "escalation"]
    assert escalations, "the standby's broken config must reach a human"
    assert "serves none" in escalations[0].detail


def test_a_notready_node_under_an_idle_standby_is_drained_and_verified() -> None:
    fleet, lab, loop = _standby(5)
    _run(fleet, loop, 3)
    lab.inject(ScenarioInstance(ScenarioId.NODE_NOT_READY, "checkout"))
    _run(fleet, loop, 8)
    assert loop.stats.actions["drain_node"] >= 1
    assert loop.stats.healed["drain_node"] == loop.stats.actions["drain_node"]
    assert not loop.stats.failed
