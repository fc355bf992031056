"""Runbooks: one module per failure, each registering itself (see ``_base``).

Importing this package registers the runbooks shipped with ooda; a user's runbook module
registers itself the same way with :func:`register_runbook`.
"""

from __future__ import annotations

from ooda.runbooks import (
    http_5xx_spike,
    memory_leak,
    node_disk_pressure,
    node_not_ready,
    packet_loss,
    pod_crashloop,
    traffic_surge,
)
from ooda.runbooks._base import (
    Runbook,
    check_runbook,
    register_runbook,
    registered_runbooks,
    runbook_for,
)
from ooda.runbooks.traffic_surge import per_pod_capacity, rate_ratio

__all__ = [
    "Runbook",
    "check_runbook",
    "http_5xx_spike",
    "memory_leak",
    "node_disk_pressure",
    "node_not_ready",
    "packet_loss",
    "per_pod_capacity",
    "pod_crashloop",
    "rate_ratio",
    "register_runbook",
    "registered_runbooks",
    "runbook_for",
    "traffic_surge",
]
