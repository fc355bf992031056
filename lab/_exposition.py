"""The lab's exporters as a Prometheus scrape target, written by ``prometheus_client``.

A real Prometheus server can scrape the lab (``serve_metrics``) or load a recorded history of
it (``LabCollector(history=True)`` gives every scrape with its timestamp, in the OpenMetrics
text that ``promtool tsdb create-blocks-from openmetrics`` backfills). Either way the series
carry the names and labels of the exporters people run -- kube-state-metrics, cAdvisor,
node-exporter, a client library's HTTP histogram, kafka-exporter, the CloudWatch exporter --
so the PromQL recipes of ``features.PrometheusSource`` that read a real estate read the lab
unchanged, and its frames can be checked against the lab's own ``query_range``.

Every series also carries ``region`` and ``namespace`` (as an external label and a relabel
would). The dependency families carry the owning ``service`` as a label; on a real estate
that label comes from a relabel rule or from the configuration's ownership table.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    UnknownMetricFamily,
)
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector

from contracts import FAMILIES, MetricFamily
from lab._store import CODES, _ranges

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from lab._family_store import FamilyStore
    from lab._store import ScrapeStore

#: CloudWatch reports a count as the sum over its period; the exporter's period here.
CLOUDWATCH_PERIOD_S = 60.0


@dataclass(frozen=True)
class Exposed:
    """How one family column is exposed: the exporter's metric and its fixed labels."""

    metric: str
    """Metric family name (a counter's without ``_total``)."""
    kind: str
    """``gauge``, ``counter``, ``unknown`` (node-exporter's untyped) or ``period_sum`` (a
    CloudWatch count over ``CLOUDWATCH_PERIOD_S``, exposed as a gauge)."""
    labels: tuple[tuple[str, str], ...] = ()
    keys: tuple[str, ...] | None = None
    """The family keys it carries as labels (None: all of them)."""
    scale: float = 1.0
    """Exposed value = stored value x scale."""


_READY = (("condition", "Ready"), ("status", "true"))
_DISK = (("condition", "DiskPressure"), ("status", "true"))
_ROOT = (("mountpoint", "/"), ("fstype", "ext4"))
_PARTITION = ("topic", "partition")

#: How each family column reaches Prometheus (the upstream's request counters are split by
#: status code separately, as ``_CALLS_429`` and ``_CALLS_OK``).
FAMILY_EXPOSITION: dict[MetricFamily, dict[str, Exposed]] = {
    MetricFamily.NODE: {
        "kube_node_status_condition_ready": Exposed("kube_node_status_condition", "gauge", _READY),
        "kube_node_status_condition_disk_pressure": Exposed(
            "kube_node_status_condition", "gauge", _DISK
        ),
        "kube_node_spec_unschedulable": Exposed("kube_node_spec_unschedulable", "gauge"),
        "node_filesystem_avail_bytes": Exposed("node_filesystem_avail_bytes", "gauge", _ROOT),
        "node_filesystem_size_bytes": Exposed("node_filesystem_size_bytes", "gauge", _ROOT),
        "node_netstat_TcpExt_TCPRetransSegs_rate": Exposed(
            "node_netstat_TcpExt_TCPRetransSegs", "unknown"
        ),
        "node_netstat_Tcp_OutSegs_rate": Exposed("node_netstat_Tcp_OutSegs", "unknown"),
    },
    MetricFamily.DATABASE: {
        "aws_rds_read_latency_average": Exposed("aws_rds_read_latency_average", "gauge"),
        "aws_rds_write_latency_average": Exposed("aws_rds_write_latency_average", "gauge"),
        "aws_rds_replica_lag_average": Exposed("aws_rds_replica_lag_average", "gauge"),
        "serving_reads": Exposed("ooda_database_serving", "gauge", (("traffic", "reads"),)),
        "serving_writes": Exposed("ooda_database_serving", "gauge", (("traffic", "writes"),)),
    },
    MetricFamily.KAFKA: {
        "kafka_consumergroup_lag": Exposed("kafka_consumergroup_lag", "gauge"),
        "kafka_topic_partition_current_offset_rate": Exposed(
            "kafka_topic_partition_current_offset", "gauge", keys=_PARTITION
        ),
        "kafka_consumergroup_current_offset_rate": Exposed(
            "kafka_consumergroup_current_offset", "gauge"
        ),
    },
    MetricFamily.QUEUE: {
        "aws_sqs_approximate_number_of_messages_visible_average": Exposed(
            "aws_sqs_approximate_number_of_messages_visible_average", "gauge"
        ),
        "aws_sqs_approximate_age_of_oldest_message_average": Exposed(
            "aws_sqs_approximate_age_of_oldest_message_average", "gauge"
        ),
        "aws_sqs_number_of_messages_received_rate": Exposed(
            "aws_sqs_number_of_messages_received_sum", "period_sum"
        ),
        "aws_sqs_number_of_messages_deleted_rate": Exposed(
            "aws_sqs_number_of_messages_deleted_sum", "period_sum"
        ),
        "aws_sqs_number_of_messages_sent_rate": Exposed(
            "aws_sqs_number_of_messages_sent_sum", "period_sum"
        ),
    },
    MetricFamily.UPSTREAM: {
        "http_client_request_duration_p95_ms": Exposed(
            "http_client_request_duration_seconds", "gauge", (("quantile", "0.95"),), scale=1e-3
        ),
    },
}

_KINDS: dict[str, Callable[..., Any]] = {
    "gauge": GaugeMetricFamily,
    "period_sum": GaugeMetricFamily,
    "counter": CounterMetricFamily,
    "unknown": UnknownMetricFamily,
}

_HELP = {
    "kube_node_status_condition": "The condition of a cluster node.",
    "kube_node_spec_unschedulable": "Whether a node can schedule new pods.",
    "node_filesystem_avail_bytes": "Filesystem space available to non-root users in bytes.",
    "node_filesystem_size_bytes": "Filesystem size in bytes.",
    "node_netstat_TcpExt_TCPRetransSegs": "Statistic TcpExtTCPRetransSegs.",
    "node_netstat_Tcp_OutSegs": "Statistic TcpOutSegs.",
    "kafka_consumergroup_lag": "Current approximate lag of a consumer group at topic/partition.",
    "kafka_topic_partition_current_offset": "Current offset of a broker at topic/partition.",
    "kafka_consumergroup_current_offset": "Current offset of a consumer group at topic/partition.",
    "ooda_database_serving": "Whether the application's reads or writes go to this instance.",
    "http_client_request_duration_seconds": "Duration of calls to an upstream API in seconds.",
}


class _Series:
    """One series' samples: label values and, per point, the value and its time (None live)."""

    __slots__ = ("labels", "points")

    def __init__(self, labels: dict[str, str]) -> None:
        self.labels = labels
        self.points: list[tuple[float, float | None]] = []


class LabCollector(Collector):
    """The lab's exporters, as ``prometheus_client`` metric families.

    ``history=False``: the newest scrape, untimestamped, as an exporter serves it, or with its
    time (``timestamped``) for a lab that trails the wall clock (``LiveLab`` steps a scrape
    interval at a time): then Prometheus stores each sample at the lab's time, not at the
    moment it scraped, and a rate over a window is the lab's own, not off by up to a step.
    ``history=True``: every scrape Prometheus did not lose, each sample with its time,
    series by series (the order OpenMetrics asks for).
    """

    def __init__(
        self,
        store: ScrapeStore,
        families: FamilyStore,
        *,
        history: bool = False,
        lock: threading.Lock | None = None,
        timestamped: bool = False,
    ):
        self._store = store
        self._families = families
        self._history = history
        self._timestamped = timestamped
        self._lock = lock

    def collect(self) -> Iterator[Metric]:
        if self._lock is None:
            yield from self._collect()
            return
        with self._lock:  # the lab steps in another thread: read a whole scrape
            metrics = list(self._collect())
        yield from metrics

    def _collect(self) -> Iterator[Metric]:
        st = self._store
        st.materialise()
        if st.n == 0:
            return
        times: list[float | None]
        if self._history:
            scrapes = np.flatnonzero(st.valid[: st.n])
            times = st.times[scrapes].tolist()
        else:
            scrapes = np.array([st.n - 1])
            times = [float(st.times[st.n - 1]) if self._timestamped else None]
        topo = st.settings.topology
        self._base = {"region": topo.region, "namespace": topo.namespace}
        yield from self._services(scrapes, times)
        yield from self._pods(scrapes, times)
        for family in FAMILY_EXPOSITION:
            yield from self._family(family, scrapes, times)

    def _services(self, scrapes: np.ndarray, times: Sequence[float | None]) -> Iterator[Metric]:
        st = self._store
        base = self._base
        requests = CounterMetricFamily(
            "http_requests_total",
            "Total number of HTTP requests by status code.",
            labels=[*base, "service", "code"],
        )
        for k, name in enumerate(st.services):
            for c, code in enumerate(CODES):
                values = st.requests[scrapes, k, c]
                for value, t in zip(values.tolist(), times, strict=True):
                    requests.add_metric([*base.values(), name, code], value, timestamp=t)
        yield requests
        duration = HistogramMetricFamily(
            "http_request_duration_seconds",
            "Duration of HTTP requests in seconds.",
            labels=[*base, "service"],
        )
        les = ["+Inf" if math.isinf(le) else f"{le:g}" for le in st.upper_bounds]
        for k, name in enumerate(st.services):
            buckets, sums = np.rint(st.buckets[scrapes, k]), st.sums[scrapes, k]
            for row, total, t in zip(buckets.tolist(), sums.tolist(), times, strict=True):
                duration.add_metric(
                    [*base.values(), name],
                    list(zip(les, row, strict=True)),
                    sum_value=total,
                    timestamp=t,
                )
        yield duration
        for metric, help_text, matrix in (
            ("kube_deployment_spec_replicas", "Number of desired pods for a deployment.", st.spec),
            (
                "kube_deployment_status_replicas_ready",
                "The number of ready replicas per deployment.",
                st.ready,
            ),
        ):
            gauge = GaugeMetricFamily(metric, help_text, labels=[*base, "deployment"])
            for k, name in enumerate(st.services):
                for value, t in zip(matrix[scrapes, k].tolist(), times, strict=True):
                    gauge.add_metric([*base.values(), name], value, timestamp=t)
            yield gauge

    def _pods(self, scrapes: np.ndarray, times: Sequence[float | None]) -> Iterator[Metric]:
        """cAdvisor's and kube-state-metrics' pod series, each pod's samples together."""
        st = self._store
        positions, which = _ranges(st.offsets[scrapes], st.offsets[scrapes + 1])
        series = st.sample_series[positions]
        order = np.argsort(series, kind="stable")
        positions, which, series = positions[order], which[order], series[order]
        base = self._base
        pod_keys = [*base, "pod", "container"]
        info = GaugeMetricFamily(
            "kube_pod_info",
            "Information about pod.",
            labels=[*base, "pod", "node", "created_by_kind"],
        )
        cpu_total = CounterMetricFamily(
            "container_cpu_usage_seconds_total",
            "Cumulative cpu time consumed in seconds.",
            labels=pod_keys,
        )
        working_set = GaugeMetricFamily(
            "container_memory_working_set_bytes",
            "Current working set of the container in bytes.",
            labels=pod_keys,
        )
        requests = GaugeMetricFamily(
            "kube_pod_container_resource_requests",
            "The number of requested request resource by a container.",
            labels=[*pod_keys, "node", "resource", "unit"],
        )
        limits = GaugeMetricFamily(
            "kube_pod_container_resource_limits",
            "The number of requested limit resource by a container.",
            labels=[*pod_keys, "node", "resource", "unit"],
        )
        restarts_total = CounterMetricFamily(
            "kube_pod_container_status_restarts_total",
            "The number of container restarts per container.",
            labels=pod_keys,
        )
        terminated = GaugeMetricFamily(
            "kube_pod_container_status_last_terminated_reason",
            "Describes the last reason the container was in terminated state.",
            labels=[*pod_keys, "reason"],
        )
        cpu, memory = st.sample_cpu[positions].tolist(), st.sample_memory[positions].tolist()
        restarts = st.sample_restarts[positions].tolist()
        oom = st.sample_oomkilled[positions].astype(float).tolist()
        stamps = [times[w] for w in which.tolist()]
        for j, s in enumerate(series.tolist()):
            pod, node = st.series_names[s]
            service = int(st.series_service[s])
            name = st.services[service]
            labels = [*base.values(), pod, name]
            t = stamps[j]
            info.add_metric([*base.values(), pod, node, "ReplicaSet"], 1.0, timestamp=t)
            cpu_total.add_metric(labels, cpu[j], timestamp=t)
            working_set.add_metric(labels, memory[j], timestamp=t)
            requests.add_metric(
                [*labels, node, "cpu", "core"], float(st.cpu_requests[service]), timestamp=t
            )
            limits.add_metric(
                [*labels, node, "memory", "byte"], float(st.memory_limits[service]), timestamp=t
            )
            restarts_total.add_metric(labels, float(restarts[j]), timestamp=t)
            terminated.add_metric([*labels, "OOMKilled"], oom[j], timestamp=t)
        yield from (info, cpu_total, working_set, requests, limits, restarts_total, terminated)

    def _family(
        self, family: MetricFamily, scrapes: np.ndarray, times: Sequence[float | None]
    ) -> Iterator[Metric]:
        """One dependency family's series, grouped into the exporters' metric families."""
        keys = self._families.series(family)
        if not keys:
            return
        schema = FAMILIES[family]
        values = self._families.values(family, scrapes)
        earlier = self._families.values(family, self._period_start(scrapes))
        metrics: dict[str, dict[tuple[tuple[str, str], ...], _Series]] = {}
        kinds: dict[str, str] = {}

        def column(name: str) -> np.ndarray:
            return values[..., schema.values.index(name)]

        def period(name: str) -> np.ndarray:
            return column(name) - earlier[..., schema.values.index(name)]

        columns = [
            (period(c) if how.kind == "period_sum" else column(c) * how.scale, how)
            for c, how in FAMILY_EXPOSITION[family].items()
        ]
        if family is MetricFamily.UPSTREAM:
            calls, throttled = (
                column("http_client_requests_rate"),
                column("http_client_requests_throttled_rate"),
            )
            columns += [(throttled, _CALLS_429), (calls - throttled, _CALLS_OK)]
        for matrix, how in columns:
            kinds[how.metric] = how.kind
            by_labels = metrics.setdefault(how.metric, {})
            for k, key in enumerate(keys):
                labels = dict(self._base)
                labels.update(
                    (name, value)
                    for name, value in zip(schema.keys, key, strict=True)
                    if how.keys is None or name in how.keys
                )
                labels.update(how.labels)
                ident = tuple(labels.items())
                series = by_labels.get(ident)
                if series is None:
                    series = by_labels[ident] = _Series(labels)
                elif how.keys is not None:
                    continue  # a partition's series, already taken from another group's row
                for value, t in zip(matrix[:, k].tolist(), times, strict=True):
                    if not math.isnan(value):
                        series.points.append((value, t))
        for metric, by_labels in metrics.items():
            yield _metric(metric, kinds[metric], by_labels.values())

    def _period_start(self, scrapes: np.ndarray) -> np.ndarray:
        """The scrape that opens the CloudWatch period ending at each of ``scrapes``."""
        st = self._store
        ts = st.times[: st.n]
        start = np.searchsorted(ts, ts[scrapes] - CLOUDWATCH_PERIOD_S - 1e-6, side="left")
        return np.minimum(start, scrapes)


#: The upstream's calls, by status code: the throttled ones and the rest.
_CALLS_429 = Exposed("http_client_requests", "counter", (("code", "429"),))
_CALLS_OK = Exposed("http_client_requests", "counter", (("code", "200"),))


def _metric(name: str, kind: str, series: Iterable[_Series]) -> Any:
    items = list(series)
    labels = list(items[0].labels) if items else []
    metric = _KINDS[kind](name, _HELP.get(name, name.replace("_", " ")), labels=labels)
    for s in items:
        for value, t in s.points:
            metric.add_metric(list(s.labels.values()), value, timestamp=t)
    return metric


def registry_of(collector: Collector) -> CollectorRegistry:
    """A registry holding only ``collector`` (no process or platform metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def exposition_text(store: ScrapeStore, families: FamilyStore) -> str:
    """The newest scrape in the Prometheus text format (0.0.4)."""
    return generate_latest(registry_of(LabCollector(store, families))).decode()


def history_openmetrics(store: ScrapeStore, families: FamilyStore) -> str:
    """Every scrape with its time, as OpenMetrics text for ``promtool``'s backfill."""
    return generate_openmetrics(registry_of(LabCollector(store, families, history=True))).decode()


def serve_metrics(
    store: ScrapeStore,
    families: FamilyStore,
    port: int = 0,
    addr: str = "127.0.0.1",
    lock: threading.Lock | None = None,
    healthy: Callable[[], bool] | None = None,
    timestamped: bool = False,
) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``/metrics`` of the newest scrape on ``addr:port`` (0: a free port, read it from
    ``server.server_port``); ``server.shutdown()`` stops it. ``lock``: held while a scrape is
    read, for a lab that steps in another thread. ``healthy``: the region's public endpoint,
    ``/healthz``, answers 200 while it says so and 503 otherwise (what a synthetic probe or a
    Route 53 health check requests). ``timestamped``: each sample carries the lab's time of
    the scrape (for a lab level with the wall clock; Prometheus refuses samples far older)."""
    collector = LabCollector(store, families, lock=lock, timestamped=timestamped)
    metrics = make_wsgi_app(registry_of(collector))

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz" and healthy is not None:
            ok = healthy()
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "text/plain")])
            return [b"ok\n" if ok else b"region down\n"]
        return metrics(environ, start_response)

    server = make_server(addr, port, app, ThreadingWSGIServer, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, name="lab-metrics", daemon=True)
    thread.start()
    return server, thread


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log on the terminal."""
