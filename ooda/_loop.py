"""The control loop: observe -> orient -> decide -> act -> verify, once per tick.

``tick`` reads the metrics and the cluster once into a :class:`Snapshot`, asks the models
once, judges the actions awaiting verification, then lets the runbooks diagnose each usable
service and acts on at most one plan per service. Nothing that goes wrong in one stage for
one target stops the loop: it is reported with the reason, that target is left alone this
tick, and the loop carries on. On the wall clock an action that may wait minutes on the
cluster (a drain paced by its budgets) runs beside the ticks and is recorded at the first tick
after it returned, so one slow heal never stops the watch over the rest. Memory (guard,
budget, pending verifications) is rebuilt from the audit log when a loop starts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import pandas as pd

from actuators import ActionContext, Guard, with_timeouts
from contracts import (
    Clock,
    CloudClients,
    KubeClients,
    MetricFamily,
    MetricSource,
    NodeState,
    WorkloadState,
)
from features import MetricSourceError
from ooda._act import Actor, Running
from ooda._audit import AuditStore
from ooda._autonomy import ErrorBudget
from ooda._changes import change_events
from ooda._cluster_state import read_heartbeat_lags, read_nodes, read_workloads
from ooda._detector_watch import DetectorRegistry, DetectorWatch
from ooda._errors import BadMetricsError, ScoringUnavailableError
from ooda._forecast_plan import ForecastPlanner
from ooda._incidents import (
    LOG_BASELINE,
    LOG_TAIL_LINES,
    IncidentRecorder,
    cause_logs,
    causes_record,
    log_surges,
)
from ooda._journal import Journal, LoopEvent, LoopStats
from ooda._log_evidence import PodLogEvidence
from ooda._memory import ClusterMemory
from ooda._model_watch import ForecasterRegistry, ForecastWatch, WatchEvent
from ooda._observe import (
    check_forecast,
    clean_family,
    clean_metrics,
    clean_scores,
    detector_rows,
    forecast_history,
    service_views,
)
from ooda._orient import component_kinds, estate_graph, orientations
from ooda._predictive import PREDICTIVE
from ooda._queue_policies import QueuePolicyReader
from ooda._records import (
    IDLE,
    AnomalyScores,
    LoadForecast,
    Orientation,
    PendingAction,
    Plan,
    QueuePolicy,
    RootCause,
    ServiceView,
    Snapshot,
)
from ooda._recover import approved_since, recover
from ooda._scoring import Scorer
from ooda._settings import OodaSettings
from ooda._verify import Verifier
from ooda.runbooks import Runbook, registered_runbooks, surging

log = logging.getLogger("ooda.loop")

FeaturePusher = Callable[[pd.DataFrame], None]


def with_changes(cause: RootCause, changes: dict[str, list[str]]) -> RootCause:
    """``cause`` with the changes its component saw (at most five, newest first)."""
    return replace(cause, changes=tuple(changes.get(cause.component, ())[:5]))


@dataclass(frozen=True)
class _Forecasted:
    """The outcome of asking for a forecast at ``asked_at``."""

    asked_at: datetime
    forecast: LoadForecast | None
    notes: list[str]
    failed: bool
    raw: LoadForecast | None = None
    """The answer as it came, before any check (the accuracy watch judges it)."""


class ControlLoop:
    """One ooda control loop over the services of one namespace in one region."""

    def __init__(
        self,
        settings: OodaSettings,
        *,
        clock: Clock,
        source: MetricSource,
        scorer: Scorer,
        kube: KubeClients,
        audit: AuditStore,
        guard: Guard | None = None,
        sleep: Callable[[float], None] | None = None,
        push_features: FeaturePusher | None = None,
        runbooks: Sequence[Runbook] | None = None,
        cloud: CloudClients | None = None,
        may_act: Callable[[], bool] | None = None,
        models: ForecasterRegistry | None = None,
        detectors: DetectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.watch = ForecastWatch(settings.watch, models)
        self.planner = ForecastPlanner(settings.watch, self.watch)
        self.detector_watch = DetectorWatch(settings.detector_watch, detectors)
        self._may_act = may_act
        self.clock = clock
        self.source = source
        self.scorer = scorer
        self.kube = with_timeouts(kube, settings.loop.api_timeout_s)
        self.audit = audit
        self.guard = guard or Guard(settings.guard)
        self.push_features = push_features
        self.journal = Journal(audit)
        self.budget = ErrorBudget(settings.autonomy)
        context = ActionContext(
            kube,
            sleep=sleep or clock.sleep,
            now=clock.now,
            api_timeout_s=settings.loop.api_timeout_s,
            cloud=cloud or CloudClients(),
            may_act=self._still_may_act,
        )
        books = (
            list(runbooks)
            if runbooks is not None
            else [cls(settings) for cls in registered_runbooks().values()]
        )
        self.actor = Actor(settings, books, self.guard, self.budget, self.journal, context)
        sqs = context.cloud.sqs
        self._queue_reader = None if sqs is None else QueuePolicyReader(sqs)
        # Every family: the runbooks read theirs, the detector all (``features.service_rollup``).
        self._families = list(MetricFamily)
        self.verifier = Verifier(settings, self.guard, self.budget, self.journal, context)
        self.pending: list[PendingAction] = []
        self.running: list[Running] = []
        """Actions started beside the ticks (``LoopSettings.act_in_background``) that have not
        returned yet."""
        self._closing = False
        self._forecast: LoadForecast | None = None
        self._forecast_at: datetime | None = None
        self._forecast_asked_at: datetime | None = None
        self._forecast_failed = False
        self._forecast_job: Future[_Forecasted] | None = None
        self._surging: set[str] = set()
        policy = settings.policy
        self.memory = ClusterMemory(policy.crashloop_gap, policy.change_memory)
        self._scored_key: tuple[Any, ...] = ()
        self._scored: AnomalyScores | None = None
        self._scored_at: datetime | None = None
        self._logs: dict[tuple[str, int], tuple[str, ...]] = {}
        self.log_evidence = PodLogEvidence(self._read_log, settings.loop.orient_recent)
        self._metrics = pd.DataFrame()
        self.incidents = IncidentRecorder(audit)
        self._oriented: dict[str, Orientation] = {}
        self._oriented_key: tuple[Any, ...] = ()
        self._oriented_at: datetime | None = None
        self._surges_at: datetime | None = None
        self._surges: dict[str, list[dict[str, Any]]] = {}
        self._last_reset = 0
        # Forecasts are asked for in this thread (LoopSettings.forecast_in_background).
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ooda-forecast")
        self._acting = (
            ThreadPoolExecutor(max_workers=4, thread_name_prefix="ooda-act")
            if settings.loop.act_in_background
            else None
        )
        self._restore()

    @property
    def events(self) -> list[LoopEvent]:
        """The timeline of detections, actions and verdicts."""
        return self.journal.events

    @property
    def stats(self) -> LoopStats:
        """Counters of what the loop did."""
        return self.journal.stats

    def wait_for_forecast(self, timeout: float | None = None) -> None:
        """Wait until a forecast asked for in the background has arrived (the next tick plans
        on it); returns at once when none is in flight."""
        job = self._forecast_job
        if job is not None:
            job.result(timeout=timeout)

    # -- the tick -------------------------------------------------------------------------
    def tick(self) -> None:
        """Run one pass of observe, orient, decide, act and verify; never raises."""
        now = self.clock.now()
        self.stats.ticks += 1
        self._collect(now)
        snapshot = self._stage("*", now, "observe", lambda: self.observe(now))
        if snapshot is None:
            return
        self._stage("*", now, "breaker resets", self._honour_resets)
        self._stage("*", now, "approvals", self._adopt_approved)
        self.pending = [
            p
            for p in self.pending
            if not self._stage(p.action.service, now, "verify", partial(self._judge, p, snapshot))
        ]
        if self.verifier.open_findings:
            self._stage("*", now, "findings", partial(self.verifier.settle_findings, snapshot))
        # One action per object a tick, however many services see it; none on an object whose
        # action is still running.
        acted = {r.plan.action.target for r in self.running}
        acted_for: set[str] = set()
        running = {r.plan.action.service for r in self.running}
        awaiting = {p.action.service for p in self.pending} | running
        for service in snapshot.usable() + snapshot.idle():
            decide = partial(self.actor.decide, snapshot, service, service in awaiting)
            plan = self._stage(service, now, "decide", decide)
            if plan is None or plan.action.target in acted:
                continue
            if not self._still_may_act():
                self.journal.problem("*", now, "not the leader any more: acting stopped", "leader")
                self._stage("*", now, "incidents", partial(self._record_incidents, snapshot))
                return
            acted.add(plan.action.target)
            acted_for.add(service)
            act = partial(self.actor.act, plan, now, self._acting)
            outcome = self._stage(service, now, "act", act)
            if isinstance(outcome, Running):
                self.running.append(outcome)
            else:
                self._await_verdict(plan, outcome, now)
        busy = {p.action.service for p in self.pending} | acted_for | running
        self._stage("*", now, "unexplained", partial(self.actor.unexplained, snapshot, busy))
        self._stage("*", now, "incidents", partial(self._record_incidents, snapshot))

    def _still_may_act(self) -> bool:
        """Whether this replica still holds the Lease (always, without an election) and is not
        stopping: asked inside long actions too, so a drain stops when the Lease lapses
        mid-action or the loop is closed."""
        return not self._closing and (self._may_act is None or self._may_act())

    def _collect(self, now: datetime) -> None:
        """Record the actions run beside the ticks that have returned, as applied at ``now``."""
        still = []
        for running in self.running:
            if not running.job.done():
                still.append(running)
                continue
            finish = partial(self.actor.finish, running, now)
            pending = self._stage(running.plan.action.service, now, "act", finish)
            self._await_verdict(running.plan, pending, now)
        self.running = still

    def _await_verdict(self, plan: Plan, pending: PendingAction | None, now: datetime) -> None:
        """Judge an applied action later; a predictive floor is not a heal and awaits none."""
        if pending is not None and plan.diagnosis.runbook != PREDICTIVE:
            self._add_pending(pending, now)

    def settle(self, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` seconds for the actions still running and record those that
        returned (``ooda run --once``: the tick's actions are in its audit lines)."""
        if self.running:
            wait([r.job for r in self.running], timeout=timeout)
            self._collect(self.clock.now())

    def close(self, timeout: float = 30.0) -> None:
        """Stop: a running action stops before its next round of evictions (refused, the rest
        left for the next start, which rebuilds from the audit log); wait up to ``timeout``
        seconds for them and record how they ended. Idempotent."""
        self._closing = True
        self.settle(timeout)
        if self._acting is not None:
            self._acting.shutdown(wait=False)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _add_pending(self, pending: PendingAction, now: datetime) -> None:
        """Await ``pending``'s verdict; a step that continues an earlier action closes it and
        keeps its deadline, so a heal in steps is judged by when it began (a budget that never
        lets a drain finish fails the heal, not one step after another forever)."""
        kept = []
        for earlier in self.pending:
            if self.verifier.continued(earlier, pending, now):
                pending = replace(pending, deadline=min(pending.deadline, earlier.deadline))
            else:
                kept.append(earlier)
        self.pending = [*kept, pending]

    def _judge(self, pending: PendingAction, snapshot: Snapshot) -> bool:
        return self.verifier.judge(pending, snapshot)

    def _stage(self, service: str, now: datetime, stage: str, fn: Callable[[], Any]) -> Any:
        """Run one stage for one target; an exception is reported and yields None."""
        try:
            with self.stats.timed(stage):
                result = fn()
        except Exception as exc:
            reason = f"{stage} failed: {type(exc).__name__}: {exc}"
            self.journal.problem(service, now, reason, stage)
            return None
        self.journal.clear(service, stage)
        return result

    # -- observe --------------------------------------------------------------------------
    def observe(self, now: datetime) -> Snapshot | None:
        """Metrics, cluster state, scores and forecast of this tick (None: nothing usable)."""
        cfg = self.settings.loop
        services = list(self.settings.services)
        try:
            with self.stats.timed("metrics"):
                raw = self.source.query_range(now - cfg.observe_window, now, timedelta(minutes=1))
                metrics, notes = clean_metrics(raw, now)
        except (
            BadMetricsError,
            MetricSourceError,
            OSError,
            ValueError,
            KeyError,
            TypeError,
        ) as exc:
            self.journal.problem("*", now, f"metric source failed: {exc}")
            return None
        for note in notes:
            self.journal.problem("*", now, f"metrics: {note}")
        if not notes:
            self.journal.clear("*")
        self._metrics = metrics
        with self.stats.timed("metrics"):
            views = service_views(metrics, services, now, cfg.max_staleness)
        self._stage("*", now, "accuracy watch", partial(self._watch, now, views))
        try:
            with self.stats.timed("cluster"):
                workloads = read_workloads(self.kube, self.settings.namespace, services)
                nodes = read_nodes(self.kube)
        except Exception as exc:
            self.journal.problem("*", now, f"reading cluster state failed: {exc}")
            workloads, nodes = {}, {}
        if nodes:
            # Without them a dead kubelet is seen from its Ready condition alone, 20 s later.
            lags = self._stage("*", now, "node heartbeats", partial(read_heartbeat_lags, self.kube))
            for name, lag in (lags or {}).items():
                if name in nodes:
                    nodes[name] = replace(nodes[name], heartbeat_lag_s=lag)
        workloads, looping_since, looped = self.memory.update(now, workloads)
        pod_logs = self._crash_logs(workloads, looped)
        for service, view in views.items():
            if view.idle:
                limits = "only its pods' own faults are acted on"
                self.journal.problem(service, now, IDLE, limits=limits)
            elif not view.usable:
                self.journal.problem(service, now, "; ".join(view.problems))
            elif service not in workloads and workloads:
                self.journal.problem(service, now, f"no Deployment {service!r} found")
            else:
                self.journal.clear(service)
        usable = [s for s, v in views.items() if v.usable]
        if self.push_features is not None and usable:
            self._stage("*", now, "features", lambda: self._push(metrics, usable))
        # A due forecast is asked for in a thread while the anomaly scores are fetched, and
        # planned on once it has arrived: a slow forecaster never delays detection. Runs
        # that must be reproducible (simulated clocks) wait for it instead.
        background = self.settings.loop.forecast_in_background
        due = self._forecast_due(now, views, usable)
        if due and background and self._forecast_job is None:
            self._forecast_asked_at = now
            ask = partial(self._ask_forecast, now, metrics, views, usable)
            self._forecast_job = self._pool.submit(ask)
        families = self._read_families(now)
        queues = self._queue_policies(now, families)
        scores = self._scores(now, metrics, usable, families, views)
        if due and not background:
            self._forecast_asked_at = now
            self._take_forecast(self._ask_forecast(now, metrics, views, usable))
        forecast = self._current_forecast(now)
        oriented = self._stage(
            "*",
            now,
            "orient",
            partial(self._orient, now, metrics, views, usable, scores, workloads, nodes),
        )
        failing = {
            s: workloads[s]
            for s in usable
            if s in workloads
            and float(views[s].history["error_rate"].iloc[-1])
            > self.settings.slo_for(s).max_error_rate
        }
        surges = self._stage("*", now, "logs", partial(self.log_evidence.surges, now, failing))
        return Snapshot(
            at=now,
            region=self.settings.region,
            namespace=self.settings.namespace,
            views=views,
            workloads=workloads,
            scores=scores,
            forecast=forecast,
            nodes=nodes,
            families=families,
            crashlooping_since=looping_since,
            crash_looped=looped,
            pod_logs=pod_logs,
            log_surges=surges or {},
            orientation=oriented or {},
            queues=queues,
        )

    def _crash_logs(
        self, workloads: dict[str, WorkloadState], looped: dict[str, frozenset[str]]
    ) -> dict[str, tuple[str, ...]]:
        """The last ``crash_log_lines`` of each crash-looping pod's previous container, read
        once per crash (keyed on its restart count); a log that cannot be read is absent."""
        lines = self.settings.loop.crash_log_lines
        out: dict[str, tuple[str, ...]] = {}
        seen: dict[tuple[str, int], tuple[str, ...]] = {}
        for service, workload in workloads.items():
            names = looped.get(service, frozenset())
            for pod in workload.pods:
                if not (pod.crashlooping or pod.name in names):
                    continue
                key = (pod.name, pod.restarts)
                cached = self._logs.get(key)
                if cached is None:
                    try:
                        text = self.kube.core_v1.read_namespaced_pod_log(
                            pod.name, workload.namespace, previous=True, tail_lines=lines
                        )
                    except Exception as exc:  # no log is no evidence, never a failed tick
                        log.debug("no log for %s: %s", pod.name, exc)
                        continue
                    cached = tuple(line for line in str(text).splitlines() if line.strip())
                seen[key] = out[pod.name] = cached
        self._logs = seen
        return out

    def _read_families(self, now: datetime) -> dict[MetricFamily, pd.DataFrame]:
        """The metric families the runbooks read; one that fails is reported and absent."""
        out: dict[MetricFamily, pd.DataFrame] = {}
        window = self.settings.loop.family_window
        for family in self._families:
            channel = f"family {family}"
            try:
                with self.stats.timed("metrics"):
                    raw = self.source.query_family(family, now - window, now, timedelta(minutes=1))
                    frame, notes = clean_family(raw, family, now)
            except Exception as exc:  # any source failure: that family is not trusted
                self.journal.problem("*", now, f"{family} metrics failed: {exc}", channel)
                continue
            for note in notes:
                self.journal.problem("*", now, f"metrics: {note}", channel)
            if not notes:
                self.journal.clear("*", channel)
            out[family] = frame
        return out

    def _queue_policies(
        self, now: datetime, families: dict[MetricFamily, pd.DataFrame]
    ) -> dict[str, QueuePolicy]:
        """The redrive policies of the queues in this tick's metrics (none without SQS)."""
        frame = families.get(MetricFamily.QUEUE)
        if self._queue_reader is None or frame is None or frame.empty:
            return {}
        with self.stats.timed("cluster"):
            found, problems = self._queue_reader.read(frame["queue_name"].astype(str))
        for problem in problems:
            self.journal.problem("*", now, f"reading {problem}", "queues")
        if not problems:
            self.journal.clear("*", "queues")
        return found

    def _symptom(self, service: str, view: ServiceView, scores: AnomalyScores | None) -> str:
        """What ``service`` shows in its newest minute ("" when nothing)."""
        latest, slo = view.latest, self.settings.slo_for(service)
        shows = []
        if float(latest["p95_latency_ms"]) > slo.p95_ms:
            shows.append(f"p95 {float(latest['p95_latency_ms']):.0f} ms")
        if float(latest["error_rate"]) > slo.max_error_rate:
            shows.append(f"errors {float(latest['error_rate']):.2%}")
        if scores is not None and scores.anomalous.get(service):
            shows.append(f"anomaly score {scores.scores[service]:.2f}")
        return ", ".join(shows)

    def _orient(
        self,
        now: datetime,
        metrics: pd.DataFrame,
        views: dict[str, ServiceView],
        usable: list[str],
        scores: AnomalyScores | None,
        workloads: dict[str, WorkloadState],
        nodes: dict[str, NodeState],
    ) -> dict[str, Orientation]:
        """The ranked root causes of each usable service that shows a symptom, judged on the
        newest ``orient_recent`` against the ``orient_window`` before, with the changes each
        saw in that window; refreshed once a minute (the metrics' resolution) or when
        another service starts to show one."""
        cfg = self.settings.loop
        symptoms = {s: why for s in usable if (why := self._symptom(s, views[s], scores))}
        if not symptoms:
            self._oriented, self._oriented_key = {}, ()
            return {}
        key = tuple(sorted(symptoms))
        at = self._oriented_at
        if key == self._oriented_key and at is not None and now - at < cfg.score_every:
            return self._oriented
        families = self._orient_families(now)
        normal_until = (now - cfg.orient_recent).replace(second=0, microsecond=0)
        found = orientations(self._calls(), metrics, families, symptoms, normal_until)
        found = self._with_changes(now, found, workloads, nodes)
        for service, orientation in found.items():
            top = orientation.top
            before = self._oriented.get(service)
            if orientation.unranked and (before is None or before.unranked != orientation.unranked):
                self.journal.event(
                    now, "root cause", service, f"not ranked: {orientation.unranked}"
                )
            if top is not None and (
                before is None or before.top is None or before.top.component != top.component
            ):
                self.journal.event(
                    now,
                    "root cause",
                    service,
                    f"{orientation.why}: {top.component} ({top.kind}, z {top.anomaly:.0f}, "
                    f"via {' > '.join(top.path)})",
                )
        self._oriented, self._oriented_key, self._oriented_at = found, key, now
        return found

    def _with_changes(
        self,
        now: datetime,
        found: dict[str, Orientation],
        workloads: dict[str, WorkloadState],
        nodes: dict[str, NodeState],
    ) -> dict[str, Orientation]:
        """Each ranked cause with the changes its component saw in the orient window."""
        since = now - self.settings.loop.orient_window
        actions = self.audit.entries("action", since=since)
        changes = change_events(workloads, nodes, actions, since)
        return {
            s: replace(o, causes=tuple(with_changes(c, changes) for c in o.causes))
            for s, o in found.items()
        }

    def _calls(self) -> dict[str, tuple[str, ...]]:
        return {s: tuple(self.settings.calls.get(s, ())) for s in self.settings.services}

    def _orient_families(self, now: datetime) -> dict[MetricFamily, pd.DataFrame]:
        """Every family over ``orient_window``; one that cannot be read is left out (observe
        reported it), and its components go unranked."""
        families = {}
        for family in MetricFamily:
            try:
                raw = self.source.query_family(
                    family, now - self.settings.loop.orient_window, now, timedelta(minutes=1)
                )
                families[family], _ = clean_family(raw, family, now)
            except Exception:
                continue
        return families

    # -- incidents ------------------------------------------------------------------------
    def _record_incidents(self, snapshot: Snapshot) -> None:
        written = self.journal.drain()
        context = partial(self._incident_context, snapshot)
        self.incidents.record(written, snapshot, self._metrics, context)

    def _incident_context(self, snapshot: Snapshot, service: str) -> dict[str, Any]:
        """What an incident page shows beyond the audit entries: the graph below the service,
        its ranked causes (ranked now when no symptom had them ranked) and its log surges."""
        now = snapshot.at
        families = self._orient_families(now)
        calls = self._calls()
        graph = estate_graph(calls, families)
        below, queue = {service}, [service]
        while queue:
            for dep in graph.get(queue.pop(), []):
                if dep not in below:
                    below.add(dep)
                    queue.append(dep)
        kinds = component_kinds(calls, families)
        orientation = snapshot.orientation.get(service)
        normal_until = (now - self.settings.loop.orient_recent).replace(second=0, microsecond=0)
        if orientation is None or orientation.top is None:
            why = orientation.why if orientation is not None else "no symptom at the SLIs yet"
            found = orientations(calls, self._metrics, families, {service: why}, normal_until)
            found = self._with_changes(now, found, snapshot.workloads, snapshot.nodes)
            orientation = found.get(service, orientation)
        if self._surges_at != now:  # contexts of one tick share their services' logs
            self._surges_at, self._surges = now, {}
        read = self._surges
        span = round((now - normal_until + LOG_BASELINE).total_seconds())

        def surges_of(name: str) -> list[dict[str, Any]]:
            """The log templates that surged in ``name``'s pods (read once per service)."""
            if name not in read:
                workload = snapshot.workloads.get(name)
                pods = [p.name for p in workload.pods] if workload is not None else []
                namespace = workload.namespace if workload is not None else self.settings.namespace
                read_log = partial(self._read_log, namespace, span)
                read[name] = log_surges(read_log, pods, normal_until, now)
            return read[name]

        causes = causes_record(orientation)
        cause_logs(causes[:3], surges_of)
        return {
            "symptom": orientation.why if orientation is not None else "",
            "normal_until": normal_until.isoformat(),
            "graph": {n: [d for d in graph.get(n, []) if d in below] for n in sorted(below)},
            "kinds": {n: str(kinds.get(n, "service")) for n in sorted(below)},
            "causes": causes,
            "unranked": orientation.unranked if orientation is not None else "",
            "log_surges": surges_of(service),
            "slo": {
                "p95_ms": self.settings.slo_for(service).p95_ms,
                "max_error_rate": self.settings.slo_for(service).max_error_rate,
            },
        }

    def _read_log(self, namespace: str, seconds: int, pod: str) -> str:
        """The last ``seconds`` of ``pod``'s log with timestamps, at most ``LOG_TAIL_LINES``
        of it ("" when it cannot be read: no log is no evidence)."""
        try:
            return str(
                self.kube.core_v1.read_namespaced_pod_log(
                    pod,
                    namespace,
                    since_seconds=seconds,
                    timestamps=True,
                    tail_lines=LOG_TAIL_LINES,
                )
            )
        except Exception:
            return ""

    def _push(self, metrics: pd.DataFrame, usable: list[str]) -> None:
        assert self.push_features is not None
        self.push_features(metrics[metrics["service"].isin(usable)])

    def _scores(
        self,
        now: datetime,
        metrics: pd.DataFrame,
        services: list[str],
        families: dict[MetricFamily, pd.DataFrame],
        views: dict[str, ServiceView],
    ) -> AnomalyScores | None:
        if not services:
            return None
        # Metrics move once a minute; a tick between two samples reuses the last answer.
        key = tuple(services)
        fresh = (
            self._scored_at is not None and now - self._scored_at < self.settings.loop.score_every
        )
        if key == self._scored_key and fresh:
            return self._scored
        try:
            with self.stats.timed("anomaly"):
                rows = detector_rows(metrics, services, families)
                scores, notes = clean_scores(self.scorer.anomaly_rows(rows))
        except ScoringUnavailableError as exc:
            self.journal.problem("*", now, f"anomaly scores unavailable: {exc}")
            return None
        for note in notes:
            self.journal.problem("*", now, note)
        if self.settings.detector_watch.enabled:  # kept out of the scoring time
            scores = self.detector_watch.observe(now, scores, rows, views, self.settings.slo_for)
            name = self.settings.training.registry.detector_name
            for event in self.detector_watch.tick(now):
                self._audit_watch(now, name, event, "detector")
        for service, anomalous in scores.anomalous.items():
            if anomalous and not self.journal.recently(service, "anomaly", now):
                self.journal.event(now, "anomaly", service, f"score {scores.scores[service]:.2f}")
        self._scored_key, self._scored, self._scored_at = key, scores, now
        self.incidents.note_scores(now, scores.scores)
        return scores

    def _current_forecast(self, now: datetime) -> LoadForecast | None:
        """The plan made of the newest forecast that has arrived (``ooda._forecast_plan``:
        never the answer of a condemned version); once that is too old to plan capacity on,
        the baselines' plan, while they have a record to be judged by."""
        if self._forecast_job is not None and self._forecast_job.done():
            self._take_forecast(self._forecast_job.result())
            self._forecast_job = None
        every = self.settings.loop.forecast_every
        if self._forecast_at is None:
            return None
        if now - self._forecast_at > 5 * every:
            return self.planner.plan_on_baselines(self._forecast, self._forecast_at, now)
        return self.planner.plan(self._forecast, self._forecast_at)

    def _forecast_due(
        self, now: datetime, views: dict[str, ServiceView], services: list[str]
    ) -> bool:
        """A forecast is due every ``forecast_every``, a minute after a failed one, and at once
        when a service starts to surge (a forecast made before a surge says little of it)."""
        if not services:
            return False
        policy = self.settings.policy
        rising = {s for s in services if surging(views[s].history, policy)}
        every = self.settings.loop.forecast_every
        if rising or self._forecast_failed:
            every = self.settings.loop.score_every
        new_surge = bool(rising - self._surging)
        self._surging = rising
        asked = self._forecast_asked_at
        return asked is None or now - asked >= every or new_surge

    def _ask_forecast(
        self,
        now: datetime,
        metrics: pd.DataFrame,
        views: dict[str, ServiceView],
        services: list[str],
    ) -> _Forecasted:
        """Ask the scorer and check the answer; safe to run in a thread (touches no state)."""
        with self.stats.timed("forecast"):
            try:
                forecast = self.scorer.forecast_history(
                    forecast_history(metrics, services), self.settings.serving.horizon
                )
            except ScoringUnavailableError as exc:
                return _Forecasted(now, None, [f"forecast unavailable: {exc}"], failed=True)
            checked, notes = check_forecast(forecast, views, self.settings.loop.max_forecast_growth)
        raw = forecast if isinstance(forecast, LoadForecast) else None
        return _Forecasted(now, checked, notes, failed=False, raw=raw)

    def _watch(self, now: datetime, views: dict[str, ServiceView]) -> None:
        """Feed the accuracy watch what came true; audit what it did (an escalation when it
        condemns a forecaster, a model entry when it moves the alias)."""
        if not self.watch.seeded and self.settings.watch.enabled:
            # A season of history once, so the baseline is seasonal naive from the start.
            self.watch.seed(self._history_for_watch(now))
        self.watch.observe({s: v for s, v in views.items() if v.usable})
        name = self.settings.training.registry.forecaster_name
        for event in self.watch.tick(now):
            self._audit_watch(now, name, event, "forecaster")
        for service, start, end in self.verifier.drain_verified():
            self.detector_watch.verified(service, start, end)

    def _audit_watch(self, now: datetime, name: str, event: WatchEvent, model: str) -> None:
        """An escalation when a watch condemns a model, a model entry when it moves an alias."""
        kind = {"fallback": "escalation", "rollback": "model"}.get(event.kind, "observation")
        self.journal.write(
            now,
            kind,
            name,
            f"model_{event.kind}",
            f"model/{name}@champion",
            event.summary,
            {"version": event.version, "model": model, **event.evidence},
        )

    def _history_for_watch(self, now: datetime) -> pd.DataFrame:
        """The request rates of the last season (and an hour), cleaned as every tick's are."""
        start = now - self.settings.watch.season - timedelta(hours=1)
        raw = self.source.query_range(start, now, timedelta(minutes=1))
        metrics, _ = clean_metrics(raw, now)
        return metrics.loc[:, ["service", "timestamp", "request_rate"]]

    def _take_forecast(self, answer: _Forecasted) -> None:
        """Adopt an answer of :meth:`_ask_forecast` (a refused forecast is no forecast)."""
        self._forecast_failed = answer.failed
        for note in answer.notes:
            self.journal.problem("*", answer.asked_at, note, "forecast")
        if not answer.notes:
            self.journal.clear("*", "forecast")
        if answer.raw is not None:
            self.watch.record(answer.asked_at, answer.raw)
        if not answer.failed:
            self._forecast, self._forecast_at = answer.forecast, answer.asked_at

    # -- memory ---------------------------------------------------------------------------
    def _restore(self) -> None:
        """Rebuild guard, budget and pending verifications from the audit log."""
        found = recover(self.audit, self.guard, self.budget)
        self.pending = found.pending
        self.verifier.open_findings = found.findings
        self.verifier.findings_opened.update(found.findings_opened)
        now = self.clock.now()
        for entry in found.interrupted:
            self.journal.write(
                now,
                "action",
                entry.service,
                entry.action,
                entry.target,
                "interrupted: the process stopped between intent and result; not repeated",
                {"guard": entry.evidence.get("guard")},
                ref=entry.id,
            )
        for reason in found.skipped:
            log.warning("audit replay skipped %s", reason)
        self._last_reset = max((e.id or 0 for e in self.audit.entries("reset")), default=0)
        self._last_approved = max((e.id or 0 for e in self.audit.entries("action")), default=0)

    def _adopt_approved(self) -> None:
        """Verify the proposals a human approved since the last tick (``ooda approve``)."""
        found, self._last_approved = approved_since(self.audit, self.guard, self._last_approved)
        self.pending += found

    def _honour_resets(self) -> None:
        """Close breakers a human reset since the last tick (``ooda breaker reset``)."""
        for entry in self.audit.entries("reset", after_id=self._last_reset):
            self.guard.reset(entry.target)
            self._last_reset = entry.id or self._last_reset
