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

Undo moves back exactly the messages this action moved, by their ids in the dead-letter queue,
in the same safe order. SQS's ``StartMessageMoveTask`` is not used: it moves the whole
dead-letter queue back, including what SQS dead-lettered by itself, which would undo more than
ooda did.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from actuators._base import Action, ActionResult, register_action
from actuators._context import ActionContext
from actuators._errors import (
    ActuatorError,
    ConflictError,
    GuardRejectedError,
    PermanentActuatorError,
    TemporaryActuatorError,
)
from contracts import ActionKind, VerifyWindow

T = TypeVar("T")
#: The most messages one action may move (ten receives of ten make a hundred; this is ten times).
MAX_MOVED = 1000
#: AWS error codes worth another try (boto3 has retried them already by then).
_TEMPORARY_CODES = frozenset(
    {"Throttling", "ThrottlingException", "RequestThrottled", "ServiceUnavailable", "InternalError"}
)


def cloud_error(exc: Exception, what: str) -> ActuatorError:
    """A boto3 (botocore) exception as a temporary or permanent actuator error."""
    response = getattr(exc, "response", None) or {}
    code = str((response.get("Error") or {}).get("Code", ""))
    message = f"{what}: {type(exc).__name__}: {exc}"
    if code in _TEMPORARY_CODES or isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return TemporaryActuatorError(message)
    return PermanentActuatorError(message)


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

    kind = ActionKind.REDRIVE_QUEUE
    continues = True

    @property
    def target(self) -> str:
        return f"queue/{self.namespace}/{self.queue}"

    def _sqs(self, ctx: ActionContext) -> Any:
        if ctx.cloud.sqs is None:
            raise PermanentActuatorError("redrive_queue needs an SQS client, got None")
        return ctx.cloud.sqs

    @staticmethod
    def _call(fn: Callable[[], T], what: str) -> T:
        try:
            return fn()
        except Exception as exc:  # classified right here
            raise cloud_error(exc, what) from exc

    def _urls(self, ctx: ActionContext) -> tuple[str, str, int]:
        """The queue's URL, its dead-letter queue's URL and its depth; refused without DLQ."""
        sqs = self._sqs(ctx)
        url = self._call(
            lambda: sqs.get_queue_url(QueueName=self.queue)["QueueUrl"], f"find {self.queue}"
        )
        names = ["RedrivePolicy", "ApproximateNumberOfMessages"]
        attrs = self._call(
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
            arn = str(json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"])
            _, _, _, _, account, dlq = arn.split(":")
        except (ValueError, KeyError, TypeError) as exc:
            raise PermanentActuatorError(
                f"queue {self.queue}: RedrivePolicy {attrs['RedrivePolicy']!r} names no"
                " dead-letter queue ARN"
            ) from exc
        dlq_url = self._call(
            lambda: sqs.get_queue_url(QueueName=dlq, QueueOwnerAWSAccountId=account)["QueueUrl"],
            f"find dead-letter queue {arn}",
        )
        return url, dlq_url, int(attrs.get("ApproximateNumberOfMessages", 0))

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
                    batch = self._call(
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
        if not 1 <= self.max_messages <= MAX_MOVED:
            raise PermanentActuatorError(
                f"max_messages must be within 1..{MAX_MOVED}, got {self.max_messages}"
            )
        url, dlq_url, depth = self._urls(ctx)
        before = {
            "queue_url": url,
            "dead_letter_queue_url": dlq_url,
            "depth": depth,
            "receives_above": self.max_receive_count,
        }
        if ctx.dry_run:
            plan = {"would_move_at_most": self.max_messages, "would_scan_at_most": self.max_scanned}
            return ActionResult(self.kind, self.target, True, before, plan, undoable=False)
        moves = self._move(
            ctx, url, dlq_url, lambda _m, n: n > self.max_receive_count, self.max_messages
        )
        after = {
            "moved": moves.moved,
            "copied_not_deleted": moves.copied_not_deleted,
            "errors": moves.errors,
        }
        return ActionResult(self.kind, self.target, False, before, after, bool(moves.moved))

    def healthy(self, result: ActionResult, window: VerifyWindow) -> str | None:
        errors = result.after.get("errors") or []
        return f"{len(errors)} message(s) not moved cleanly: {errors[0]}" if errors else None

    def undo(self, ctx: ActionContext, result: ActionResult) -> ActionResult | None:
        """Move the messages this action moved back from the dead-letter queue.

        Raises :class:`ConflictError` when none of them is there any more (someone redrove or
        consumed them since); the ones that are gone are listed as ``missing`` otherwise. A
        message whose delete failed (``copied_not_deleted``) is still in the source queue:
        its copy stays in the dead-letter queue rather than becoming a second one there.
        """
        if result.dry_run or not result.undoable:
            return None
        ours = {m["new_message_id"]: m for m in result.after["moved"]}
        url, dlq_url = str(result.before["queue_url"]), str(result.before["dead_letter_queue_url"])
        moves = self._move(ctx, dlq_url, url, lambda m, _n: m["MessageId"] in ours, len(ours))
        back = {m["message_id"] for m in [*moves.moved, *moves.copied_not_deleted]}
        missing = sorted(set(ours) - back)
        if not back and not moves.errors:
            raise ConflictError(
                f"none of the {len(ours)} messages ooda moved to {dlq_url} is there any more;"
                " someone else redrove or consumed them"
            )
        after = {
            "moved_back": moves.moved,
            "copied_not_deleted": moves.copied_not_deleted,
            "missing": missing,
            "errors": moves.errors,
        }
        return self.undone(result, after)
