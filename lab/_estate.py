"""The embedded estate: a simulated cluster driven in 15 s ticks.

It exists so that the whole loop (detect, forecast, act, verify) can run and be tested without
a cluster: the lab is reached only through the same ports a real estate offers (a Kubernetes
API, a metric source) and keeps the ground truth of every fault it was told to inject. What a
fault does is its scenario's business (``lab.scenarios``); the estate only calls its hooks.
Pods are rows of column arrays (``lab._pods``) that a tick updates all at once, and the service
model is one pass over the call graph (``lab._graph``), so the same code runs the three-service
default and a thousand services with ten thousand pods.
"""

from __future__ import annotations

import functools
import heapq
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import numpy as np

from contracts import CloudClients, MetricFamily, ScenarioId, SimClock
from lab._cluster import Cluster
from lab._dependencies import Dependency, build_dependencies
from lab._errors import InvalidTimeError, NoTargetError, UnknownServiceError
from lab._family_store import FamilyStore
from lab._faults import (
    ActiveFault,
    BackgroundEvent,
    CrashLoopFault,
    Fault,
    FaultRecord,
    ScenarioInstance,
    TickEffects,
    TrafficSurgeFault,
)
from lab._graph import ServiceModel
from lab._kube_extra import FakeKubernetes
from lab._kubelet import NODE_MONITOR_GRACE_S, count_segments, node_effects, node_lifecycle
from lab._logs import PodLogSource
from lab._metrics import LabMetricSource
from lab._pods import Pod
from lab._settings import LabSettings
from lab._store import PodSample, ScrapeStore
from lab._traffic import TrafficModel
from lab.scenarios import scenario
from lab.scenarios._background import fire_background, plan_background, wave_multiplier

_EPS = 1e-6
D = TypeVar("D", bound=Dependency)
Action = Callable[["Lab"], object]
"""Something scheduled to happen to the lab at a given time (``Lab.schedule``)."""


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _history_incident(lab: Lab, instance: ScenarioInstance, heal_after_s: float) -> None:
    """A generated incident: inject it; the operator clears it later if it does not end."""
    try:
        record = lab.inject(instance)
    except NoTargetError:
        return
    if instance.duration is None:
        at = lab.clock_s + heal_after_s
        lab.schedule(_utc(at), functools.partial(_clear_if_on, record=record))


def _clear_if_on(lab: Lab, record: FaultRecord) -> None:
    lab.clear(record)


class Lab:
    """A simulated region: nodes, services calling each other, their HPAs, traffic, faults.

    By default three services in a call chain on three nodes; ``lab.call_forest`` builds
    topologies of any size.

    ``kube`` is the in-memory Kubernetes API, ``source`` the metric source; ``step`` moves the
    estate (and the clock) forward. ``inject`` starts a fault (a ``ScenarioInstance``),
    ``clear`` removes its cause, ``ground_truth`` records them. ``copy.deepcopy`` gives an
    independent estate that evolves exactly as the original would under the same calls.

    The members under "for scenarios" are what scenario modules use; the loop never does.
    """

    def __init__(self, settings: LabSettings, clock: SimClock) -> None:
        self.settings = settings
        self.clock = clock
        self._rng = np.random.default_rng([settings.seed, 1])
        self._traffic = TrafficModel(settings.traffic, settings.seed)
        self._t = clock.now().timestamp()
        services = settings.topology.services
        self._names = tuple(s.name for s in services)
        self._model = ServiceModel(services, settings.model)
        self._graph = self._model.graph
        self._memory_base = np.array([float(s.memory_base_bytes) for s in services])
        self._cluster = Cluster(settings, self._rng, self._t, self._steady_replicas(self._t))
        self._cluster.on_pod_removed.append(self._pod_removed)
        self._cluster.on_pod_created.append(self._pod_created)
        self._store = ScrapeStore(settings)
        self._families = FamilyStore()
        self.source = LabMetricSource(self._store, self._families)
        self.kube = FakeKubernetes(self._cluster, clock, settings)
        self.cloud = CloudClients()
        """The cloud APIs of the lab's account (its SQS queues), as actions take them."""
        self.traffic_share = 1.0
        """Share of the users' traffic that reaches this region (``lab.Fleet`` sets it from
        the DNS weights; a lone region takes it all)."""
        self.region_down = False
        """The region fails every request (``Fleet.fail_region``: a regional dependency, its
        network or its load balancers gone); its pods and API stay up."""
        self.region_error_share = 0.0
        """Share of its users' requests the region fails besides its services' own errors
        (``Fleet.degrade_region``: a brownout, one zone's load balancer or a regional
        dependency failing some calls); no pod of its own is at fault."""
        self._records: list[FaultRecord] = []
        # The live list, not a closure: a deep copy or a pickle of the lab keeps its own.
        self.kube.core_v1.logs = PodLogSource(settings.seed, self._records)
        self._active: list[ActiveFault] = []
        self._ended: dict[int, ActiveFault] = {}
        self._background: list[BackgroundEvent] = []
        self._waves: list[BackgroundEvent] = []
        self._agenda: list[tuple[float, int, Action]] = []
        self._agenda_seq = 0
        self._pod_seconds = np.zeros(len(self._names))
        self._dependencies: dict[str, Dependency] = {
            dep.name: dep for dep in build_dependencies(self)
        }
        self._record_scrape(self._t, self._idle_row())

    # -- public -------------------------------------------------------------------------------

    @property
    def ground_truth(self) -> list[FaultRecord]:
        """Every injected fault, oldest first."""
        return list(self._records)

    @property
    def background_events(self) -> list[BackgroundEvent]:
        """Every benign event that happened (rollouts, traffic waves), oldest first."""
        return list(self._background)

    @property
    def pod_minutes(self) -> dict[str, float]:
        """Pod-minutes used so far per service: the time pods held a node (the cost side)."""
        seconds = self._pod_seconds.tolist()
        return {name: s / 60.0 for name, s in zip(self._names, seconds, strict=True)}

    def step(self, dt: timedelta) -> None:
        """Advance the estate and the clock by ``dt`` in scrape-interval ticks.

        Scheduled actions run at the start of the first tick at or after their time.
        """
        if dt <= timedelta(0):
            raise InvalidTimeError(f"step needs a positive duration, got {dt}")
        target = self.clock.now().timestamp() + dt.total_seconds()
        interval = self.settings.scrape.interval_s
        while self._t < target - _EPS:
            self._run_due()
            h = min(interval, target - self._t)
            self._tick(self._t, h)
            self._t += h
        self.clock.advance(dt)

    def inject(self, fault: ScenarioInstance | Fault) -> FaultRecord:
        """Start a fault now; returns its ground-truth record.

        ``CrashLoopFault`` and ``TrafficSurgeFault`` are accepted as older spellings of a
        ``pod_crashloop`` and a ``traffic_surge`` instance.
        """
        instance = self._as_instance(fault)
        if instance.service not in self._names:
            raise UnknownServiceError(
                f"unknown service {instance.service!r}; the estate runs {list(self._names)}"
            )
        return scenario(instance.scenario).inject(self, instance)

    def clear(self, record: FaultRecord) -> FaultRecord:
        """A human removes the cause of the fault of ``record`` now; returns its final record.

        A fault that is already over is left as it is, unless its cause outlives it
        (``Scenario.cause_outlives_effect``: a dead node once its pods moved), which is
        repaired.
        """
        key = (record.scenario, record.target, record.injected_at)
        index = next(
            (
                i
                for i, known in enumerate(self._records)
                if (known.scenario, known.target, known.injected_at) == key
            ),
            None,
        )
        if index is None:
            raise NoTargetError(f"no {record.scenario} fault on {record.target!r} was injected")
        fault = next((f for f in self._active if f.index == index), None)
        if fault is not None:
            scenario(fault.instance.scenario).clear(self, fault, self._t)
            if fault in self._active:
                self._end(fault, self._t)
        elif index in self._ended:
            kind = scenario(self._ended[index].instance.scenario)
            if kind.cause_outlives_effect:
                kind.clear(self, self._ended.pop(index), self._t)
        return self._records[index]

    def schedule(self, at: datetime, action: Action) -> None:
        """Run ``action(lab)`` at ``at`` (at the first tick boundary from then on).

        Use picklable actions (module functions, ``functools.partial``) so that a deep copy
        of the lab carries its agenda.
        """
        if at.tzinfo is None:
            raise InvalidTimeError(f"schedule needs a timezone-aware time, got {at!r}")
        heapq.heappush(self._agenda, (at.timestamp(), self._agenda_seq, action))
        self._agenda_seq += 1

    def background(
        self,
        rng: np.random.Generator,
        start: datetime,
        end: datetime,
        *,
        rollouts: int | None = None,
        waves: int | None = None,
        config_edits: int | None = None,
    ) -> list[BackgroundEvent]:
        """Schedule ordinary events in ``[start, end)`` that the loop must not act on.

        Benign rollouts of random services (a new image tag, same behaviour), mild traffic
        waves (x1.2-1.4 over 10-20 minutes) and harmless ConfigMap edits; how many follows
        ``settings.background`` (Poisson) unless ``rollouts`` / ``waves`` / ``config_edits``
        say. Each is
        recorded in ``background_events`` when it happens; returns the plan.
        """
        if start.tzinfo is None or end.tzinfo is None or end <= start:
            raise InvalidTimeError(f"background needs aware times, start < end: {start}, {end}")
        planned = plan_background(
            self, rng, start, end, rollouts=rollouts, waves=waves, config_edits=config_edits
        )
        for event in planned:
            self.schedule(event.at, functools.partial(fire_background, event=event))
        return planned

    def generate_history(
        self, days: float, step: timedelta = timedelta(minutes=1), incidents: bool = True
    ) -> None:
        """Run ``days`` forward from now in ``step`` steps, with random labelled incidents.

        Incidents are drawn from the scenarios of ``settings.incidents.scenarios`` and heal
        by themselves: surges end, the operator clears any other fault after 10-20 minutes
        (deletes a crash-looping pod). Start the clock ``days`` before the live part should
        begin.
        """
        if days <= 0 or step <= timedelta(0):
            raise InvalidTimeError(f"history needs days > 0 and step > 0, got {days}, {step}")
        end = self._t + days * 86_400.0
        if incidents:
            self._plan_incidents(self._t, end)
        step_s = step.total_seconds()
        while self._t < end - _EPS:
            self.step(timedelta(seconds=min(step_s, end - self._t)))

    # -- for scenarios ------------------------------------------------------------------------

    @property
    def cluster(self) -> Cluster:
        """The control-plane state behind ``kube`` (pods, Deployments, HPAs, nodes)."""
        return self._cluster

    @property
    def services(self) -> tuple[str, ...]:
        """Service names in topological order (callers before the services they call)."""
        return self._names

    @property
    def entries(self) -> tuple[str, ...]:
        """Services external traffic enters at (by default only the first)."""
        return tuple(self._names[i] for i in self._graph.entries)

    @property
    def clock_s(self) -> float:
        """The estate's time, epoch seconds (ahead of ``clock`` inside a ``step``)."""
        return self._t

    @property
    def rng(self) -> np.random.Generator:
        """The estate's own random stream (for draws that depend on its state)."""
        return self._rng

    def service_index(self, service: str) -> int:
        """Position of ``service`` in ``services``."""
        if service not in self._names:
            raise UnknownServiceError(
                f"unknown service {service!r}; the estate runs {list(self._names)}"
            )
        return self._names.index(service)

    def upstream_of(self, service: str) -> tuple[str, ...]:
        """``service`` and every service whose requests reach it, in topological order."""
        return tuple(self._names[i] for i in self._graph.upstream_of(self.service_index(service)))

    def downstream_of(self, service: str) -> tuple[str, ...]:
        """``service`` and every service its requests reach, in topological order."""
        reach = self._graph.downstream_of(self.service_index(service))
        return tuple(self._names[i] for i in reach)

    def healthy_pods(self, service: str) -> list[Pod]:
        """Pods of ``service`` that are Ready now and not crash-looping, oldest first."""
        pods = self._cluster.service_pods[self.service_index(service)]
        return [p for p in pods if p.crash is None and p.ready(self._t)]

    def dependency(self, name: str) -> Dependency:
        """The database, topic, queue or upstream called ``name``."""
        found = self._dependencies.get(name)
        if found is None:
            raise NoTargetError(
                f"the estate has no database, topic, queue or upstream {name!r};"
                f" it has {sorted(self._dependencies)}"
            )
        return found

    def dependencies(self, kind: type[D]) -> list[D]:
        """Every dependency of ``kind`` (a :class:`Dependency` subclass), in settings order."""
        return [dep for dep in self._dependencies.values() if isinstance(dep, kind)]

    def begin_fault(
        self,
        instance: ScenarioInstance,
        *,
        target: str,
        root_cause: str | None = None,
        pods: Sequence[str] = (),
        detail: str = "",
    ) -> FaultRecord:
        """Record ``instance`` as injected now and make it active; returns its record.

        ``ends_at`` is known upfront when the instance has a duration; ``felt_by`` comes from
        the scenario; ``root_cause`` defaults to the instance's service.
        """
        t = self._t
        ends_at = None if instance.duration is None else _utc(t) + instance.duration
        record = FaultRecord(
            scenario=instance.scenario,
            target=target,
            service=instance.service,
            injected_at=_utc(t),
            ends_at=ends_at,
            root_cause=instance.service if root_cause is None else root_cause,
            felt_by=scenario(instance.scenario).felt_by(self, instance),
            detail=detail,
        )
        self._active.append(ActiveFault(instance, len(self._records), t, list(pods)))
        self._records.append(record)
        return record

    def note_background(self, event: BackgroundEvent) -> None:
        """Record a benign event that just happened; a traffic wave starts bending traffic."""
        self._background.append(event)
        if event.kind == "traffic_wave":
            self._waves.append(event)

    # -- faults -------------------------------------------------------------------------------

    def _as_instance(self, fault: ScenarioInstance | Fault) -> ScenarioInstance:
        if isinstance(fault, CrashLoopFault):
            return ScenarioInstance(ScenarioId.POD_CRASHLOOP, fault.service)
        if isinstance(fault, TrafficSurgeFault):
            return ScenarioInstance(
                ScenarioId.TRAFFIC_SURGE,
                self.entries[0],
                magnitude=fault.factor,
                duration=fault.duration,
                params={"ramp_s": fault.ramp.total_seconds()},
            )
        return fault

    def _end(self, fault: ActiveFault, t: float) -> None:
        self._active.remove(fault)
        self._ended[fault.index] = fault
        record = self._records[fault.index]
        if record.ends_at is None or record.ends_at > _utc(t):
            self._records[fault.index] = replace(record, ends_at=_utc(t))

    def _pod_removed(self, pod: Pod, t: float) -> None:
        for fault in list(self._active):
            if scenario(fault.instance.scenario).pod_removed(self, fault, pod, t):
                self._end(fault, t)

    def _pod_created(self, pod: Pod, t: float) -> None:
        for fault in self._active:
            scenario(fault.instance.scenario).pod_created(self, fault, pod, t)

    def _effects(self, t0: float, h: float) -> TickEffects:
        """End what is over, then let every active fault and wave bend this sub-step."""
        fx = TickEffects.neutral(len(self._names))
        for fault in list(self._active):
            if scenario(fault.instance.scenario).is_over(self, fault, t0):
                self._end(fault, t0)
        for fault in self._active:
            scenario(fault.instance.scenario).effect(self, fault, t0, h, fx)
        if self._waves:
            self._waves = [w for w in self._waves if w.ends_at is None or _utc(t0) < w.ends_at]
            for wave in self._waves:
                fx.traffic *= wave_multiplier(wave, t0 + h / 2)
        return fx

    def _run_due(self) -> None:
        while self._agenda and self._agenda[0][0] <= self._t + _EPS:
            heapq.heappop(self._agenda)[2](self)

    # -- incidents ----------------------------------------------------------------------------

    def _plan_incidents(self, start: float, end: float) -> None:
        cfg = self.settings.incidents
        rng = self._rng
        first, last = start + 3600.0, end - 5400.0
        if last <= first:
            return
        kinds = cfg.scenarios
        per_kind = max(1, round(cfg.per_day * (end - start) / 86_400.0 / len(kinds)))
        for kind in kinds:
            drawn = scenario(kind)
            for t in np.sort(rng.uniform(first, last, per_kind)):
                instance = drawn.draw(rng, self)
                heal_after = float(rng.uniform(cfg.crash_heal_min_s, cfg.crash_heal_max_s))
                action = functools.partial(
                    _history_incident, instance=instance, heal_after_s=heal_after
                )
                self.schedule(_utc(float(t)), action)

    def _idle_row(self) -> np.ndarray:
        """The first scrape: no requests counted yet, every initial pod Ready."""
        replicas = [dep.replicas for dep in self._cluster.deployments.values()]
        row = np.zeros((len(self._names), len(ScrapeStore.FIELDS)))
        row[:, 5] = 1.0
        row[:, 6] = row[:, 7] = replicas
        return row

    # -- simulation ---------------------------------------------------------------------------

    def _steady_replicas(self, t: float) -> list[int]:
        """Replicas an HPA would have settled on for the load at ``t``."""
        target = self.settings.hpa.target_cpu_utilisation / 100.0
        load = self._graph.steady_load(self._traffic.rate(t))
        replicas = []
        for i, svc in enumerate(self.settings.topology.services):
            need = math.ceil(load[i] / (svc.capacity_rps * target))
            replicas.append(max(svc.min_replicas, min(svc.max_replicas, need)))
        return replicas

    def _tick(self, t0: float, h: float) -> None:
        """One sub-step [t0, t0 + h): controllers, kubelet, traffic, counters, then a scrape."""
        cl = self._cluster
        m = self.settings.model
        n = len(self._names)
        t1 = t0 + h
        cl.hpa_sync(t0)
        cl.reconcile(t0)
        killed = node_lifecycle(cl, t0, h)
        fx = self._effects(t0, h)
        for dep in self._dependencies.values():
            dep.before(t0, h, fx)
        table = cl.pod_table
        pods = table.compact()
        service = table.service[:pods]
        scheduled = table.node[:pods] >= 0
        self._pod_seconds += h * np.bincount(service[scheduled], minlength=n)

        # Kubelet: how much of the tick each pod served (or ran broken).
        ready_at, started_at = table.ready_at[:pods], table.started_at[:pods]
        warm = ready_at <= t0
        ready_from = np.minimum(np.maximum(ready_at, t0), t1)
        ready = np.where(warm, 1.0, (t1 - ready_from) / h)
        starting = np.where(
            warm, 0.0, (ready_from - np.minimum(np.maximum(started_at, t0), t1)) / h
        )
        crashing = table.crashing[:pods] if table.crashing_pods else None
        serving: np.ndarray
        broken: np.ndarray
        if crashing is None:
            serving, broken = np.bincount(service, ready, minlength=n), np.zeros(n)
        else:
            for crashed in crashing.nonzero()[0].tolist():
                ready[crashed] = 0.0
                starting[crashed] = cl.advance_crash(table.pod(crashed), t0, t1) / h
            serving = np.bincount(service[~crashing], ready[~crashing], minlength=n)
            broken = np.bincount(service[crashing], starting[crashing], minlength=n)

        # What bad nodes do to the services whose pods run there.
        node_errors, node_capacity, node_latency = node_effects(cl, ready, n)
        errors_in = fx.errors
        if node_errors.any() or killed.any():
            errors_in = 1.0 - (1.0 - fx.errors) * (1.0 - node_errors) * (1.0 - killed)

        if self.region_down:
            errors_in = np.ones(n)
        elif self.region_error_share > 0:
            entries = list(self._graph.entries)
            errors_in = errors_in.copy()
            errors_in[entries] = 1.0 - (1.0 - errors_in[entries]) * (1.0 - self.region_error_share)

        # The services, down the call graph and back up.
        rate = self._traffic.rate(t0 + h / 2) * self.traffic_share
        external = rate * fx.traffic * self._graph.share
        limited = self._ingress_limits(external)
        jitter = self._rng.standard_normal(n) * m.latency_jitter
        out = self._model.serve(
            external,
            serving,
            broken,
            fx.capacity * node_capacity,
            fx.latency * node_latency,
            errors_in,
            jitter,
        )
        if limited is not None:  # the ingress answered these 503 before they reached a pod
            out.load[:] += limited
            out.shed[:] += limited
            out.failed[:] += limited
        with np.errstate(invalid="ignore", divide="ignore"):
            per_pod = np.nan_to_num(out.served[service] * ready / serving[service])
        count_segments(cl, per_pod, h)
        for dep in self._dependencies.values():
            dep.after(t0, h, out.served, serving)

        # cAdvisor view of each pod (a crash-looping one only while it starts), readiness.
        u = (out.utilisation * fx.cpu)[service]
        cpu = ready * (m.idle_cpu + (1 - m.idle_cpu) * u) + starting * m.startup_cpu
        base = self._memory_base[service]
        running = scheduled & (t1 >= started_at)
        memory = np.where(running, base * (1 + 0.3 * u), 0.0)
        if crashing is not None:
            memory[crashing] = 0.3 * base[crashing]
        table.cpu_seconds[:pods] += cl.cpu_requests[service] * cpu * h
        np.multiply(memory, table.memory_scale[:pods], out=table.memory_bytes[:pods])
        table.sample_cpu(t1)
        ready_now = np.bincount(service, table.ready_now(t1), minlength=n)

        errors = out.failed - out.shed
        replicas = [dep.replicas for dep in cl.deployments.values()]
        row = np.array(
            [
                (out.served - (errors - out.refused)) * h,
                errors * h,
                out.shed * h,
                out.served * h,
                (out.refused + out.shed) * h,
                out.median_s,
                ready_now,
                replicas,
            ]
        ).T
        self._record_scrape(t1, row)

    def _ingress_limits(self, external: np.ndarray) -> np.ndarray | None:
        """Clip each entry's external rate to the ``limit-rps`` of its Ingress, in place;
        returns what each service's ingress turned away (None: nothing).

        The lab's external traffic reaches the ingress controller through one load-balancer
        address (no client address forwarded), so ingress-nginx's per-client limit is the
        limit of the whole service's external traffic.
        """
        limited: np.ndarray | None = None
        for i in self._graph.entries:
            limit = self.kube.networking_v1.limit_rps(self._names[i])
            if limit is None or external[i] <= limit:
                continue
            if limited is None:
                limited = np.zeros(len(external))
            limited[i] = external[i] - limit
            external[i] = limit
        return limited

    def _record_scrape(self, t: float, row: np.ndarray) -> None:
        """Scrape ``row`` and the pods on a node."""
        drop = self.settings.scrape.drop_probability
        valid = drop <= 0 or bool(self._rng.random() >= drop)
        table = self._cluster.pod_table
        pods = table.compact()
        on_node = (table.node[:pods] >= 0).nonzero()[0]
        rows = slice(0, pods) if len(on_node) == pods else on_node

        def names(positions: np.ndarray) -> list[tuple[str, str]]:
            scraped = [table.pod(row) for row in on_node[positions].tolist()]
            return [(pod.name, pod.node or "") for pod in scraped]

        sample = PodSample(
            table.serial[rows],
            table.service[rows],
            table.cpu_seconds[rows],
            table.memory_bytes[rows],
            table.restarts[rows],
            table.oomkilled[rows],
            names,
        )
        scrape = self._store.n
        self._store.record(t, valid, row, sample)
        self._record_nodes(scrape, t)
        by_family: dict[MetricFamily, list[tuple[tuple[str, ...], tuple[float, ...]]]] = {}
        for dep in self._dependencies.values():
            by_family.setdefault(dep.family, []).extend(dep.sample(t))
        for family, samples in by_family.items():
            keys = [key for key, _ in samples]
            self._families.record(scrape, family, keys, np.array([v for _, v in samples]))

    def _record_nodes(self, scrape: int, now: float) -> None:
        """kube-state-metrics' and node-exporter's view of every node at this scrape."""
        keys, rows = [], []
        for node in self._cluster.nodes:
            silent = node.down_since is not None and now - node.down_since >= NODE_MONITOR_GRACE_S
            keys.append((node.name,))
            rows.append(
                (
                    0.0 if silent else 1.0,
                    float(node.disk_pressure),
                    float(node.unschedulable),
                    node.disk_size_bytes - node.disk_used_bytes,
                    node.disk_size_bytes,
                    node.tcp_retrans_segs,
                    node.tcp_out_segs,
                )
            )
        self._families.record(scrape, MetricFamily.NODE, keys, np.array(rows))
