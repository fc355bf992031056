"""An SQS-compatible endpoint on this machine: moto in server mode, spoken to over HTTP by
boto3 exactly as the real service is (``endpoint_url``), for the queue actions' tests.

``reset`` empties it between tests, so one server serves a whole session.
:class:`QueueDepthCollector` reads each queue's depth through boto3 (``GetQueueAttributes``)
and exports it under the CloudWatch exporter's names, for any SQS-compatible endpoint a
CloudWatch exporter cannot see (moto, ElasticMQ, a queue in another account).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from lab.servers._errors import ServerStartError
from lab.servers._process import Server, free_port, serve_collector


class SqsServer(Server):
    """moto's server (``python -m moto.server``) on 127.0.0.1; a context manager."""

    region = "eu-west-1"

    def start(self, timeout: float = 60.0) -> SqsServer:
        """Start it and wait until it answers."""
        self.port = self.port or free_port()
        self._launch(
            "moto",
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            timeout,
            ready="/moto-api/",
        )
        return self

    def reset(self) -> None:
        """Forget every queue and message."""
        response = httpx.post(f"{self.url}/moto-api/reset", timeout=10)
        if response.status_code != 200:
            raise ServerStartError(f"moto refused a reset: {response.status_code}")

    def client(self) -> Any:
        """A boto3 SQS client for it (fixed test credentials, its region)."""
        import boto3

        return boto3.client(
            "sqs",
            endpoint_url=self.url,
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

#: GetQueueAttributes' attribute -> the CloudWatch exporter's series for the same number.
DEPTH_SERIES = {
    "ApproximateNumberOfMessages": "aws_sqs_approximate_number_of_messages_visible_average",
    "ApproximateNumberOfMessagesNotVisible": (
        "aws_sqs_approximate_number_of_messages_not_visible_average"
    ),
    "ApproximateNumberOfMessagesDelayed": (
        "aws_sqs_approximate_number_of_messages_delayed_average"
    ),
}


class QueueDepthCollector(Collector):
    """The depth of each named queue, read with boto3 at every scrape, labelled
    ``queue_name`` as the CloudWatch exporter labels it. The age of the oldest message and
    the send and receive counts are CloudWatch's alone: they are not exported here."""

    def __init__(self, sqs: Any, queues: list[str]) -> None:
        self.sqs = sqs
        self.queues = queues
        self._lock = threading.Lock()
        self._urls: dict[str, str] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = {
            attribute: GaugeMetricFamily(
                name, f"SQS {attribute} (GetQueueAttributes)", labels=["queue_name"]
            )
            for attribute, name in DEPTH_SERIES.items()
        }
        with self._lock:
            for queue in self.queues:
                if queue not in self._urls:
                    self._urls[queue] = self.sqs.get_queue_url(QueueName=queue)["QueueUrl"]
                found = self.sqs.get_queue_attributes(
                    QueueUrl=self._urls[queue], AttributeNames=list(DEPTH_SERIES)
                )["Attributes"]
                for attribute, family in families.items():
                    if attribute in found:
                        family.add_metric([queue], float(found[attribute]))
        yield from families.values()


def serve_sqs_exporter(
    sqs: Any, queues: list[str], port: int = 0
) -> tuple[WSGIServer, QueueDepthCollector]:
    """The depth of ``queues`` on ``/metrics`` (127.0.0.1)."""
    collector = QueueDepthCollector(sqs, queues)
    return serve_collector(collector, port), collector
