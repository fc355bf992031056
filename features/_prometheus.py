"""``PrometheusSource``: the metric-source port over Prometheus' HTTP API.

Every column of the tidy frames is one PromQL recipe, kept in one table (``SERVICE_RECIPES``
and ``FAMILY_RECIPES``) that a configuration can override column by column, because metric
and label names differ between estates (a relabelled ``service``, a mesh's histogram, YACE
instead of the CloudWatch exporter). The defaults read the exporters people run:
kube-state-metrics, cAdvisor, node-exporter, a client library's HTTP histogram,
kafka-exporter and the CloudWatch exporter -- the same series the lab exposes, so the lab's
own frame is the reference a test compares against.

Two placeholders are substituted in a recipe: ``{w}`` is the rate window, max(step, 4 x
scrape interval) as Grafana's ``$__rate_interval``; ``{sel}`` is the configured label
matchers (``namespace="shop"``), empty by default. A family's keys are read from the result's
labels; an entity whose series has no ``service`` label is given the owner the
configuration names for it (``owners``: label -> value -> service), and one with no owner
is left out and reported once.

Failures: a refused connection, a timeout, 429 and 5xx are temporary
(``SourceUnavailableError``, retried with exponential backoff); a 4xx with ``bad_data``
names the recipe and is permanent (``QueryError``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pandas as pd
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from contracts import FAMILIES, METRIC_COLUMNS, MetricFamily
from features._errors import QueryError, SourceUnavailableError

log = logging.getLogger(__name__)

_SERVICE = 'label_replace({expr}, "service", "$1", "{label}", "(.+)")'
# The right-hand sides are de-duplicated (``max by``): two kube-state-metrics replicas, or a
# job renamed, give a pod two series, and a one-to-one match refuses them.
_PER_POD_CPU = (
    'rate(container_cpu_usage_seconds_total{{sel}container!=""}[{w}])'
    " / on (namespace, pod) group_left max by (namespace, pod)"
    ' (kube_pod_container_resource_requests{{sel}resource="cpu"})'
)
_PER_POD_MEMORY = (
    'container_memory_working_set_bytes{{sel}container!=""}'
    " / on (namespace, pod) group_left max by (namespace, pod)"
    ' (kube_pod_container_resource_limits{{sel}resource="memory"})'
)
_ON_NODE = (
    " * on (namespace, pod) group_left (node) max by (namespace, pod, node) (kube_pod_info{{sel}})"
)


def _by_container(expr: str) -> str:
    return _SERVICE.format(expr=expr, label="container")


def _by_deployment(expr: str) -> str:
    return _SERVICE.format(expr=expr, label="deployment")


#: The service frame (``contracts.METRIC_COLUMNS``): one recipe per column, by ``service``.
SERVICE_RECIPES: dict[str, str] = {
    "request_rate": "sum by (service) (rate(http_requests_total{{sel}}[{w}]))",
    # Where the rate stands now (its last two samples): a ramp's first minute, which the
    # window's mean shows half a minute late.
    "request_rate_instant": "sum by (service) (irate(http_requests_total{{sel}}[{w}]))",
    "p95_latency_ms": "1e3 * histogram_quantile(0.95, sum by (service, le)"
    " (rate(http_request_duration_seconds_bucket{{sel}}[{w}])))",
    "p99_latency_ms": "1e3 * histogram_quantile(0.99, sum by (service, le)"
    " (rate(http_request_duration_seconds_bucket{{sel}}[{w}])))",
    # A service with no 5xx series yet has an error rate of 0, not none.
    "error_rate": '(sum by (service) (rate(http_requests_total{{sel}code=~"5.."}[{w}]))'
    " or 0 * sum by (service) (rate(http_requests_total{{sel}}[{w}])))"
    " / sum by (service) (rate(http_requests_total{{sel}}[{w}]))",
    "cpu_utilisation": f"avg by (service) ({_by_container(_PER_POD_CPU)})",
    "memory_utilisation": f"max by (service) ({_by_container(_PER_POD_MEMORY)})",
    "restarts": "sum by (service) ("
    + _by_container("increase(kube_pod_container_status_restarts_total{{sel}}[5m])")
    + ")",
    "ready_pods": _by_deployment("kube_deployment_status_replicas_ready{{sel}}"),
    "desired_pods": _by_deployment("kube_deployment_spec_replicas{{sel}}"),
}

#: Every other family (``contracts.FAMILIES``): one recipe per value column, whose result
#: carries the family's keys as labels (``service`` possibly through ``owners``).
FAMILY_RECIPES: dict[MetricFamily, dict[str, str]] = {
    MetricFamily.POD: {
        "container_memory_working_set_bytes": _by_container(
            'container_memory_working_set_bytes{{sel}container!=""}' + _ON_NODE
        ),
        "kube_pod_container_resource_limits_memory_bytes": _by_container(
            'kube_pod_container_resource_limits{{sel}resource="memory"}'
        ),
        "kube_pod_container_status_restarts_total": _by_container(
            "kube_pod_container_status_restarts_total{{sel}}" + _ON_NODE
        ),
        "kube_pod_container_status_last_terminated_oomkilled": _by_container(
            'kube_pod_container_status_last_terminated_reason{{sel}reason="OOMKilled"}' + _ON_NODE
        ),
    },
    MetricFamily.NODE: {
        "kube_node_status_condition_ready": 'kube_node_status_condition{condition="Ready",'
        'status="true"}',
        "kube_node_status_condition_disk_pressure": "kube_node_status_condition"
        '{condition="DiskPressure",status="true"}',
        "kube_node_spec_unschedulable": "kube_node_spec_unschedulable",
        "node_filesystem_avail_bytes": 'node_filesystem_avail_bytes{mountpoint="/"}',
        "node_filesystem_size_bytes": 'node_filesystem_size_bytes{mountpoint="/"}',
        "node_netstat_TcpExt_TCPRetransSegs_rate": "rate(node_netstat_TcpExt_TCPRetransSegs[{w}])",
        "node_netstat_Tcp_OutSegs_rate": "rate(node_netstat_Tcp_OutSegs[{w}])",
    },
    MetricFamily.DATABASE: {
        "aws_rds_read_latency_average": "aws_rds_read_latency_average{{sel}}",
        "aws_rds_write_latency_average": "aws_rds_write_latency_average{{sel}}",
        "aws_rds_replica_lag_average": "aws_rds_replica_lag_average{{sel}}",
        "serving_reads": 'ooda_database_serving{{sel}traffic="reads"}',
        "serving_writes": 'ooda_database_serving{{sel}traffic="writes"}',
    },
    MetricFamily.KAFKA: {
        "kafka_consumergroup_lag": "kafka_consumergroup_lag{{sel}}",
        # kafka-exporter's log-end offset has no group: take each group's partitions. One
        # series per partition on the "one" side, whatever else differs (a restarted
        # exporter's old series within the rate window, a second scrape job).
        "kafka_topic_partition_current_offset_rate": "max by (topic, partition) (rate("
        "kafka_topic_partition_current_offset{{sel}}[{w}])) + on (topic, partition) group_right"
        " 0 * kafka_consumergroup_lag{{sel}}",
        "kafka_consumergroup_current_offset_rate": "rate(kafka_consumergroup_current_offset"
        "{{sel}}[{w}])",
    },
    MetricFamily.QUEUE: {
        "aws_sqs_approximate_number_of_messages_visible_average": (
            "aws_sqs_approximate_number_of_messages_visible_average{{sel}}"
        ),
        "aws_sqs_approximate_age_of_oldest_message_average": (
            "aws_sqs_approximate_age_of_oldest_message_average{{sel}}"
        ),
        # CloudWatch counts are sums over the exporter's 60 s period.
        "aws_sqs_number_of_messages_received_rate": "aws_sqs_number_of_messages_received_sum"
        "{{sel}} / 60",
        "aws_sqs_number_of_messages_deleted_rate": "aws_sqs_number_of_messages_deleted_sum"
        "{{sel}} / 60",
        "aws_sqs_number_of_messages_sent_rate": "aws_sqs_number_of_messages_sent_sum{{sel}} / 60",
    },
    MetricFamily.UPSTREAM: {
        "http_client_requests_rate": "sum by (service, upstream)"
        " (rate(http_client_requests_total{{sel}}[{w}]))",
        "http_client_requests_throttled_rate": "sum by (service, upstream)"
        ' (rate(http_client_requests_total{{sel}code="429"}[{w}]))',
        "http_client_request_duration_p95_ms": "1e3 * http_client_request_duration_seconds"
        '{{sel}quantile="0.95"}',
    },
}

#: Prometheus answers at most 11,000 points per series; longer ranges go in chunks.
MAX_POINTS = 10_000


@dataclass(frozen=True)
class PrometheusSettings:
    """Where one region's Prometheus is and how ooda reads it."""

    url: str
    """Base URL of the HTTP API (``http://prometheus.monitoring:9090``)."""
    region: str
    """The region this Prometheus watches (the frames' ``region`` column)."""
    selector: str = ""
    """Label matchers added to every recipe's selectors (``namespace="shop"``)."""
    scrape_interval: timedelta = timedelta(seconds=15)
    """The scrape interval of the series read (the rate window is at least 4 of them)."""
    timeout: timedelta = timedelta(seconds=10)
    """Per-request timeout."""
    attempts: int = 4
    """Tries of a request that failed temporarily, with exponential backoff between them."""
    backoff: timedelta = timedelta(milliseconds=500)
    """First wait between tries (doubling, at most 8 of it)."""
    service_recipes: Mapping[str, str] = field(default_factory=dict)
    """Overrides of ``SERVICE_RECIPES``, by column."""
    family_recipes: Mapping[MetricFamily, Mapping[str, str]] = field(default_factory=dict)
    """Overrides of ``FAMILY_RECIPES``, by family and column."""
    owners: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """The service that owns an entity whose series lack ``service``: label -> value ->
    service (``{"consumergroup": {"payments": "payments"}}``)."""


class PrometheusSource:
    """The metric-source port over one region's Prometheus (``contracts.MetricSource``).

    ``transport`` replaces the HTTP transport (``httpx.MockTransport`` in tests) and
    ``sleep`` the real sleep between retries.
    """

    def __init__(
        self,
        settings: PrometheusSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        for column in settings.service_recipes:
            if column not in SERVICE_RECIPES:
                raise QueryError(f"no service column {column!r} to override a recipe of")
        for family, columns in settings.family_recipes.items():
            for column in columns:
                if column not in FAMILY_RECIPES[MetricFamily(family)]:
                    raise QueryError(f"family {family!s} has no column {column!r}")
        self.settings = settings
        self._client = httpx.Client(
            base_url=settings.url.rstrip("/"),
            timeout=settings.timeout.total_seconds(),
            transport=transport,
        )
        backoff = settings.backoff.total_seconds()
        self._retrying = Retrying(
            stop=stop_after_attempt(max(1, settings.attempts)),
            wait=wait_exponential(multiplier=backoff, max=8 * backoff),
            retry=retry_if_exception_type(SourceUnavailableError),
            sleep=sleep,
            reraise=True,
        )
        self._unowned: set[tuple[tuple[str, str], ...]] = set()

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def recipe(self, column: str, family: MetricFamily | None = None) -> str:
        """The recipe of ``column`` (of the service frame, or of ``family``), overrides
        applied, placeholders not yet substituted."""
        if family is None:
            return self.settings.service_recipes.get(column) or SERVICE_RECIPES[column]
        override = self.settings.family_recipes.get(family, {})
        return override.get(column) or FAMILY_RECIPES[family][column]

    def query_range(self, start: datetime, end: datetime, step: timedelta) -> pd.DataFrame:
        """The tidy service frame: one row per (step end, service) any recipe answered."""
        grid = self._grid(start, end, step)
        columns = {
            column: self._matrix(self.recipe(column), grid, step) for column in METRIC_COLUMNS[3:]
        }
        return self._frame(("service",), columns, grid, list(METRIC_COLUMNS))

    def query_family(
        self, family: MetricFamily, start: datetime, end: datetime, step: timedelta
    ) -> pd.DataFrame:
        """The tidy frame of ``family``: one row per (step end, entity) any recipe answered."""
        family = MetricFamily(family)
        schema = FAMILIES[family]
        grid = self._grid(start, end, step)
        columns = {
            column: self._matrix(self.recipe(column, family), grid, step)
            for column in schema.values
        }
        return self._frame(schema.keys, columns, grid, list(schema.columns))

    def query_vector(
        self, query: str, at: datetime | None = None
    ) -> list[tuple[dict[str, str], float]]:
        """An instant query as it is written (no recipe, no placeholders): each series'
        labels and value at ``at`` (default: the server's now); NaN for a non-number."""
        params = {"query": query}
        if at is not None:
            if at.tzinfo is None:
                raise QueryError(f"instant query needs an aware datetime, got {at!r}")
            params["time"] = f"{at.timestamp():.3f}"
        out = []
        for result in self._get("/api/v1/query", params, query, "vector"):
            _, value = result.get("value", (None, "NaN"))
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            out.append((dict(result.get("metric", {})), number))
        return out

    # -- internals -----------------------------------------------------------------------------

    @staticmethod
    def _grid(start: datetime, end: datetime, step: timedelta) -> np.ndarray:
        if start.tzinfo is None or end.tzinfo is None:
            raise QueryError(f"query range needs aware datetimes, got {start!r}..{end!r}")
        step_s = step.total_seconds()
        if step_s <= 0 or end < start:
            raise QueryError(f"invalid query range {start}..{end} step {step}")
        n = math.floor((end.timestamp() - start.timestamp()) / step_s + 1e-6) + 1
        return start.timestamp() + step_s * np.arange(n)

    def _promql(self, recipe: str, step: timedelta) -> str:
        window = max(step, 4 * self.settings.scrape_interval).total_seconds()
        sel = self.settings.selector.strip().rstrip(",")
        return recipe.replace("{w}", f"{round(window)}s").replace("{sel}", f"{sel}," if sel else "")

    def _matrix(
        self, recipe: str, grid: np.ndarray, step: timedelta
    ) -> list[tuple[dict[str, str], np.ndarray, np.ndarray]]:
        """Every series the recipe returns: labels, times, values (chunked by MAX_POINTS)."""
        query = self._promql(recipe, step)
        step_s = step.total_seconds()
        series: dict[tuple[tuple[str, str], ...], list[list[Any]]] = {}
        for first in range(0, len(grid), MAX_POINTS):
            chunk = grid[first : first + MAX_POINTS]
            params = {
                "query": query,
                "start": f"{chunk[0]:.3f}",
                "end": f"{chunk[-1]:.3f}",
                "step": f"{step_s:g}",
            }
            for result in self._get("/api/v1/query_range", params, query, "matrix"):
                key = tuple(sorted(result.get("metric", {}).items()))
                series.setdefault(key, []).extend(result.get("values", []))
        out = []
        for key, points in series.items():
            times = np.array([float(t) for t, _ in points])
            values = np.array([float(v) for _, v in points])
            out.append((dict(key), times, values))
        return out

    def _get(
        self, path: str, params: dict[str, str], query: str, result_type: str
    ) -> list[dict[str, Any]]:
        for attempt in self._retrying:
            with attempt:
                return self._once(path, params, query, result_type)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    def _once(
        self, path: str, params: dict[str, str], query: str, result_type: str
    ) -> list[dict[str, Any]]:
        url = self.settings.url
        try:
            response = self._client.get(path, params=params)
        except httpx.TransportError as exc:
            raise SourceUnavailableError(f"Prometheus at {url} unreachable: {exc!r}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise SourceUnavailableError(
                f"Prometheus at {url} answered {response.status_code}: {response.text[:200]}"
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise QueryError(
                f"Prometheus at {url} answered {response.status_code} with no JSON for {query!r}"
            ) from exc
        if body.get("status") != "success":
            raise QueryError(
                f"Prometheus at {url} refused {query!r}: {body.get('errorType')}:"
                f" {body.get('error')}"
            )
        data = body.get("data", {})
        if data.get("resultType") != result_type:
            raise QueryError(f"{query!r} gave a {data.get('resultType')!r}, not a {result_type}")
        return list(data.get("result", []))

    def _key(self, labels: dict[str, str], keys: tuple[str, ...]) -> tuple[str, ...] | None:
        """The entity key of a series, or None when it cannot be told (reported once)."""
        values = []
        for name in keys:
            value = labels.get(name)
            if value is None and name == "service":
                value = next(
                    (
                        owner[labels[label]]
                        for label, owner in self.settings.owners.items()
                        if labels.get(label) in owner
                    ),
                    None,
                )
            if value is None:
                ident = tuple(sorted(labels.items()))
                if ident not in self._unowned:
                    self._unowned.add(ident)
                    log.warning("series %s has no %r label and no owner: left out", labels, name)
                return None
            values.append(value)
        return tuple(values)

    def _frame(
        self,
        keys: tuple[str, ...],
        columns: dict[str, list[tuple[dict[str, str], np.ndarray, np.ndarray]]],
        grid: np.ndarray,
        order: list[str],
    ) -> pd.DataFrame:
        """One row per (grid time, entity) with any value, NaN where a column had none."""
        index: dict[tuple[float, tuple[str, ...]], int] = {}
        rows: list[tuple[float, tuple[str, ...]]] = []
        cells: dict[str, list[tuple[int, float]]] = {c: [] for c in columns}
        for column, series in columns.items():
            for labels, times, values in series:
                key = self._key(labels, keys)
                if key is None:
                    continue
                for t, v in zip(times.tolist(), values.tolist(), strict=True):
                    row = index.get((t, key))
                    if row is None:
                        row = index[(t, key)] = len(rows)
                        rows.append((t, key))
                    cells[column].append((row, v))
        n = len(rows)
        frame: dict[str, Any] = {
            "timestamp": pd.to_datetime(
                np.round(np.array([t for t, _ in rows], dtype=float) * 1e9).astype(np.int64),
                utc=True,
            ),
            "region": np.full(n, self.settings.region, dtype=object),
        }
        for j, name in enumerate(keys):
            frame[name] = np.array([key[j] for _, key in rows], dtype=object)
        for column, found in cells.items():
            values = np.full(n, np.nan)
            if found:
                at, vs = zip(*found, strict=True)
                values[list(at)] = vs
            frame[column] = values
        out = pd.DataFrame(frame, columns=order)
        return out.sort_values(["timestamp", *keys], kind="stable").reset_index(drop=True)
