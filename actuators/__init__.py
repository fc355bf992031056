"""Healing actions and the guard rails every one of them passes.

An autonomous actuator that is wrong is an outage, so nothing here touches the cluster without a
:class:`Guard` first saying yes (dry-run, cooldown, blast radius, circuit breaker), and every
action knows how to verify itself and how to step back (:meth:`Action.undo`).

The Kubernetes API objects are injected (``kubernetes.client.CoreV1Api`` and friends, or the
lab's in-memory twins with the same methods), so the same code runs on the lab and on a cluster.

Exception tree::

    ActuatorError
    ├── PermanentActuatorError    the API refused for good (404, 400, 422, 403): never retried
    ├── TemporaryActuatorError    worth another try (409, 429, 5xx, network): retried, backing off
    └── GuardRejectedError        a guard rail refused the action; carries the guard's reason
"""

from __future__ import annotations

from actuators._actions import (
    Action,
    ActionResult,
    KubeClients,
    RestartPod,
    SetHpaMinReplicas,
)
from actuators._errors import (
    ActuatorError,
    GuardRejectedError,
    PermanentActuatorError,
    TemporaryActuatorError,
    classify_api_error,
)
from actuators._gitops import ArgoRollback
from actuators._guard import Guard, GuardSettings
from actuators._kube import MERGE_PATCH, PDB_RETRY, EvictionOutcome, evict_pod
from actuators._nodes import CordonNode, DrainNode, RecreatePodElsewhere
from actuators._retry import RetryPolicy, call_with_retry
from actuators._workload import PatchHpa, RollbackDeployment, ScaleDeployment

__all__ = [
    "MERGE_PATCH",
    "PDB_RETRY",
    "Action",
    "ActionResult",
    "ActuatorError",
    "ArgoRollback",
    "CordonNode",
    "DrainNode",
    "EvictionOutcome",
    "Guard",
    "GuardRejectedError",
    "GuardSettings",
    "KubeClients",
    "PatchHpa",
    "PermanentActuatorError",
    "RecreatePodElsewhere",
    "RestartPod",
    "RetryPolicy",
    "RollbackDeployment",
    "ScaleDeployment",
    "SetHpaMinReplicas",
    "TemporaryActuatorError",
    "call_with_retry",
    "classify_api_error",
    "evict_pod",
]
