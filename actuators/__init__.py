"""Healing actions and the guard rails every one of them passes.

An autonomous actuator that is wrong is an outage, so nothing here touches the cluster
without a :class:`Guard` first saying yes (dry-run, cooldown, blast radius, circuit breaker
keyed on the workload), every action checks its own effect (:meth:`Action.check`) and knows
how to step back (:meth:`Action.undo`) without reverting someone else's change, and every
object it changes carries annotations naming ooda, the time and the audit entry.

An action is one module that registers itself under its :class:`contracts.ActionKind`
(:func:`register_action`); :func:`check_action` is the contract each must pass. Actions run
in one :class:`ActionContext`: the Kubernetes API objects (official client objects or the
lab's twins), the cloud clients (boto3's: SQS, RDS, Route 53), a real sleep unless a
simulated one is injected, retries, a timeout on every call, dry-run.

Exception tree::

    ActuatorError
    ├── PermanentActuatorError    the API refused for good (404, 400, 422, 403, an AWS client
    │   │                         error), or a bad value: never retried
    │   ├── ConflictError         undo refused: someone else changed the object since
    │   └── MalformedAnnotationError  an ooda.dev/ annotation was edited and no longer parses
    ├── TemporaryActuatorError    worth another try (409, 429, 5xx, network, AWS throttling):
    │                             retried, backing off
    └── GuardRejectedError        a guard rail or precondition refused: recorded as refused
        ├── BudgetRefusedError    a PodDisruptionBudget still refused the eviction after the
        │                         retries: tried again after the cooldown, never forced
        ├── NotLeaderError        this replica's Lease lapsed, or it is stopping, mid-action:
        │                         it stops at once and leaves the rest to the next leader
        └── NoRoomError           a serving pod it would move fits on no other node (the
                                  scheduler's filters, simulated): escalated for more room
"""

from __future__ import annotations

from actuators._argo_rollback import ArgoRollback
from actuators._base import (
    Action,
    ActionResult,
    action_class,
    register_action,
    registered_actions,
    slo_minutes,
    slo_outcome,
)
from actuators._context import (
    ACTION,
    AUDIT_ID,
    CHANGED_AT,
    CHANGED_BY,
    FIELD_MANAGER,
    PDB_RETRY,
    ActionContext,
    with_timeouts,
)
from actuators._contract import (
    CLOUD_MUTATING_PREFIXES,
    MUTATING_PREFIXES,
    CallSpy,
    check_action,
    spy_on,
    spy_on_cloud,
)
from actuators._cordon_node import CordonNode
from actuators._drain_node import SAFE_TO_EVICT, SAFE_TO_EVICT_LOCAL_VOLUMES, DrainNode
from actuators._errors import (
    ActuatorError,
    BudgetRefusedError,
    ConflictError,
    GuardRejectedError,
    MalformedAnnotationError,
    NoRoomError,
    NotLeaderError,
    PermanentActuatorError,
    TemporaryActuatorError,
    classify_api_error,
    cloud_error,
)
from actuators._guard import Guard, GuardKey, GuardSettings
from actuators._kill_container import COMMAND, KWOK_NODE, KillContainer
from actuators._kube import MERGE_PATCH, EvictionOutcome, evict_pod, node_unhealthy
from actuators._nodes import POOL_LABELS, node_pool
from actuators._patch_hpa import PatchHpa
from actuators._placement import Placement, place_pods
from actuators._rate_limit import LIMIT_RPS, RPS_SET, RateLimit
from actuators._recreate_pod import RecreatePodElsewhere
from actuators._redrive_queue import (
    MAX_MOVED,
    MIN_POLICY_RECEIVES,
    ORIGINAL_RECEIVES,
    RedriveQueue,
)
from actuators._reroute import (
    GATEWAY_GROUP,
    GATEWAY_VERSION,
    HTTPROUTES,
    MAX_WEIGHT,
    Reroute,
    rule_weights,
)
from actuators._restart_pod import RestartPod
from actuators._restore_config_key import RESTORED_KEY, RestoreConfigKey
from actuators._retry import RetryPolicy, call_with_retry
from actuators._rollback_deployment import REVISION, RollbackDeployment
from actuators._rollout_restart import RESTARTED_AT, RolloutRestart, template_content
from actuators._scale_consumers import ScaleConsumers
from actuators._scale_deployment import ScaleDeployment
from actuators._set_hpa_min import (
    FLOOR_BELOW,
    FLOOR_FOR,
    MIN_ORIGINAL,
    MIN_SET,
    SetHpaMinReplicas,
    floor_purpose,
    ooda_floor,
)
from actuators._shift_region import MAX_ROUTE53_WEIGHT, ShiftRegionTraffic
from actuators._switch_database import (
    ORIGINAL_ENDPOINT,
    SWITCHED_TRAFFIC,
    TRAFFIC,
    SwitchDatabase,
)
from contracts import CloudClients, KubeClients

__all__ = [
    "ACTION",
    "AUDIT_ID",
    "CHANGED_AT",
    "CHANGED_BY",
    "CLOUD_MUTATING_PREFIXES",
    "COMMAND",
    "FIELD_MANAGER",
    "FLOOR_BELOW",
    "FLOOR_FOR",
    "GATEWAY_GROUP",
    "GATEWAY_VERSION",
    "HTTPROUTES",
    "KWOK_NODE",
    "LIMIT_RPS",
    "MAX_MOVED",
    "MAX_ROUTE53_WEIGHT",
    "MAX_WEIGHT",
    "MERGE_PATCH",
    "MIN_ORIGINAL",
    "MIN_POLICY_RECEIVES",
    "MIN_SET",
    "MUTATING_PREFIXES",
    "ORIGINAL_ENDPOINT",
    "ORIGINAL_RECEIVES",
    "PDB_RETRY",
    "POOL_LABELS",
    "RESTARTED_AT",
    "RESTORED_KEY",
    "REVISION",
    "RPS_SET",
    "SAFE_TO_EVICT",
    "SAFE_TO_EVICT_LOCAL_VOLUMES",
    "SWITCHED_TRAFFIC",
    "TRAFFIC",
    "Action",
    "ActionContext",
    "ActionResult",
    "ActuatorError",
    "ArgoRollback",
    "BudgetRefusedError",
    "CallSpy",
    "CloudClients",
    "ConflictError",
    "CordonNode",
    "DrainNode",
    "EvictionOutcome",
    "Guard",
    "GuardKey",
    "GuardRejectedError",
    "GuardSettings",
    "KillContainer",
    "KubeClients",
    "MalformedAnnotationError",
    "NoRoomError",
    "NotLeaderError",
    "PatchHpa",
    "PermanentActuatorError",
    "Placement",
    "RateLimit",
    "RecreatePodElsewhere",
    "RedriveQueue",
    "Reroute",
    "RestartPod",
    "RestoreConfigKey",
    "RetryPolicy",
    "RollbackDeployment",
    "RolloutRestart",
    "ScaleConsumers",
    "ScaleDeployment",
    "SetHpaMinReplicas",
    "ShiftRegionTraffic",
    "SwitchDatabase",
    "TemporaryActuatorError",
    "action_class",
    "call_with_retry",
    "check_action",
    "classify_api_error",
    "cloud_error",
    "evict_pod",
    "floor_purpose",
    "node_pool",
    "node_unhealthy",
    "ooda_floor",
    "place_pods",
    "register_action",
    "registered_actions",
    "rule_weights",
    "slo_minutes",
    "slo_outcome",
    "spy_on",
    "spy_on_cloud",
    "template_content",
    "with_timeouts",
]
