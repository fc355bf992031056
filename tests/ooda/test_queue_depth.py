"""The SQS queue-depth runbook: poison is redriven (bounded, never more workers), a backlog
gets enough workers to drain, a floor it raised goes back only when it is its own and the
queue stayed fresh; a healthy or briefly busy queue is left alone; and its chaos
certification over both kinds of cause."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from actuators import CHANGED_AT, Guard, RedriveQueue, SetHpaMinReplicas
from actuators._set_hpa_min import FLOOR_FOR, MIN_ORIGINAL, MIN_SET
from contracts import HpaState, MetricFamily, ScenarioId, WorkloadState
from lab import ScenarioInstance
from lab._queue import Queue
from ooda import AutonomySettings, OodaSettings, RuleScorer
from ooda._autonomy import ErrorBudget
from ooda._chaos import ChaosSettings, certified, run_chaos
from ooda._chaos_report import to_json
from ooda._records import Snapshot
from ooda._recover import recover
from ooda._runs import Mode
from ooda.runbooks import check_runbook
from ooda.runbooks.queue_depth import QueueDepth
from tests.ooda._harness import make_lab, make_loop, run

NOW = datetime(2025, 1, 8, 12, tzinfo=UTC)


def queue_frame(
    ages: list[float],
    *,
    sent: float = 60.0,
    deleted: float = 60.0,
    received: float | None = None,
    visible: float = 0.0,
) -> pd.DataFrame:
    """The queue ``receipts`` of ``checkout``, one row per minute, the newest at NOW."""
    rows = [
        {
            "timestamp": pd.Timestamp(NOW - timedelta(minutes=len(ages) - 1 - i)),
            "region": "eu-west-1",
            "service": "checkout",
            "queue_name": "receipts",
            "aws_sqs_approximate_number_of_messages_visible_average": visible,
            "aws_sqs_approximate_age_of_oldest_message_average": age,
            "aws_sqs_number_of_messages_received_rate": deleted if received is None else received,
            "aws_sqs_number_of_messages_deleted_rate": deleted,
            "aws_sqs_number_of_messages_sent_rate": sent,
        }
        for i, age in enumerate(ages)
    ]
    return pd.DataFrame(rows)


def snapshot(
    frame: pd.DataFrame,
    ready: int = 5,
    min_replicas: int = 3,
    max_replicas: int = 30,
    annotations: dict[str, str] | None = None,
) -> Snapshot:
    hpa = HpaState("checkout", min_replicas, max_replicas, ready, ready, 0.6, annotations or {})
    workload = WorkloadState("shop", "checkout", "checkout", ready, ready, 1, None, (), hpa)
    return Snapshot(
        at=NOW,
        region="eu-west-1",
        namespace="shop",
        views={},
        workloads={"checkout": workload},
        scores=None,
        forecast=None,
        families={MetricFamily.QUEUE: frame},
    )


@pytest.fixture
def runbook() -> QueueDepth:
    check_runbook(QueueDepth)
    return QueueDepth(OodaSettings())


def test_failing_receives_redrive_the_poison_bounded(runbook: QueueDepth) -> None:
    frame = queue_frame([5.0] * 6, received=70.0, deleted=60.0)
    diagnosis = runbook.matches(snapshot(frame), "checkout")
    assert diagnosis is not None and diagnosis.evidence["direction"] == "poison"
    action = runbook.propose(diagnosis, snapshot(frame))
    assert isinstance(action, RedriveQueue)
    policy = OodaSettings().policy
    assert action.queue == "receipts" and action.service == "checkout"
    assert action.max_receive_count == policy.queue_poison_receives
    assert action.max_messages == policy.queue_redrive_max <= 1000


def test_poison_is_redriven_not_fed_more_workers(runbook: QueueDepth) -> None:
    """A stalled queue whose receives fail: the poison is the cause, workers would not help."""
    frame = queue_frame([60.0, 120.0, 180.0, 240.0, 300.0], received=10.0, deleted=0.5)
    diagnosis = runbook.matches(snapshot(frame, ready=5), "checkout")
    assert diagnosis is not None and diagnosis.evidence["direction"] == "poison"


def test_a_minute_of_failing_receives_is_no_poison(runbook: QueueDepth) -> None:
    frame = queue_frame([5.0] * 6, received=60.0, deleted=60.0)
    frame.loc[5, "aws_sqs_number_of_messages_received_rate"] = 80.0  # one scan, say
    assert runbook.matches(snapshot(frame), "checkout") is None


def test_a_backlog_gets_enough_workers_to_drain(runbook: QueueDepth) -> None:
    # 5 pods delete 50/s of 60/s sent: 10/s per pod; 6000 visible drain in 5 min at +20/s
    frame = queue_frame([20.0, 35.0, 50.0, 65.0, 80.0], sent=60.0, deleted=50.0, visible=6000.0)
    diagnosis = runbook.matches(snapshot(frame), "checkout")
    assert diagnosis is not None and diagnosis.evidence["direction"] == "out"
    assert diagnosis.evidence["needed_replicas"] == 8
    action = runbook.propose(diagnosis, snapshot(frame))
    assert isinstance(action, SetHpaMinReplicas)
    assert action.min_replicas == 8 and action.purpose == "queue_depth"


def test_never_past_the_hpa_maximum(runbook: QueueDepth) -> None:
    frame = queue_frame([20.0, 35.0, 50.0, 65.0, 80.0], sent=600.0, deleted=50.0, visible=6e4)
    diagnosis = runbook.matches(snapshot(frame, max_replicas=12), "checkout")
    assert diagnosis is not None and diagnosis.evidence["set_min"] == 12


@pytest.mark.parametrize(
    ("ages", "deleted", "why"),
    [
        ([5.0, 8.0, 6.0, 7.0, 5.0], 50.0, "a young queue: the workers poll"),
        ([20.0, 35.0, 50.0, 65.0, 80.0], 60.0, "the workers keep up: it drains"),
        ([20.0, 21.0, 22.0, 23.0, 24.0], 50.0, "the objective is far off"),
        ([80.0, 20.0, 90.0, 10.0, 60.0], 50.0, "no believable trend"),
    ],
    ids=["young", "draining", "far-off", "noise"],
)
def test_what_is_left_alone(
    runbook: QueueDepth, ages: list[float], deleted: float, why: str
) -> None:
    frame = queue_frame(ages, sent=60.0, deleted=deleted, visible=3000.0)
    assert runbook.matches(snapshot(frame), "checkout") is None, why


def _raised(purpose: str, minutes_ago: float) -> dict[str, str]:
    at = (NOW - timedelta(minutes=minutes_ago)).isoformat()
    return {MIN_SET: "8", MIN_ORIGINAL: "3", FLOOR_FOR: purpose, CHANGED_AT: at}


def test_its_own_floor_goes_back_once_the_queue_stayed_fresh(runbook: QueueDepth) -> None:
    fresh = queue_frame([3.0] * 15)
    late = snapshot(fresh, min_replicas=8, annotations=_raised("queue_depth", 31))
    diagnosis = runbook.matches(late, "checkout")
    assert diagnosis is not None and diagnosis.evidence == {
        "direction": "in",
        "set_min": 3,
        "hpa": "checkout",
    }
    early = snapshot(fresh, min_replicas=8, annotations=_raised("queue_depth", 20))
    assert runbook.matches(early, "checkout") is None
    stale = queue_frame([3.0] * 14 + [45.0])
    stale_state = snapshot(stale, min_replicas=8, annotations=_raised("queue_depth", 31))
    assert runbook.matches(stale_state, "checkout") is None
    surge = snapshot(fresh, min_replicas=8, annotations=_raised("traffic_surge", 31))
    assert runbook.matches(surge, "checkout") is None  # another runbook's floor


def test_a_service_without_a_queue_is_not_its_business(runbook: QueueDepth) -> None:
    assert runbook.matches(snapshot(queue_frame([500.0] * 5)), "payments") is None


def test_chaos_certifies_it_on_poison_and_on_a_backlog() -> None:
    result = run_chaos(
        OodaSettings(),
        ChaosSettings((ScenarioId.QUEUE_DEPTH,), runs=2, seed=3, clean_week_days=0),
        RuleScorer(),
    )
    assert certified(result) == {ScenarioId.QUEUE_DEPTH: []}
    assert to_json(result)["confusion"] == {"queue_depth": {"queue_depth": 2}}
    kinds = {str(i.instance.params["kind"]) for i in result.instances}
    assert kinds & {"poison_batch", "poison_release"} and kinds - {
        "poison_batch",
        "poison_release",
    }, kinds
    for inst in result.instances:
        on, off = inst.runs[Mode.ON], inst.runs[Mode.OFF]
        assert on.breach_minutes <= 0.25 * off.breach_minutes, inst.instance


def test_a_redrive_in_steps_is_one_heal_judged_on_its_last_step() -> None:
    """A batch of poison larger than the workers cycle through shows itself in turns: each
    redrive moves the messages received often enough by then. The steps are one heal: each
    but the last is closed as "continued", the last carries the verdict, and nothing counts
    as a failed heal; a restarted loop finds only the last step pending."""
    lab = make_lab()
    loop = make_loop(lab)
    run(lab, loop, 3)
    lab.inject(
        ScenarioInstance(
            ScenarioId.QUEUE_DEPTH,
            "checkout",
            400.0,
            None,
            {"queue": "receipts", "kind": "poison_batch"},
        )
    )
    run(lab, loop, 8)
    redrives = [e for e in loop.audit.entries("action") if e.action == "redrive_queue"]
    assert len(redrives) >= 2, "the poison showed itself in one go"
    verdicts = {e.ref: e.outcome for e in loop.audit.entries("verification")}
    assert [verdicts.get(e.id) for e in redrives[:-1]] == ["continued"] * (len(redrives) - 1)
    guard, budget = Guard(), ErrorBudget(AutonomySettings())
    pending = recover(loop.audit, guard, budget).pending
    assert [p.audit_id for p in pending] == [redrives[-1].id]
    run(lab, loop, 30)
    verdicts = {e.ref: e.outcome for e in loop.audit.entries("verification")}
    assert "failed" not in verdicts.values()
    assert loop.stats.failed["redrive_queue"] == 0
    assert lab.dependencies(Queue)[0].poison_in_queue() == 0
