"""An SQS queue with its dead-letter queue: producers fill it, the worker pods drain it, and a
fake SQS API over the same messages lets ooda's actions work on it as on AWS.

Ordinary messages are many (tens a second), so they are kept as FIFO cohorts (a count and the
time they were sent); a message someone received through the API, and every poison message
(one no worker can process), is kept one by one: id, body, receive count, when it is visible
again. Each Ready pod of the worker service runs ``worker_threads`` threads that together
process ``worker_rate`` ordinary messages a second. A poison message is received first (it is
the oldest) and holds a thread for ``poison_timeout_s`` until the worker gives up; it comes
back after the visibility timeout with its receive count one higher, and SQS moves it to the
dead-letter queue by itself once received ``max_receive_count`` times. Enough of them keep
every thread busy and the ordinary messages wait: the queue's freshness breaks although no
request fails. Worker time is I/O, not CPU, so the CPU-driven HPA does not see it.

Workers poll at the start of each 15 s sub-step: a message visible again during a sub-step is
received at the next one (a poll cycle), so at any moment some poison messages are visible and
an operator's tool (``RedriveQueue``) can receive them too.

The age of the oldest message is CloudWatch's: messages received three times or more are
left out of it (AWS moves them to the back for that metric). The dead-letter queue is nobody's
work and exports no series here: its messages are old by nature and would count against the
worker service's freshness.

Messages are never created or lost by the model: every one sent is processed, in the queue
(visible or in flight), or in the dead-letter queue; :meth:`Queue.ledger` says so.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import deque
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from botocore.exceptions import ClientError

from contracts import MetricFamily
from lab._dependencies import Dependency, Sample

if TYPE_CHECKING:
    from lab._estate import Lab
    from lab._settings import QueueSettings

#: The account id of the lab's queues (in their URLs and ARNs).
ACCOUNT = "000000000000"
#: CloudWatch leaves messages received this often out of the age of the oldest message.
AGE_RECEIVES = 3
#: The marker in a poison message's body (an amount no worker can parse).
POISON_MARK = '"amount": "NaN"'


def is_poison(body: str) -> bool:
    """Whether a worker fails on ``body`` (the lab's poison messages carry a NaN amount)."""
    return POISON_MARK in body


@dataclass
class Message:
    """One message kept by itself."""

    id: str
    body: str
    sent: float
    """Epoch second it was sent (to this queue)."""
    receives: int = 0
    visible_at: float = 0.0
    """Epoch second from which it can be received (again)."""
    receipt: str = ""
    """The receipt handle of its newest receive ("" if never received)."""
    attributes: dict[str, Any] | None = None
    """Its ``MessageAttributes``, as sent."""


class SqsQueue:
    """One queue's messages and its CloudWatch counters."""

    def __init__(
        self, name: str, region: str, visibility_s: float, redrive: tuple[str, int] | None
    ) -> None:
        self.name = name
        self.arn = f"arn:aws:sqs:{region}:{ACCOUNT}:{name}"
        self.url = f"https://sqs.{region}.amazonaws.com/{ACCOUNT}/{name}"
        self.visibility_s = visibility_s
        self.redrive = redrive
        """(dead-letter queue name, maxReceiveCount), None: no RedrivePolicy."""
        self.tags: dict[str, str] = {}
        self.cohorts: deque[list[float]] = deque()
        """Ordinary messages nobody received yet: ``[sent, count]``, oldest first."""
        self.records: dict[str, Message] = {}
        self.sent = 0
        self.received = 0
        self.deleted = 0
        self._ids = 0

    def new_id(self) -> str:
        """A fresh message id."""
        self._ids += 1
        return f"{self.name}-{self._ids:08d}"

    def waiting(self) -> int:
        """Ordinary messages in the cohorts."""
        return int(sum(c[1] for c in self.cohorts))

    def visible(self, now: float) -> int:
        """ApproximateNumberOfMessages."""
        return self.waiting() + sum(1 for m in self.records.values() if m.visible_at <= now)

    def in_flight(self, now: float) -> int:
        """ApproximateNumberOfMessagesNotVisible."""
        return sum(1 for m in self.records.values() if m.visible_at > now)

    def total(self) -> int:
        """Every message in the queue, visible or not."""
        return self.waiting() + len(self.records)

    def oldest_age(self, now: float) -> float:
        """ApproximateAgeOfOldestMessage (messages received three times and more left out)."""
        sent = [m.sent for m in self.records.values() if m.receives < AGE_RECEIVES]
        if self.cohorts:
            sent.append(self.cohorts[0][0])
        return max(0.0, now - min(sent)) if sent else 0.0

    def add(self, body: str, now: float, attributes: dict[str, Any] | None = None) -> Message:
        """A message sent one by one (through the API, or a poison message)."""
        message = Message(self.new_id(), body, now, visible_at=now, attributes=attributes)
        self.records[message.id] = message
        self.sent += 1
        return message

    def materialise(self, now: float) -> Message | None:
        """Take the oldest ordinary message out of its cohort, to be received by itself."""
        if not self.cohorts:
            return None
        cohort = self.cohorts[0]
        cohort[1] -= 1
        if cohort[1] <= 0:
            self.cohorts.popleft()
        message = Message(self.new_id(), "", cohort[0], visible_at=now)
        message.body = json.dumps({"receipt": message.id, "amount": "12.50"})
        self.records[message.id] = message
        return message

    def receive(self, message: Message, now: float, hidden_s: float) -> None:
        """One receive of ``message``: counted, hidden for ``hidden_s``, a new receipt."""
        message.receives += 1
        message.visible_at = now + hidden_s
        message.receipt = f"{message.id}/{message.receives}"
        self.received += 1


class Queue(Dependency):
    """An SQS queue (and its dead-letter queue) between a producer service and its workers."""

    family = MetricFamily.QUEUE

    def __init__(self, lab: Lab, settings: QueueSettings) -> None:
        super().__init__(lab, settings.name)
        self.settings = settings
        region = lab.settings.topology.region
        self.dlq = SqsQueue(f"{settings.name}-dlq", region, settings.visibility_timeout_s, None)
        redrive = (self.dlq.name, settings.max_receive_count)
        self.main = SqsQueue(settings.name, region, settings.visibility_timeout_s, redrive)
        self._producer = lab.service_index(settings.producer)
        self._worker = lab.service_index(settings.service)
        self.send_factor = 1.0
        """Multiplier of this sub-step's sends (a fault sets it each sub-step; reset after)."""
        self.worker_factor = 1.0
        """Multiplier of this sub-step's worker speed (a fault sets it; reset after)."""
        self.poison_share = 0.0
        """Share of this sub-step's sends that are poison (a fault sets it; reset after)."""
        self.produced = 0
        """Messages the producer sent (ordinary and poison)."""
        self.processed = 0
        """Messages the workers processed and deleted."""
        self.dead_lettered = 0
        """Messages SQS moved to the dead-letter queue by the redrive policy."""
        self._send_carry = 0.0
        self._poison_carry = 0.0
        self._work_carry = 0.0

    @property
    def service(self) -> str:
        """The worker service."""
        return self.settings.service

    def poison_in_queue(self) -> int:
        """Poison messages still in the queue (not in its dead-letter queue)."""
        return sum(1 for m in self.main.records.values() if is_poison(m.body))

    def ledger(self) -> dict[str, int]:
        """Where every message went: ``produced + api_sent == processed + api_deleted +
        in_queue + in_dead_letter_queue`` always holds."""
        api_sent = self.main.sent + self.dlq.sent - self.produced - self.dead_lettered
        api_deleted = self.main.deleted + self.dlq.deleted - self.processed
        return {
            "produced": self.produced,
            "processed": self.processed,
            "in_queue": self.main.total(),
            "in_dead_letter_queue": self.dlq.total(),
            "api_sent": api_sent,
            "api_deleted": api_deleted,
        }

    def after(self, t0: float, h: float, served: np.ndarray, serving: np.ndarray) -> None:
        self._send(t0, h, float(served[self._producer]))
        self._work(t0, h, float(serving[self._worker]))
        self.send_factor, self.worker_factor, self.poison_share = 1.0, 1.0, 0.0

    def _send(self, t0: float, h: float, rps: float) -> None:
        cfg = self.settings
        self._send_carry += max(0.0, rps) * cfg.messages_per_request * self.send_factor * h
        n = math.floor(self._send_carry)
        self._send_carry -= n
        if n <= 0:
            return
        self._poison_carry += n * min(1.0, max(0.0, self.poison_share))
        poison = min(n, math.floor(self._poison_carry))
        self._poison_carry -= poison
        self.send_poison(poison, t0 + h / 2)
        if n - poison:
            self.main.cohorts.append([t0 + h / 2, n - poison])
            self.main.sent += n - poison
            self.produced += n - poison

    def send_poison(self, count: int, at: float) -> None:
        """The producer sends ``count`` poison messages at ``at``."""
        for _ in range(count):
            message = self.main.add("", at)
            message.body = json.dumps({"receipt": message.id, "amount": "NaN"})
            self.produced += 1

    def _work(self, t0: float, h: float, ready: float) -> None:
        """The workers' sub-step: messages visible at its start, oldest first, until their
        thread-seconds are used up."""
        cfg, q = self.settings, self.main
        budget = max(0.0, ready) * cfg.worker_threads * h
        cost = cfg.worker_threads / (cfg.worker_rate * max(1e-6, self.worker_factor))
        for message in list(q.records.values()):
            if budget <= 0:
                break
            if message.visible_at > t0:
                continue
            if q.redrive is not None and message.receives >= q.redrive[1]:
                self.dead_letter(message, t0)
                continue
            q.receive(message, t0, q.visibility_s)
            if is_poison(message.body):
                budget -= cfg.poison_timeout_s
            else:
                budget -= cost
                del q.records[message.id]
                q.deleted += 1
                self.processed += 1
        self._work_carry += max(0.0, budget) / cost
        n = min(math.floor(self._work_carry), q.waiting())
        self._work_carry = min(self._work_carry - n, 1.0)
        while n > 0:
            cohort = q.cohorts[0]
            take = int(min(n, cohort[1]))
            cohort[1] -= take
            if cohort[1] <= 0:
                q.cohorts.popleft()
            n -= take
            q.received += take
            q.deleted += take
            self.processed += take

    def dead_letter(self, message: Message, now: float) -> None:
        """SQS's redrive policy: the message leaves for the dead-letter queue as it is."""
        del self.main.records[message.id]
        moved = replace(message, visible_at=now, receipt="")
        self.dlq.records[moved.id] = moved
        self.dlq.sent += 1
        self.dead_lettered += 1

    def sample(self, t: float) -> list[Sample]:
        q = self.main
        values = (
            float(q.visible(t)),
            q.oldest_age(t),
            float(q.received),
            float(q.deleted),
            float(q.sent),
        )
        return [((self.settings.service, self.name), values)]


def _error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


class FakeSqs:
    """The boto3 ``sqs`` client calls ooda makes, over the lab's queues (keyword arguments and
    response shapes as boto3's; a missing queue or a stale receipt raise botocore's
    ``ClientError`` with SQS's error codes)."""

    def __init__(self, lab: Lab, queues: list[Queue]) -> None:
        self._lab = lab
        self._queues = {q.main.name: q.main for q in queues} | {q.dlq.name: q.dlq for q in queues}

    def _now(self) -> float:
        return self._lab.clock.now().timestamp()

    def _by_url(self, url: str, operation: str) -> SqsQueue:
        found = next((q for q in self._queues.values() if q.url == url), None)
        if found is None:
            raise _error(
                "AWS.SimpleQueueService.NonExistentQueue",
                f"The specified queue does not exist: {url}",
                operation,
            )
        return found

    def _record(self, queue: SqsQueue, handle: str, operation: str) -> Message:
        message = queue.records.get(handle.rsplit("/", 1)[0])
        if message is None or message.receipt != handle:
            raise _error(
                "ReceiptHandleIsInvalid", f"The receipt handle {handle!r} is not valid.", operation
            )
        return message

    def get_queue_url(self, **kwargs: Any) -> dict[str, Any]:
        name = str(kwargs["QueueName"])
        owner = kwargs.get("QueueOwnerAWSAccountId", ACCOUNT)
        queue = self._queues.get(name)
        if queue is None or owner != ACCOUNT:
            raise _error(
                "AWS.SimpleQueueService.NonExistentQueue",
                f"The specified queue {name!r} does not exist.",
                "GetQueueUrl",
            )
        return {"QueueUrl": queue.url}

    def get_queue_attributes(self, **kwargs: Any) -> dict[str, Any]:
        queue = self._by_url(str(kwargs["QueueUrl"]), "GetQueueAttributes")
        now = self._now()
        attributes = {
            "QueueArn": queue.arn,
            "ApproximateNumberOfMessages": str(queue.visible(now)),
            "ApproximateNumberOfMessagesNotVisible": str(queue.in_flight(now)),
            "VisibilityTimeout": str(int(queue.visibility_s)),
        }
        if queue.redrive is not None:
            dlq, receives = queue.redrive
            target = self._queues[dlq].arn
            policy = {"deadLetterTargetArn": target, "maxReceiveCount": receives}
            attributes["RedrivePolicy"] = json.dumps(policy)
        wanted = list(kwargs.get("AttributeNames", ["All"]))
        if "All" not in wanted:
            attributes = {k: v for k, v in attributes.items() if k in wanted}
        return {"Attributes": attributes}

    def set_queue_attributes(self, **kwargs: Any) -> dict[str, Any]:
        """Only the ``RedrivePolicy`` can be set here (its dead-letter queue and count)."""
        queue = self._by_url(str(kwargs["QueueUrl"]), "SetQueueAttributes")
        attributes = dict(kwargs.get("Attributes") or {})
        unknown = sorted(set(attributes) - {"RedrivePolicy"})
        if unknown:
            raise _error(
                "InvalidAttributeName",
                f"the lab's queues take only RedrivePolicy, got {unknown}",
                "SetQueueAttributes",
            )
        if "RedrivePolicy" in attributes:
            queue.redrive = self._policy(str(attributes["RedrivePolicy"]))
        return {}

    def _policy(self, text: str) -> tuple[str, int]:
        try:
            policy = json.loads(text)
            name = str(policy["deadLetterTargetArn"]).rsplit(":", 1)[-1]
            count = int(policy["maxReceiveCount"])
        except (ValueError, KeyError, TypeError) as exc:
            raise _error(
                "InvalidParameterValue", f"RedrivePolicy {text!r}: {exc}", "SetQueueAttributes"
            ) from exc
        if name not in self._queues or not 1 <= count <= 1000:
            raise _error(
                "InvalidParameterValue",
                f"RedrivePolicy {text!r}: no such dead-letter queue, or maxReceiveCount"
                " outside 1..1000",
                "SetQueueAttributes",
            )
        return name, count

    def tag_queue(self, **kwargs: Any) -> dict[str, Any]:
        queue = self._by_url(str(kwargs["QueueUrl"]), "TagQueue")
        queue.tags.update({str(k): str(v) for k, v in dict(kwargs["Tags"]).items()})
        return {}

    def untag_queue(self, **kwargs: Any) -> dict[str, Any]:
        queue = self._by_url(str(kwargs["QueueUrl"]), "UntagQueue")
        for key in kwargs["TagKeys"]:
            queue.tags.pop(str(key), None)
        return {}

    def list_queue_tags(self, **kwargs: Any) -> dict[str, Any]:
        queue = self._by_url(str(kwargs["QueueUrl"]), "ListQueueTags")
        return {"Tags": dict(queue.tags)} if queue.tags else {}

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        """Up to ``MaxNumberOfMessages`` (1..10) visible messages, roughly oldest first."""
        queue = self._by_url(str(kwargs["QueueUrl"]), "ReceiveMessage")
        most = int(kwargs.get("MaxNumberOfMessages", 1))
        if not 1 <= most <= 10:
            raise _error(
                "InvalidParameterValue",
                f"MaxNumberOfMessages must be within 1..10, got {most}",
                "ReceiveMessage",
            )
        now = self._now()
        hidden = float(kwargs.get("VisibilityTimeout", queue.visibility_s))
        picked: list[Message] = []
        for message in list(queue.records.values()):
            if len(picked) >= most:
                break
            if message.visible_at > now:
                continue
            if queue.redrive is not None and message.receives >= queue.redrive[1]:
                self._dead_letter(queue, message, now)
                continue
            picked.append(message)
        while len(picked) < most and (fresh := queue.materialise(now)) is not None:
            picked.append(fresh)
        out = []
        for message in picked:
            queue.receive(message, now, hidden)
            entry: dict[str, Any] = {
                "MessageId": message.id,
                "ReceiptHandle": message.receipt,
                "MD5OfBody": _md5(message.body),
                "Body": message.body,
                "Attributes": {
                    "ApproximateReceiveCount": str(message.receives),
                    "SentTimestamp": str(int(message.sent * 1000)),
                },
            }
            if message.attributes:
                entry["MessageAttributes"] = message.attributes
            out.append(entry)
        return {"Messages": out} if out else {}

    def _dead_letter(self, queue: SqsQueue, message: Message, now: float) -> None:
        owner = next(q for q in self._lab.dependencies(Queue) if q.main is queue)
        owner.dead_letter(message, now)

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        queue = self._by_url(str(kwargs["QueueUrl"]), "SendMessage")
        body = str(kwargs["MessageBody"])
        message = queue.add(body, self._now(), kwargs.get("MessageAttributes"))
        return {"MessageId": message.id, "MD5OfMessageBody": _md5(body)}

    def delete_message(self, **kwargs: Any) -> dict[str, Any]:
        queue = self._by_url(str(kwargs["QueueUrl"]), "DeleteMessage")
        message = self._record(queue, str(kwargs["ReceiptHandle"]), "DeleteMessage")
        del queue.records[message.id]
        queue.deleted += 1
        return {}

    def change_message_visibility(self, **kwargs: Any) -> dict[str, Any]:
        queue = self._by_url(str(kwargs["QueueUrl"]), "ChangeMessageVisibility")
        message = self._record(queue, str(kwargs["ReceiptHandle"]), "ChangeMessageVisibility")
        message.visible_at = self._now() + float(kwargs["VisibilityTimeout"])
        return {}


def build_queues(lab: Lab) -> list[Queue]:
    """The topology's queues; the lab's cloud clients get an SQS client over them."""
    queues = [Queue(lab, settings) for settings in lab.settings.topology.queues]
    if queues:
        lab.cloud = replace(lab.cloud, sqs=FakeSqs(lab, queues))
    return queues
