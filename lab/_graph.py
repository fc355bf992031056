"""The service call graph and the service model: how load flows through it each sub-step.

Services are in topological order, so the calls form a DAG. A sub-step pushes external load
down the graph (routing to broken endpoints, shedding above the utilisation limit), then
pulls latency and failures back up. The passes are plain loops over services and their
calls: measured, ~2.5 us per service (2.5 ms a sub-step for a thousand services), where numpy,
one depth level at a time, cost ~150 us a sub-step for the three-service default; the loop
also keeps the float operations of the chain model it generalises, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lab._settings import ServiceModelSettings, ServiceSettings


@dataclass(frozen=True)
class Served:
    """What each service did in one sub-step: rates in requests per second, median in s."""

    load: np.ndarray
    """Requests arriving (external plus from callers)."""
    served: np.ndarray
    """Requests a healthy pod processed (some may still fail)."""
    refused: np.ndarray
    """Requests routed to a broken (crash-looping) endpoint: fast 503s."""
    shed: np.ndarray
    """Requests shed above the utilisation limit: fast 503s."""
    failed: np.ndarray
    """Every failed request: refused, shed, own errors and failed downstream calls."""
    utilisation: np.ndarray
    """Served / capacity of the Ready pods."""
    median_s: np.ndarray
    """Median latency of a served request, downstream time included."""


class CallGraph:
    """Who calls whom (with fanouts) and where external traffic enters."""

    def __init__(self, services: Sequence[ServiceSettings]) -> None:
        self.names = tuple(s.name for s in services)
        index = {name: i for i, name in enumerate(self.names)}
        self.callees: list[list[tuple[int, float]]] = [
            [(index[name], fanout) for name, fanout in s.downstream] for s in services
        ]
        shares = [s.external_share for s in services]
        if not any(shares):
            shares[0] = 1.0
        self.share = np.array(shares, dtype=float)
        self.entries = tuple(i for i, share in enumerate(shares) if share > 0)

    def upstream_of(self, service: int) -> list[int]:
        """``service`` and every service whose requests reach it, in topological order."""
        reach = {service}
        for i in range(service - 1, -1, -1):
            if any(j in reach for j, _ in self.callees[i]):
                reach.add(i)
        return sorted(reach)

    def downstream_of(self, service: int) -> list[int]:
        """``service`` and every service its requests reach, in topological order."""
        reach = {service}
        for i in range(service, len(self.names)):
            if i in reach:
                reach.update(j for j, _ in self.callees[i])
        return sorted(reach)

    def steady_load(self, external_rps: float) -> list[float]:
        """Requests per second reaching each service when nothing fails or sheds."""
        load = [external_rps * share for share in self.share.tolist()]
        for i, calls in enumerate(self.callees):
            for j, fanout in calls:
                load[j] += load[i] * fanout
        return load


class ServiceModel:
    """Queueing latency, shedding and error propagation of every service, a sub-step at a time."""

    def __init__(self, services: Sequence[ServiceSettings], model: ServiceModelSettings) -> None:
        self.graph = CallGraph(services)
        self._m = model
        self._capacity_rps = [s.capacity_rps for s in services]
        self._base_s = [s.base_latency_ms / 1e3 for s in services]
        c = model.workers_per_pod
        self._queue_exponent = math.sqrt(2 * (c + 1)) - 1

    def serve(
        self,
        external: np.ndarray,
        serving: np.ndarray,
        broken: np.ndarray,
        capacity_factor: np.ndarray,
        latency_factor: np.ndarray,
        error_share: np.ndarray,
        jitter: np.ndarray,
    ) -> Served:
        """One sub-step: ``serving`` / ``broken`` are Ready and crash-looping pod shares.

        ``capacity_factor``, ``latency_factor`` and ``error_share`` are the faults' effects,
        ``jitter`` the relative noise of each median (standard normal x jitter setting).
        """
        m = self._m
        n = len(external)
        load, ready, crashing = external.tolist(), serving.tolist(), broken.tolist()
        served, refused, shed, util = [0.0] * n, [0.0] * n, [0.0] * n, [0.0] * n
        capacity_rps, factor = self._capacity_rps, capacity_factor.tolist()
        for i, calls in enumerate(self.graph.callees):
            endpoints = ready[i] + crashing[i]
            if endpoints <= 0:
                shed[i] = load[i]
            else:
                refused[i] = load[i] * crashing[i] / endpoints
                capacity = ready[i] * capacity_rps[i] * factor[i]
                # Clamped: with every endpoint broken, load - refused is 0 give or take rounding.
                served[i] = max(0.0, min(load[i] - refused[i], m.shed_utilisation * capacity))
                shed[i] = max(0.0, load[i] - refused[i] - served[i])
                util[i] = served[i] / capacity if capacity > 0 else 0.0
            for j, fanout in calls:
                load[j] += served[i] * fanout

        q, workers, p = self._queue_exponent, m.workers_per_pod, m.error_propagation
        noise, slower, errors = jitter.tolist(), latency_factor.tolist(), error_share.tolist()
        median, failed = [0.0] * n, [0.0] * n
        for i in range(n - 1, -1, -1):
            u = util[i]
            wait = u**q / (workers * (1.0 - u))
            median[i] = self._base_s[i] * (1.0 + wait) * math.exp(noise[i])
            median[i] *= slower[i]
            own = served[i] * min(1.0, errors[i])
            propagated = 0.0
            for j, fanout in self.graph.callees[i]:
                median[i] += fanout * median[j]
                if load[j] > 0:
                    down_failed = failed[j] / load[j]
                    propagated += (served[i] - own) * min(1.0, fanout) * p * down_failed
            # Several failing callees add up (a union bound): never more than what was served.
            propagated = min(propagated, served[i] - own)
            failed[i] = refused[i] + shed[i] + own + propagated
        return Served(*map(np.array, (load, served, refused, shed, failed, util, median)))
