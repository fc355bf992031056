"""The tidy frame computed from what the lab's Prometheus scraped (``lab._store``).

Samples live in growable numpy arrays rather than per-sample objects, so a simulated week of
15 s scrapes is a few megabytes and a ``query_range`` is a handful of vectorised operations,
for three services or a thousand.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from contracts import FAMILIES, METRIC_COLUMNS, MetricFamily
from lab._errors import InvalidTimeError
from lab._exposition import exposition_text, history_openmetrics, serve_metrics
from lab._family_store import FamilyStore, is_rate
from lab._store import ScrapeStore, _ranges

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

_EPS = 1e-6
_RESTART_WINDOW_S = 300.0


def histogram_quantile(q: float, upper_bounds: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """PromQL ``histogram_quantile``: linear interpolation inside the bucket holding rank q.

    ``upper_bounds`` are the ``le`` values ending with +Inf; ``counts`` are cumulative bucket
    counts (or their increases) with buckets on the last axis. Returns NaN where the total is
    0 or NaN, and the highest finite bound where the rank falls in the +Inf bucket.
    """
    counts = np.array(counts, dtype=float)
    for b in range(1, counts.shape[-1]):  # maximum.accumulate, bucket by bucket: 3x faster
        np.maximum(counts[..., b], counts[..., b - 1], out=counts[..., b])
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


class LabMetricSource:
    """The lab's metric source: ``query_range`` gives the tidy frame, as PromQL would.

    Each column is computed in Python the way these PromQL recipes evaluate at every step end
    ``T`` (``w`` = max(step, 4 x scrape interval), like Grafana's ``$__rate_interval``)::

        request_rate       sum by (service) (rate(http_requests_total[w]))
        request_rate_instant
                           sum by (service) (irate(http_requests_total[w]))
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
    divided by their distance (NaN with fewer than two samples), an ``irate`` that of the last
    two samples there; a gauge is the last sample in that window. Lost scrapes are skipped, so
    gaps turn into NaN. Rows are produced for step ends between the first and the last scrape.
    """

    def __init__(self, store: ScrapeStore, families: FamilyStore | None = None) -> None:
        self._store = store
        self._families = families or FamilyStore()

    def _steps(
        self, start: datetime, end: datetime, step: timedelta
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Step ends of the query with scrapes, the first and last valid scrape in each
        step's window, whether it has two, and the valid scrape indices."""
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
        return grid, first, last, has2, valid_idx

    def query_range(self, start: datetime, end: datetime, step: timedelta) -> pd.DataFrame:
        """The tidy metrics frame, one row per (step end, service)."""
        grid, first, last, has2, valid_idx = self._steps(start, end, step)
        st = self._store
        n = st.n
        ts = st.times[:n]
        first5, _, has2_5 = self._window(ts, valid_idx, grid, _RESTART_WINDOW_S)
        has1 = last >= 0
        last_c = np.maximum(last, 0)
        first_c = np.maximum(first, 0)

        dt = (ts[last_c] - ts[first_c])[:, None] if n else np.empty((0, 1))
        # The valid scrape before the last one, for irate (there is one where has2).
        if len(valid_idx):
            prev_c = valid_idx[np.maximum(np.searchsorted(valid_idx, last_c) - 1, 0)]
        else:
            prev_c = last_c
        dt_last = (ts[last_c] - ts[prev_c])[:, None] if n else np.empty((0, 1))
        with np.errstate(invalid="ignore", divide="ignore"):
            inc_req = st.requests[last_c] - st.requests[first_c]
            total = inc_req.sum(axis=-1)
            request_rate = np.where(has2[:, None], total / dt, np.nan)
            newest = (st.requests[last_c] - st.requests[prev_c]).sum(axis=-1)
            request_rate_instant = np.where(has2[:, None], newest / dt_last, np.nan)
            error_rate = np.where(
                has2[:, None], (inc_req[..., 1] + inc_req[..., 2]) / total, np.nan
            )
        # A client library counts whole requests: the exposed buckets are rounded.
        inc_buckets = np.rint(st.buckets[last_c]) - np.rint(st.buckets[first_c])
        inc_buckets[~has2] = np.nan
        p95 = 1e3 * histogram_quantile(0.95, st.upper_bounds, inc_buckets)
        p99 = 1e3 * histogram_quantile(0.99, st.upper_bounds, inc_buckets)
        ready = np.where(has1[:, None], st.ready[last_c], np.nan)
        desired = np.where(has1[:, None], st.spec[last_c], np.nan)
        cpu, memory, restarts = st.pod_columns(
            np.where(has2, first, -1), last, np.where(has2_5, first5, -1)
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
                "request_rate_instant": request_rate_instant.ravel(),
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

    def query_family(
        self, family: MetricFamily, start: datetime, end: datetime, step: timedelta
    ) -> pd.DataFrame:
        """The tidy frame of ``family`` (``FAMILIES[family].columns``), one row per step end
        and series with a sample in the step's window: gauges are the last sample there,
        ``_rate`` columns the counter's increase over the window per second."""
        family = MetricFamily(family)
        grid, first, last, has2, _ = self._steps(start, end, step)
        if family is MetricFamily.POD:
            return self._pods(grid, last)
        schema = FAMILIES[family]
        st = self._store
        keys = self._families.series(family)
        if not keys or not len(grid):
            return pd.DataFrame({c: [] for c in schema.columns})
        ts = st.times[: st.n]
        at_last = self._families.values(family, np.maximum(last, 0))
        at_first = self._families.values(family, np.maximum(first, 0))
        present = (last >= 0)[:, None] & ~np.isnan(at_last).all(axis=2)
        dt = (ts[np.maximum(last, 0)] - ts[np.maximum(first, 0)])[:, None]
        columns: dict[str, np.ndarray] = {}
        for j, name in enumerate(schema.values):
            if is_rate(name):
                with np.errstate(invalid="ignore", divide="ignore"):
                    rate = (at_last[..., j] - at_first[..., j]) / dt
                columns[name] = np.where(has2[:, None], rate, np.nan)[present]
            else:
                columns[name] = at_last[..., j][present]
        g, k = present.nonzero()
        frame: dict[str, object] = {
            "timestamp": pd.to_datetime(np.round(grid[g] * 1e9).astype(np.int64), utc=True),
            "region": np.full(len(g), st.settings.topology.region, dtype=object),
        }
        key_array = np.array(keys, dtype=object).reshape(len(keys), len(schema.keys))
        for j, name in enumerate(schema.keys):
            frame[name] = key_array[k, j]
        frame.update(columns)
        return pd.DataFrame(frame, columns=list(schema.columns))

    def _pods(self, grid: np.ndarray, last: np.ndarray) -> pd.DataFrame:
        """The pod family from the scrape store's pod samples at each step's last scrape."""
        st = self._store
        schema = FAMILIES[MetricFamily.POD]
        scraped = last >= 0
        steps = np.flatnonzero(scraped)
        positions, which = _ranges(st.offsets[last[steps]], st.offsets[last[steps] + 1])
        series = st.sample_series[positions]
        service = st.series_service[series]
        names = st.series_names
        return pd.DataFrame(
            {
                "timestamp": pd.to_datetime(
                    np.round(grid[steps][which] * 1e9).astype(np.int64), utc=True
                ),
                "region": np.full(len(series), st.settings.topology.region, dtype=object),
                "service": np.array(st.services, dtype=object)[service],
                "pod": [names[k][0] for k in series.tolist()],
                "node": [names[k][1] for k in series.tolist()],
                "container_memory_working_set_bytes": st.sample_memory[positions],
                "kube_pod_container_resource_limits_memory_bytes": st.memory_limits[service],
                "kube_pod_container_status_restarts_total": st.sample_restarts[positions].astype(
                    float
                ),
                "kube_pod_container_status_last_terminated_oomkilled": st.sample_oomkilled[
                    positions
                ].astype(float),
            },
            columns=list(schema.columns),
        )

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

    def exposition(self) -> str:
        """The newest scrape in the Prometheus text format (0.0.4), as the exporters serve it."""
        return exposition_text(self._store, self._families)

    def history_openmetrics(self) -> str:
        """Every scrape Prometheus kept, each sample timestamped, as OpenMetrics text (what
        ``promtool tsdb create-blocks-from openmetrics`` backfills)."""
        return history_openmetrics(self._store, self._families)

    def serve(
        self,
        port: int = 0,
        addr: str = "127.0.0.1",
        lock: threading.Lock | None = None,
        healthy: Callable[[], bool] | None = None,
        timestamped: bool = False,
    ) -> tuple[WSGIServer, threading.Thread]:
        """Serve the exporters' ``/metrics`` (the newest scrape) for a Prometheus server to
        scrape; ``server.server_port`` is the port, ``server.shutdown()`` stops it. Pass the
        ``lock`` a thread stepping the lab holds; ``healthy`` answers ``/healthz``;
        ``timestamped``: samples carry the lab's time (a lab level with the wall clock)."""
        return serve_metrics(
            self._store, self._families, port, addr, lock, healthy, timestamped=timestamped
        )
