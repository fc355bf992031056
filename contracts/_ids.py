"""Identifiers shared by the lab, the runbooks, the actions and every report.

The scenario ids are part of ``ooda chaos``'s public contract (scripts outside the project
read them); an enum makes a typo an error where it is written, not a silent miss later.
"""

from __future__ import annotations

from enum import StrEnum


class ScenarioId(StrEnum):
    """The failure scenarios, by the names the chaos report uses."""

    POD_CRASHLOOP = "pod_crashloop"
    POD_CRASHLOOP_PERSISTENT = "pod_crashloop_persistent"
    HTTP_5XX_SPIKE = "http_5xx_spike"
    MEMORY_LEAK = "memory_leak"
    LATENCY_P95 = "latency_p95"
    NODE_NOT_READY = "node_not_ready"
    NODE_DISK_PRESSURE = "node_disk_pressure"
    DB_READ_LATENCY = "db_read_latency"
    PACKET_LOSS = "packet_loss"
    TRAFFIC_SURGE = "traffic_surge"
    KAFKA_CONSUMER_LAG = "kafka_consumer_lag"
    QUEUE_DEPTH = "queue_depth"
    UPSTREAM_THROTTLING = "upstream_throttling"
    HTTP_5XX_WEDGED = "http_5xx_wedged"


class ActionKind(StrEnum):
    """The healing actions, by the names the audit log and the guard use."""

    RESTART_POD = "restart_pod"
    SET_HPA_MIN = "set_hpa_min"
    SCALE_DEPLOYMENT = "scale_deployment"
    PATCH_HPA = "patch_hpa"
    ROLLBACK_DEPLOYMENT = "rollback_deployment"
    CORDON_NODE = "cordon_node"
    DRAIN_NODE = "drain_node"
    RECREATE_POD_ELSEWHERE = "recreate_pod_elsewhere"
    ARGO_ROLLBACK = "argo_rollback"
    RATE_LIMIT = "rate_limit"
    SWITCH_DATABASE = "switch_database"
    REROUTE = "reroute"
    SCALE_CONSUMERS = "scale_consumers"
    KILL_CONTAINER = "kill_container"
    REDRIVE_QUEUE = "redrive_queue"
    RESTORE_CONFIG_KEY = "restore_config_key"
    SHIFT_REGION_TRAFFIC = "shift_region_traffic"
    ROLLOUT_RESTART = "rollout_restart"
