"""``ooda demo``'s regional outage: the demo fails unless the dead region's users moved to the
standby and came back, and its table says when."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from ooda._demo import DemoResult, failover_table
from ooda._failover_drill import DrillRun

ON = DrillRun(
    seed=1,
    mode="on",
    start=datetime(2026, 3, 3, 12, tzinfo=UTC),
    outage_minutes=29.3,
    breach_minutes=3,
    failover_s=150.0,
    failback_s=1470.0,
    pod_minutes=2882.0,
    actions=10,
    failed_heals=0,
    escalations=0,
    wrong_way=0,
)
OFF = replace(ON, mode="off", breach_minutes=29, failover_s=None, failback_s=None, actions=0)


def _result(on: DrillRun) -> DemoResult:
    return DemoResult([], [], Path("report.html"), [], [], (on, OFF))


def test_the_demo_fails_unless_the_users_moved_and_came_back() -> None:
    assert _result(ON).all_healed
    assert not _result(replace(ON, failover_s=None, failback_s=None)).all_healed
    assert not _result(replace(ON, failback_s=None)).all_healed
    assert not _result(replace(ON, failed_heals=1)).all_healed


def test_the_table_shows_both_runs_from_the_users_side() -> None:
    console = Console(width=200, record=True)
    console.print(failover_table(ON, OFF, ("eu-west-1", "eu-central-1")))
    text = console.export_text()
    assert "eu-west-1 fails every request for 29 minutes" in text
    assert "150 s from its start" in text and "1470 s from its end" in text
    assert "off (nobody acts)" in text and " 29 " in text
