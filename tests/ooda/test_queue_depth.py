"""The SQS queue-depth runbook: poison is redriven (bounded, never more workers) and the
queue's own maxReceiveCount lowered, a backlog gets enough workers to drain, a floor or a count
it changed goes back only when it is its own and the queue stayed fresh; a healthy or briefly
busy queue is left alone; and its chaos certification over both kinds of cause."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from actuators import CHANGED_AT, ORIGINAL_RECEIVES, Guard, RedriveQueue, SetHpaMinReplicas
from actuators._set_hpa_min import FLOOR_FOR, MIN_ORIGINAL, MIN_SET
from contracts import HpaState, MetricFamily, ScenarioId, WorkloadState
from lab import ScenarioInstance
from lab._queue import Queue
from ooda import AutonomySettings, OodaSettings, RuleScorer
from ooda._autonomy import ErrorBudget
from ooda._chaos import ChaosSettings, certified, run_chaos
from ooda._chaos_report import to_json
from ooda._queue_policies import QueuePolicyReader
from ooda._records import QueuePolicy, Snapshot
from ooda._recover import recover
from ooda._runs import Mode
from ooda.runbooks import check_runbook
from ooda.runbooks.queue_depth import QueueDepth
from tests.ooda._harness import make_lab, make_loop, run
from tests.ooda._snapshots import region_snapshot

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
    queues: dict[str, QueuePolicy] | None = None,
) -> Snapshot:
    hpa = HpaState("checkout", min_replicas, max_replicas, ready, ready, 0.6, annotations or {})
    workload = WorkloadState("shop", "checkout", "checkout", ready, ready, 1, None, (), hpa)
    return region_snapshot(
        NOW, {"checkout": workload}, families={MetricFamily.QUEUE: frame}, queues=queues or {}
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
    assert action.dead_letter_after == 0  # the queue's policy was not read: left alone


@pytest.mark.parametrize(("count", "lowered"), [(50, 5), (5, 0), (3, 0)], ids=str)
def test_the_policy_is_lowered_only_where_it_stands_higher(
    runbook: QueueDepth, count: int, lowered: int
) -> None:
    frame = queue_frame([5.0] * 6, received=70.0, deleted=60.0)
    state = snapshot(frame, queues={"receipts": QueuePolicy("receipts", count, None, None)})
    diagnosis = runbook.matches(state, "checkout")
    assert diagnosis is not None
    action = runbook.propose(diagnosis, state)
    assert isinstance(action, RedriveQueue) and action.dead_letter_after == lowered


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


def test_failing_receives_the_lowered_count_keeps_fresh_are_in_hand(runbook: QueueDepth) -> None:
    """A bad release still sending poison: SQS dead-letters each after five receives and the
    oldest message stays inside the objective, so no more redrives; a stale queue gets one."""
    ours = {"receipts": QueuePolicy("receipts", 5, 50, NOW - timedelta(minutes=4))}
    fresh = queue_frame([60.0] * 6, received=70.0, deleted=60.0)  # young poison counts
    assert runbook.matches(snapshot(fresh, queues=ours), "checkout") is None
    theirs = {"receipts": QueuePolicy("receipts", 5, None, None)}
    assert runbook.matches(snapshot(fresh, queues=theirs), "checkout") is not None
    stale = queue_frame([60.0] * 5 + [130.0], received=70.0, deleted=60.0)
    diagnosis = runbook.matches(snapshot(stale, queues=ours), "checkout")
    assert diagnosis is not None and diagnosis.evidence["direction"] == "poison"


def test_its_own_count_goes_back_once_the_queue_stayed_fresh(runbook: QueueDepth) -> None:
    fresh = queue_frame([3.0] * 15)

    def policy(found: int | None, minutes_ago: float) -> dict[str, QueuePolicy]:
        at = NOW - timedelta(minutes=minutes_ago)
        return {"receipts": QueuePolicy("receipts", 5, found, at if found else None)}

    late = snapshot(fresh, queues=policy(50, 31))
    diagnosis = runbook.matches(late, "checkout")
    assert diagnosis is not None and diagnosis.evidence["direction"] == "policy"
    action = runbook.propose(diagnosis, late)
    assert isinstance(action, RedriveQueue)
    assert action.max_messages == 0 and action.dead_letter_after == 50
    assert runbook.matches(snapshot(fresh, queues=policy(50, 20)), "checkout") is None
    assert runbook.matches(snapshot(fresh, queues=policy(None, 31)), "checkout") is None
    stale = queue_frame([3.0] * 14 + [45.0])
    assert runbook.matches(snapshot(stale, queues=policy(50, 31)), "checkout") is None
    failing = queue_frame([3.0] * 15, received=60.0, deleted=60.0)
    failing.loc[3, "aws_sqs_number_of_messages_received_rate"] = 60.5  # poison still comes
    assert runbook.matches(snapshot(failing, queues=policy(50, 31)), "checkout") is None


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
    redrive moves the messages received often enough by then, and the lowered count lets SQS
    move the rest. The steps are one heal: each but the last is closed as "continued", the
    last carries the verdict, and nothing counts as a failed heal; a restarted loop finds only
    the last step pending. The count goes back once the queue stayed fresh."""
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
    for _ in range(8 * 4):  # until the second step
        run(lab, loop, 0.25)
        redrives = [e for e in loop.audit.entries("action") if e.action == "redrive_queue"]
        if len(redrives) >= 2:
            break
    assert len(redrives) >= 2, "the poison showed itself in one go"
    verdicts = {e.ref: e.outcome for e in loop.audit.entries("verification")}
    assert [verdicts.get(e.id) for e in redrives[:-1]] == ["continued"] * (len(redrives) - 1)
    queue = lab.dependencies(Queue)[0]
    assert queue.main.redrive == ("receipts-dlq", OodaSettings().policy.queue_dead_letter_after)
    guard, budget = Guard(), ErrorBudget(AutonomySettings())
    pending = recover(loop.audit, guard, budget).pending
    assert [p.audit_id for p in pending] == [redrives[-1].id]
    first_deadline = redrives[0].at + QueueDepth.deadline  # the steps keep the first's
    assert pending[0].deadline == first_deadline
    assert [p.deadline for p in loop.pending if p.audit_id == redrives[-1].id] == [first_deadline]
    run(lab, loop, 30)
    verdicts = {e.ref: e.outcome for e in loop.audit.entries("verification")}
    assert "failed" not in verdicts.values()
    assert loop.stats.failed["redrive_queue"] == 0
    assert queue.poison_in_queue() == 0
    # Fresh for queue_scale_in_after since the last step: the count found came back.
    assert queue.main.redrive == ("receipts-dlq", 50) and queue.main.tags == {}


def test_the_loop_reads_each_queues_policy_and_says_what_it_could_not() -> None:
    lab = make_lab()
    reader = QueuePolicyReader(lab.cloud.sqs)
    found, problems = reader.read(["receipts", "nope"])
    assert found == {"receipts": QueuePolicy("receipts", 50, None, None)}
    assert len(problems) == 1 and "nope" in problems[0] and "NonExistentQueue" in problems[0]
    sqs = lab.cloud.sqs
    url = sqs.get_queue_url(QueueName="receipts")["QueueUrl"]
    sqs.tag_queue(QueueUrl=url, Tags={ORIGINAL_RECEIVES: "50", CHANGED_AT: NOW.isoformat()})
    found, _ = reader.read(["receipts"])
    assert found["receipts"] == QueuePolicy("receipts", 50, 50, NOW)
    sqs.tag_queue(QueueUrl=url, Tags={CHANGED_AT: "yesterday"})  # unreadable: never released
    assert reader.read(["receipts"])[0]["receipts"].changed_at is None
