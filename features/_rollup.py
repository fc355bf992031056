"""Each service's view of the metric families it depends on: one row per service and minute.

A service's own metrics (errors, p95, CPU) show a failure late, or not at all, when its cause
sits in a family beside it: a consumer group falling behind, a queue's oldest message aging,
a node dropping packets under some of its pods, a read replica lagging, an upstream answering
429. The detector is multivariate over those families by scoring, per service, the families
that matter to it, summarised here to a few scale-free columns (a share, a ratio, seconds):
pooled over services, the Isolation Forest then sees every cause beside its symptoms.

The rules for a family that says nothing about a service:

* the family was not given at all: its columns are NaN (unknown);
* the service never appears in the family within the frame (it has no database, no consumer
  group): its columns are 0, what "no lag, no throttling" means;
* the service appears but not at this minute (a scrape gap): NaN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from contracts import MetricFamily

#: The per-service family columns, in the order the detector reads them.
ROLLUP_COLUMNS: tuple[str, ...] = (
    "pod_memory_utilisation_max",
    "pod_oomkilled_share",
    "node_not_ready_share",
    "node_disk_avail_min",
    "node_retransmit_max",
    "db_read_latency_ms",
    "db_replica_lag_s",
    "kafka_lag_s",
    "queue_oldest_age_s",
    "upstream_throttled_share",
    "upstream_p95_ms",
)

#: The smallest change of each column that can matter, in its own unit: the detector's
#: scaling never makes a unit smaller (``models`` ``min_scales``), so a column that stayed
#: constant through the training history (a disk that never filled) still scores a move of
#: this size as one spread, not as noise around nothing.
ROLLUP_MIN_SCALES: dict[str, float] = {
    "pod_memory_utilisation_max": 0.05,
    "pod_oomkilled_share": 0.1,
    "node_not_ready_share": 0.1,
    "node_disk_avail_min": 0.05,
    "node_retransmit_max": 0.005,
    "db_read_latency_ms": 1.0,
    "db_replica_lag_s": 1.0,
    "kafka_lag_s": 5.0,
    "queue_oldest_age_s": 30.0,
    "upstream_throttled_share": 0.02,
    "upstream_p95_ms": 10.0,
}

#: Longest consumer-group lag in seconds the rollup reports: a group that consumes nothing
#: while messages wait is this far behind, not infinitely.
MAX_LAG_S = 86_400.0

_KEYS = ["timestamp", "region", "service"]
#: The columns each family fills.
_FILLS: dict[MetricFamily, tuple[str, ...]] = {
    MetricFamily.POD: ("pod_memory_utilisation_max", "pod_oomkilled_share"),
    MetricFamily.NODE: ("node_not_ready_share", "node_disk_avail_min", "node_retransmit_max"),
    MetricFamily.DATABASE: ("db_read_latency_ms", "db_replica_lag_s"),
    MetricFamily.KAFKA: ("kafka_lag_s",),
    MetricFamily.QUEUE: ("queue_oldest_age_s",),
    MetricFamily.UPSTREAM: ("upstream_throttled_share", "upstream_p95_ms"),
}


def _floats(frame: pd.DataFrame, column: str) -> np.ndarray:
    return np.asarray(frame[column].to_numpy(dtype=float))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _stamps(frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(pd.DatetimeIndex(frame["timestamp"]).asi8)


class _Codes:
    """One integer per (timestamp, region, service), shared by every family frame: the
    groups are reduced with numpy (a tick rolls up a few dozen rows; pandas' per-call cost
    would be most of it)."""

    def __init__(self, frames: dict[MetricFamily, pd.DataFrame]) -> None:
        keyed = [f for f in frames.values() if len(f)]
        named = [f for fam, f in frames.items() if fam is not MetricFamily.NODE and len(f)]
        none = [np.array([], dtype=str)]
        self.stamps = np.unique(np.concatenate([_stamps(f) for f in keyed] or [np.array([0])]))
        self.regions = np.unique(np.concatenate([f["region"].to_numpy(str) for f in keyed] or none))
        self.services = np.unique(
            np.concatenate([f["service"].to_numpy(str) for f in named] or none)
        )

    def key(self, frame: pd.DataFrame) -> np.ndarray:
        t = np.searchsorted(self.stamps, _stamps(frame))
        r = np.searchsorted(self.regions, frame["region"].to_numpy(str))
        s = np.searchsorted(self.services, frame["service"].to_numpy(str))
        return (t * len(self.regions) + r) * len(self.services) + s


class _Columns:
    """The rollup's columns over a sorted array of group keys, filled by reductions."""

    def __init__(self, grid: np.ndarray) -> None:
        self.grid = grid
        self.values = {c: np.full(len(grid), np.nan) for c in ROLLUP_COLUMNS}

    def _rows(self, keys: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.grid, keys)

    def max(self, column: str, keys: np.ndarray, values: np.ndarray) -> None:
        np.fmax.at(self.values[column], self._rows(keys), values)

    def min(self, column: str, keys: np.ndarray, values: np.ndarray) -> None:
        np.fmin.at(self.values[column], self._rows(keys), values)

    def sum(self, keys: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Sums per group, NaN where the group had no number (pandas' ``min_count=1``)."""
        rows, known = self._rows(keys), ~np.isnan(values)
        total, count = np.zeros(len(self.grid)), np.zeros(len(self.grid))
        np.add.at(total, rows[known], values[known])
        np.add.at(count, rows[known], 1.0)
        return np.where(count > 0, total, np.nan)

    def mean(self, column: str, keys: np.ndarray, values: np.ndarray) -> None:
        total = self.sum(keys, values)
        count = self.sum(keys, np.where(np.isnan(values), np.nan, 1.0))
        self.values[column] = _ratio(total, count)


def _pods(cols: _Columns, keys: np.ndarray, pods: pd.DataFrame) -> None:
    used = _floats(pods, "container_memory_working_set_bytes")
    limit = _floats(pods, "kube_pod_container_resource_limits_memory_bytes")
    cols.max("pod_memory_utilisation_max", keys, _ratio(used, limit))
    oom = _floats(pods, "kube_pod_container_status_last_terminated_oomkilled")
    cols.mean("pod_oomkilled_share", keys, np.where(np.isnan(oom), np.nan, oom > 0.5))


def _nodes(cols: _Columns, keys: np.ndarray, pods: pd.DataFrame, nodes: pd.DataFrame) -> None:
    """Each pod row takes the state of its node at the same minute."""
    ready = _floats(nodes, "kube_node_status_condition_ready")
    state = {
        "down": np.where(np.isnan(ready), np.nan, ready < 0.5),
        "avail": _ratio(
            _floats(nodes, "node_filesystem_avail_bytes"),
            _floats(nodes, "node_filesystem_size_bytes"),
        ),
        "retrans": _ratio(
            _floats(nodes, "node_netstat_TcpExt_TCPRetransSegs_rate"),
            _floats(nodes, "node_netstat_Tcp_OutSegs_rate"),
        ),
    }
    index = pd.MultiIndex.from_arrays(
        [_stamps(nodes), nodes["region"].to_numpy(str), nodes["node"].to_numpy(str)]
    )
    wanted = pd.MultiIndex.from_arrays(
        [_stamps(pods), pods["region"].to_numpy(str), pods["node"].to_numpy(str)]
    )
    at = index.get_indexer(wanted) if index.is_unique else np.full(len(pods), -1)
    found = at >= 0
    for name, values in state.items():
        state[name] = np.where(found, values[np.where(found, at, 0)], np.nan)
    cols.mean("node_not_ready_share", keys, state["down"])
    cols.min("node_disk_avail_min", keys, state["avail"])
    cols.max("node_retransmit_max", keys, state["retrans"])


def _databases(cols: _Columns, keys: np.ndarray, db: pd.DataFrame) -> None:
    reads = _floats(db, "serving_reads") > 0.5
    latency = _floats(db, "aws_rds_read_latency_average") * 1000.0
    cols.max("db_read_latency_ms", keys, np.where(reads, latency, np.nan))
    replica = (db["role"] != "primary").to_numpy()
    lag = np.where(replica, _floats(db, "aws_rds_replica_lag_average"), 0.0)
    cols.max("db_replica_lag_s", keys, lag)


def _kafka(cols: _Columns, keys: np.ndarray, kafka: pd.DataFrame) -> None:
    lag = cols.sum(keys, _floats(kafka, "kafka_consumergroup_lag"))
    rate = cols.sum(keys, _floats(kafka, "kafka_consumergroup_current_offset_rate"))
    with np.errstate(divide="ignore", invalid="ignore"):
        behind = np.where(lag <= 0, 0.0, np.minimum(lag / rate, MAX_LAG_S))
    behind = np.where(np.isnan(behind), MAX_LAG_S, behind)  # waiting, nothing consumed
    cols.values["kafka_lag_s"] = np.where(np.isnan(lag), np.nan, behind)


def _queues(cols: _Columns, keys: np.ndarray, queues: pd.DataFrame) -> None:
    age = _floats(queues, "aws_sqs_approximate_age_of_oldest_message_average")
    cols.max("queue_oldest_age_s", keys, age)


def _upstreams(cols: _Columns, keys: np.ndarray, upstreams: pd.DataFrame) -> None:
    requests = cols.sum(keys, _floats(upstreams, "http_client_requests_rate"))
    throttled = cols.sum(keys, _floats(upstreams, "http_client_requests_throttled_rate"))
    share = np.where(requests == 0, 0.0, _ratio(throttled, requests))
    cols.values["upstream_throttled_share"] = share
    cols.max("upstream_p95_ms", keys, _floats(upstreams, "http_client_request_duration_p95_ms"))


_BUILDERS = {
    MetricFamily.DATABASE: _databases,
    MetricFamily.KAFKA: _kafka,
    MetricFamily.QUEUE: _queues,
    MetricFamily.UPSTREAM: _upstreams,
}


def _newest(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame``'s newest minute (per region)."""
    if frame.empty:
        return frame
    newest = frame.groupby("region")["timestamp"].transform("max")
    return frame[frame["timestamp"] == newest]


def _empty() -> pd.DataFrame:
    columns: dict[str, pd.Series] = {
        "timestamp": pd.Series(dtype="datetime64[ns, UTC]"),
        "region": pd.Series(dtype=object),
        "service": pd.Series(dtype=object),
    }
    columns.update({c: pd.Series(dtype=float) for c in ROLLUP_COLUMNS})
    return pd.DataFrame(columns)


def service_rollup(
    families: Mapping[MetricFamily, pd.DataFrame],
    services: Sequence[str] | None = None,
    *,
    latest: bool = False,
) -> pd.DataFrame:
    """Per service and minute, :data:`ROLLUP_COLUMNS` from tidy family frames (see the module
    notes for what is NaN and what is 0).

    ``families`` are ``contracts.FAMILIES`` frames (clean: finite, non-negative values or
    NaN). ``services`` restricts the rows (default: every service the families name).
    ``latest`` keeps only each family's newest minute and returns one row per service,
    stamped with the newest of those minutes: the live row a tick scores.
    Returns ``timestamp, region, service, *ROLLUP_COLUMNS``, sorted by service and time.
    """
    frames = {f: families[f] for f in _FILLS if f in families}
    if services is not None:
        wanted = [str(s) for s in services]
        frames = {
            f: (frame if f is MetricFamily.NODE else frame[frame["service"].isin(wanted)])
            for f, frame in frames.items()
        }
    seen = {
        f: np.unique(frame["service"].to_numpy(str))
        for f, frame in frames.items()
        if f is not MetricFamily.NODE
    }
    if latest:
        frames = {f: _newest(frame) for f, frame in frames.items()}
        stamps = [frame["timestamp"].max() for frame in frames.values() if len(frame)]
        if stamps:
            common = max(stamps)
            frames = {f: frame.assign(timestamp=common) for f, frame in frames.items()}
    codes = _Codes(frames)
    keyed: dict[MetricFamily, np.ndarray] = {
        f: codes.key(frame) for f, frame in frames.items() if f is not MetricFamily.NODE
    }
    if not any(len(k) for k in keyed.values()):
        return _empty()
    cols = _Columns(np.unique(np.concatenate(list(keyed.values()))))
    pods = frames.get(MetricFamily.POD)
    if pods is not None and len(pods):
        _pods(cols, keyed[MetricFamily.POD], pods)
        if MetricFamily.NODE in frames:
            _nodes(cols, keyed[MetricFamily.POD], pods, frames[MetricFamily.NODE])
    for family, build in _BUILDERS.items():
        if family in frames and len(frames[family]):
            build(cols, keyed[family], frames[family])
    n_services, n_regions = len(codes.services), len(codes.regions)
    service_at = cols.grid % n_services
    names = codes.services[service_at]
    for family, columns in _FILLS.items():
        if family in seen:
            never = ~np.isin(names, seen[family])
            for column in columns:
                cols.values[column][never] = 0.0
    stamp_at = cols.grid // (n_services * n_regions)
    region_at = (cols.grid // n_services) % n_regions
    out = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(np.asarray(codes.stamps)[stamp_at], utc=True),
            "region": codes.regions[region_at].astype(object),
            "service": names.astype(object),
            **cols.values,
        }
    )
    order = np.lexsort((stamp_at, service_at))
    return out.iloc[order].reset_index(drop=True)
