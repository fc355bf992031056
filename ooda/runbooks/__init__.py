"""Runbooks: one module per failure, each registering itself (see ``_base``).

Importing this package registers the runbooks shipped with ooda; a user's runbook module
registers itself the same way with :func:`register_runbook`.
"""

from __future__ import annotations

from ooda.runbooks import (
    db_read_latency,
    http_5xx_restart,
    http_5xx_spike,
    kafka_consumer_lag,
    latency_p95,
    memory_leak,
    node_disk_pressure,
    node_not_ready,
    packet_loss,
    pod_crashloop,
    queue_depth,
    traffic_surge,
    upstream_throttling,
)
from ooda.runbooks._base import (
    Runbook,
    check_runbook,
    register_runbook,
    registered_runbooks,
    runbook_for,
)
from ooda.runbooks.traffic_surge import per_pod_capacity, rate_ratio, surging

__all__ = [
    "Runbook",
    "check_runbook",
    "db_read_latency",
    "http_5xx_restart",
    "http_5xx_spike",
    "kafka_consumer_lag",
    "latency_p95",
    "memory_leak",
    "node_disk_pressure",
    "node_not_ready",
    "packet_loss",
    "per_pod_capacity",
    "pod_crashloop",
    "queue_depth",
    "rate_ratio",
    "register_runbook",
    "registered_runbooks",
    "runbook_for",
    "surging",
    "traffic_surge",
    "upstream_throttling",
]
