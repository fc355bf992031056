"""``pod_crashloop_persistent``: a crash loop that survives pod replacement.

Someone removed a key the service reads at start-up from its ConfigMap (``kubectl edit``: the
change shows in the ConfigMap's ``managedFields``). One running pod restarts (and so re-reads
it) and crash-loops; every pod of the service that starts after that crash-loops too: a
replacement, a scale-up, a rollout. Pods that were running before keep serving, since they
read the config when it was good. Restarting the pod only yields a new crashing pod with a new
name, so no restart heals it: the ConfigMap must get its key back (``RestoreConfigKey``, which
ooda proposes for a human to approve, a person's own edit, or ``Lab.clear``), after which new
pods run and each crashing pod recovers at its next start.
An instance without a ``configmap_key`` parameter breaks where the cluster does not show it
(a bad Secret mounted from outside, say): no change is recorded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from contracts import ScenarioId
from lab._faults import ActiveFault, FaultRecord, ScenarioInstance, TickEffects
from lab._kube_net import CONFIG_KEYS, config_map_name
from lab._pods import CrashLoop
from lab.scenarios._registry import Scenario, pick_healthy_pod, register_scenario

if TYPE_CHECKING:
    from lab._estate import Lab
    from lab._pods import Pod

_KEYS = tuple(CONFIG_KEYS)
#: Who edits the ConfigMap in the story.
EDITOR = "kubectl-edit"


@register_scenario
class PersistentCrashLoop(Scenario):
    """Every pod of the service started after the injection crash-loops, until cleared."""

    id = ScenarioId.POD_CRASHLOOP_PERSISTENT
    title = "persistent crash loop (bad ConfigMap key)"
    heals = ()  # no action ooda takes alone: the restore of the key is proposed to a human

    def draw(self, rng: np.random.Generator, lab: Lab) -> ScenarioInstance:
        service = lab.services[int(rng.integers(len(lab.services)))]
        key = _KEYS[int(rng.integers(len(_KEYS)))]
        return ScenarioInstance(
            self.id, service, params={"pick": float(rng.random()), "configmap_key": key}
        )

    def inject(self, lab: Lab, instance: ScenarioInstance) -> FaultRecord:
        pod = pick_healthy_pod(lab, instance)
        key = instance.params.get("configmap_key")
        if isinstance(key, str):
            name = config_map_name(instance.service)
            lab.kube.core_v1.edit_config_map(name, {key: None}, EDITOR, lab.clock_s)
        lab.cluster.start_crash_loop(pod, lab.clock_s)
        detail = key if isinstance(key, str) else ""
        return lab.begin_fault(instance, target=pod.name, pods=[pod.name], detail=detail)

    def pod_created(self, lab: Lab, fault: ActiveFault, pod: Pod, t: float) -> None:
        if pod.service == lab.service_index(fault.instance.service):
            fault.pods.append(pod.name)

    def _key_back(self, lab: Lab, fault: ActiveFault) -> bool:
        """Whether the removed key is in the ConfigMap again (whoever put it back)."""
        key = fault.instance.params.get("configmap_key")
        if not isinstance(key, str):
            return False
        name = config_map_name(fault.instance.service)
        core = lab.kube.core_v1
        return key in (
            core.read_namespaced_config_map(name, lab.settings.topology.namespace).data or {}
        )

    def is_over(self, lab: Lab, fault: ActiveFault, t: float) -> bool:
        pods = lab.cluster.pods
        crashing = any(pods[n].crash is not None for n in fault.pods if n in pods)
        return self._key_back(lab, fault) and not crashing

    def effect(self, lab: Lab, fault: ActiveFault, t0: float, h: float, fx: TickEffects) -> None:
        if self._key_back(lab, fault):
            self._recover(lab, fault, t0)
            return
        # A doomed pod's container crashes from its first start (once it has a node).
        run_s = lab.settings.model.crash_run_s
        pods = lab.cluster.pods
        fault.pods[:] = [name for name in fault.pods if name in pods]
        for name in fault.pods:
            pod = pods[name]
            if pod.crash is None and pod.node is not None:
                pod.crash = CrashLoop(run_start=pod.started_at, run_end=pod.started_at + run_s)

    def clear(self, lab: Lab, fault: ActiveFault, t: float) -> None:
        # The config is good again: each crashing container comes up healthy at its next start.
        key = fault.instance.params.get("configmap_key")
        if isinstance(key, str) and not self._key_back(lab, fault):
            name = config_map_name(fault.instance.service)
            lab.kube.core_v1.edit_config_map(name, {key: CONFIG_KEYS[key]}, EDITOR, t)
        self._recover(lab, fault, t)

    def _recover(self, lab: Lab, fault: ActiveFault, t: float) -> None:
        startup_s = lab.settings.model.startup_s
        for name in fault.pods:
            pod = lab.cluster.pods.get(name)
            if pod is None or pod.crash is None:
                continue
            start = max(t, pod.crash.run_start)
            pod.crash = None
            pod.started_at = start
            pod.ready_at = start + startup_s
