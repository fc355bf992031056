"""Move an SQS queue's poison messages to its dead-letter queue, so the workers get unstuck.

A message that fails every time it is processed (a poison message) comes back after each
visibility timeout and takes a worker with it, until the queue's own redrive policy gives up on
it -- often many receives later. This action moves the messages already received more than
``max_receive_count`` times to the queue's dead-letter queue (named by its ``RedrivePolicy``;
a queue without one is refused, there would be nowhere safe to put them).

Never lose a message: each one is first sent to the dead-letter queue and deleted from the
source only after that send succeeded; a failed delete leaves a copy in both (SQS delivers at
least once anyway), never none. The queue is never purged. Messages looked at and kept are
made visible again at once. The number moved per action is bounded, and so is the number
looked at: every receive raises a message's receive count, which is also why a dry run only
reads the queue's attributes.

A poison message is in flight most of the time (a worker holds it until its processing
times out, then it hides for the visibility timeout), so one pass finds only those visible at
that moment. Redrives of one queue in a row are one heal (``continues``): each step moves what
has shown itself since the last, and the verdict is judged on the last.

The messages a pass cannot see are reached through the queue's own policy: with
``dead_letter_after`` the action also lowers the ``RedrivePolicy``'s ``maxReceiveCount``, so
that SQS moves every message received that often to the dead-letter queue at its next
receive, whoever receives it -- the poison in flight included, and the poison a bad release
goes on sending. Never below :data:`MIN_POLICY_RECEIVES`: one failure in a worker's crash or
a deploy makes no message poison. The count ooda found is kept in the queue's tag
(:data:`ORIGINAL_RECEIVES`, beside who changed it and when); a later action that asks for that
count again (``max_messages=0``: the policy alone) releases it and removes the tags.

Undo moves back exactly the messages this action moved, by their ids in the dead-letter queue,
in the same safe order, and sets the count back where this action found it, unless someone
changed it since. SQS's ``StartMessageMoveTask`` is not used: it moves the whole dead-letter
queue back, including what SQS dead-lettered by itself, which would undo more than ooda did.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actuators._base import Action, ActionResult, register_action
from actuators._context import ActionContext
from actuators._errors import (
    ActuatorError,
    ConflictError,
    GuardRejectedError,
    PermanentActuatorError,
    call_cloud,
    cloud_error,
)
from contracts import ActionKind, VerifyWindow

#: The most messages one action may move (ten receives of ten make a hundred; this is ten times).
MAX_MOVED = 1000
#: The lowest ``maxReceiveCount`` the action sets on a queue's redrive policy.
MIN_POLICY_RECEIVES = 3
#: The queue tag that keeps the ``maxReceiveCount`` ooda found, while ooda's count stands.
ORIGINAL_RECEIVES = "ooda.dev/original-max-receive-count"


@dataclass(frozen=True)
class _Queue:
    """A queue as read before acting on it."""

    url: str
    dlq_url: str
    depth: int
    policy: dict[str, Any]
    receives: int
    """Its policy's ``maxReceiveCount`` now."""
    tags: dict[str, str]

    @property
    def found_receives(self) -> int:
        """The ``maxReceiveCount`` before ooda lowered it (now's, where ooda did not)."""
        try:
            return int(self.tags[ORIGINAL_RECEIVES])
        except (KeyError, ValueError):
            return self.receives


@dataclass
class _Moves:
    """Messages moved from one queue to another in one pass."""

    moved: list[dict[str, Any]] = field(default_factory=list)
    copied_not_deleted: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    """Receipt handles of messages looked at and kept, to be made visible again."""


@register_action
@dataclass(frozen=True)
class RedriveQueue(Action):
    """Move the messages received more than ``max_receive_count`` times to the DLQ."""

    queue: str = ""
    """Name of the SQS queue."""
    max_receive_count: int = 5
    """A message consumers received more than this many times is poison (the receive made by
    this action itself is not counted)."""
    max_messages: int = 100
    """The most messages moved by one action."""
    max_scanned: int = 1000
    """The most messages looked at by one action."""
    visibility_timeout_s: int = 60
    """How long a message being looked at stays hidden from the workers (at most)."""
    dead_letter_after: int = 0
    """Above 0: set the queue's RedrivePolicy ``maxReceiveCount`` to this too, at least
    :data:`MIN_POLICY_RECEIVES` and at most the count ooda found (which releases it)."""

    kind = ActionKind.REDRIVE_QUEUE
    continues = True

    @property
    def target(self) -> str:
        return f"queue/{self.namespace}/{self.queue}"

    def _sqs(self, ctx: ActionContext) -> Any:
        if ctx.cloud.sqs is None:
            raise PermanentActuatorError("redrive_queue needs an SQS client, got None")
        return ctx.cloud.sqs

    def _read(self, ctx: ActionContext) -> _Queue:
        """The queue, its dead-letter queue and its policy; refused without a dead-letter queue."""
        sqs = self._sqs(ctx)
        url = call_cloud(
            lambda: sqs.get_queue_url(QueueName=self.queue)["QueueUrl"], f"find {self.queue}"
        )
        names = ["RedrivePolicy", "ApproximateNumberOfMessages"]
        attrs = call_cloud(
            lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names),
            f"read attributes of {self.queue}",
        ).get("Attributes", {})
        if not attrs.get("RedrivePolicy"):
            raise GuardRejectedError(
                self.kind,
                self.target,
                f"queue {self.queue} has no RedrivePolicy, so no dead-letter queue to keep"
                " its poison messages in",
            )
        try:
            policy = dict(json.loads(attrs["RedrivePolicy"]))
            arn = str(policy["deadLetterTargetArn"])
            _, _, _, _, account, dlq = arn.split(":")
            receives = int(policy["maxReceiveCount"])
        except (ValueError, KeyError, TypeError) as exc:
            raise PermanentActuatorError(
                f"queue {self.queue}: RedrivePolicy {attrs['RedrivePolicy']!r} names no"
                " dead-letter queue ARN and maxReceiveCount"
            ) from exc
        dlq_url = call_cloud(
            lambda: sqs.get_queue_url(QueueName=dlq, QueueOwnerAWSAccountId=account)["QueueUrl"],
            f"find dead-letter queue {arn}",
        )
        tags = call_cloud(
            lambda: sqs.list_queue_tags(QueueUrl=url), f"read tags of {self.queue}"
        ).get("Tags", {})
        depth = int(attrs.get("ApproximateNumberOfMessages", 0))
        return _Queue(url, dlq_url, depth, policy, receives, dict(tags))

    def _set_policy(self, ctx: ActionContext, queue: _Queue, receives: int) -> None:
        """Set the policy's ``maxReceiveCount``; tagged while it is not the one ooda found."""
        sqs, found = self._sqs(ctx), queue.found_receives
        if receives == found:
            call_cloud(
                lambda: sqs.untag_queue(
                    QueueUrl=queue.url, TagKeys=[ORIGINAL_RECEIVES, *ctx.annotations(self.kind)]
                ),
                f"untag {self.queue}",
            )
        else:  # the count ooda found is written down before it is changed
            tags = ctx.annotations(self.kind) | {ORIGINAL_RECEIVES: str(found)}
            call_cloud(lambda: sqs.tag_queue(QueueUrl=queue.url, Tags=tags), f"tag {self.queue}")
        if receives != queue.receives:
            policy = json.dumps(queue.policy | {"maxReceiveCount": receives})
            call_cloud(
                lambda: sqs.set_queue_attributes(
                    QueueUrl=queue.url, Attributes={"RedrivePolicy": policy}
                ),
                f"set the RedrivePolicy of {self.queue}",
            )

    def _move(
        self,
        ctx: ActionContext,
        source: str,
        dest: str,
        wanted: Callable[[dict[str, Any], int], bool],
        limit: int,
    ) -> _Moves:
        """Move up to ``limit`` messages ``wanted(message, receives)`` picks from ``source`` to
        ``dest``: send, and delete only once the send succeeded."""
        sqs, moves = self._sqs(ctx), _Moves()
        scanned = 0
        try:
            while len(moves.moved) + len(moves.copied_not_deleted) < limit:
                if scanned >= self.max_scanned or moves.errors:
                    break
                try:
                    batch = call_cloud(
                        lambda: sqs.receive_message(
                            QueueUrl=source,
                            MaxNumberOfMessages=10,
                            VisibilityTimeout=self.visibility_timeout_s,
                            WaitTimeSeconds=0,
                            MessageSystemAttributeNames=["All"],
                            MessageAttributeNames=["All"],
                        ),
                        f"receive from {source}",
                    ).get("Messages", [])
                except ActuatorError as exc:
                    if not (moves.moved or moves.copied_not_deleted):
                        raise
                    moves.errors.append(str(exc))  # what was moved is reported, and undoable
                    break
                if not batch:
                    break
                scanned += len(batch)
                for message in batch:
                    self._one(sqs, source, dest, message, wanted, limit, moves)
        finally:
            for handle in moves.held:  # back to the workers now, not after the timeout
                with contextlib.suppress(Exception):  # else it reappears after the timeout
                    sqs.change_message_visibility(
                        QueueUrl=source, ReceiptHandle=handle, VisibilityTimeout=0
                    )
        return moves

    @staticmethod
    def _one(
        sqs: Any,
        source: str,
        dest: str,
        message: dict[str, Any],
        wanted: Callable[[dict[str, Any], int], bool],
        limit: int,
        moves: _Moves,
    ) -> None:
        handle = message["ReceiptHandle"]
        receives = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1")) - 1
        full = len(moves.moved) + len(moves.copied_not_deleted) >= limit
        if full or moves.errors or not wanted(message, receives):
            moves.held.append(handle)
            return
        send: dict[str, Any] = {"QueueUrl": dest, "MessageBody": message["Body"]}
        if message.get("MessageAttributes"):
            send["MessageAttributes"] = message["MessageAttributes"]
        if dest.endswith(".fifo"):
            send["MessageGroupId"] = message["Attributes"]["MessageGroupId"]
            send["MessageDeduplicationId"] = message["MessageId"]
        record = {"message_id": message["MessageId"], "receives": receives}
        try:
            record["new_message_id"] = sqs.send_message(**send)["MessageId"]
        except Exception as exc:  # the message stays where it is
            moves.held.append(handle)
            moves.errors.append(str(cloud_error(exc, f"send {message['MessageId']} to {dest}")))
            return
        try:
            sqs.delete_message(QueueUrl=source, ReceiptHandle=handle)
        except Exception as exc:  # a copy in both queues, never in none
            moves.held.append(handle)
            moves.copied_not_deleted.append(record)
            moves.errors.append(str(cloud_error(exc, f"delete {message['MessageId']}")))
            return
        moves.moved.append(record)

    def apply(self, ctx: ActionContext) -> ActionResult:
        if self.max_receive_count < 0:
            raise PermanentActuatorError(
                f"max_receive_count must be >= 0, got {self.max_receive_count}"
            )
        lowest = 0 if self.dead_letter_after else 1
        if not lowest <= self.max_messages <= MAX_MOVED:
            raise PermanentActuatorError(
                f"max_messages must be within {lowest}..{MAX_MOVED}, got {self.max_messages}"
            )
        queue = self._read(ctx)
        floor = min(MIN_POLICY_RECEIVES, queue.found_receives)  # setting it back is no lowering
        if self.dead_letter_after and self.dead_letter_after < floor:
            raise GuardRejectedError(
                self.kind,
                self.target,
                f"maxReceiveCount {self.dead_letter_after} is below the floor of"
                f" {MIN_POLICY_RECEIVES}: a message failed that few times is not poison",
            )
        if self.dead_letter_after > queue.found_receives:
            raise PermanentActuatorError(
                f"maxReceiveCount {self.dead_letter_after} is above the"
                f" {queue.found_receives} the queue had: ooda only lowers it, or sets it back"
            )
        before = {
            "queue_url": queue.url,
            "dead_letter_queue_url": queue.dlq_url,
            "depth": queue.depth,
            "receives_above": self.max_receive_count,
            "policy_max_receive_count": queue.receives,
            "found_max_receive_count": queue.found_receives,
        }
        if ctx.dry_run:
            plan = {"would_move_at_most": self.max_messages, "would_scan_at_most": self.max_scanned}
            if self.dead_letter_after:
                plan["would_set_max_receive_count"] = self.dead_letter_after
            return ActionResult(self.kind, self.target, True, before, plan, undoable=False)
        moves = _Moves()
        if self.max_messages:
            moves = self._move(
                ctx,
                queue.url,
                queue.dlq_url,
                lambda _m, n: n > self.max_receive_count,
                self.max_messages,
            )
        receives = queue.receives
        if self.dead_letter_after:
            self._set_policy(ctx, queue, self.dead_letter_after)
            receives = self.dead_letter_after
        after = {
            "moved": moves.moved,
            "copied_not_deleted": moves.copied_not_deleted,
            "errors": moves.errors,
            "policy_max_receive_count": receives,
        }
        lowered = receives < queue.receives
        return ActionResult(
            self.kind, self.target, False, before, after, bool(moves.moved) or lowered
        )

    def healthy(self, result: ActionResult, window: VerifyWindow) -> str | None:
        errors = result.after.get("errors") or []
        return f"{len(errors)} message(s) not moved cleanly: {errors[0]}" if errors else None

    def undo(self, ctx: ActionContext, result: ActionResult) -> ActionResult | None:
        """Move the messages this action moved back from the dead-letter queue, and set the
        policy's count back to the one this action found.

        Raises :class:`ConflictError` when none of the messages is there any more (someone
        redrove or consumed them since) and there is no policy to set back; the ones that are
        gone are listed as ``missing`` otherwise. A message whose delete failed
        (``copied_not_deleted``) is still in the source queue: its copy stays in the
        dead-letter queue rather than becoming a second one there. A count that changed since
        (someone's, or a later step's) stays.
        """
        if result.dry_run or not result.undoable:
            return None
        ours = {m["new_message_id"]: m for m in result.after["moved"]}
        url, dlq_url = str(result.before["queue_url"]), str(result.before["dead_letter_queue_url"])
        moves = _Moves()
        if ours:
            moves = self._move(ctx, dlq_url, url, lambda m, _n: m["MessageId"] in ours, len(ours))
        back = {m["message_id"] for m in [*moves.moved, *moves.copied_not_deleted]}
        missing = sorted(set(ours) - back)
        policy = self._restore(ctx, result)
        if ours and not back and not moves.errors and policy is None:
            raise ConflictError(
                f"none of the {len(ours)} messages ooda moved to {dlq_url} is there any more;"
                " someone else redrove or consumed them"
            )
        after = {
            "moved_back": moves.moved,
            "copied_not_deleted": moves.copied_not_deleted,
            "missing": missing,
            "errors": moves.errors,
            "policy_max_receive_count": policy,
        }
        return self.undone(result, after)

    def _restore(self, ctx: ActionContext, result: ActionResult) -> int | None:
        """The count set back where this action lowered it, unless it changed since."""
        was = int(result.before["policy_max_receive_count"])
        set_to = int(result.after["policy_max_receive_count"])
        if set_to >= was:
            return None
        queue = self._read(ctx)
        if queue.receives != set_to:
            return None
        self._set_policy(ctx, queue, was)
        return was
