"""lab.servers -- the real servers a user runs beside ooda, started on this machine for tests.

Each binds to 127.0.0.1 on a free port, keeps its state under a work directory and stops
what it started. :class:`PrometheusServer` is Debian's ``prometheus`` (``make
prometheus-bins``), with ``promtool``'s backfill for recorded histories;
:class:`AlertmanagerServer` is Debian's ``prometheus-alertmanager``, routing to one webhook;
:class:`BlackboxExporter` is Debian's ``prometheus-blackbox-exporter``, the synthetic prober
whose ``probe_success`` Prometheus scrapes (:meth:`PrometheusServer.probe`);
:class:`SqsServer` is an SQS-compatible endpoint (moto's server) for boto3, with an exporter
of its queues' depth read through boto3 (``serve_sqs_exporter``);
:class:`PostgresServer` is Debian's ``postgresql`` (``make postgres-bins``), the shared
audit store of several replicas; :class:`KafkaBroker` is Apache Kafka in KRaft mode from
Maven Central's jars (``make kafka-bins``), with a kafka-exporter of its consumer lag
(``serve_kafka_exporter``).

Exceptions::

    LabError (lab)
    +-- ServerError
        +-- ServerMissingError    the binary is not installed (the message names the target)
        +-- ServerStartError      it exited or never became ready (with its log's tail)
        +-- BackfillError         promtool refused a history
"""

from __future__ import annotations

from lab.servers._alertmanager import AlertmanagerServer
from lab.servers._blackbox import HTTP_MODULE, BlackboxExporter
from lab.servers._errors import BackfillError, ServerError, ServerMissingError, ServerStartError
from lab.servers._kafka import (
    KAFKA_VERSION,
    ConsumerLagCollector,
    KafkaBroker,
    kafka_libs,
    serve_kafka_exporter,
)
from lab.servers._postgres import POSTGRES_PACKAGE, PostgresServer
from lab.servers._process import ManagedProcess, Server, free_port
from lab.servers._prometheus import PROMETHEUS_PACKAGE, PrometheusServer
from lab.servers._sqs import DEPTH_SERIES, QueueDepthCollector, SqsServer, serve_sqs_exporter

__all__ = [
    "DEPTH_SERIES",
    "HTTP_MODULE",
    "KAFKA_VERSION",
    "POSTGRES_PACKAGE",
    "PROMETHEUS_PACKAGE",
    "AlertmanagerServer",
    "BackfillError",
    "BlackboxExporter",
    "ConsumerLagCollector",
    "KafkaBroker",
    "ManagedProcess",
    "PostgresServer",
    "PrometheusServer",
    "QueueDepthCollector",
    "Server",
    "ServerError",
    "ServerMissingError",
    "ServerStartError",
    "SqsServer",
    "free_port",
    "kafka_libs",
    "serve_kafka_exporter",
    "serve_sqs_exporter",
]
