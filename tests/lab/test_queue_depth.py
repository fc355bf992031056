"""The lab's SQS queue: messages are conserved (through SQS's own dead-lettering, a redrive and
its undo), poison holds the workers up, the fake SQS answers as boto3 does and RedriveQueue
runs on it unchanged, a lowered redrive policy dead-letters the poison in flight; and the
``queue_depth`` scenario keeps the scenario contract."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from actuators import ActionContext, KubeClients, RedriveQueue
from contracts import MetricFamily, ScenarioId, SimClock
from lab import Lab, LabSettings, ScenarioInstance
from lab._queue import Queue, is_poison
from lab.scenarios import check_scenario, scenario

START = datetime(2025, 1, 8, 11, 50, tzinfo=UTC)


def warm_lab(seed: int = 3) -> tuple[Lab, Queue]:
    lab = Lab(LabSettings(seed=seed), SimClock(START))
    lab.step(timedelta(minutes=5))
    queue = lab.dependency("receipts")
    assert isinstance(queue, Queue)
    return lab, queue


def conserved(queue: Queue) -> None:
    book = queue.ledger()
    assert book["produced"] + book["api_sent"] == (
        book["processed"] + book["api_deleted"] + book["in_queue"] + book["in_dead_letter_queue"]
    ), book


def _poison(lab: Lab, count: int) -> None:
    lab.inject(
        ScenarioInstance(
            ScenarioId.QUEUE_DEPTH,
            "checkout",
            float(count),
            None,
            {"queue": "receipts", "kind": "poison_batch"},
        )
    )


def test_a_healthy_queue_is_drained_and_exported() -> None:
    lab, queue = warm_lab()
    lab.step(timedelta(minutes=10))
    conserved(queue)
    assert queue.produced > 10_000 and queue.main.total() < 0.01 * queue.produced
    frame = lab.source.query_family(
        MetricFamily.QUEUE, START, lab.clock.now(), timedelta(minutes=1)
    )
    assert set(frame["queue_name"]) == {"receipts"}  # the dead-letter queue is nobody's work
    last = frame.iloc[-1]
    assert last["aws_sqs_approximate_age_of_oldest_message_average"] < 30
    assert last["aws_sqs_number_of_messages_sent_rate"] == pytest.approx(
        last["aws_sqs_number_of_messages_deleted_rate"], rel=0.05
    )


def test_poison_holds_the_workers_and_sqs_dead_letters_it_in_the_end() -> None:
    lab, queue = warm_lab()
    control = copy.deepcopy(lab)
    before = queue.processed
    _poison(lab, 300)
    for estate in (lab, control):
        estate.step(timedelta(minutes=10))
    other = control.dependency("receipts")
    assert isinstance(other, Queue)
    assert queue.processed - before < 0.5 * (other.processed - before)
    assert queue.main.total() > 10 * other.main.total() + 1000
    assert (
        queue.main.oldest_age(lab.clock.now().timestamp()) > 120
    )  # freshness broken, no request failed
    conserved(queue)
    lab.step(timedelta(minutes=40))  # 50 receives, 30 s apart: SQS gives up on them
    assert queue.poison_in_queue() == 0 and queue.dead_lettered == 300
    assert all(is_poison(m.body) for m in queue.dlq.records.values())
    conserved(queue)


def test_redrive_moves_the_poison_and_its_undo_brings_it_back_none_lost() -> None:
    lab, queue = warm_lab()
    _poison(lab, 300)
    lab.step(timedelta(minutes=3))
    ctx = ActionContext(KubeClients(None, None, None), cloud=lab.cloud, now=lab.clock.now)
    action = RedriveQueue(
        "shop",
        "checkout",
        queue="receipts",
        max_receive_count=3,
        max_messages=500,
        max_scanned=1000,
    )
    result = action.apply(ctx)
    moved = len(result.after["moved"])
    assert moved > 100 and result.after["errors"] == [] and result.undoable
    assert queue.dlq.total() == moved and queue.dead_lettered == 0
    assert all(is_poison(m.body) for m in queue.dlq.records.values())
    assert all(m["receives"] > 3 for m in result.after["moved"])
    conserved(queue)
    lab.step(timedelta(minutes=1))
    conserved(queue)
    undone = action.undo(ctx, result)
    assert undone is not None and len(undone.after["moved_back"]) == moved
    assert queue.dlq.total() == 0 and queue.poison_in_queue() == 300
    conserved(queue)
    lab.step(timedelta(minutes=2))
    conserved(queue)


def test_the_fake_sqs_answers_like_boto3() -> None:
    lab, _ = warm_lab()
    sqs = lab.cloud.sqs
    with pytest.raises(ClientError) as missing:
        sqs.get_queue_url(QueueName="nope")
    assert missing.value.response["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
    url = sqs.get_queue_url(QueueName="receipts")["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (
        '"maxReceiveCount": 50' in attrs["RedrivePolicy"]
        and "receipts-dlq" in attrs["RedrivePolicy"]
    )
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)
    assert got == {} or len(got["Messages"]) == 1
    sent = sqs.send_message(QueueUrl=url, MessageBody="hello")
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60)
        mine = [m for m in batch.get("Messages", []) if m["MessageId"] == sent["MessageId"]]
        if mine or not batch:
            break
    assert mine and mine[0]["Attributes"]["ApproximateReceiveCount"] == "1"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=mine[0]["ReceiptHandle"])
    with pytest.raises(ClientError) as stale:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=mine[0]["ReceiptHandle"])
    assert stale.value.response["Error"]["Code"] == "ReceiptHandleIsInvalid"


def test_a_lowered_policy_dead_letters_the_poison_in_flight_and_goes_back() -> None:
    """A pass sees only the poison visible at that moment; SQS's own policy reaches the rest
    at their next receive, none lost, and the count found comes back with the release."""
    lab, queue = warm_lab()
    _poison(lab, 300)
    lab.step(timedelta(minutes=3))
    ctx = ActionContext(KubeClients(None, None, None), cloud=lab.cloud, now=lab.clock.now)
    result = RedriveQueue(
        "shop", "checkout", queue="receipts", max_messages=1, dead_letter_after=5
    ).apply(ctx)
    assert len(result.after["moved"]) == 1 and queue.main.redrive == ("receipts-dlq", 5)
    lab.step(timedelta(minutes=2))
    assert queue.poison_in_queue() == 0 and queue.dead_lettered == 299
    conserved(queue)
    sqs = lab.cloud.sqs
    url = sqs.get_queue_url(QueueName="receipts")["QueueUrl"]
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"]["ooda.dev/original-max-receive-count"] == "50"
    RedriveQueue("shop", "checkout", queue="receipts", max_messages=0, dead_letter_after=50).apply(
        ctx
    )
    assert queue.main.redrive == ("receipts-dlq", 50) and sqs.list_queue_tags(QueueUrl=url) == {}
    with pytest.raises(ClientError) as bad:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": "{}"})
    assert bad.value.response["Error"]["Code"] == "InvalidParameterValue"


@pytest.mark.parametrize("seed", [1, 2], ids=["poison", "backlog"])
def test_the_scenario_keeps_the_contract(seed: int) -> None:
    record = check_scenario(scenario(ScenarioId.QUEUE_DEPTH), seed=seed)
    assert record.root_cause == "receipts" and record.felt_by == ("checkout",)
