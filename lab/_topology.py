"""Large estates: many services as independent call trees, sized for the traffic they get.

The default estate is three services in one chain; scaling the loop, the lab and the models
needs estates of hundreds or thousands of services with the shape real ones have: several
products (entry services with their own share of the traffic), each a tree of services
fanning out below it, some of them shared by two callers, so that one slow or failing
service is felt by more than one path. Each service is sized so that at the mean external
rate it runs ``replicas`` pods at ``utilisation`` of their CPU request.
"""

from __future__ import annotations

import math

import numpy as np

from lab._errors import SettingsError
from lab._settings import ServiceSettings, TopologySettings, TrafficSettings

_MEDIAN_MS = 40.0


def call_forest(
    services: int,
    trees: int,
    *,
    replicas: int = 3,
    base_rps: float = TrafficSettings.base_rps,
    utilisation: float = 0.5,
    shared: float = 0.25,
    headroom: float = 2.0,
    seed: int = 0,
) -> TopologySettings:
    """``services`` services in ``trees`` independent call trees, in topological order.

    Tree ``t`` is named ``t<t>-s<k>``, its entry service (k = 0) receives a random share of
    the external traffic; every other service is called by an earlier service of its tree
    (a random recursive tree, so depth grows like log k) and, with probability ``shared``,
    by a second one. Fanouts are 0.3-1, own latencies 3-12 ms, scaled down in a tree where a
    request would otherwise take more than 40 ms (median, downstream calls included) so that
    p95 latencies stay near 100 ms, inside the default SLO. Capacities make each service
    run ``replicas`` pods (its HPA floor) at ``utilisation`` when the external rate is
    ``base_rps`` (``TrafficSettings.base_rps``); the HPA may scale to 4 x ``replicas``, and
    there are enough nodes for every service at ``headroom`` x ``replicas``.
    """
    if not 1 <= trees <= services:
        raise SettingsError(f"need 1 <= trees ({trees}) <= services ({services})")
    if replicas < 1 or not 0 < utilisation <= 1 or not 0 <= shared <= 1 or headroom < 1:
        raise SettingsError(
            f"need replicas >= 1, 0 < utilisation <= 1, 0 <= shared <= 1, headroom >= 1;"
            f" got {replicas}, {utilisation}, {shared}, {headroom}"
        )
    rng = np.random.default_rng(seed)
    sizes = [services // trees + (t < services % trees) for t in range(trees)]
    weights = np.array(sizes) * rng.uniform(0.5, 1.5, trees)
    shares = (weights / weights.sum()).tolist()
    width_t, width_k = len(str(trees - 1)), len(str(max(sizes) - 1))
    built: list[ServiceSettings] = []
    for t, size in enumerate(sizes):
        names = [f"t{t:0{width_t}d}-s{k:0{width_k}d}" for k in range(size)]
        calls: list[list[tuple[int, float]]] = [[] for _ in range(size)]
        for k in range(1, size):
            callers = {int(rng.integers(k))}
            if k > 1 and rng.random() < shared:
                callers.add(int(rng.integers(k)))
            for caller in sorted(callers):
                calls[caller].append((k, float(rng.uniform(0.3, 1.0))))
        load = [shares[t] * base_rps] + [0.0] * (size - 1)
        for k in range(size):
            for callee, fanout in calls[k]:
                load[callee] += load[k] * fanout
        own = rng.uniform(3.0, 12.0, size)
        total = own.copy()
        for k in range(size - 1, -1, -1):
            total[k] += sum(fanout * total[j] for j, fanout in calls[k])
        own *= min(1.0, _MEDIAN_MS / total.max())
        for k in range(size):
            built.append(
                ServiceSettings(
                    names[k],
                    calls=tuple(names[j] for j, _ in calls[k]) or None,
                    fanout=tuple(f for _, f in calls[k]) or 0.0,
                    base_latency_ms=float(own[k]),
                    capacity_rps=load[k] / (replicas * utilisation),
                    min_replicas=replicas,
                    max_replicas=4 * replicas,
                    external_share=shares[t] if k == 0 else 0.0,
                )
            )
    defaults = TopologySettings()
    cores = headroom * sum(s.min_replicas * s.cpu_request_cores for s in built)
    return TopologySettings(
        nodes=max(defaults.nodes, math.ceil(cores / defaults.node_cpu_cores)),
        services=tuple(built),
    )
