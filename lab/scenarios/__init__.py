"""The lab's failure scenarios: one module each, registered by id.

Adding a scenario is one module here (a ``Scenario`` subclass under ``@register_scenario``)
plus its tests; ``check_scenario`` is the contract it must pass. Importing this package
registers every scenario it ships.
"""

from __future__ import annotations

from lab.scenarios import (
    http_5xx_spike,
    memory_leak,
    node_disk_pressure,
    node_not_ready,
    packet_loss,
    pod_crashloop,
    pod_crashloop_persistent,
    traffic_surge,
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
    "http_5xx_spike",
    "memory_leak",
    "node_disk_pressure",
    "node_not_ready",
    "packet_loss",
    "pick_healthy_pod",
    "pod_crashloop",
    "pod_crashloop_persistent",
    "register_scenario",
    "registered",
    "scenario",
    "traffic_surge",
]
