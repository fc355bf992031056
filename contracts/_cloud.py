"""The cloud ports: the AWS calls ooda makes, as Protocols over boto3's client method names.

A healing action that touches a cloud service (an SQS queue's poison messages, an Aurora
cluster's failover, Route 53's weighted records of a regional failover) takes its client
from :class:`CloudClients`, injected the way :class:`~contracts.KubeClients` is: a boto3 client
on a real account, an in-process one (``moto``) in the tests, so there is one code path. boto3
clients carry their own timeouts and retries (``botocore.config.Config``'s
``connect_timeout``, ``read_timeout`` and ``retries``), set where the client is built, because
unlike the Kubernetes client they take no per-call timeout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class Sqs(Protocol):
    """The boto3 ``sqs`` client calls ooda makes (keyword arguments, as boto3 takes them)."""

    def get_queue_url(self, **kwargs: Any) -> dict[str, Any]: ...
    def get_queue_attributes(self, **kwargs: Any) -> dict[str, Any]: ...
    def receive_message(self, **kwargs: Any) -> dict[str, Any]: ...
    def send_message(self, **kwargs: Any) -> dict[str, Any]: ...
    def delete_message(self, **kwargs: Any) -> dict[str, Any]: ...
    def change_message_visibility(self, **kwargs: Any) -> dict[str, Any]: ...


class Rds(Protocol):
    """The boto3 ``rds`` client calls ooda makes."""

    def describe_db_clusters(self, **kwargs: Any) -> dict[str, Any]: ...
    def failover_db_cluster(self, **kwargs: Any) -> dict[str, Any]: ...


class Route53(Protocol):
    """The boto3 ``route53`` client calls ooda makes."""

    def list_resource_record_sets(self, **kwargs: Any) -> dict[str, Any]: ...
    def change_resource_record_sets(self, **kwargs: Any) -> dict[str, Any]: ...


@dataclass(frozen=True)
class CloudClients:
    """The cloud API clients of one account and region (boto3 clients or objects alike)."""

    sqs: Any = None
    """:class:`Sqs`: ``boto3.client("sqs")`` or an object with the same methods."""
    rds: Any = None
    """:class:`Rds`: ``boto3.client("rds")`` or an object with the same methods."""
    route53: Any = None
    """:class:`Route53`: ``boto3.client("route53")`` or an object with the same methods (the
    DNS in front of every region: global, so one client serves them all)."""
