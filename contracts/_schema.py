"""The tidy metrics frame: the one column list every metric source returns.

Prometheus, the lab and any recorded file meet the rest of ooda here; a renamed column fails
in one place, at import time, rather than as a silently missing feature at scoring time.
"""

from __future__ import annotations

#: Columns of the tidy metrics frame, in order: one row per (timestamp, region, service).
METRIC_COLUMNS: tuple[str, ...] = (
    "timestamp",
    "region",
    "service",
    "request_rate",
    "request_rate_instant",
    "p95_latency_ms",
    "p99_latency_ms",
    "error_rate",
    "cpu_utilisation",
    "memory_utilisation",
    "restarts",
    "ready_pods",
    "desired_pods",
)

#: The numeric columns (everything after timestamp, region and service).
METRIC_VALUE_COLUMNS: tuple[str, ...] = METRIC_COLUMNS[3:]
