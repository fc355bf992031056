"""A real Apache Kafka broker on this machine (KRaft, one node that is also its controller),
from Maven Central's jars (``lab/kafka/build.sh``, run by ``make kafka-bins``), and a
kafka-exporter of it.

The exporter computes consumer lag the way kafka-exporter does -- per consumer group, topic
and partition, the partition's log-end offset minus the group's committed offset -- and
exposes it through ``prometheus_client`` under kafka-exporter's names
(``kafka_consumergroup_lag``, ``kafka_topic_partition_current_offset``,
``kafka_consumergroup_current_offset``), so a Prometheus scraping it feeds
``PrometheusSource``'s Kafka family exactly as a real estate's does.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from lab.servers._errors import ServerMissingError
from lab.servers._process import ManagedProcess, Server, free_port, serve_collector

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

#: The broker's version (``lab/kafka/pom.xml``).
KAFKA_VERSION = "4.1.1"


def kafka_libs() -> Path:
    """Where ``make kafka-bins`` put the broker's jars."""
    root = Path(os.environ.get("OODA_KAFKA_CACHE", Path.home() / ".cache" / "ooda" / "kafka"))
    return root / KAFKA_VERSION / "libs"


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class KafkaBroker(Server):
    """One KRaft broker on 127.0.0.1; ``bootstrap`` is its address for clients."""

    def __init__(self, workdir: Path, heap: str = "512m") -> None:
        super().__init__(workdir)
        self.heap = heap
        self.controller_port = 0

    @property
    def bootstrap(self) -> str:
        """``host:port`` of its PLAINTEXT listener."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> KafkaBroker:
        """Format its storage, start it and wait until it accepts connections."""
        libs = kafka_libs()
        java = shutil.which("java")
        if java is None or not (libs / ".complete").exists():
            raise ServerMissingError(
                f"Kafka {KAFKA_VERSION} needs java and its jars in {libs}: `make kafka-bins`"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.controller_port = self.controller_port or free_port()
        config = self.workdir / "server.properties"
        data = self.workdir / "data"
        config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                    f"CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    "inter.broker.listener.name=PLAINTEXT",
                    f"log.dirs={data}",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=false",
                ]
            )
            + "\n"
        )
        classpath = f"{libs}/*"
        jvm = [java, f"-Xmx{self.heap}", "-XX:+UseSerialGC", "-cp", classpath]
        if not (data / "meta.properties").exists():
            cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            # One id in 64 starts with "-": attached with "=", it is not read as an option.
            fmt = ManagedProcess(
                "kafka-storage",
                [
                    *jvm,
                    "kafka.tools.StorageTool",
                    "format",
                    f"--cluster-id={cluster}",
                    f"--config={config}",
                ],
                self.workdir / "kafka-storage.log",
                self.workdir,
            )
            if fmt.popen.wait(120) != 0:
                raise ServerMissingError(f"formatting Kafka's storage failed:\n{fmt.tail()}")
            fmt.stop()
        self._process = ManagedProcess(
            "kafka", [*jvm, "kafka.Kafka", str(config)], self.workdir / "kafka.log", self.workdir
        )
        self._process.wait_ready(lambda: _port_open(self.port), timeout)
        return self


def _group_id(group: Any) -> str:
    """A group's id from kafka-python's ``list_groups`` (a dict, or an older tuple)."""
    return str(group["group_id"] if isinstance(group, dict) else group[0])


class ConsumerLagCollector(Collector):
    """kafka-exporter's consumer-group series, read from a broker with kafka-python's admin
    client at every scrape."""

    def __init__(self, bootstrap: str, groups: list[str] | None = None) -> None:
        self.bootstrap = bootstrap
        self.groups = groups
        self._lock = threading.Lock()
        self._admin: Any = None
        self._consumer: Any = None

    def _clients(self) -> tuple[Any, Any]:
        if self._admin is None:
            from kafka import KafkaAdminClient, KafkaConsumer

            self._admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
            self._consumer = KafkaConsumer(bootstrap_servers=self.bootstrap)
        return self._admin, self._consumer

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            admin, consumer = self._clients()
            groups = self.groups or [_group_id(g) for g in admin.list_groups()]
            committed: dict[tuple[str, str, int], int] = {}
            offsets = admin.list_group_offsets(dict.fromkeys(groups)) if groups else {}
            for group, by_partition in offsets.items():
                for tp, meta in by_partition.items():
                    if meta.offset >= 0:
                        committed[(group, tp.topic, tp.partition)] = meta.offset
            from kafka import TopicPartition

            partitions = sorted({TopicPartition(t, p) for _, t, p in committed})
            ends = consumer.end_offsets(partitions) if partitions else {}
        lag = GaugeMetricFamily(
            "kafka_consumergroup_lag",
            "Current approximate lag of a consumer group at topic/partition.",
            labels=["consumergroup", "topic", "partition"],
        )
        current = GaugeMetricFamily(
            "kafka_consumergroup_current_offset",
            "Current offset of a consumer group at topic/partition.",
            labels=["consumergroup", "topic", "partition"],
        )
        log_end = GaugeMetricFamily(
            "kafka_topic_partition_current_offset",
            "Current offset of a broker at topic/partition.",
            labels=["topic", "partition"],
        )
        for tp, end in sorted(ends.items()):
            log_end.add_metric([tp.topic, str(tp.partition)], float(end))
        for (group, topic, partition), offset in sorted(committed.items()):
            end = ends.get(TopicPartition(topic, partition))
            labels = [group, topic, str(partition)]
            current.add_metric(labels, float(offset))
            if end is not None:
                lag.add_metric(labels, float(max(0, end - offset)))
        yield from (lag, current, log_end)

    def close(self) -> None:
        """Close the clients."""
        with self._lock:
            if self._admin is not None:
                self._admin.close()
                self._consumer.close()
                self._admin = self._consumer = None


def serve_kafka_exporter(
    bootstrap: str, port: int = 0, groups: list[str] | None = None
) -> tuple[WSGIServer, ConsumerLagCollector]:
    """kafka-exporter's consumer-group series of ``bootstrap`` on ``/metrics``."""
    collector = ConsumerLagCollector(bootstrap, groups)
    return serve_collector(collector, port), collector
