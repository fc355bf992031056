"""The metric families beyond the per-service frame: pods, nodes, databases, Kafka, queues,
upstream APIs.

Each family is one tidy frame keyed by time, region and its own entity (a pod, a node, a
consumer group's partition, a queue ...), with value columns named after the exporter metric
people already run (kube-state-metrics, node-exporter, cAdvisor, kafka-exporter, the
CloudWatch exporter), so a PromQL recipe and the lab meet on the same names. ``service``,
where a family has it, is the service that owns or uses the entity: what a runbook acts on.
Counters are given as per-second rates over the step (the column says ``_rate``); gauges are
the last sample in the step's window.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class MetricFamily(StrEnum):
    """A family of series the metric source can be asked for, beside the service frame."""

    POD = "pod"
    NODE = "node"
    DATABASE = "database"
    KAFKA = "kafka"
    QUEUE = "queue"
    UPSTREAM = "upstream"


@dataclass(frozen=True)
class FamilySchema:
    """Columns of one family's tidy frame: ``timestamp, region, *keys, *values``."""

    family: MetricFamily
    keys: tuple[str, ...]
    """Entity labels after ``timestamp`` and ``region``."""
    values: tuple[str, ...]
    """Numeric columns (NaN where a series had no sample in the step's window)."""

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column, in order."""
        return ("timestamp", "region", *self.keys, *self.values)


#: The schema of every family.
FAMILIES: dict[MetricFamily, FamilySchema] = {
    schema.family: schema
    for schema in (
        FamilySchema(
            MetricFamily.POD,
            keys=("service", "pod", "node"),
            values=(
                "container_memory_working_set_bytes",
                "kube_pod_container_resource_limits_memory_bytes",
                "kube_pod_container_status_restarts_total",
                "kube_pod_container_status_last_terminated_oomkilled",
            ),
        ),
        FamilySchema(
            MetricFamily.NODE,
            keys=("node",),
            values=(
                "kube_node_status_condition_ready",
                "kube_node_status_condition_disk_pressure",
                "kube_node_spec_unschedulable",
                "node_filesystem_avail_bytes",
                "node_filesystem_size_bytes",
                "node_netstat_TcpExt_TCPRetransSegs_rate",
                "node_netstat_Tcp_OutSegs_rate",
            ),
        ),
        FamilySchema(
            MetricFamily.DATABASE,
            keys=("service", "dbinstance_identifier", "role"),
            values=(
                "aws_rds_read_latency_average",
                "aws_rds_write_latency_average",
                "aws_rds_replica_lag_average",
                "serving_reads",
                "serving_writes",
            ),
        ),
        FamilySchema(
            MetricFamily.KAFKA,
            keys=("service", "consumergroup", "topic", "partition"),
            values=(
                "kafka_consumergroup_lag",
                "kafka_topic_partition_current_offset_rate",
                "kafka_consumergroup_current_offset_rate",
            ),
        ),
        FamilySchema(
            MetricFamily.QUEUE,
            keys=("service", "queue_name"),
            values=(
                "aws_sqs_approximate_number_of_messages_visible_average",
                "aws_sqs_approximate_age_of_oldest_message_average",
                "aws_sqs_number_of_messages_received_rate",
                "aws_sqs_number_of_messages_deleted_rate",
                "aws_sqs_number_of_messages_sent_rate",
            ),
        ),
        FamilySchema(
            MetricFamily.UPSTREAM,
            keys=("service", "upstream"),
            values=(
                "http_client_requests_rate",
                "http_client_requests_throttled_rate",
                "http_client_request_duration_p95_ms",
            ),
        ),
    )
}
