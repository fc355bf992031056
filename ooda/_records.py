"""The typed records the five stages hand each other.

observe -> :class:`Snapshot` (with an :class:`Orientation` per symptom); orient ->
:class:`Diagnosis`; decide -> :class:`Plan`;
act -> ``actuators.ActionResult``; verify -> ``contracts.Outcome``. Region is a field from
the start, so a second region adds data, not a new shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Any, TypeVar, cast

import numpy as np
import pandas as pd

from actuators import Action, ActionResult
from contracts import MetricFamily, NodeState, PodState, ScenarioId, WorkloadState
from ooda._logs import TemplateSurge

T = TypeVar("T")


@dataclass(frozen=True)
class AnomalyScores:
    """Scores of one request: per service, and the model version that produced them."""

    model_version: str
    scores: dict[str, float]
    anomalous: dict[str, bool]


@dataclass(frozen=True)
class LoadForecast:
    """A forecast of request rate per service (columns service, timestamp, q10, q50, q90)."""

    model_version: str
    frame: pd.DataFrame
    sources: dict[str, str] = field(default_factory=dict)
    """Per service, what its rows came from when the forecast is a plan (a version, or a
    baseline of ``ooda._forecast_plan``); empty: ``model_version`` for every service."""
    _peaks: dict[tuple[Any, ...], dict[str, float]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def source(self, service: str) -> str:
        """What ``service``'s rows came from."""
        return self.sources.get(service, self.model_version)

    def peak(self, service: str, after: datetime, until: datetime, quantile: str) -> float | None:
        """The highest ``quantile`` forecast for ``service`` in (after, until], or None.

        Computed for every service in one pass the first time a window is asked for, so a
        tick over many services does not filter the frame once per service.
        """
        key = (after, until, quantile)
        if key not in self._peaks:
            frame = self.frame
            inside = frame[
                (frame["timestamp"] > pd.Timestamp(after))
                & (frame["timestamp"] <= pd.Timestamp(until))
            ]
            peaks = inside.groupby("service")[quantile].max()
            self._peaks[key] = {str(s): float(v) for s, v in peaks.items()}
        return self._peaks[key].get(service)


#: Why an idle service's SLIs are not judged: it served no request in the newest minute.
IDLE = "idle: no requests in the newest minute (no p95, no errors)"


@dataclass
class ServiceView:
    """What the loop knows about one service's metrics this tick."""

    service: str
    history: pd.DataFrame
    problems: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """Whether the loop may act on this service this tick."""
        return not self.problems

    @property
    def idle(self) -> bool:
        """Whether the service's only problem is that it serves no one (a warm standby): its
        SLIs say nothing, but its pods' own faults (a crash loop) can still be healed."""
        return self.problems == [IDLE]

    @property
    def latest(self) -> pd.Series:
        """The newest row of the service's metrics."""
        return self.history.iloc[-1]


class ComponentKind(StrEnum):
    """What a component of the estate is: the kind of fault a runbook heals."""

    SERVICE = "service"
    NODE = "node"
    DATABASE = "database"
    TOPIC = "topic"
    QUEUE = "queue"
    UPSTREAM = "upstream"


@dataclass(frozen=True)
class RootCause:
    """One ranked candidate cause of a symptom."""

    component: str
    kind: ComponentKind
    score: float
    anomaly: float
    """Its peak robust z-score since the symptom's onset (its worst signal)."""
    path: tuple[str, ...]
    """From the symptom's service down to it."""
    owners: tuple[str, ...]
    """The services whose runbooks heal it: the service itself, or those that use it."""
    changes: tuple[str, ...] = ()
    """What changed in it before the symptom (a rollout, a config edit, a cordon, ooda's own
    actions), newest first: evidence beside the score."""


@dataclass(frozen=True)
class Orientation:
    """Where a symptom comes from: the ranked causes of one service's symptom."""

    symptom: str
    """The service that shows it."""
    why: str
    """What the symptom is (over the objective, the detector's flag)."""
    normal_until: datetime
    """The causes are judged against the metrics before this."""
    causes: tuple[RootCause, ...]
    """Best first; empty: nothing explains it yet."""
    unranked: str = ""
    """Why nothing could be ranked, when the metrics did not allow it (no normal window
    before ``normal_until``, no signal of the symptom's service after it); "" otherwise."""

    @property
    def top(self) -> RootCause | None:
        """The best-ranked cause, if any."""
        return self.causes[0] if self.causes else None

    def elsewhere(self) -> RootCause | None:
        """The top cause when it is not the symptom's own service or something only it uses
        (the fault is another service's to heal)."""
        top = self.top
        if top is None or self.symptom in top.owners:
            return None
        return top

    def summary(self, k: int = 3) -> list[dict[str, Any]]:
        """The first ``k`` causes as the audit log keeps them."""
        out: list[dict[str, Any]] = []
        for c in self.causes[:k]:
            cause = {"component": c.component, "kind": str(c.kind), "score": round(c.score, 3)}
            out.append({**cause, "changes": list(c.changes)} if c.changes else cause)
        return out


@dataclass(frozen=True)
class QueuePolicy:
    """An SQS queue's redrive policy as read this tick, and whether ooda lowered it."""

    name: str
    max_receive_count: int
    """The ``maxReceiveCount`` of its RedrivePolicy now."""
    found_max_receive_count: int | None
    """The count before ooda lowered it (its tag); None: the policy is not ooda's."""
    changed_at: datetime | None
    """When ooda last set it (its tag); None: unknown or not ooda's."""


@dataclass(frozen=True)
class Snapshot:
    """Everything observed in one tick: metrics, cluster state (read once), scores, forecast."""

    at: datetime
    region: str
    namespace: str
    views: dict[str, ServiceView]
    workloads: dict[str, WorkloadState]
    """Per service; a service whose cluster state could not be read is absent."""
    scores: AnomalyScores | None
    forecast: LoadForecast | None
    nodes: dict[str, NodeState] = field(default_factory=dict)
    """Every node of the cluster (empty where they could not be read)."""
    families: dict[MetricFamily, pd.DataFrame] = field(default_factory=dict)
    """Clean frames of the metric families the runbooks read (absent: not available)."""
    crashlooping_since: dict[str, datetime] = field(default_factory=dict)
    """Per service in a crash loop: since when this loop has seen a pod in CrashLoopBackOff
    there without a break (pods come and go in a crash loop; a rollout replaces them all)."""
    crash_looped: dict[str, frozenset[str]] = field(default_factory=dict)
    """Per service: its pods this loop saw in CrashLoopBackOff within the crash-loop gap,
    running now or not (a container runs for a while between two crashes)."""
    pod_logs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Per crash-looping pod: the last lines its previous container wrote (absent where they
    could not be read)."""
    log_surges: dict[str, tuple[TemplateSurge, ...]] = field(default_factory=dict)
    """Per service failing requests beyond its objective in the newest minute: the message
    templates that surged in its pods' logs over the orient window, strongest first (absent:
    not failing)."""
    orientation: dict[str, Orientation] = field(default_factory=dict)
    """Per service showing a symptom: its ranked root causes (absent: no symptom, or the
    ranking could not be made this tick)."""
    queues: dict[str, QueuePolicy] = field(default_factory=dict)
    """The redrive policy of each SQS queue in the metrics, by name (absent: no SQS client,
    no policy, or it could not be read)."""

    _memo: dict[tuple[Any, ...], Any] = field(default_factory=dict, compare=False, repr=False)

    def once(self, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        """``compute()``, computed once per snapshot for ``key``: a node's judgement (its
        retransmits, its disk's projection) serves every service with pods on it."""
        if key not in self._memo:
            self._memo[key] = compute()
        return cast(T, self._memo[key])

    def rows_of(self, family: MetricFamily, column: str, *values: Any) -> pd.DataFrame:
        """The rows of ``family``'s frame whose ``column`` is one of ``values``, in the
        frame's order within each value (empty when none, or no such frame). The frame is
        sorted by ``column`` once per snapshot: the runbooks ask per service and per node,
        thousands of times a tick on a large estate, and a boolean mask over the whole frame
        each time cost seconds."""
        frame, spans = self.once(("rows_of", family, column), partial(self._index, family, column))
        found = [spans[v] for v in values if v in spans]
        if len(found) == 1:
            return frame.iloc[found[0][0] : found[0][1]]
        return pd.concat([frame.iloc[a:b] for a, b in found]) if found else frame.iloc[:0]

    def _index(
        self, family: MetricFamily, column: str
    ) -> tuple[pd.DataFrame, dict[Any, tuple[int, int]]]:
        """``family``'s frame sorted by ``column`` (stable), and each value's row span."""
        frame = self.families.get(family)
        if frame is None or column not in frame.columns:
            return pd.DataFrame(), {}
        frame = frame.sort_values(column, kind="stable")
        keys = frame[column].to_numpy()
        starts: list[int] = []
        if len(keys):
            starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]).tolist()
        ends = [*starts[1:], len(keys)]
        return frame, {keys[a]: (a, b) for a, b in zip(starts, ends, strict=True)}

    def crashlooping(self, service: str) -> tuple[PodState, ...]:
        """The pods of ``service`` in a crash loop: waiting in CrashLoopBackOff now, or
        seen so within the crash-loop gap; most restarts first."""
        workload = self.workloads[service]
        looped = self.crash_looped.get(service, frozenset())
        pods = (p for p in workload.pods if p.crashlooping or p.name in looped)
        return tuple(sorted(pods, key=lambda p: -p.restarts))

    def usable(self) -> list[str]:
        """Services whose metrics and cluster state can be trusted this tick."""
        return [s for s, v in self.views.items() if v.usable and s in self.workloads]

    def idle(self) -> list[str]:
        """Services that serve no request now but whose cluster state can be trusted."""
        return [s for s, v in self.views.items() if v.idle and s in self.workloads]

    def score(self, service: str) -> float | None:
        """The anomaly score of ``service``, if one came back."""
        if self.scores is None:
            return None
        return self.scores.scores.get(service)


@dataclass(frozen=True)
class Diagnosis:
    """What orient concluded about one service: the suspected scenario and its evidence."""

    scenario: ScenarioId
    region: str
    service: str
    target: str
    """The workload (``namespace/deployment``) or object the runbook will act on."""
    confidence: float
    evidence: dict[str, Any]
    runbook: str


class Autonomy(StrEnum):
    """How far a plan may go."""

    ACT = "act"
    PROPOSE = "propose"
    """Logged and reported for a human, not applied (budget used up, or configured so)."""
    DRY_RUN = "dry-run"
    """Previewed: read-only calls, no guard slot used."""


@dataclass(frozen=True)
class Plan:
    """The action decide chose for a diagnosis, and how far it may go."""

    diagnosis: Diagnosis
    action: Action
    autonomy: Autonomy
    deadline: timedelta
    """How long verification waits for the heal."""
    why: str = ""
    """Why the autonomy is below ``ACT``, for the audit log."""


#: The verification outcome of an action that a later step of the same heal continued.
CONTINUED = "continued"

#: The evidence key of a diagnosis' :class:`Finding` (``{"subject": ..., "text": ...}``).
FOLLOW_UP = "follow_up"


@dataclass(frozen=True)
class Finding:
    """What the owners must still do once a heal has worked: the cause the action only worked
    around (a leak to fix, a drained node to repair and uncordon, a release rolled back). The
    loop opens it after the heal is verified, as a ticket, not a page."""

    subject: str
    """What it is about (``node/worker-2``, ``deployment/shop/checkout``, ``queue/orders``);
    one finding per subject and scenario is opened in ``EscalationSettings.finding_every``."""
    text: str
    """What happened and what a human should do, in a sentence or two."""

    def record(self) -> dict[str, str]:
        """As the audit log keeps it."""
        return {"subject": self.subject, "text": self.text}

    @classmethod
    def of(cls, record: object) -> Finding | None:
        """From :meth:`record`'s form (None for anything else)."""
        if not isinstance(record, dict):
            return None
        subject, text = record.get("subject"), record.get("text")
        if not isinstance(subject, str) or not isinstance(text, str):
            return None
        return cls(subject, text)


@dataclass(frozen=True)
class PendingAction:
    """An applied action waiting for its verdict."""

    action: Action
    result: ActionResult
    applied_at: datetime
    deadline: datetime
    audit_id: int
    """The audit entry of the action's result; verification refers to it."""
    scenario: ScenarioId
    finding: Finding | None = None
    """Opened for the owners once the heal is verified (None: nothing left to do)."""
