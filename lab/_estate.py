"""The embedded estate: a small simulated cluster driven in 15 s ticks.

It exists so that the whole loop (detect, forecast, act, verify) can run and be tested without
a cluster: the lab is reached only through the same ports a real estate offers (a Kubernetes
API, a metric source) and keeps the ground truth of every fault it was told to inject.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import math
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
from kubernetes.client.exceptions import ApiException

from lab._clock import SimClock
from lab._cluster import Cluster, Pod
from lab._errors import InvalidTimeError, NoTargetError, UnknownServiceError
from lab._faults import CrashLoopFault, Fault, FaultRecord, TrafficSurgeFault
from lab._kube_extra import FakeKubernetes
from lab._metrics import LabMetricSource, ScrapeStore
from lab._settings import LabSettings
from lab._traffic import TrafficModel

_EPS = 1e-6
_Event = tuple[float, int, Callable[[], object]]  # (when, tie-break, action)


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class Lab:
    """A simulated region: nodes, three services in a call chain, their HPAs, traffic, faults.

    ``kube`` is the in-memory Kubernetes API, ``source`` the metric source; ``step`` moves the
    estate (and the clock) forward.
    """

    def __init__(self, settings: LabSettings, clock: SimClock) -> None:
        self.settings = settings
        self.clock = clock
        self._rng = np.random.default_rng([settings.seed, 1])
        self._traffic = TrafficModel(settings.traffic, settings.seed)
        self._t = clock.now().timestamp()
        services = settings.topology.services
        self._names = [s.name for s in services]
        self._callee = [self._names.index(s.calls) if s.calls else -1 for s in services]
        self._cluster = Cluster(settings, self._rng, self._t, self._steady_replicas(self._t))
        self._cluster.on_pod_removed.append(self._pod_removed)
        self._store = ScrapeStore(settings)
        self.source = LabMetricSource(self._store)
        self.kube = FakeKubernetes(self._cluster, clock, settings)
        self._records: list[FaultRecord] = []
        self._crash_records: dict[str, int] = {}
        self._surges: list[tuple[float, TrafficSurgeFault]] = []
        c = settings.model.workers_per_pod
        self._queue_exponent = math.sqrt(2 * (c + 1)) - 1
        self._record_scrape(self._t, self._idle_row())

    # -- public -------------------------------------------------------------------------------

    @property
    def ground_truth(self) -> list[FaultRecord]:
        """Every injected fault, oldest first."""
        return list(self._records)

    def step(self, dt: timedelta) -> None:
        """Advance the estate and the clock by ``dt`` in scrape-interval ticks."""
        if dt <= timedelta(0):
            raise InvalidTimeError(f"step needs a positive duration, got {dt}")
        target = self.clock.now().timestamp() + dt.total_seconds()
        interval = self.settings.scrape.interval_s
        while self._t < target - _EPS:
            h = min(interval, target - self._t)
            self._tick(self._t, h)
            self._t += h
        self.clock.advance(dt)

    def inject(self, fault: Fault) -> FaultRecord:
        """Start a fault now; returns its ground-truth record."""
        t = self._t
        if isinstance(fault, CrashLoopFault):
            if fault.service not in self._names:
                raise UnknownServiceError(
                    f"unknown service {fault.service!r}; the estate runs {self._names}"
                )
            service = self._names.index(fault.service)
            healthy = [
                p for p in self._cluster.service_pods[service] if p.crash is None and p.ready(t)
            ]
            if not healthy:
                raise NoTargetError(f"service {fault.service!r} has no ready pod to break")
            pod = healthy[int(self._rng.integers(len(healthy)))]
            self._cluster.start_crash_loop(pod, t)
            record = FaultRecord("pod_crashloop", pod.name, fault.service, _utc(t), None)
            self._crash_records[pod.name] = len(self._records)
        else:
            self._surges.append((t, fault))
            end = _utc(t) + fault.duration
            record = FaultRecord("traffic_surge", self._names[0], self._names[0], _utc(t), end)
        self._records.append(record)
        return record

    def generate_history(
        self, days: float, step: timedelta = timedelta(minutes=1), incidents: bool = True
    ) -> None:
        """Run ``days`` forward from now in ``step`` steps, with random labelled incidents.

        Incidents heal by themselves: an operator deletes a crash-looping pod after 10-20
        minutes, surges end. Start the clock ``days`` before the live part should begin.
        """
        if days <= 0 or step <= timedelta(0):
            raise InvalidTimeError(f"history needs days > 0 and step > 0, got {days}, {step}")
        end = self._t + days * 86_400.0
        events: list[_Event] = []
        if incidents:
            events = self._plan_incidents(self._t, end)
        step_s = step.total_seconds()
        while self._t < end - _EPS:
            while events and events[0][0] <= self._t + _EPS:
                heapq.heappop(events)[2]()
            self.step(timedelta(seconds=min(step_s, end - self._t)))

    # -- incidents ----------------------------------------------------------------------------

    def _plan_incidents(self, start: float, end: float) -> list[_Event]:
        cfg = self.settings.incidents
        rng = self._rng
        first, last = start + 3600.0, end - 5400.0
        if last <= first:
            return []
        per_kind = max(1, round(cfg.per_day * (end - start) / 86_400.0 / 2))
        events: list[_Event] = []
        order = itertools.count()

        def crash(service: str) -> None:
            try:
                record = self.inject(CrashLoopFault(service))
            except NoTargetError:
                return
            heal_at = self._t + float(rng.uniform(cfg.crash_heal_min_s, cfg.crash_heal_max_s))
            heal: Callable[[], object] = functools.partial(self._operator_delete, record)
            heapq.heappush(events, (heal_at, next(order), heal))

        for t in np.sort(rng.uniform(first, last, per_kind)):
            service = self._names[int(rng.integers(len(self._names)))]
            events.append((float(t), next(order), functools.partial(crash, service)))
        for t in np.sort(rng.uniform(first, last, per_kind)):
            surge = TrafficSurgeFault(
                factor=float(rng.uniform(*cfg.surge_factor_range)),
                ramp=timedelta(minutes=float(rng.uniform(2.0, 8.0))),
                duration=timedelta(minutes=float(rng.uniform(*cfg.surge_minutes_range))),
            )
            events.append((float(t), next(order), functools.partial(self.inject, surge)))
        heapq.heapify(events)
        return events

    def _operator_delete(self, record: FaultRecord) -> None:
        try:
            self.kube.core_v1.delete_namespaced_pod(record.target, self.settings.topology.namespace)
        except ApiException as exc:  # already gone (scaled down)
            if exc.status != 404:
                raise

    def _pod_removed(self, pod: Pod, t: float) -> None:
        index = self._crash_records.pop(pod.name, None)
        if index is not None:
            self._records[index] = replace(self._records[index], ends_at=_utc(t))

    def _idle_row(self) -> list[float]:
        """The first scrape: no requests counted yet, every initial pod Ready."""
        row: list[float] = []
        for name in self._names:
            replicas = self._cluster.deployments[name].replicas
            row += (0.0, 0.0, 0.0, 0.0, 0.0, 1.0, replicas, replicas)
        return row

    # -- simulation ---------------------------------------------------------------------------

    def _steady_replicas(self, t: float) -> list[int]:
        """Replicas an HPA would have settled on for the load at ``t``."""
        target = self.settings.hpa.target_cpu_utilisation / 100.0
        load = [0.0] * len(self._names)
        load[0] = self._traffic.rate(t)
        replicas = []
        for i, svc in enumerate(self.settings.topology.services):
            if self._callee[i] >= 0:
                load[self._callee[i]] += load[i] * svc.fanout
            need = math.ceil(load[i] / (svc.capacity_rps * target))
            replicas.append(max(svc.min_replicas, min(svc.max_replicas, need)))
        return replicas

    def _external_rate(self, t: float) -> float:
        rate = self._traffic.rate(t)
        if self._surges:
            self._surges = [
                (t0, f) for t0, f in self._surges if t - t0 < f.duration.total_seconds()
            ]
            for t0, surge in self._surges:
                rate *= surge.multiplier(t - t0)
        return rate

    def _tick(self, t0: float, h: float) -> None:
        """One sub-step [t0, t0 + h): controllers, kubelet, traffic, counters, then a scrape."""
        cl = self._cluster
        m = self.settings.model
        services = self.settings.topology.services
        n = len(services)
        t1 = t0 + h
        cl.hpa_sync(t0)
        cl.reconcile(t0)

        # Kubelet: how much of the tick each pod served (or ran broken).
        serving = [0.0] * n
        broken = [0.0] * n
        shares: list[tuple[Pod, float, float]] = []
        for i, pods in enumerate(cl.service_pods):
            for pod in pods:
                if pod.crash is not None:
                    ran = cl.advance_crash(pod, t0, t1) / h
                    broken[i] += ran
                    shares.append((pod, 0.0, ran))
                elif pod.ready_at <= t0:
                    serving[i] += 1.0
                    shares.append((pod, 1.0, 0.0))
                else:
                    ready_from = min(max(pod.ready_at, t0), t1)
                    ready = (t1 - ready_from) / h
                    serving[i] += ready
                    shares.append((pod, ready, (ready_from - min(max(pod.started_at, t0), t1)) / h))

        # Forward pass along the call chain: load, routing to broken pods, shedding.
        load = [0.0] * n
        load[0] = self._external_rate(t0 + h / 2)
        served, refused, shed, util = [0.0] * n, [0.0] * n, [0.0] * n, [0.0] * n
        for i, svc in enumerate(services):
            endpoints = serving[i] + broken[i]
            if endpoints <= 0:
                shed[i] = load[i]
            else:
                refused[i] = load[i] * broken[i] / endpoints
                capacity = serving[i] * svc.capacity_rps
                served[i] = min(load[i] - refused[i], m.shed_utilisation * capacity)
                shed[i] = load[i] - refused[i] - served[i]
                util[i] = served[i] / capacity if capacity > 0 else 0.0
            if self._callee[i] >= 0:
                load[self._callee[i]] += served[i] * svc.fanout

        # Backward pass: latency adds the callee's, failures propagate to the caller.
        jitter = self._rng.standard_normal(n) * m.latency_jitter
        median = [0.0] * n
        failed = [0.0] * n
        for i in range(n - 1, -1, -1):
            svc = services[i]
            u = util[i]
            wait = u**self._queue_exponent / (m.workers_per_pod * (1.0 - u))
            median[i] = svc.base_latency_ms / 1e3 * (1.0 + wait) * math.exp(jitter[i])
            propagated = 0.0
            callee = self._callee[i]
            if callee >= 0:
                median[i] += svc.fanout * median[callee]
                if load[callee] > 0:
                    down_failed = failed[callee] / load[callee]
                    propagated = (
                        served[i] * min(1.0, svc.fanout) * m.error_propagation * down_failed
                    )
            failed[i] = refused[i] + shed[i] + propagated

        # cAdvisor view of each pod, and readiness at the scrape.
        ready_now = [0] * n
        for pod, ready, starting in shares:
            svc = services[pod.service]
            if pod.crash is not None:
                cpu = starting * m.startup_cpu
                memory = 0.3 * svc.memory_base_bytes
                ready_now[pod.service] += pod.ready(t1)
            else:
                u = util[pod.service]
                cpu = ready * (m.idle_cpu + (1 - m.idle_cpu) * u) + starting * m.startup_cpu
                running = pod.node is not None and t1 >= pod.started_at
                memory = svc.memory_base_bytes * (1 + 0.3 * u) if running else 0.0
                ready_now[pod.service] += t1 >= pod.ready_at
            pod.cpu_seconds += svc.cpu_request_cores * cpu * h
            pod.memory_bytes = memory * pod.memory_scale
            pod.cpu_history.append((t1, pod.cpu_seconds))

        row: list[float] = []
        for i in range(n):
            errors = failed[i] - shed[i]
            row += (
                (served[i] - (errors - refused[i])) * h,
                errors * h,
                shed[i] * h,
                served[i] * h,
                (refused[i] + shed[i]) * h,
                median[i],
                ready_now[i],
                cl.deployments[self._names[i]].replicas,
            )
        self._record_scrape(t1, row)

    def _record_scrape(self, t: float, row: list[float]) -> None:
        drop = self.settings.scrape.drop_probability
        valid = drop <= 0 or bool(self._rng.random() >= drop)
        self._store.record(t, valid, row, self._cluster.pods.values())
