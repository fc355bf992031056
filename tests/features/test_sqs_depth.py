"""Queue depth from an SQS-compatible endpoint to the loop: messages sent to a real queue on
moto's server, some received and in flight, the depth read through boto3 and exported under
the CloudWatch exporter's names, scraped by the session's real Prometheus, and read back through
``PrometheusSource`` as the loop does."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts import MetricFamily
from features import PrometheusSettings, PrometheusSource
from lab.servers import PrometheusServer, SqsServer, serve_sqs_exporter
from ooda._observe import clean_family

VISIBLE = "aws_sqs_approximate_number_of_messages_visible_average"
SENT = 37
TAKEN = 5


def test_queue_depth_reaches_the_loop_through_boto3_and_prometheus(
    sqs_server: SqsServer, prometheus: PrometheusServer
) -> None:
    sqs = sqs_server.client()
    queue = f"receipts-{uuid.uuid4().hex[:6]}"
    url = sqs.create_queue(QueueName=queue, Attributes={"VisibilityTimeout": "300"})["QueueUrl"]
    for i in range(SENT):
        sqs.send_message(QueueUrl=url, MessageBody=f"receipt-{i}")
    taken: list[dict[str, Any]] = []
    while len(taken) < TAKEN:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=TAKEN - len(taken))
        taken += got.get("Messages", [])
    server, _ = serve_sqs_exporter(sqs, [queue])
    prometheus.scrape("sqs-exporter", [f"127.0.0.1:{server.server_port}"], timedelta(seconds=1))
    source = PrometheusSource(
        PrometheusSettings(
            url=prometheus.url,
            region="eu-west-1",
            scrape_interval=timedelta(seconds=1),
            owners={"queue_name": {queue: "checkout"}},
        )
    )
    try:

        def depth() -> float | None:
            now = datetime.now(UTC)
            frame = source.query_family(
                MetricFamily.QUEUE, now - timedelta(seconds=30), now, timedelta(seconds=5)
            )
            frame = frame[frame.queue_name == queue].dropna(subset=[VISIBLE])
            return None if frame.empty else float(frame[VISIBLE].iloc[-1])

        def until(value: float) -> float | None:
            deadline = time.monotonic() + 30
            seen = depth()
            while time.monotonic() < deadline and seen != value:
                time.sleep(0.5)
                seen = depth()
            return seen

        # In-flight messages are not visible: the depth is what waits.
        assert until(SENT - TAKEN) == SENT - TAKEN
        now = datetime.now(UTC)
        frame = source.query_family(
            MetricFamily.QUEUE, now - timedelta(seconds=30), now, timedelta(seconds=5)
        )
        cleaned, notes = clean_family(frame, MetricFamily.QUEUE, now)
        mine = cleaned[cleaned.queue_name == queue]
        assert set(mine.service) == {"checkout"} and mine[VISIBLE].notna().any(), notes
        # The workers drain it: the depth falls to what is left.
        drained = 0
        while drained < 10:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10 - drained)
            for message in got.get("Messages", []):
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                drained += 1
        assert until(SENT - TAKEN - 10) == SENT - TAKEN - 10
    finally:
        prometheus.scrape("sqs-exporter", [])
        server.shutdown()
        source.close()
