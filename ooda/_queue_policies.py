"""The redrive policies of the SQS queues the loop sees, read once a tick.

The queue-depth runbook lowers a queue's ``maxReceiveCount`` while poison keeps coming and sets
it back once the queue has stayed fresh. To know which queues stand at ooda's count, and since
when, it reads each policy and ooda's tags here, as the floor runbooks read an HPA's
annotations: the state lives on the queue, so a restarted or a standby loop sees it too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from actuators import CHANGED_AT, ORIGINAL_RECEIVES
from ooda._records import QueuePolicy


class QueuePolicyReader:
    """Reads queues' redrive policies through one SQS client (their URLs looked up once)."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs
        self._urls: dict[str, str] = {}

    def read(self, names: Iterable[str]) -> tuple[dict[str, QueuePolicy], list[str]]:
        """The policy of each queue in ``names`` that has one, and what could not be read."""
        out: dict[str, QueuePolicy] = {}
        problems: list[str] = []
        for name in sorted(set(names)):
            try:
                policy = self._one(name)
            except Exception as exc:  # a queue not read is a queue not acted on
                self._urls.pop(name, None)
                problems.append(f"queue {name}: {type(exc).__name__}: {exc}")
                continue
            if policy is not None:
                out[name] = policy
        return out, problems

    def _one(self, name: str) -> QueuePolicy | None:
        url = self._urls.get(name)
        if url is None:
            url = self._urls[name] = str(self._sqs.get_queue_url(QueueName=name)["QueueUrl"])
        attrs = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
        text = attrs.get("Attributes", {}).get("RedrivePolicy")
        if not text:
            return None
        count = int(json.loads(text)["maxReceiveCount"])
        tags = self._sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
        found = tags.get(ORIGINAL_RECEIVES)
        if found is None:
            return QueuePolicy(name, count, None, None)
        try:
            changed: datetime | None = datetime.fromisoformat(tags.get(CHANGED_AT, ""))
        except ValueError:
            changed = None
        if changed is not None and changed.tzinfo is None:
            changed = None
        return QueuePolicy(name, count, int(found), changed)
