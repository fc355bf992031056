"""The lab's failure scenarios: one module each, registered by id.

Adding a scenario is one module here (a ``Scenario`` subclass under ``@register_scenario``)
plus its tests; ``check_scenario`` is the contract it must pass. Importing this package
registers every scenario it ships.
"""

from __future__ import annotations

from lab.scenarios import (
    db_read_latency,
    http_5xx_spike,
    http_5xx_wedged,
    kafka_consumer_lag,
    latency_p95,
    memory_leak,
    node_disk_pressure,
    node_not_ready,
    packet_loss,
    pod_crashloop,
    pod_crashloop_persistent,
    queue_depth,
    traffic_surge,
    upstream_throttling,
)
from lab.scenarios._check import check_scenario
from lab.scenarios._registry import (
    Scenario,
    ScenarioError,
    pick_healthy_pod,
    register_scenario,
    registered,
    scenario,
)

__all__ = [
    "Scenario",
    "ScenarioError",
    "check_scenario",
    "db_read_latency",
    "http_5xx_spike",
    "http_5xx_wedged",
    "kafka_consumer_lag",
    "latency_p95",
    "memory_leak",
    "node_disk_pressure",
    "node_not_ready",
    "packet_loss",
    "pick_healthy_pod",
    "pod_crashloop",
    "pod_crashloop_persistent",
    "queue_depth",
    "register_scenario",
    "registered",
    "scenario",
    "traffic_surge",
    "upstream_throttling",
]
