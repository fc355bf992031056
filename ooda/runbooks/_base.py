"""What a runbook is, and the registry each runbook module adds itself to.

A runbook knows one failure: ``matches`` looks at a snapshot and returns a diagnosis when
the failure is there, ``propose`` turns the diagnosis into one bounded action, ``follow_up``
says what the owners must still do once that action has healed it (a finding), and
``deadline`` says how long verification waits for the heal. Runbooks are tried in
``priority`` order; the first diagnosis for a service wins. :func:`check_runbook` is the
contract every registered runbook passes; ``ooda chaos`` certifies each against the
scenarios it claims.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import timedelta
from typing import TYPE_CHECKING, ClassVar, TypeVar

from actuators import Action, ArgoRollback, RollbackDeployment
from contracts import MetricFamily, ScenarioId, WorkloadState
from ooda._records import ComponentKind, Diagnosis, Finding, Snapshot

if TYPE_CHECKING:
    from ooda._settings import OodaSettings


class Runbook(ABC):
    """One failure's diagnosis and heal."""

    name: ClassVar[str]
    scenarios: ClassVar[tuple[ScenarioId, ...]]
    """The scenarios this runbook is certified against."""
    priority: ClassVar[int] = 100
    """Lower runs first (a crash loop is diagnosed before a capacity shortfall)."""
    deadline: ClassVar[timedelta] = timedelta(minutes=10)
    """How long verification waits for the heal."""
    heals: ClassVar[ComponentKind] = ComponentKind.SERVICE
    """The kind of component whose fault it heals: the loop tries it first for a service
    whose diagnosed root cause is of this kind (``LoopSettings.follow_root_cause``)."""
    follows_root_cause: ClassVar[bool] = False
    """Whether the symptom it matches on can be another service's fault showing here (a slow
    or failing callee makes its callers slow, failing or lagging): then, when the diagnosed
    root cause is another service's to heal and that service's runbook heals it, the loop
    leaves the symptom to it. A runbook of the service's own load, pods, memory or nodes
    never defers."""
    last_resort: ClassVar[bool] = False
    """Whether its diagnosis is made by elimination (no named cause explains the symptom): it
    does not act while an action of ooda's for the service awaits its verdict, since that
    action may be what heals the symptom (a drain in flight, a database switched)."""
    acts_when_idle: ClassVar[bool] = False
    """Whether it diagnoses a service that serves no request (a warm standby): only a runbook
    whose evidence is the cluster's (a crash loop's restarts), not the SLIs, does; and the
    loop takes its action only where the action verifies on the workload alone
    (``Action.verifies_idle``)."""
    families: ClassVar[tuple[MetricFamily, ...]] = ()
    """Metric families beyond the service frame the runbook reads (the loop queries every
    family once per tick into ``Snapshot.families``; the detector reads them all)."""

    def __init__(self, settings: OodaSettings) -> None:
        self.settings = settings

    @abstractmethod
    def matches(self, snapshot: Snapshot, service: str) -> Diagnosis | None:
        """The diagnosis of ``service`` if this runbook's failure shows in ``snapshot``."""

    @abstractmethod
    def propose(self, diagnosis: Diagnosis, snapshot: Snapshot) -> Action | None:
        """One bounded action for ``diagnosis`` (None: nothing safe to do; escalate, with
        ``diagnosis.evidence["escalate_because"]`` as the reason where the runbook gave one)."""

    def follow_up(self, diagnosis: Diagnosis, action: Action, snapshot: Snapshot) -> Finding | None:
        """What the owners must still do once ``action`` has healed ``diagnosis``: the cause
        it worked around (None, the default: nothing; a scaled-out surge leaves no work)."""
        return None

    def diagnose(
        self,
        snapshot: Snapshot,
        service: str,
        confidence: float,
        evidence: dict[str, object],
        target: str | None = None,
    ) -> Diagnosis:
        """A diagnosis of this runbook's (first) scenario in ``service``, aimed at ``target``
        (by default the service's workload)."""
        return Diagnosis(
            scenario=self.scenarios[0],
            region=snapshot.region,
            service=service,
            target=target or snapshot.workloads[service].workload,
            confidence=confidence,
            evidence=evidence,
            runbook=self.name,
        )


_REGISTRY: dict[str, type[Runbook]] = {}
R = TypeVar("R", bound=type[Runbook])


def register_runbook(cls: R) -> R:
    """Class decorator: add ``cls`` to the runbooks the loop tries."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"runbook {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def registered_runbooks() -> dict[str, type[Runbook]]:
    """Every registered runbook by name, in priority order."""
    return dict(sorted(_REGISTRY.items(), key=lambda kv: (kv[1].priority, kv[0])))


def runbook_for(scenario: ScenarioId) -> list[type[Runbook]]:
    """The runbooks that claim ``scenario``."""
    return [rb for rb in registered_runbooks().values() if scenario in rb.scenarios]


def running_nodes(snapshot: Snapshot, service: str) -> list[str]:
    """The Ready nodes the service's pods run on, by name (the node runbooks' candidates; a
    NotReady node is the NotReady runbook's). A node a human cordoned is being handled; one
    ooda cordoned that still holds the service's pods is a drain that stopped (its
    PodDisruptionBudgets refused for the whole retry window, say), resumed here."""
    names = sorted({p.node for p in snapshot.workloads[service].pods if p.node})
    return [
        name
        for name in names
        if (node := snapshot.nodes.get(name)) is not None
        and not node.not_ready
        and (not node.unschedulable or node.cordoned_by_ooda)
    ]


def rollback(workload: WorkloadState, reason: str) -> Action:
    """Roll a workload back to its previous revision through whatever deployed it: its Argo
    CD Application when one lists the Deployment and has a sync to go back to (a patched
    Deployment would be synced straight back), else the Deployment's own history."""
    app = workload.argo
    if app is not None and app.previous_revision:
        return ArgoRollback(
            workload.namespace,
            workload.service,
            reason=f"{reason}; synced by argo cd application {app.name} to {app.revision}",
            application=app.name,
            argo_namespace=app.namespace,
        )
    return RollbackDeployment(
        workload.namespace, workload.service, reason=reason, deployment=workload.deployment
    )


def rolled_back(workload: WorkloadState, symptom: str) -> Finding:
    """The finding of a release rolled back: its owners must fix it before it goes out again
    (the revision is the one that was running when the rollback was chosen)."""
    return Finding(
        f"deployment/{workload.namespace}/{workload.deployment}",
        f"revision {workload.revision} of {workload.service} {symptom} and was rolled back:"
        " fix it before it is rolled out again",
    )


def drained(node: str, what: str, todo: str) -> Finding:
    """The finding of a node drained and left cordoned: ``what`` happened to it, and the
    owners ``todo`` before they uncordon it."""
    return Finding(
        f"node/{node}",
        f"node {node}{what}: its pods were moved and it is left cordoned; {todo}, then uncordon it",
    )


def check_runbook(cls: type[Runbook]) -> None:
    """The contract of a runbook class (its behaviour is certified by ``ooda chaos``)."""
    assert registered_runbooks().get(cls.name) is cls, f"{cls.name} is not registered"
    assert cls.scenarios, f"{cls.name} claims no scenario"
    assert all(isinstance(s, ScenarioId) for s in cls.scenarios)
    assert timedelta(0) < cls.deadline <= timedelta(hours=1), f"{cls.name}: deadline"
    assert isinstance(cls.heals, ComponentKind), f"{cls.name}: heals {cls.heals!r}"
