"""ooda: the control loop (observe, orient, decide, act, verify), its audit log and CLI.

This is the top layer: it may import every other package of ours, and none may import it.

Exception tree::

    OodaError
    ├── ScoringUnavailableError   a Ray Serve endpoint was unreachable or refused
    ├── BadMetricsError           the metric source returned something unusable
    └── SeriesInputError          a series file for score-/forecast-series is malformed

Names are imported on first use (PEP 562): ``ooda score-series`` should not pay for MLflow,
Feast and Ray, which the control loop's modules import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "AnomalyScores": "ooda._scoring",
    "AuditEntry": "ooda._audit",
    "AuditLog": "ooda._audit",
    "BadMetricsError": "ooda._errors",
    "ControlLoop": "ooda._loop",
    "Decision": "ooda._policy",
    "DemoSettings": "ooda._settings",
    "LoadForecast": "ooda._scoring",
    "LoopEvent": "ooda._loop",
    "LoopSettings": "ooda._settings",
    "LoopStats": "ooda._loop",
    "OodaError": "ooda._errors",
    "OodaSettings": "ooda._settings",
    "PendingAction": "ooda._verify",
    "Policy": "ooda._policy",
    "PolicySettings": "ooda._settings",
    "ScoringClient": "ooda._scoring",
    "ScoringUnavailableError": "ooda._errors",
    "SeriesInputError": "ooda._errors",
    "ServiceView": "ooda._observe",
    "ServingClientSettings": "ooda._settings",
    "SloSettings": "ooda._settings",
    "Verdict": "ooda._verify",
    "VerifySettings": "ooda._settings",
    "crashlooping_pods": "ooda._policy",
    "judge": "ooda._verify",
    "per_pod_capacity": "ooda._policy",
    "service_views": "ooda._observe",
    "within_slo": "ooda._observe",
}

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
    "SeriesInputError",
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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ooda' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from ooda._audit import AuditEntry, AuditLog
    from ooda._errors import BadMetricsError, OodaError, ScoringUnavailableError, SeriesInputError
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
