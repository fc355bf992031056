"""Pods as rows of one table, so a sub-step updates ten thousand of them in a few array ops.

A ``Pod`` is a thin handle: its identity (name, uid, template) lives on the object, its state
(node, start and ready times, restarts, CPU and memory counters, the last few CPU samples
metrics-server keeps) in columns of its ``PodTable``. Controllers, scenarios and the fake API
read and write pods one at a time through the handle; the kubelet, cAdvisor and the HPA's
metric read work on whole columns. Live pods are rows ``0 .. n-1`` in creation order (a
removed pod's row is dropped before the next column operation), so a column operation is a
slice and a reduction visits pods in the order the cluster created them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_FLOATS = ("started_at", "ready_at", "memory_scale", "cpu_seconds", "memory_bytes")
_INTS = ("serial", "service", "replica_set", "node", "restarts", "version", "samples")
_BOOLS = ("alive", "crashing", "oomkilled")
_COLUMNS = (*_FLOATS, *_INTS, *_BOOLS, "history")


@dataclass
class CrashLoop:
    """Crash-loop schedule of a broken container: runs ``run_s``, dies, waits a backoff."""

    run_start: float
    run_end: float
    backoffs: int = 1


class Pod:
    """One pod: identity here, state in its row of the ``PodTable``."""

    __slots__ = (
        "_crash",
        "_row",
        "_table",
        "created_at",
        "name",
        "service",
        "template_hash",
        "uid",
    )

    def __init__(
        self,
        table: PodTable,
        row: int,
        name: str,
        service: int,
        template_hash: str,
        uid: str,
        created_at: float,
    ) -> None:
        self._table = table
        self._row = row
        self._crash: CrashLoop | None = None
        self.name = name
        self.service = service
        self.template_hash = template_hash
        """The pod-template-hash of the ReplicaSet that owns the pod."""
        self.uid = uid
        self.created_at = created_at

    def _set(self, column: str, value: float | int) -> None:
        table = self._table
        getattr(table, column)[self._row] = value
        table.version[self._row] += 1

    @property
    def node(self) -> str | None:
        index = int(self._table.node[self._row])
        return None if index < 0 else self._table.node_names[index]

    @node.setter
    def node(self, name: str | None) -> None:
        self._set("node", -1 if name is None else self._table.node_index[name])

    @property
    def started_at(self) -> float:
        return float(self._table.started_at[self._row])

    @started_at.setter
    def started_at(self, t: float) -> None:
        self._set("started_at", t)

    @property
    def ready_at(self) -> float:
        return float(self._table.ready_at[self._row])

    @ready_at.setter
    def ready_at(self, t: float) -> None:
        self._set("ready_at", t)

    @property
    def restarts(self) -> int:
        return int(self._table.restarts[self._row])

    @restarts.setter
    def restarts(self, n: int) -> None:
        self._set("restarts", n)

    @property
    def crash(self) -> CrashLoop | None:
        return self._crash

    @crash.setter
    def crash(self, crash: CrashLoop | None) -> None:
        self._table.crashing_pods += (crash is not None) - (self._crash is not None)
        self._crash = crash
        self._set("crashing", crash is not None)

    @property
    def memory_scale(self) -> float:
        """Per-pod working-set factor (pods are never exactly alike; a leak raises it)."""
        return float(self._table.memory_scale[self._row])

    @memory_scale.setter
    def memory_scale(self, value: float) -> None:
        self._table.memory_scale[self._row] = value

    @property
    def cpu_seconds(self) -> float:
        return float(self._table.cpu_seconds[self._row])

    @property
    def memory_bytes(self) -> float:
        return float(self._table.memory_bytes[self._row])

    @memory_bytes.setter
    def memory_bytes(self, value: float) -> None:
        self._table.memory_bytes[self._row] = value

    @property
    def oomkilled(self) -> bool:
        """Whether the container's last termination was an OOM kill."""
        return bool(self._table.oomkilled[self._row])

    @oomkilled.setter
    def oomkilled(self, value: bool) -> None:
        self._set("oomkilled", value)

    @property
    def version(self) -> int:
        """Bumped by every change of node, times, restarts or crash loop (not by counters)."""
        return int(self._table.version[self._row])

    def ready(self, t: float) -> bool:
        if self._crash is not None:
            return self._crash.run_start <= t < self._crash.run_end
        return t >= self.ready_at

    def running(self, t: float) -> bool:
        return self.node is not None and t >= self.started_at


class PodTable:
    """The state columns of every pod, one row per pod, rows in creation order.

    Call ``compact`` before a column operation: it returns ``n``, the live pods being rows
    ``0 .. n-1``.
    """

    def __init__(self, node_names: Sequence[str], history: int) -> None:
        self.node_names = tuple(node_names)
        self.node_index = {name: i for i, name in enumerate(self.node_names)}
        self.pods: list[Pod | None] = []
        """The pod of each row (None once removed)."""
        self._rows = 0
        self._removed = 0
        self._serials = 0
        self.crashing_pods = 0
        """How many live pods crash-loop (most sub-steps: none)."""
        cap = 64
        for name in _FLOATS:
            setattr(self, name, np.zeros(cap))
        for name in _INTS:
            setattr(self, name, np.zeros(cap, dtype=np.int64))
        for name in _BOOLS:
            setattr(self, name, np.zeros(cap, dtype=bool))
        self.history = np.zeros((cap, history))
        """CPU seconds at the last ``history`` sub-steps (a ring; ``samples`` are valid)."""
        self.history_times = np.full(history, math.nan)
        self._history_at = history - 1

    started_at: np.ndarray
    ready_at: np.ndarray
    memory_scale: np.ndarray
    cpu_seconds: np.ndarray
    memory_bytes: np.ndarray
    serial: np.ndarray
    """Creation sequence number: a pod's identity across compactions."""
    service: np.ndarray
    replica_set: np.ndarray
    """Index of the pod's ReplicaSet among its Deployment's."""
    node: np.ndarray
    """Index into ``node_names``, -1 while unscheduled."""
    restarts: np.ndarray
    version: np.ndarray
    samples: np.ndarray
    alive: np.ndarray
    crashing: np.ndarray
    oomkilled: np.ndarray
    """Whether the container's last termination was an OOM kill."""

    # -- rows ---------------------------------------------------------------------------------

    def add(
        self,
        name: str,
        service: int,
        replica_set: int,
        template_hash: str,
        uid: str,
        created_at: float,
        memory_scale: float,
    ) -> Pod:
        """A new, unscheduled pod in the next row."""
        if self._rows == len(self.alive):
            self._make_room()
        row = self._rows
        self._rows += 1
        for column in _FLOATS + _INTS:
            getattr(self, column)[row] = 0
        self.started_at[row] = self.ready_at[row] = math.inf
        self.memory_scale[row] = memory_scale
        self.serial[row] = self._serials
        self._serials += 1
        self.service[row], self.replica_set[row], self.node[row] = service, replica_set, -1
        self.alive[row], self.crashing[row], self.oomkilled[row] = True, False, False
        pod = Pod(self, row, name, service, template_hash, uid, created_at)
        self.pods.append(pod)
        return pod

    def remove(self, pod: Pod) -> None:
        self.crashing_pods -= pod.crash is not None
        self.alive[pod._row] = False
        self.pods[pod._row] = None
        self._removed += 1

    def compact(self) -> int:
        """Drop the rows of removed pods; returns the number of pods (rows ``0 .. n-1``)."""
        if self._removed:
            keep = np.flatnonzero(self.alive[: self._rows])
            shifted = np.flatnonzero(keep != np.arange(len(keep)))
            moved = int(shifted[0]) if len(shifted) else len(keep)  # rows before stay put
            for name in _COLUMNS:
                column = getattr(self, name)
                column[moved : len(keep)] = column[keep[moved:]]
            self.pods = [self.pods[row] for row in keep.tolist()]
            for row in range(moved, len(keep)):
                self.pod(row)._row = row
            self.alive[len(keep) : self._rows] = False
            self._rows, self._removed = len(keep), 0
        return self._rows

    def pod(self, row: int) -> Pod:
        pod = self.pods[row]
        assert pod is not None
        return pod

    def _make_room(self) -> None:
        """Drop removed rows, or double the columns when there were too few of them."""
        if 2 * self.compact() > len(self.alive):
            for name in _COLUMNS:
                column = getattr(self, name)
                grown = np.zeros((2 * len(column), *column.shape[1:]), dtype=column.dtype)
                grown[: len(column)] = column
                setattr(self, name, grown)

    # -- columns at a time --------------------------------------------------------------------

    def ready_now(self, t: float) -> np.ndarray:
        """Which pods are Ready at ``t`` (a crash-looping container only while it runs)."""
        n = self.compact()
        ready = self.ready_at[:n] <= t
        if self.crashing_pods:
            for row in self.crashing[:n].nonzero()[0].tolist():
                ready[row] = self.pod(row).ready(t)
        return ready

    def sample_cpu(self, t: float) -> None:
        """Keep every pod's CPU counter as its sample at ``t``."""
        n = self.compact()
        self._history_at = (self._history_at + 1) % len(self.history_times)
        self.history_times[self._history_at] = t
        self.history[:n, self._history_at] = self.cpu_seconds[:n]
        np.minimum(self.samples[:n] + 1, len(self.history_times), out=self.samples[:n])

    def cpu_rate(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """metrics-server's view: rows of the pods that are Ready at ``t`` with two samples,
        and their CPU rate (cores) from the oldest to the newest sample kept."""
        n = self.compact()
        usable = ((self.samples[:n] >= 2) & self.ready_now(t)).nonzero()[0]
        newest = self._history_at
        oldest = (newest - self.samples[usable] + 1) % len(self.history_times)
        used = self.history[usable, newest] - self.history[usable, oldest]
        return usable, used / (self.history_times[newest] - self.history_times[oldest])
