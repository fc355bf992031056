"""Consumer lag from a real Kafka broker to the loop: produce to a real topic, consume slowly
in a group, export the lag as kafka-exporter computes it, let the session's real Prometheus
scrape it, and read it back through ``PrometheusSource`` as the loop does."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from contracts import MetricFamily
from features import PrometheusSettings, PrometheusSource
from lab.servers import KafkaBroker, PrometheusServer, ServerMissingError, serve_kafka_exporter
from ooda._observe import clean_family
from tests.conftest import require_server

PARTITIONS = 4
PRODUCED = 200


def _consume(bootstrap: str, topic: str, group: str, at_least: int) -> int:
    """Consume at least ``at_least`` messages in ``group`` and commit; the number consumed."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=10,
    )
    consumed = 0
    deadline = time.monotonic() + 60
    while consumed < at_least and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            consumed += len(records)
    consumer.commit()
    consumer.close()
    return consumed


@pytest.fixture
def topic(kafka_broker: KafkaBroker) -> str:
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic

    name = f"orders-{uuid.uuid4().hex[:6]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    admin.create_topics([NewTopic(name, PARTITIONS, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    for i in range(PRODUCED):
        producer.send(name, f"order-{i}".encode(), partition=i % PARTITIONS)
    producer.flush()
    producer.close()
    return name


def test_consumer_lag_reaches_the_loop_as_kafka_exporter_reports_it(
    kafka_broker: KafkaBroker, prometheus: PrometheusServer, topic: str
) -> None:
    group = f"payments-{uuid.uuid4().hex[:4]}"
    consumed = _consume(kafka_broker.bootstrap, topic, group, at_least=50)
    assert 50 <= consumed < PRODUCED
    server, collector = serve_kafka_exporter(kafka_broker.bootstrap, groups=[group])
    prometheus.scrape("kafka-exporter", [f"127.0.0.1:{server.server_port}"], timedelta(seconds=1))
    source = PrometheusSource(
        PrometheusSettings(
            url=prometheus.url,
            region="eu-west-1",
            scrape_interval=timedelta(seconds=1),
            owners={"consumergroup": {group: "payments"}},
        )
    )
    try:

        def newest() -> dict[str, float]:
            now = datetime.now(UTC)
            frame = source.query_family(
                MetricFamily.KAFKA, now - timedelta(seconds=30), now, timedelta(seconds=5)
            )
            frame = frame[(frame.topic == topic) & (frame.consumergroup == group)]
            if frame.empty:
                return {}
            last = frame[frame.timestamp == frame.timestamp.max()]
            return dict(zip(last.partition, last.kafka_consumergroup_lag, strict=True))

        deadline = time.monotonic() + 30
        lags: dict[str, float] = {}
        while time.monotonic() < deadline and len(lags) < PARTITIONS:
            lags = newest()
            time.sleep(0.5)
        assert sorted(lags) == [str(p) for p in range(PARTITIONS)]
        assert sum(lags.values()) == PRODUCED - consumed
        # The loop's own checks accept it, owner and all.
        now = datetime.now(UTC)
        frame = source.query_family(
            MetricFamily.KAFKA, now - timedelta(seconds=30), now, timedelta(seconds=5)
        )
        cleaned, notes = clean_family(frame, MetricFamily.KAFKA, now)
        mine = cleaned[cleaned.consumergroup == group]
        assert set(mine.service) == {"payments"} and not mine.empty, notes
        # The group catches up: the lag Prometheus reports falls to what is left.
        more = _consume(kafka_broker.bootstrap, topic, group, at_least=PRODUCED - consumed)
        assert consumed + more == PRODUCED
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sum(newest().values()) != 0:
            time.sleep(0.5)
        assert sum(newest().values()) == 0
    finally:
        prometheus.scrape("kafka-exporter", [])
        server.shutdown()
        collector.close()
        source.close()


def test_a_cluster_id_that_starts_with_a_dash_formats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One random cluster id in 64 starts with "-"; Kafka's storage tool must not read it as
    an option (the session broker once failed to start that way)."""
    import lab.servers._kafka as kafka_server

    dashed = uuid.UUID(bytes=b"\xf8" + bytes(15))  # url-safe base64: "-AAAA..."
    monkeypatch.setattr(kafka_server.uuid, "uuid4", lambda: dashed)
    try:
        broker = KafkaBroker(tmp_path).start()
    except ServerMissingError as exc:
        if "jars" not in str(exc):
            raise  # the formatting failed: the bug itself
        require_server(str(exc))
        return
    broker.stop()
    assert "cluster.id=-AAAA" in (tmp_path / "data" / "meta.properties").read_text()
