"""contracts: what every layer of ooda shares, and nothing else.

The tidy metric schema and the metric families beyond it, the ports (a metric source, a
clock, the Kubernetes and cloud calls we make), the identifiers of scenarios and actions, and the
records that cross layers (a workload's observed state, an action's verification). Every
other package may import this one; it imports none of ours.

Exception tree::

    ContractError
    ├── InvalidTimeError     a naive datetime, a clock moved backwards (also ValueError)
    └── UnknownIdError       a scenario or action id outside the enums (also ValueError)
"""

from __future__ import annotations

from contracts._clock import Clock, SimClock, WallClock
from contracts._cloud import CloudClients, Rds, Route53, Sqs
from contracts._errors import ContractError, InvalidTimeError, UnknownIdError
from contracts._families import FAMILIES, FamilySchema, MetricFamily
from contracts._ids import ActionKind, ScenarioId
from contracts._ports import (
    NODE_LEASE_NAMESPACE,
    AppsV1,
    AutoscalingV2,
    CoreV1,
    CustomObjects,
    KubeClients,
    MetricSource,
    NetworkingV1,
    PolicyV1,
)
from contracts._records import (
    ArgoApp,
    ConfigChange,
    HpaState,
    NodeState,
    Outcome,
    PodState,
    Verdict,
    VerifyWindow,
    WorkloadState,
)
from contracts._schema import METRIC_COLUMNS, METRIC_VALUE_COLUMNS

__all__ = [
    "FAMILIES",
    "METRIC_COLUMNS",
    "METRIC_VALUE_COLUMNS",
    "NODE_LEASE_NAMESPACE",
    "ActionKind",
    "AppsV1",
    "ArgoApp",
    "AutoscalingV2",
    "Clock",
    "CloudClients",
    "ConfigChange",
    "ContractError",
    "CoreV1",
    "CustomObjects",
    "FamilySchema",
    "HpaState",
    "InvalidTimeError",
    "KubeClients",
    "MetricFamily",
    "MetricSource",
    "NetworkingV1",
    "NodeState",
    "Outcome",
    "PodState",
    "PolicyV1",
    "Rds",
    "Route53",
    "ScenarioId",
    "SimClock",
    "Sqs",
    "UnknownIdError",
    "Verdict",
    "VerifyWindow",
    "WallClock",
    "WorkloadState",
]
