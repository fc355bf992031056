"""ooda: the control loop (observe, orient, decide, act, verify), its audit log and CLI.

This is the top layer: it may import every other package of ours, and none may import it.

Exception tree::

    OodaError
    ├── ScoringUnavailableError   a Ray Serve endpoint was unreachable or refused
    └── BadMetricsError           the metric source returned something unusable
"""

from __future__ import annotations

from ooda._audit import AuditEntry, AuditLog
from ooda._errors import BadMetricsError, OodaError, ScoringUnavailableError
from ooda._loop import ControlLoop, LoopEvent, LoopStats
from ooda._observe import ServiceView, service_views, within_slo
from ooda._policy import Decision, Policy, crashlooping_pods, per_pod_capacity
from ooda._scoring import AnomalyScores, LoadForecast, ScoringClient
from ooda._settings import (
    DemoSettings,
    LoopSettings,
    OodaSettings,
    PolicySettings,
    ServingClientSettings,
    SloSettings,
    VerifySettings,
)
from ooda._verify import PendingAction, Verdict, judge

__all__ = [
    "AnomalyScores",
    "AuditEntry",
    "AuditLog",
    "BadMetricsError",
    "ControlLoop",
    "Decision",
    "DemoSettings",
    "LoadForecast",
    "LoopEvent",
    "LoopSettings",
    "LoopStats",
    "OodaError",
    "OodaSettings",
    "PendingAction",
    "Policy",
    "PolicySettings",
    "ScoringClient",
    "ScoringUnavailableError",
    "ServiceView",
    "ServingClientSettings",
    "SloSettings",
    "Verdict",
    "VerifySettings",
    "crashlooping_pods",
    "judge",
    "per_pod_capacity",
    "service_views",
    "within_slo",
]
