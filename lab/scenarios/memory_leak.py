"""``memory_leak``: one or two pods of a service leak memory until the kernel OOM-kills them.

The leak lives in the process (a cache that never evicts, fed by what that replica happened
to serve), so its working set climbs steadily toward the container's limit and a fresh
process does not leak. On the way up the runtime spends more and more time collecting
garbage: past 80 % of the limit the pod answers slower, and the service's p95 creeps up.
At the limit the container is OOMKilled: its in-flight requests fail, and it is not Ready
until it has started again. Restarting a leaking pod before that (delete it; its
replacement is fresh) heals it with neither. The fault is over when no leaking process is
left; ``Lab.clear`` is an operator restarting them by hand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from contracts import ActionKind, ScenarioId
from lab._errors import NoTargetError
from lab._faults import ActiveFault, FaultRecord, ScenarioInstance, TickEffects
from lab._kubelet import HARD_KILL_LOSS_S
from lab.scenarios._registry import Scenario, register_scenario

if TYPE_CHECKING:
    from lab._estate import Lab
    from lab._pods import Pod

#: Share of the memory limit from which garbage collection slows a leaking pod down.
GC_PRESSURE_FROM = 0.8
#: Latency multiplier of a pod at its limit (quadratic from ``GC_PRESSURE_FROM``).
GC_SLOWDOWN_AT_LIMIT = 4.0


@register_scenario
class MemoryLeak(Scenario):
    """``magnitude`` pods of the service leak; each reaches its limit in ``to_limit_s``."""

    id = ScenarioId.MEMORY_LEAK
    title = "memory leak"
    heals = (ActionKind.RESTART_POD,)

    def draw(self, rng: np.random.Generator, lab: Lab) -> ScenarioInstance:
        service = lab.services[int(rng.integers(len(lab.services)))]
        return ScenarioInstance(
            self.id,
            service,
            magnitude=float(rng.integers(1, 3)),
            params={
                "pick": float(rng.random()),
                "to_limit_s": float(round(rng.uniform(14.0, 26.0) * 60.0)),
                "stagger": float(rng.uniform(0.6, 0.9)),
            },
        )

    def inject(self, lab: Lab, instance: ScenarioInstance) -> FaultRecord:
        healthy = lab.healthy_pods(instance.service)
        if not healthy:
            raise NoTargetError(f"service {instance.service!r} has no ready pod to leak")
        first = min(len(healthy) - 1, int(float(instance.params["pick"]) * len(healthy)))
        count = min(len(healthy), max(1, int(instance.magnitude)))
        chosen = [healthy[(first + k) % len(healthy)] for k in range(count)]
        return lab.begin_fault(instance, target=chosen[0].name, pods=[pod.name for pod in chosen])

    def _rate(self, lab: Lab, fault: ActiveFault, k: int) -> float:
        """Growth of ``memory_scale`` per second of the ``k``-th leaking pod: it reaches the
        limit in ``to_limit_s`` (the later ones a little later: the leaks are staggered)."""
        svc = lab.settings.topology.services[lab.service_index(fault.instance.service)]
        room = svc.memory_limit_bytes / svc.memory_base_bytes - 1.0
        seconds = float(fault.instance.params["to_limit_s"])
        stagger = float(fault.instance.params["stagger"]) ** k
        return room / (seconds / stagger)

    def effect(self, lab: Lab, fault: ActiveFault, t0: float, h: float, fx: TickEffects) -> None:
        pods = lab.cluster.pods
        i = lab.service_index(fault.instance.service)
        limit = float(lab.settings.topology.services[i].memory_limit_bytes)
        peers = max(1, len(lab.cluster.service_pods[i]))
        slowdown, failed = 0.0, 0.0
        for k, name in enumerate(list(fault.pods)):
            pod = pods.get(name)
            if pod is None:
                continue
            if not pod.ready(t0):
                continue
            pod.memory_scale += self._rate(lab, fault, k) * h
            share = pod.memory_bytes / limit
            if share >= 1.0:
                self._oom_kill(lab, pod, t0)
                fault.pods.remove(name)
                failed += min(1.0, HARD_KILL_LOSS_S / h) / peers
            elif share > GC_PRESSURE_FROM:
                pressure = (share - GC_PRESSURE_FROM) / (1.0 - GC_PRESSURE_FROM)
                slowdown += (GC_SLOWDOWN_AT_LIMIT - 1.0) * pressure**2 / peers
        fx.latency[i] *= 1.0 + slowdown
        fx.errors[i] = 1.0 - (1.0 - fx.errors[i]) * (1.0 - min(1.0, failed))

    def _oom_kill(self, lab: Lab, pod: Pod, t: float) -> None:
        """The kernel kills the container; the kubelet starts a fresh one in the same pod."""
        pod.restarts += 1
        pod.oomkilled = True
        pod.memory_scale = 1.0
        pod.started_at = t
        pod.ready_at = t + lab.settings.model.startup_s

    def is_over(self, lab: Lab, fault: ActiveFault, t: float) -> bool:
        return not any(name in lab.cluster.pods for name in fault.pods)

    def pod_removed(self, lab: Lab, fault: ActiveFault, pod: Pod, t: float) -> bool:
        if pod.name in fault.pods:
            fault.pods.remove(pod.name)
        return not fault.pods

    def clear(self, lab: Lab, fault: ActiveFault, t: float) -> None:
        for name in list(fault.pods):
            if name in lab.cluster.pods:
                lab.cluster.remove_pod(name, t)
        lab.cluster.reconcile(t)
