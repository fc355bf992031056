"""Route 53 in memory: the hosted zone whose weighted records split users over the regions.

A multi-region estate answers its public name with one weighted record per region (same name
and type, one ``SetIdentifier`` each); resolvers pick a record with probability weight / sum.
Moving weight is how traffic leaves a region and comes back, so the lab keeps the records
where an action changes them, with boto3's keyword arguments, response shapes and error codes
(``NoSuchHostedZone``, ``InvalidChangeBatch``, ``InvalidInput``), and the same answers moto's
``route53`` gives. Every accepted change batch is kept with its comment, as Route 53's change
history keeps it.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

#: Route 53's range of a weighted record's ``Weight``.
MAX_WEIGHT = 255
_ACTIONS = ("CREATE", "UPSERT", "DELETE")


def absolute(name: str) -> str:
    """``name`` with the trailing dot Route 53 answers with."""
    return name if name.endswith(".") else name + "."


def _error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


@dataclass(frozen=True)
class RecordChange:
    """One accepted change batch: when, its comment and the records it wrote."""

    at: datetime
    comment: str
    changes: tuple[dict[str, Any], ...]


class FakeRoute53:
    """Hosted zones of weighted (and plain) record sets, changed in atomic batches."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now
        self._zones: dict[str, dict[tuple[str, str, str], dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self.history: list[RecordChange] = []
        """Every accepted change batch, oldest first."""

    def add_zone(self, name: str) -> str:
        """A new hosted zone for ``name``; returns its id as Route 53 writes it."""
        zone = f"/hostedzone/Z{next(self._ids):013d}"
        self._zones[zone] = {}
        return zone

    def _zone(self, zone_id: str, operation: str) -> dict[tuple[str, str, str], dict[str, Any]]:
        key = zone_id if zone_id.startswith("/hostedzone/") else f"/hostedzone/{zone_id}"
        found = self._zones.get(key)
        if found is None:
            raise _error("NoSuchHostedZone", f"No hosted zone found with ID: {zone_id}", operation)
        return found

    def list_resource_record_sets(self, **kwargs: Any) -> dict[str, Any]:
        """Record sets in name order from ``StartRecordName`` (and ``StartRecordType``)."""
        zone = self._zone(str(kwargs["HostedZoneId"]), "ListResourceRecordSets")
        name = kwargs.get("StartRecordName")
        start = (absolute(str(name)), str(kwargs.get("StartRecordType") or "")) if name else None
        records = [zone[k] for k in sorted(zone) if start is None or (k[0], k[1]) >= start]
        return {
            "ResourceRecordSets": copy.deepcopy(records),
            "IsTruncated": False,
            "MaxItems": str(kwargs.get("MaxItems", "300")),
        }

    def change_resource_record_sets(self, **kwargs: Any) -> dict[str, Any]:
        """Apply every change of ``ChangeBatch`` or none (the batch is atomic)."""
        operation = "ChangeResourceRecordSets"
        zone = self._zone(str(kwargs["HostedZoneId"]), operation)
        batch = kwargs.get("ChangeBatch") or {}
        changes = batch.get("Changes") or []
        if not changes:
            raise _error("InvalidInput", "ChangeBatch must hold at least one change", operation)
        staged = dict(zone)
        for change in changes:
            action, record = change.get("Action"), dict(change.get("ResourceRecordSet") or {})
            if action not in _ACTIONS:
                raise _error("InvalidInput", f"Unknown change action {action!r}", operation)
            record["Name"] = absolute(str(record.get("Name", "")))
            weight = record.get("Weight")
            if weight is not None and (
                isinstance(weight, bool)
                or not isinstance(weight, int)
                or not 0 <= weight <= MAX_WEIGHT
            ):
                why = f"Weight must be an integer within 0..{MAX_WEIGHT}, got {weight!r}"
                raise _error("InvalidInput", why, operation)
            kind, identifier = str(record.get("Type", "")), str(record.get("SetIdentifier", ""))
            key = (record["Name"], kind, identifier)
            exists = key in staged
            if action == "CREATE" and exists:
                raise _error(
                    "InvalidChangeBatch",
                    f"Tried to create resource record set {key} but it already exists",
                    operation,
                )
            if action == "DELETE":
                if not exists:
                    raise _error(
                        "InvalidChangeBatch",
                        f"Tried to delete resource record set {key} but it was not found",
                        operation,
                    )
                del staged[key]
            else:
                staged[key] = record
        zone.clear()
        zone.update(staged)
        at = self._now()
        comment = str(batch.get("Comment", ""))
        self.history.append(RecordChange(at, comment, tuple(copy.deepcopy(changes))))
        return {
            "ChangeInfo": {
                "Id": f"/change/C{next(self._ids):013d}",
                "Status": "INSYNC",
                "SubmittedAt": at,
                "Comment": comment,
            }
        }
