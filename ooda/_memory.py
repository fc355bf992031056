"""What the loop remembers between ticks that one read of the API server does not show.

A crash-looping container is ``Running`` for the seconds between its back-off and its next
crash; a tick that lands there sees a healthy pod. Alerting rules bridge this with a window
(kube-prometheus' ``KubePodCrashLooping`` takes ``max_over_time(...[5m])``); the loop does
the same with ``PolicySettings.crashloop_gap``, so that no other runbook mistakes the crash
loop's symptoms (lag, 5xx, missing capacity) for its own in those seconds.

A ConfigMap's ``managedFields`` keep one time per field manager: a second harmless
``kubectl edit`` overwrites the time of the first, breaking one. The loop keeps every change
it has seen for ``change_horizon``, so the suspect of a crash loop stays named. The API keeps
no history of a ConfigMap's data either: the loop remembers what it last saw in each, so a key
removed while it watched is named with the value it had (what a restore needs).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from contracts import ConfigChange, WorkloadState


class ClusterMemory:
    """Crash-loop episodes and config changes seen by earlier ticks, per service."""

    def __init__(self, crashloop_gap: timedelta, change_horizon: timedelta) -> None:
        self.crashloop_gap = crashloop_gap
        """A crash loop unseen for longer than this has ended."""
        self.change_horizon = change_horizon
        """How long a config change seen once is remembered."""
        self._episodes: dict[str, tuple[datetime, datetime]] = {}
        self._looping_pods: dict[str, dict[str, datetime]] = {}
        self._changes: dict[str, dict[tuple[str, str, datetime], ConfigChange]] = {}
        self._config_seen: dict[str, dict[str, str]] = {}
        self._removed: dict[str, dict[str, str]] = {}

    def update(
        self, now: datetime, workloads: dict[str, WorkloadState]
    ) -> tuple[dict[str, WorkloadState], dict[str, datetime], dict[str, frozenset[str]]]:
        """This tick's workloads with every remembered config change; since when each
        service has crash-looped (gaps shorter than ``crashloop_gap`` bridged); and which of
        its present pods crash-looped within that gap."""
        out: dict[str, WorkloadState] = {}
        since: dict[str, datetime] = {}
        looped: dict[str, frozenset[str]] = {}
        for workload in workloads.values():
            self._see_config(workload)
        for service, workload in workloads.items():
            out[service] = self._with_changes(now, service, workload)
            pods = self._looping_pods.setdefault(service, {})
            for pod in workload.crashlooping:
                pods[pod.name] = now
            present = {p.name for p in workload.pods}
            for name, seen in list(pods.items()):
                if name not in present or now - seen > self.crashloop_gap:
                    del pods[name]
            if workload.crashlooping:
                first, last = self._episodes.get(service, (now, now))
                if now - last > self.crashloop_gap:
                    first = now
                self._episodes[service] = (first, now)
            episode = self._episodes.get(service)
            if episode is not None and now - episode[1] <= self.crashloop_gap:
                since[service] = episode[0]
            if pods:
                looped[service] = frozenset(pods)
        return out, since, looped

    def _see_config(self, workload: WorkloadState) -> None:
        """Note the keys that vanished from a ConfigMap since the last look, with their value;
        forget one once it is back."""
        for name, data in workload.config_data.items():
            before = self._config_seen.get(name)
            removed = self._removed.setdefault(name, {})
            if before is not None:
                removed.update({k: v for k, v in before.items() if k not in data})
            for key in [k for k in removed if k in data]:
                del removed[key]
            self._config_seen[name] = dict(data)

    def _named(self, change: ConfigChange) -> ConfigChange:
        removed = tuple(sorted(self._removed.get(change.name, {}).items()))
        return replace(change, removed=removed) if removed != change.removed else change

    def _with_changes(self, now: datetime, service: str, workload: WorkloadState) -> WorkloadState:
        seen = self._changes.setdefault(service, {})
        for key in [k for k, c in seen.items() if now - c.at > self.change_horizon]:
            del seen[key]
        current = {(c.kind, c.name, c.at) for c in workload.config_changes}
        hidden = [c for k, c in seen.items() if k not in current]
        for change in workload.config_changes:
            seen[(change.kind, change.name, change.at)] = change
        changes = sorted((*workload.config_changes, *hidden), key=lambda c: c.at, reverse=True)
        named = tuple(self._named(c) for c in changes)
        if named == workload.config_changes:
            return workload
        return replace(workload, config_changes=named)
