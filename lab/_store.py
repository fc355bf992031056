"""What the lab's Prometheus scraped: service series as rows, pod series as per-scrape blocks.

Service samples are one row per scrape; ``materialise`` turns pending rows into cumulative
counters and histogram buckets in one vectorised pass, filling the buckets from the log-normal
latency the way a Prometheus client observing every request would have. Pod samples (CPU and
memory from cAdvisor, restarts from kube-state-metrics) are appended as one block of columns
per scrape -- a whole block in a few array copies however many pods run -- and each pod series
keeps where its first and latest sample lie, which is all a rate over a window needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lab._settings import LabSettings

#: Status codes of ``http_requests_total``, in the order of the stored counter columns.
CODES = ("200", "500", "503")
#: Latency observed for refused or shed requests (they fail at once).
FAST_FAILURE_S = 0.002
# Standard normal CDF table: np.interp over it is a vectorised Phi (max error ~1e-6).
_Z_GRID = np.linspace(-9.0, 9.0, 9001)
_NORMAL_CDF = 0.5 * (1.0 + np.array([math.erf(z / math.sqrt(2.0)) for z in _Z_GRID]))
_NONE = np.iinfo(np.int64).max
_PAIRS_PER_CHUNK = 1 << 21


@dataclass(frozen=True)
class PodSample:
    """One scrape of the pods that run on a node, in creation order."""

    serial: np.ndarray
    """Each pod's creation sequence number: its identity."""
    service: np.ndarray
    cpu_seconds: np.ndarray
    memory_bytes: np.ndarray
    restarts: np.ndarray
    oomkilled: np.ndarray
    """Whether each container last terminated OOMKilled (kube-state-metrics' reason)."""
    names: Callable[[np.ndarray], list[tuple[str, str]]]
    """(pod, node) of the pods at the given positions; asked once per pod, when first seen."""


def _grown(array: np.ndarray, size: int) -> np.ndarray:
    """``array`` with room for ``size`` rows (doubling), contents kept."""
    if size <= len(array):
        return array
    new = np.empty((max(size, 2 * len(array)), *array.shape[1:]), dtype=array.dtype)
    new[: len(array)] = array
    return new


def _ranges(starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated ``arange(start, stop)`` of each pair, and which pair each element is of."""
    lengths = stops - starts
    which = np.repeat(np.arange(len(starts)), lengths)
    offsets = np.cumsum(lengths) - lengths
    return np.arange(int(lengths.sum())) - offsets[which] + starts[which], which


class ScrapeStore:
    """Every scrape of the lab's exporters."""

    #: Per-service fields of a tick row.
    FIELDS = ("ok", "error", "shed", "served", "fast", "median_s", "ready", "desired")

    def __init__(self, settings: LabSettings) -> None:
        services = settings.topology.services
        self.settings = settings
        self.services = tuple(s.name for s in services)
        self.cpu_requests = np.array([s.cpu_request_cores for s in services])
        self.memory_limits = np.array([float(s.memory_limit_bytes) for s in services])
        self.upper_bounds = np.array([*settings.scrape.latency_buckets_s, math.inf])
        self._log_le = np.log(np.array(settings.scrape.latency_buckets_s))
        self.n = 0
        self._done = 0
        self._pending_times: list[float] = []
        self._pending_valid: list[bool] = []
        self._pending_rows: list[np.ndarray] = []
        s, b, cap = len(services), len(self.upper_bounds), 1024
        self.times = np.empty(cap)
        self.valid = np.empty(cap, dtype=bool)
        self.requests = np.empty((cap, s, len(CODES)))
        self.buckets = np.empty((cap, s, b))
        self.sums = np.empty((cap, s))
        self.ready = np.empty((cap, s))
        self.spec = np.empty((cap, s))
        # Pod samples: scrape i is block offsets[i]:offsets[i + 1] of the sample columns.
        self.offsets = np.zeros(cap + 1, dtype=np.int64)
        self._samples = 0
        self.sample_series = np.empty(cap, dtype=np.int64)
        self.sample_cpu = np.empty(cap)
        self.sample_memory = np.empty(cap)
        self.sample_restarts = np.empty(cap, dtype=np.int32)
        self.sample_oomkilled = np.empty(cap, dtype=bool)
        # Pod series, numbered in the order they were first scraped.
        self._series_of_serial = np.full(cap, -1, dtype=np.int64)
        self.series_names: list[tuple[str, str]] = []
        """(pod, node) of each series."""
        self._n_series = 0
        self.series_service = np.empty(cap, dtype=np.int64)
        self.series_start = np.empty(cap, dtype=np.int64)
        """Scrape index of the first sample."""
        self.series_stop = np.empty(cap, dtype=np.int64)
        """Scrape index of the latest sample."""
        self.series_first = np.empty(cap, dtype=np.int64)
        """Position of the first sample in the sample columns."""
        self.series_last = np.empty(cap, dtype=np.int64)
        """Position of the latest sample."""

    def record(self, t: float, valid: bool, row: np.ndarray, pods: PodSample) -> None:
        """Append one scrape; ``row`` holds ``FIELDS`` per service (counts for this tick).

        ``valid=False`` marks the scrape lost: its samples never reached the TSDB.
        """
        i = self.n
        self._pending_times.append(t)
        self._pending_valid.append(valid)
        self._pending_rows.append(row)
        series = self._series(i, pods)
        k, at = len(series), self._samples
        if at + k > len(self.sample_series):
            for name in (
                "sample_series",
                "sample_cpu",
                "sample_memory",
                "sample_restarts",
                "sample_oomkilled",
            ):
                setattr(self, name, _grown(getattr(self, name), at + k))
        block = slice(at, at + k)
        self.sample_series[block] = series
        self.sample_cpu[block] = pods.cpu_seconds
        self.sample_memory[block] = pods.memory_bytes
        self.sample_restarts[block] = pods.restarts
        self.sample_oomkilled[block] = pods.oomkilled
        self.series_stop[series] = i
        self.series_last[series] = np.arange(at, at + k)
        self._samples = at + k
        self.offsets = _grown(self.offsets, i + 2)
        self.offsets[i + 1] = at + k
        self.n = i + 1
        if self.n - self._done >= 4096:
            self.materialise()

    def _series(self, i: int, pods: PodSample) -> np.ndarray:
        """The series of each scraped pod; pods seen for the first time start one."""
        top = int(pods.serial[-1]) + 1 if len(pods.serial) else 0  # serials ascend
        if top > len(self._series_of_serial):
            grown = np.full(max(top, 2 * len(self._series_of_serial)), -1, dtype=np.int64)
            grown[: len(self._series_of_serial)] = self._series_of_serial
            self._series_of_serial = grown
        series = self._series_of_serial[pods.serial]
        new = (series < 0).nonzero()[0]
        if len(new):
            ids = np.arange(self._n_series, self._n_series + len(new))
            self._n_series += len(new)
            for name in ("series_service", "series_start", "series_stop"):
                setattr(self, name, _grown(getattr(self, name), self._n_series))
            for name in ("series_first", "series_last"):
                setattr(self, name, _grown(getattr(self, name), self._n_series))
            self._series_of_serial[pods.serial[new]] = ids
            series[new] = ids
            self.series_service[ids] = pods.service[new]
            self.series_start[ids] = i
            self.series_first[ids] = self._samples + new
            self.series_names.extend(pods.names(new))
        return series

    def live_block(self) -> slice:
        """Sample positions of the latest scrape."""
        return slice(int(self.offsets[self.n - 1]), int(self.offsets[self.n]))

    def materialise(self) -> None:
        """Turn pending tick rows into cumulative series (idempotent)."""
        k = self.n - self._done
        if k == 0:
            return
        for name in ("times", "valid", "requests", "buckets", "sums", "ready", "spec"):
            setattr(self, name, _grown(getattr(self, name), self._done + k))
        rows = np.array(self._pending_rows)
        new_rows = slice(self._done, self._done + k)
        self.times[new_rows] = self._pending_times
        self.valid[new_rows] = self._pending_valid
        self._pending_times, self._pending_valid, self._pending_rows = [], [], []
        served, fast, median = rows[..., 3], rows[..., 4], rows[..., 5]
        sigma = self.settings.model.latency_sigma
        cdf = np.interp((self._log_le - np.log(median)[..., None]) / sigma, _Z_GRID, _NORMAL_CDF)
        inc_buckets = np.concatenate(
            [served[..., None] * cdf + fast[..., None], (served + fast)[..., None]], axis=-1
        )
        inc_sums = served * median * math.exp(sigma**2 / 2) + fast * FAST_FAILURE_S
        for target, inc in (
            (self.requests, rows[..., :3]),
            (self.buckets, inc_buckets),
            (self.sums, inc_sums),
        ):
            base = target[self._done - 1] if self._done else 0.0
            target[new_rows] = base + np.cumsum(inc, axis=0)
        self.ready[new_rows] = rows[..., 6]
        self.spec[new_rows] = rows[..., 7]
        self._done += k

    def pod_columns(
        self, first: np.ndarray, last: np.ndarray, first5: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per step end and service: mean CPU utilisation (rate over [first, last] of each pod
        series, / request), max memory utilisation (at last, / limit) and the sum of restart
        increases over [first5, last]. Scrape indices are -1 where a window has no samples
        (``first`` and ``first5`` also where it has fewer than two).

        A series that starts or ends inside a window counts from its first to its last sample
        there; step ends are handled in chunks so that memory stays bounded.
        """
        self.materialise()
        shape = (len(last), len(self.services))
        cpu_sum, cpu_n = np.zeros(shape), np.zeros(shape)
        memory = np.full(shape, np.nan)
        restarts, restarts_n = np.zeros(shape), np.zeros(shape)
        if not len(last):
            return cpu_sum, memory, restarts
        # Step ends whose window is empty sort out of every series' range via these sentinels.
        first = np.where(first >= 0, first, _NONE)
        first5 = np.where(first5 >= 0, first5, _NONE)
        last_sorted = np.maximum.accumulate(last)
        first5_sorted = np.minimum.accumulate(first5[::-1])[::-1]
        width = max(1, self.n and int(self.offsets[self.n] - self.offsets[self.n - 1]))
        step = max(16, _PAIRS_PER_CHUNK // width)
        for r0 in range(0, len(last), step):
            rows = slice(r0, min(r0 + step, len(last)))
            self._chunk(
                (first[rows], last[rows], first5[rows]),
                (last_sorted[rows], first5_sorted[rows]),
                (cpu_sum[rows], cpu_n[rows], memory[rows], restarts[rows], restarts_n[rows]),
            )
        with np.errstate(invalid="ignore", divide="ignore"):
            cpu = np.where(cpu_n > 0, cpu_sum / cpu_n, np.nan)
        return cpu, memory, np.where(restarts_n > 0, restarts, np.nan)

    def _chunk(
        self,
        window: tuple[np.ndarray, np.ndarray, np.ndarray],
        bounds: tuple[np.ndarray, np.ndarray],
        out: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    ) -> None:
        """``pod_columns`` for some step ends: every (step end, series) pair at once."""
        first, last, first5 = window
        last_sorted, first5_sorted = bounds
        cpu_sum, cpu_n, memory, restarts, restarts_n = out
        # The series that can count here: started by the latest window end and not over
        # before the earliest restart window of the step ends from here on.
        n_series = self._n_series
        start, stop = self.series_start[:n_series], self.series_stop[:n_series]
        k = np.flatnonzero((start <= last_sorted[-1]) & (stop >= first5_sorted[0]))
        if not len(k):
            return
        start, stop, service = start[k], stop[k], self.series_service[k]
        column = np.full(n_series, -1, dtype=np.int64)
        column[k] = np.arange(len(k))
        # Dense samples at every scrape a window starts or ends at: (scrape, series) grids.
        scrapes = np.unique(np.concatenate([first, last, first5]))
        scrapes = scrapes[(scrapes >= 0) & (scrapes < self.n)]
        if not len(scrapes):
            return
        positions, which = _ranges(self.offsets[scrapes], self.offsets[scrapes + 1])
        cols = column[self.sample_series[positions]]
        keep = cols >= 0  # series over before every restart window: never counted
        if not keep.all():
            positions, which, cols = positions[keep], which[keep], cols[keep]

        def grid(values: np.ndarray) -> np.ndarray:
            dense = np.full((len(scrapes), len(k)), np.nan)
            dense[which, cols] = values[positions]
            return dense

        def at(dense: np.ndarray, scrape: np.ndarray) -> np.ndarray:
            return dense[np.searchsorted(scrapes, np.clip(scrape, 0, scrapes[-1]))]

        valid, ts = self.valid[: self.n], self.times[: self.n]
        lost = not valid.all()
        lst = last[:, None]
        counted = (last_sorted[:, None] >= start) & (first5_sorted[:, None] <= stop)
        counted &= lst >= start
        at_end = np.minimum(lst, stop)
        if lost:
            counted &= valid[np.minimum(at_end, self.n - 1)]
        n_services = len(self.services)
        flat = np.arange(len(last))[:, None] * n_services + service
        per_series = np.broadcast_to
        for samples, begins, total, count in (
            (self.sample_cpu, first, cpu_sum, cpu_n),
            (self.sample_restarts, first5, restarts, restarts_n),
        ):
            from_ = np.maximum(begins[:, None], start)
            ok = counted & (from_ < at_end)
            if lost:
                ok &= valid[np.minimum(from_, self.n - 1)]
            count += np.bincount(flat[ok], minlength=total.size).reshape(total.shape)
            firsts, lasts = samples[self.series_first[k]], samples[self.series_last[k]]
            if samples is self.sample_restarts and (firsts == lasts).all():
                continue  # no series restarted: every increase is 0
            dense = grid(samples)
            a = np.where(begins[:, None] > start, at(dense, begins), firsts)[ok]
            amount = np.where(lst < stop, at(dense, last), lasts)[ok] - a
            if samples is self.sample_cpu:
                seconds = ts[at_end[ok]] - ts[from_[ok]]
                amount = amount / seconds / per_series(self.cpu_requests[service], ok.shape)[ok]
            total += np.bincount(flat[ok], amount, minlength=total.size).reshape(total.shape)
        alive = counted & (lst <= stop)
        used = at(grid(self.sample_memory), last)[alive]
        used = used / per_series(self.memory_limits[service], alive.shape)[alive]
        np.fmax.at(memory.reshape(-1), flat[alive], used)
