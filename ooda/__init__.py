"""ooda: the control loop (observe, orient, decide, act, verify), its audit log and CLI.

This is the top layer: it may import every other package of ours, and none may import it.

Exception tree::

    OodaError
    ├── ScoringUnavailableError   a Ray Serve endpoint was unreachable or refused
    ├── BadMetricsError           the metric source returned something unusable
    ├── ChaosError                a chaos run was asked for something it cannot run
    ├── ConfigError               a configuration file is unreadable or invalid (names the key)
    ├── RcaInputError             a graph, metrics file or target root-cause analysis cannot use
    ├── SeriesInputError          a series file for score-/forecast-series is malformed
    └── TrainInputError           `ooda train` has no history, or an unknown model or window

Names are imported on first use (PEP 562): ``ooda score-series`` should not pay for MLflow,
Feast and Ray, which the control loop's modules import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "AnomalyScores": "ooda._records",
    "AuditEntry": "ooda._audit",
    "AuditLog": "ooda._audit",
    "AuditStore": "ooda._audit",
    "Autonomy": "ooda._records",
    "AutonomySettings": "ooda._settings",
    "BadMetricsError": "ooda._errors",
    "Cause": "ooda._rca",
    "ComponentKind": "ooda._records",
    "ConfigError": "ooda._errors",
    "ControlLoop": "ooda._loop",
    "DemoSettings": "ooda._settings",
    "Diagnosis": "ooda._records",
    "ErrorBudget": "ooda._autonomy",
    "FailoverController": "ooda._failover",
    "FailoverSettings": "ooda._settings",
    "FailoverState": "ooda._failover",
    "FailoverStatus": "ooda._failover",
    "Incident": "ooda._incidents",
    "RegionHealth": "ooda._region_health",
    "RegionPorts": "ooda._region_health",
    "LoadForecast": "ooda._records",
    "LogTemplates": "ooda._logs",
    "LoopEvent": "ooda._journal",
    "LoopSettings": "ooda._settings",
    "LoopStats": "ooda._journal",
    "OodaConfig": "ooda._config",
    "OodaError": "ooda._errors",
    "OodaSettings": "ooda._settings",
    "Orientation": "ooda._records",
    "PendingAction": "ooda._records",
    "Plan": "ooda._records",
    "PolicySettings": "ooda._settings",
    "PredictiveSettings": "ooda._settings",
    "RcaInputError": "ooda._errors",
    "RcaSettings": "ooda._rca",
    "RootCause": "ooda._records",
    "RuleScorer": "ooda._fakes",
    "Runbook": "ooda.runbooks",
    "Scorer": "ooda._scoring",
    "ScoringClient": "ooda._scoring",
    "ScoringUnavailableError": "ooda._errors",
    "SeriesInputError": "ooda._errors",
    "TrainInputError": "ooda._errors",
    "ServiceView": "ooda._records",
    "ServingClientSettings": "ooda._settings",
    "SloSettings": "ooda._settings",
    "TemplateSurge": "ooda._logs",
    "Snapshot": "ooda._records",
    "VerifySettings": "ooda._settings",
    "Workspace": "ooda._workspace",
    "clean_metrics": "ooda._observe",
    "incidents": "ooda._incidents",
    "load_config": "ooda._config",
    "open_audit": "ooda._audit",
    "rank_causes": "ooda._rca",
    "read_heartbeat_lags": "ooda._cluster_state",
    "read_workloads": "ooda._cluster_state",
    "recover": "ooda._recover",
    "register_runbook": "ooda.runbooks",
    "registered_runbooks": "ooda.runbooks",
    "reset_breaker": "ooda._recover",
    "service_views": "ooda._observe",
    "silence": "ooda._quiet",
    "template_surges": "ooda._logs",
    "within_slo": "ooda._observe",
    "write_pages": "ooda._incident_page",
}

__all__ = [
    "AnomalyScores",
    "AuditEntry",
    "AuditLog",
    "AuditStore",
    "Autonomy",
    "AutonomySettings",
    "BadMetricsError",
    "Cause",
    "ComponentKind",
    "ConfigError",
    "ControlLoop",
    "DemoSettings",
    "Diagnosis",
    "ErrorBudget",
    "FailoverController",
    "FailoverSettings",
    "FailoverState",
    "FailoverStatus",
    "Incident",
    "LoadForecast",
    "LogTemplates",
    "LoopEvent",
    "LoopSettings",
    "LoopStats",
    "OodaConfig",
    "OodaError",
    "OodaSettings",
    "Orientation",
    "PendingAction",
    "Plan",
    "PolicySettings",
    "PredictiveSettings",
    "RcaInputError",
    "RcaSettings",
    "RegionHealth",
    "RegionPorts",
    "RootCause",
    "RuleScorer",
    "Runbook",
    "Scorer",
    "ScoringClient",
    "ScoringUnavailableError",
    "SeriesInputError",
    "ServiceView",
    "ServingClientSettings",
    "SloSettings",
    "Snapshot",
    "TemplateSurge",
    "TrainInputError",
    "VerifySettings",
    "Workspace",
    "clean_metrics",
    "incidents",
    "load_config",
    "open_audit",
    "rank_causes",
    "read_heartbeat_lags",
    "read_workloads",
    "recover",
    "register_runbook",
    "registered_runbooks",
    "reset_breaker",
    "service_views",
    "silence",
    "template_surges",
    "within_slo",
    "write_pages",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ooda' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from ooda._audit import AuditEntry, AuditLog, AuditStore, open_audit
    from ooda._autonomy import ErrorBudget
    from ooda._cluster_state import read_heartbeat_lags, read_workloads
    from ooda._config import OodaConfig, load_config
    from ooda._errors import (
        BadMetricsError,
        ConfigError,
        OodaError,
        RcaInputError,
        ScoringUnavailableError,
        SeriesInputError,
        TrainInputError,
    )
    from ooda._failover import FailoverController, FailoverState, FailoverStatus
    from ooda._fakes import RuleScorer
    from ooda._incident_page import write_pages
    from ooda._incidents import Incident, incidents
    from ooda._journal import LoopEvent, LoopStats
    from ooda._logs import LogTemplates, TemplateSurge, template_surges
    from ooda._loop import ControlLoop
    from ooda._observe import clean_metrics, service_views, within_slo
    from ooda._quiet import silence
    from ooda._rca import Cause, RcaSettings, rank_causes
    from ooda._records import (
        AnomalyScores,
        Autonomy,
        ComponentKind,
        Diagnosis,
        LoadForecast,
        Orientation,
        PendingAction,
        Plan,
        RootCause,
        ServiceView,
        Snapshot,
    )
    from ooda._recover import recover, reset_breaker
    from ooda._region_health import RegionHealth, RegionPorts
    from ooda._scoring import Scorer, ScoringClient
    from ooda._settings import (
        AutonomySettings,
        DemoSettings,
        FailoverSettings,
        LoopSettings,
        OodaSettings,
        PolicySettings,
        PredictiveSettings,
        ServingClientSettings,
        SloSettings,
        VerifySettings,
    )
    from ooda._workspace import Workspace
    from ooda.runbooks import Runbook, register_runbook, registered_runbooks
