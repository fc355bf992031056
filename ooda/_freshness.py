"""Freshness: how old a service's oldest unprocessed asynchronous work is.

Request latency and errors say nothing about work a service does off the request path: the
messages its consumers read from Kafka, the jobs its workers take from a queue. Their
objective is freshness — work is processed within ``SloSettings.freshness_s`` of being
produced — measured the way the exporters allow: a consumer group's lag in seconds is its
lag in messages over the topic's produce rate (the age of the newest message it has not
read, at a steady rate), and a queue's is the age of its oldest message (CloudWatch's
``ApproximateAgeOfOldestMessage``). A service's freshness is the worst of its groups and
queues, per timestamp.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from contracts import MetricFamily

#: Families that carry asynchronous work.
ASYNC_FAMILIES = (MetricFamily.KAFKA, MetricFamily.QUEUE)
_COLUMNS = ["timestamp", "service", "freshness_s"]


def lag_seconds(lag: pd.Series, produced_per_s: pd.Series) -> pd.Series:
    """A consumer group's lag in seconds: messages behind over the produce rate (no lag is
    0 s; a lag on a topic nothing is produced to any more is as old as it is unbounded)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        seconds = lag.to_numpy(dtype=float) / produced_per_s.to_numpy(dtype=float)
    seconds = np.where(lag.to_numpy(dtype=float) <= 0, 0.0, seconds)
    return pd.Series(seconds, index=lag.index)


def freshness(families: Mapping[MetricFamily, pd.DataFrame]) -> pd.DataFrame:
    """``timestamp, service, freshness_s``: the oldest unprocessed work of each service with
    asynchronous work, per timestamp of the families' frames."""
    parts = []
    kafka = families.get(MetricFamily.KAFKA)
    if kafka is not None and len(kafka):
        keys = ["timestamp", "service", "consumergroup", "topic"]
        groups = kafka.groupby(keys, sort=False)[
            ["kafka_consumergroup_lag", "kafka_topic_partition_current_offset_rate"]
        ].sum(min_count=1)
        seconds = lag_seconds(
            groups["kafka_consumergroup_lag"], groups["kafka_topic_partition_current_offset_rate"]
        )
        parts.append(seconds.rename("freshness_s").reset_index()[_COLUMNS])
    queue = families.get(MetricFamily.QUEUE)
    if queue is not None and len(queue):
        age = queue["aws_sqs_approximate_age_of_oldest_message_average"]
        parts.append(queue[["timestamp", "service"]].assign(freshness_s=age.to_numpy(float)))
    if not parts:
        return pd.DataFrame({c: [] for c in _COLUMNS})
    rows = pd.concat(parts, ignore_index=True)
    worst = rows.groupby(["timestamp", "service"], sort=True)["freshness_s"].max()
    return worst.reset_index()


def service_freshness(
    families: Mapping[MetricFamily, pd.DataFrame], service: str
) -> pd.Series | None:
    """The freshness of ``service`` indexed by timestamp, None when it has no asynchronous
    work in ``families``."""
    table = freshness(families)
    rows = table[table["service"] == service]
    if rows.empty:
        return None
    return pd.Series(rows["freshness_s"].to_numpy(float), index=pd.DatetimeIndex(rows["timestamp"]))
