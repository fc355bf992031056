"""What the lab's Prometheus scraped, and the tidy frame computed from it.

Samples live in growable numpy arrays (one row per scrape; one small array set per pod series,
like a TSDB chunk) rather than per-sample objects, so a simulated week of 15 s scrapes is a few
megabytes and a week-long ``query_range`` is a handful of vectorised operations.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from contracts import METRIC_COLUMNS
from lab._cluster import Pod
from lab._errors import InvalidTimeError
from lab._settings import LabSettings

#: Status codes of ``http_requests_total``, in the order of the stored counter columns.
CODES = ("200", "500", "503")
_EPS = 1e-6
_RESTART_WINDOW_S = 300.0
#: Latency observed for refused or shed requests (they fail at once).
FAST_FAILURE_S = 0.002
# Standard normal CDF table: np.interp over it is a vectorised Phi (max error ~1e-6).
_Z_GRID = np.linspace(-9.0, 9.0, 9001)
_NORMAL_CDF = 0.5 * (1.0 + np.array([math.erf(z / math.sqrt(2.0)) for z in _Z_GRID]))


def histogram_quantile(q: float, upper_bounds: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """PromQL ``histogram_quantile``: linear interpolation inside the bucket holding rank q.

    ``upper_bounds`` are the ``le`` values ending with +Inf; ``counts`` are cumulative bucket
    counts (or their increases) with buckets on the last axis. Returns NaN where the total is
    0 or NaN, and the highest finite bound where the rank falls in the +Inf bucket.
    """
    counts = np.maximum.accumulate(np.asarray(counts, dtype=float), axis=-1)
    total = counts[..., -1]
    rank = q * total
    idx = np.argmax(counts >= rank[..., None], axis=-1)
    ub = np.asarray(upper_bounds, dtype=float)
    lower = np.where(idx == 0, 0.0, ub[np.maximum(idx - 1, 0)])
    upper = ub[idx]
    c_in = np.take_along_axis(counts, idx[..., None], axis=-1)[..., 0]
    c_below = np.take_along_axis(counts, np.maximum(idx - 1, 0)[..., None], axis=-1)[..., 0]
    c_below = np.where(idx == 0, 0.0, c_below)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(c_in > c_below, (rank - c_below) / (c_in - c_below), 1.0)
        result = lower + (upper - lower) * frac
    result = np.where(idx == len(ub) - 1, ub[-2], result)
    return np.where((total > 0) & np.isfinite(total), result, np.nan)


class _PodSeries:
    """The per-pod series (cAdvisor and kube-state-metrics) from the pod's first scrape on."""

    __slots__ = ("cpu", "mem", "node", "pod", "restarts", "service", "start")

    def __init__(self, pod: str, service: int, node: str, start: int) -> None:
        self.pod, self.service, self.node, self.start = pod, service, node, start
        self.cpu = array("d")
        self.mem = array("d")
        self.restarts = array("d")

    @property
    def n(self) -> int:
        return len(self.cpu)


class ScrapeStore:
    """Every scrape of the lab's exporters: service series as rows, pod series as chunks.

    Each tick appends what every service answered (requests per code, requests served with
    their median latency, fast failures) to a flat buffer; ``materialise`` turns pending rows
    into cumulative counters and histogram buckets in one vectorised pass, filling the
    buckets from the log-normal latency the way a Prometheus client observing every request
    would have.
    """

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
        self._pending_times = array("d")
        self._pending_valid = array("b")
        self._pending_rows = array("d")
        s, b, cap = len(services), len(self.upper_bounds), 1024
        self.times = np.empty(cap)
        self.valid = np.empty(cap, dtype=bool)
        self.requests = np.empty((cap, s, len(CODES)))
        self.buckets = np.empty((cap, s, b))
        self.sums = np.empty((cap, s))
        self.ready = np.empty((cap, s))
        self.spec = np.empty((cap, s))
        self.series: list[_PodSeries] = []
        self.live: dict[str, _PodSeries] = {}

    def record(self, t: float, valid: bool, row: list[float], pods: Iterable[Pod]) -> None:
        """Append one scrape; ``row`` holds ``FIELDS`` per service (counts for this tick).

        ``valid=False`` marks the scrape lost: its samples never reached the TSDB.
        """
        i = self.n
        self._pending_times.append(t)
        self._pending_valid.append(valid)
        self._pending_rows.extend(row)
        live: dict[str, _PodSeries] = {}
        for pod in pods:
            if pod.node is None:
                continue
            series = self.live.get(pod.name)
            if series is None:
                series = _PodSeries(pod.name, pod.service, pod.node, i)
                self.series.append(series)
            series.cpu.append(pod.cpu_seconds)
            series.mem.append(pod.memory_bytes)
            series.restarts.append(pod.restarts)
            live[pod.name] = series
        self.live = live
        self.n = i + 1
        if self.n - self._done >= 4096:
            self.materialise()

    def materialise(self) -> None:
        """Turn pending tick rows into cumulative series (idempotent)."""
        k = self.n - self._done
        if k == 0:
            return
        while self._done + k > len(self.times):
            for name in ("times", "valid", "requests", "buckets", "sums", "ready", "spec"):
                old = getattr(self, name)
                new = np.empty((2 * len(old), *old.shape[1:]), dtype=old.dtype)
                new[: len(old)] = old
                setattr(self, name, new)
        rows = np.array(self._pending_rows).reshape(k, len(self.services), len(self.FIELDS))
        new_rows = slice(self._done, self._done + k)
        self.times[new_rows] = np.array(self._pending_times)
        self.valid[new_rows] = np.array(self._pending_valid, dtype=bool)
        del self._pending_times[:], self._pending_valid[:], self._pending_rows[:]
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


class LabMetricSource:
    """The lab's metric source: ``query_range`` gives the tidy frame, as PromQL would.

    Each column is computed in Python the way these PromQL recipes evaluate at every step end
    ``T`` (``w`` = max(step, 4 x scrape interval), like Grafana's ``$__rate_interval``)::

        request_rate       sum by (service) (rate(http_requests_total[w]))
        p95_latency_ms     1e3 * histogram_quantile(0.95,
                               sum by (service, le) (rate(http_request_duration_seconds_bucket[w])))
        p99_latency_ms     the same with 0.99
        error_rate         sum by (service) (rate(http_requests_total{code=~"5.."}[w]))
                             / sum by (service) (rate(http_requests_total[w]))
        cpu_utilisation    avg by (service) (label_replace(
                               rate(container_cpu_usage_seconds_total{container!=""}[w]),
                               "service", "$1", "container", "(.*)")
                             / on (namespace, pod) group_left
                               kube_pod_container_resource_requests{resource="cpu"})
        memory_utilisation max by (service) (container_memory_working_set_bytes
                             / on (namespace, pod) group_left
                               kube_pod_container_resource_limits{resource="memory"})
        restarts           sum by (service) (
                               increase(kube_pod_container_status_restarts_total[5m]))
        ready_pods         kube_deployment_status_replicas_ready   (deployment = service)
        desired_pods       kube_deployment_spec_replicas

    A rate is the counter difference between the first and last sample in ``[T - w, T]``
    divided by their distance (NaN with fewer than two samples); a gauge is the last sample in
    that window. Lost scrapes are skipped, so gaps turn into NaN. Rows are produced for step
    ends between the first and the last scrape.
    """

    def __init__(self, store: ScrapeStore) -> None:
        self._store = store

    def query_range(self, start: datetime, end: datetime, step: timedelta) -> pd.DataFrame:
        """The tidy metrics frame, one row per (step end, service)."""
        if start.tzinfo is None or end.tzinfo is None:
            raise InvalidTimeError(f"query range needs aware datetimes, got {start!r}..{end!r}")
        step_s = step.total_seconds()
        if step_s <= 0 or end < start:
            raise InvalidTimeError(f"invalid query range {start}..{end} step {step}")
        st = self._store
        st.materialise()
        n = st.n
        ts = st.times[:n]
        grid = start.timestamp() + step_s * np.arange(
            math.floor((end.timestamp() - start.timestamp()) / step_s + _EPS) + 1
        )
        grid = grid[(grid >= ts[0] - _EPS) & (grid <= ts[-1] + _EPS)] if n else grid[:0]
        w = max(step_s, 4 * st.settings.scrape.interval_s)
        valid_idx = np.flatnonzero(st.valid[:n])
        first, last, has2 = self._window(ts, valid_idx, grid, w)
        first5, _, has2_5 = self._window(ts, valid_idx, grid, _RESTART_WINDOW_S)
        has1 = last >= 0
        last_c = np.maximum(last, 0)
        first_c = np.maximum(first, 0)

        dt = (ts[last_c] - ts[first_c])[:, None] if n else np.empty((0, 1))
        with np.errstate(invalid="ignore", divide="ignore"):
            inc_req = st.requests[last_c] - st.requests[first_c]
            total = inc_req.sum(axis=-1)
            request_rate = np.where(has2[:, None], total / dt, np.nan)
            error_rate = np.where(
                has2[:, None], (inc_req[..., 1] + inc_req[..., 2]) / total, np.nan
            )
        inc_buckets = st.buckets[last_c] - st.buckets[first_c]
        inc_buckets[~has2] = np.nan
        p95 = 1e3 * histogram_quantile(0.95, st.upper_bounds, inc_buckets)
        p99 = 1e3 * histogram_quantile(0.99, st.upper_bounds, inc_buckets)
        ready = np.where(has1[:, None], st.ready[last_c], np.nan)
        desired = np.where(has1[:, None], st.spec[last_c], np.nan)
        cpu, memory, restarts = self._pod_columns(
            ts, grid, first, last, has2, np.where(has2_5, first5, -1)
        )

        n_services = len(st.services)
        frame = pd.DataFrame(
            {
                "timestamp": pd.to_datetime(
                    np.repeat(np.round(grid * 1e9).astype(np.int64), n_services),
                    unit="ns",
                    utc=True,
                ),
                "region": np.full(
                    len(grid) * n_services, st.settings.topology.region, dtype=object
                ),
                "service": np.tile(np.array(st.services, dtype=object), len(grid)),
                "request_rate": request_rate.ravel(),
                "p95_latency_ms": p95.ravel(),
                "p99_latency_ms": p99.ravel(),
                "error_rate": error_rate.ravel(),
                "cpu_utilisation": cpu.ravel(),
                "memory_utilisation": memory.ravel(),
                "restarts": restarts.ravel(),
                "ready_pods": ready.ravel(),
                "desired_pods": desired.ravel(),
            },
            columns=list(METRIC_COLUMNS),
        )
        return frame

    @staticmethod
    def _window(
        ts: np.ndarray, valid_idx: np.ndarray, grid: np.ndarray, width: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scrape indices of the first and last valid sample in [T - width, T] per step end."""
        vt = ts[valid_idx]
        hi = np.searchsorted(vt, grid + _EPS, side="right") - 1
        lo = np.searchsorted(vt, grid - width - _EPS, side="left")
        has1 = (hi >= lo) & (hi >= 0)
        if len(valid_idx) == 0:
            none = np.full(len(grid), -1)
            return none, none, np.zeros(len(grid), dtype=bool)
        last = np.where(has1, valid_idx[np.clip(hi, 0, None)], -1)
        first = np.where(has1, valid_idx[np.clip(lo, 0, len(valid_idx) - 1)], -1)
        return first, last, hi > lo

    def _pod_columns(
        self,
        ts: np.ndarray,
        grid: np.ndarray,
        first: np.ndarray,
        last: np.ndarray,
        has2: np.ndarray,
        first5: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CPU utilisation (mean), memory utilisation (max) and 5 m restarts (sum) per service."""
        st = self._store
        shape = (len(grid), len(st.services))
        cpu_sum, cpu_cnt = np.zeros(shape), np.zeros(shape)
        memory = np.full(shape, np.nan)
        restarts, restart_cnt = np.zeros(shape), np.zeros(shape)
        if not len(grid):
            return cpu_sum, memory, restarts
        valid = st.valid[: st.n]
        # Step ends whose window is empty sort out of every pod's range via these sentinels.
        last_s = np.where(last >= 0, last, -1)
        first_s = np.where(has2, first, np.iinfo(np.int64).max)
        first5_s = np.where(first5 >= 0, first5, np.iinfo(np.int64).max)
        last_sorted = np.maximum.accumulate(last_s)
        first5_sorted = np.minimum.accumulate(first5_s[::-1])[::-1]
        for series in st.series:
            s0, s1, svc = series.start, series.start + series.n - 1, series.service
            lo = int(np.searchsorted(last_sorted, s0, side="left"))
            hi = int(np.searchsorted(first5_sorted, s1, side="right"))
            if lo >= hi:
                continue
            sl = slice(lo, hi)
            pod_cpu, pod_mem = np.array(series.cpu), np.array(series.mem)
            pod_restarts = np.array(series.restarts)
            lst = last_s[sl]
            alive = (lst >= s0) & (lst <= s1)
            pl = np.minimum(lst, s1)
            for first_arr, kind in ((first_s[sl], "cpu"), (first5_s[sl], "restarts")):
                pf = np.maximum(first_arr, s0)
                ok = (pf < pl) & (lst >= s0)
                if not ok.any():
                    continue
                idx = np.flatnonzero(ok)
                a, b = pf[idx], pl[idx]
                ok_samples = valid[a] & valid[b]
                idx, a, b = idx[ok_samples], a[ok_samples], b[ok_samples]
                rows = idx + lo
                if kind == "cpu":
                    rate = (pod_cpu[b - s0] - pod_cpu[a - s0]) / (ts[b] - ts[a])
                    cpu_sum[rows, svc] += rate / st.cpu_requests[svc]
                    cpu_cnt[rows, svc] += 1
                else:
                    restarts[rows, svc] += pod_restarts[b - s0] - pod_restarts[a - s0]
                    restart_cnt[rows, svc] += 1
            rows = np.flatnonzero(alive & valid[np.clip(lst, 0, None)]) + lo
            if len(rows):
                mem = pod_mem[last_s[rows] - s0] / st.memory_limits[svc]
                memory[rows, svc] = np.fmax(memory[rows, svc], mem)
        with np.errstate(invalid="ignore", divide="ignore"):
            cpu = np.where(cpu_cnt > 0, cpu_sum / cpu_cnt, np.nan)
        restarts = np.where(restart_cnt > 0, restarts, np.nan)
        return cpu, memory, restarts

    def exposition(self) -> str:
        """The latest scrape in the Prometheus text exposition format (version 0.0.4)."""
        st = self._store
        st.materialise()
        if st.n == 0:
            return ""
        i = st.n - 1
        topo = st.settings.topology
        base = f'region="{topo.region}",namespace="{topo.namespace}"'
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str, samples: Iterable[str]) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(samples)

        pods = sorted(st.live.values(), key=lambda s: (s.service, s.pod))
        svc = st.services

        def pod_labels(s: _PodSeries) -> str:
            return f'{base},pod="{s.pod}",container="{svc[s.service]}"'

        family(
            "kube_pod_container_status_restarts_total",
            "counter",
            "The number of container restarts per container.",
            (f"kube_pod_container_status_restarts_total{{{pod_labels(s)}}} "
             f"{s.restarts[-1]:g}" for s in pods),
        )  # fmt: skip
        family(
            "kube_pod_container_resource_requests",
            "gauge",
            "The number of requested request resource by a container.",
            (f'kube_pod_container_resource_requests{{{pod_labels(s)},node="{s.node}",'
             f'resource="cpu",unit="core"}} {st.cpu_requests[s.service]:g}' for s in pods),
        )  # fmt: skip
        family(
            "kube_pod_container_resource_limits",
            "gauge",
            "The number of requested limit resource by a container.",
            (f'kube_pod_container_resource_limits{{{pod_labels(s)},node="{s.node}",'
             f'resource="memory",unit="byte"}} {st.memory_limits[s.service]:.0f}' for s in pods),
        )  # fmt: skip
        family(
            "kube_deployment_spec_replicas",
            "gauge",
            "Number of desired pods for a deployment.",
            (f'kube_deployment_spec_replicas{{{base},deployment="{name}"}} {st.spec[i, k]:g}'
             for k, name in enumerate(svc)),
        )  # fmt: skip
        family(
            "kube_deployment_status_replicas_ready",
            "gauge",
            "The number of ready replicas per deployment.",
            (f'kube_deployment_status_replicas_ready{{{base},deployment="{name}"}} '
             f"{st.ready[i, k]:g}" for k, name in enumerate(svc)),
        )  # fmt: skip
        family(
            "container_cpu_usage_seconds_total",
            "counter",
            "Cumulative cpu time consumed in seconds.",
            (f"container_cpu_usage_seconds_total{{{pod_labels(s)}}} {s.cpu[-1]:.6f}"
             for s in pods),
        )  # fmt: skip
        family(
            "container_memory_working_set_bytes",
            "gauge",
            "Current working set of the container in bytes.",
            (f"container_memory_working_set_bytes{{{pod_labels(s)}}} {s.mem[-1]:.0f}"
             for s in pods),
        )  # fmt: skip
        histogram: list[str] = []
        for k, name in enumerate(svc):
            labels = f'{base},service="{name}"'
            for le, count in zip(st.upper_bounds, st.buckets[i, k], strict=True):
                le_text = "+Inf" if math.isinf(le) else f"{le:g}"
                histogram.append(
                    f'http_request_duration_seconds_bucket{{{labels},le="{le_text}"}} {count:.0f}'
                )
            histogram.append(f"http_request_duration_seconds_sum{{{labels}}} {st.sums[i, k]:.6f}")
            histogram.append(
                f"http_request_duration_seconds_count{{{labels}}} {st.buckets[i, k, -1]:.0f}"
            )
        family(
            "http_request_duration_seconds",
            "histogram",
            "Duration of HTTP requests in seconds.",
            histogram,
        )
        family(
            "http_requests_total",
            "counter",
            "Total number of HTTP requests by status code.",
            (f'http_requests_total{{{base},service="{name}",code="{code}"}} '
             f"{st.requests[i, k, c]:.0f}"
             for k, name in enumerate(svc) for c, code in enumerate(CODES)),
        )  # fmt: skip
        return "\n".join(lines) + "\n"
