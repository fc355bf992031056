"""RedriveQueue against SQS -- moto in-process, and moto's server over HTTP as any
SQS-compatible endpoint: poison messages go to the dead-letter queue and only there, none is
ever lost (a failed delete leaves a copy in both, a failed send leaves the message where it
was), the number moved is bounded, and undo brings back exactly ours; the queue's own
``maxReceiveCount`` is lowered (never below the floor, never above the count found), SQS then
dead-letters what no pass saw, and it goes back by undo or by a release."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from actuators import (
    ORIGINAL_RECEIVES,
    ActionContext,
    CloudClients,
    ConflictError,
    GuardRejectedError,
    KubeClients,
    PermanentActuatorError,
    RedriveQueue,
    TemporaryActuatorError,
    spy_on_cloud,
)

NS = "shop"
POLICY_RECEIVES = 50
"""The queue's own redrive policy: far above the action's bound, so SQS never moves first."""


@pytest.fixture(params=["in-process", "server"])
def sqs(request: pytest.FixtureRequest) -> Iterator[Any]:
    """moto in-process, and moto's server spoken to over HTTP (an SQS-compatible endpoint)."""
    if request.param == "in-process":
        with mock_aws():
            yield boto3.client("sqs", region_name="eu-west-1")
        return
    server = request.getfixturevalue("sqs_server")
    server.reset()
    yield server.client()


def _queues(sqs: Any, name: str = "orders", fifo: bool = False) -> tuple[str, str]:
    suffix, extra = (".fifo", {"FifoQueue": "true"}) if fifo else ("", {})
    dlq = sqs.create_queue(QueueName=f"{name}-dlq{suffix}", Attributes=extra)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]
    policy = {"deadLetterTargetArn": arn["QueueArn"], "maxReceiveCount": str(POLICY_RECEIVES)}
    url = sqs.create_queue(
        QueueName=f"{name}{suffix}", Attributes={**extra, "RedrivePolicy": json.dumps(policy)}
    )["QueueUrl"]
    return url, dlq


def _send(sqs: Any, url: str, body: str, receives: int = 0, **extra: Any) -> None:
    """A message the workers have already received (and failed on) ``receives`` times; the
    messages sent before it are received as many times again."""
    sqs.send_message(QueueUrl=url, MessageBody=body, **extra)
    for _ in range(receives):
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        assert any(m["Body"] == body for m in got.get("Messages", []))


def _bodies(sqs: Any, url: str) -> list[str]:
    """Every message body in the queue (each is received once more)."""
    bodies: list[str] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60)
        if not got.get("Messages"):
            return sorted(bodies)
        bodies += [m["Body"] for m in got["Messages"]]


def _ctx(sqs: Any) -> ActionContext:
    return ActionContext(KubeClients(None, None, None), cloud=CloudClients(sqs=sqs))


def _receives(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def test_poison_moves_to_the_dead_letter_queue_and_the_rest_stays(sqs: Any) -> None:
    url, dlq = _queues(sqs)
    _send(sqs, url, "poison-1", receives=4)
    _send(sqs, url, "poison-2", receives=3)
    _send(sqs, url, "fine-1", receives=1)
    _send(sqs, url, "fresh")
    action = RedriveQueue(NS, "worker", "queue depth", queue="orders", max_receive_count=2)
    result = action.apply(_ctx(sqs))
    assert sorted(m["receives"] for m in result.after["moved"]) == [4, 3 + 4 + 1]
    assert result.after["errors"] == [] and result.undoable
    assert result.target == "queue/shop/orders" and result.before["dead_letter_queue_url"] == dlq
    # The messages kept were made visible again at once, not after the visibility timeout.
    assert _bodies(sqs, url) == ["fine-1", "fresh"]
    assert _bodies(sqs, dlq) == ["poison-1", "poison-2"]


def test_the_number_moved_is_bounded(sqs: Any) -> None:
    url, dlq = _queues(sqs)
    for i in range(5):
        _send(sqs, url, f"poison-{i}", receives=3)
    result = RedriveQueue(NS, "worker", queue="orders", max_receive_count=1, max_messages=2).apply(
        _ctx(sqs)
    )
    assert len(result.after["moved"]) == 2
    assert len(_bodies(sqs, dlq)) == 2 and len(_bodies(sqs, url)) == 3


def test_a_queue_without_a_redrive_policy_is_refused_untouched(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="orders")["QueueUrl"]
    _send(sqs, url, "poison", receives=4)
    cloud, spies = spy_on_cloud(CloudClients(sqs=sqs))
    action = RedriveQueue(NS, "worker", queue="orders", max_receive_count=1)
    with pytest.raises(GuardRejectedError, match="orders has no RedrivePolicy"):
        action.apply(ActionContext(KubeClients(None, None, None), cloud=cloud))
    assert [m for spy in spies for m in spy.mutations] == []
    assert _bodies(sqs, url) == ["poison"]


class _Failing:
    """The SQS client, but ``fail`` (a method name) raises a server error after ``after``
    calls that went through."""

    def __init__(self, sqs: Any, fail: str, after: int = 0) -> None:
        self._sqs, self._fail, self._after = sqs, fail, after

    def __getattr__(self, name: str) -> Any:
        if name == self._fail and self._after > 0:
            self._after -= 1
        elif name == self._fail:

            def boom(**_: Any) -> Any:
                error = {"Error": {"Code": "InternalError", "Message": "try again"}}
                raise ClientError(error, name)

            return boom
        return getattr(self._sqs, name)


def test_no_message_is_lost_when_the_delete_fails_after_the_send(sqs: Any) -> None:
    """The copy stays in the dead-letter queue and the original in the queue: never in none."""
    url, dlq = _queues(sqs)
    _send(sqs, url, "poison", receives=4)
    action = RedriveQueue(NS, "worker", queue="orders", max_receive_count=1)
    result = action.apply(_ctx(_Failing(sqs, "delete_message")))
    assert result.after["moved"] == [] and len(result.after["copied_not_deleted"]) == 1
    assert "InternalError" in result.after["errors"][0] and not result.undoable
    assert _bodies(sqs, url) == ["poison"] and _bodies(sqs, dlq) == ["poison"]


def test_a_failed_send_leaves_the_message_in_its_queue(sqs: Any) -> None:
    url, dlq = _queues(sqs)
    _send(sqs, url, "poison", receives=4)
    result = RedriveQueue(NS, "worker", queue="orders", max_receive_count=1).apply(
        _ctx(_Failing(sqs, "send_message"))
    )
    assert result.after["moved"] == [] and result.after["errors"]
    assert _bodies(sqs, url) == ["poison"] and _bodies(sqs, dlq) == []


def test_a_receive_that_fails_midway_reports_what_was_moved(sqs: Any) -> None:
    url, dlq = _queues(sqs)
    for i in range(12):  # two batches of receives
        _send(sqs, url, f"poison-{i:02d}")
    handles: list[str] = []  # every one received once (and failed on)
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        handles += [m["ReceiptHandle"] for m in got]
    for handle in handles:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)
    action = RedriveQueue(NS, "worker", queue="orders", max_receive_count=0)
    ctx = _ctx(_Failing(sqs, "receive_message", after=1))
    with pytest.raises(TemporaryActuatorError, match="InternalError"):
        action.apply(_ctx(_Failing(sqs, "receive_message")))
    result = action.apply(ctx)
    assert len(result.after["moved"]) == 10 and "InternalError" in result.after["errors"][0]
    assert result.undoable and len(_bodies(sqs, dlq)) == 10 and len(_bodies(sqs, url)) == 2


def test_undo_brings_back_only_the_messages_it_moved(sqs: Any) -> None:
    url, dlq = _queues(sqs)
    sqs.send_message(QueueUrl=dlq, MessageBody="dead-lettered-by-sqs")
    _send(sqs, url, "poison", receives=3)
    action = RedriveQueue(NS, "worker", queue="orders", max_receive_count=1)
    result = action.apply(_ctx(sqs))
    undone = action.undo(_ctx(sqs), result)
    assert undone is not None and len(undone.after["moved_back"]) == 1
    assert undone.after["missing"] == []
    assert _bodies(sqs, url) == ["poison"] and _bodies(sqs, dlq) == ["dead-lettered-by-sqs"]


def test_undo_refuses_when_the_moved_messages_are_gone(sqs: Any) -> None:
    url, dlq = _queues(sqs)
    _send(sqs, url, "poison", receives=3)
    action = RedriveQueue(NS, "worker", queue="orders", max_receive_count=1)
    result = action.apply(_ctx(sqs))
    sqs.purge_queue(QueueUrl=dlq)  # someone else dealt with them
    with pytest.raises(ConflictError, match="none of the 1 messages"):
        action.undo(_ctx(sqs), result)


def test_a_dry_run_does_not_even_receive(sqs: Any) -> None:
    """A receive raises the receive count: the preview reads the queue's attributes only."""
    url, _ = _queues(sqs)
    _send(sqs, url, "poison", receives=1)
    cloud, spies = spy_on_cloud(CloudClients(sqs=sqs))
    ctx = ActionContext(KubeClients(None, None, None), dry_run=True, cloud=cloud)
    result = RedriveQueue(NS, "worker", queue="orders", max_receive_count=0).apply(ctx)
    assert result.after == {"would_move_at_most": 100, "would_scan_at_most": 1000}
    assert spies[0].calls == [
        "get_queue_url",
        "get_queue_attributes",
        "get_queue_url",
        "list_queue_tags",
    ]


def test_fifo_messages_keep_their_group(sqs: Any) -> None:
    url, dlq = _queues(sqs, fifo=True)
    _send(sqs, url, "poison", receives=3, MessageGroupId="order-7", MessageDeduplicationId="d1")
    RedriveQueue(NS, "worker", queue="orders.fifo", max_receive_count=1).apply(_ctx(sqs))
    got = sqs.receive_message(QueueUrl=dlq, MessageSystemAttributeNames=["All"])["Messages"]
    assert [(m["Body"], m["Attributes"]["MessageGroupId"]) for m in got] == [("poison", "order-7")]


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"max_messages": 0}, "within 1..1000, got 0"),
        ({"max_messages": 5000}, "within 1..1000, got 5000"),
        ({"max_receive_count": -1}, "got -1"),
    ],
    ids=["none", "too-many", "negative-bound"],
)
def test_bad_bounds_are_refused(sqs: Any, fields: dict[str, Any], match: str) -> None:
    url, _ = _queues(sqs)
    _send(sqs, url, "poison", receives=3)
    with pytest.raises(PermanentActuatorError, match=match):
        RedriveQueue(NS, "worker", queue="orders", **fields).apply(_ctx(sqs))
    assert _receives(sqs, url) == 1 and _bodies(sqs, url) == ["poison"]


def test_without_an_sqs_client_it_says_so() -> None:
    ctx = ActionContext(KubeClients(None, None, None))
    with pytest.raises(PermanentActuatorError, match="needs an SQS client"):
        RedriveQueue(NS, "worker", queue="orders").apply(ctx)


def _policy_count(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
    return int(json.loads(attrs["Attributes"]["RedrivePolicy"])["maxReceiveCount"])


def _tags(sqs: Any, url: str) -> dict[str, str]:
    return dict(sqs.list_queue_tags(QueueUrl=url).get("Tags", {}))


def test_a_lowered_policy_dead_letters_what_no_pass_saw_and_the_release_restores_it(
    sqs: Any,
) -> None:
    """The poison a worker holds is invisible to a pass; with the count lowered, SQS moves it
    at its next receive. The count found is kept in a tag until a release sets it back."""
    url, dlq = _queues(sqs)
    _send(sqs, url, "poison", receives=6)
    held = sqs.receive_message(QueueUrl=url, VisibilityTimeout=30)["Messages"]  # a worker
    assert [m["Body"] for m in held] == ["poison"]
    action = RedriveQueue(NS, "worker", queue="orders", max_receive_count=3, dead_letter_after=5)
    result = action.apply(_ctx(sqs))
    assert result.after["moved"] == [] and result.undoable  # the poison was in flight
    assert result.before["policy_max_receive_count"] == POLICY_RECEIVES
    assert _policy_count(sqs, url) == 5
    assert _tags(sqs, url)[ORIGINAL_RECEIVES] == str(POLICY_RECEIVES)
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=held[0]["ReceiptHandle"], VisibilityTimeout=0
    )
    assert _bodies(sqs, url) == [] and _bodies(sqs, dlq) == ["poison"]  # SQS moved it
    again = RedriveQueue(NS, "worker", queue="orders", dead_letter_after=4).apply(_ctx(sqs))
    assert again.after["policy_max_receive_count"] == 4
    assert _tags(sqs, url)[ORIGINAL_RECEIVES] == str(POLICY_RECEIVES)  # the first count found
    release = RedriveQueue(
        NS, "worker", queue="orders", max_messages=0, dead_letter_after=POLICY_RECEIVES
    ).apply(_ctx(sqs))
    assert release.after["moved"] == [] and not release.undoable
    assert _policy_count(sqs, url) == POLICY_RECEIVES
    assert ORIGINAL_RECEIVES not in _tags(sqs, url) and "ooda.dev/changed-by" not in _tags(sqs, url)


def test_undo_sets_the_count_back_unless_it_changed_since(sqs: Any) -> None:
    url, _ = _queues(sqs)
    action = RedriveQueue(NS, "worker", queue="orders", dead_letter_after=5)
    result = action.apply(_ctx(sqs))
    undone = action.undo(_ctx(sqs), result)
    assert undone is not None and undone.after["policy_max_receive_count"] == POLICY_RECEIVES
    assert _policy_count(sqs, url) == POLICY_RECEIVES and _tags(sqs, url) == {}
    result = action.apply(_ctx(sqs))
    policy = json.loads(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"][
            "RedrivePolicy"
        ]
    )
    policy["maxReceiveCount"] = 8  # someone's own count since
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": json.dumps(policy)})
    undone = action.undo(_ctx(sqs), result)
    assert undone is not None and undone.after["policy_max_receive_count"] is None
    assert _policy_count(sqs, url) == 8


@pytest.mark.parametrize(
    ("count", "error", "match"),
    [
        (2, GuardRejectedError, "below the floor of 3"),
        (60, PermanentActuatorError, "above the 50 the queue had"),
    ],
    ids=["below-the-floor", "above-the-count-found"],
)
def test_a_count_it_cannot_bound_is_refused_untouched(
    sqs: Any, count: int, error: type[Exception], match: str
) -> None:
    url, _ = _queues(sqs)
    cloud, spies = spy_on_cloud(CloudClients(sqs=sqs))
    action = RedriveQueue(NS, "worker", queue="orders", dead_letter_after=count)
    with pytest.raises(error, match=match):
        action.apply(ActionContext(KubeClients(None, None, None), cloud=cloud))
    assert [m for spy in spies for m in spy.mutations] == []
    assert _policy_count(sqs, url) == POLICY_RECEIVES and _tags(sqs, url) == {}
