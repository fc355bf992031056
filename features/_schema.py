"""Column names shared by the metric port, the feature transform and the Feast definitions.

The tidy metrics frame is the contract between every metric source (Prometheus, the lab)
and this package; the feature names are the contract with the model and serving packages.
Keeping both in one small module means a renamed column fails in one place, at import time,
instead of as a silently missing feature at serving time.
"""

from __future__ import annotations

from datetime import timedelta

from features._rollup import ROLLUP_COLUMNS

#: Features of the `service_rolling` view that are scalars computed over trailing windows.
ROLLING_COLUMNS: tuple[str, ...] = (
    "error_rate_5m_mean",
    "p95_latency_ms_5m_mean",
    "restarts_15m",
    "not_ready_ratio",
    "request_rate_1h_mean",
    "request_rate_ratio_1h",
)

#: Features of the `service_rolling` view that let the forecaster run from entity ids alone.
WINDOW_COLUMNS: tuple[str, ...] = (
    "request_rate_window",
    "window_end",
    "window_filled",
)

#: Length in minutes of `request_rate_window` (one value per minute, oldest first).
FORECAST_WINDOW = 60

#: The service's own features of the detector. Point metrics catch sudden changes;
#: `restarts_15m`/`not_ready_ratio` catch crash loops, `memory_utilisation` leaks,
#: `request_rate_ratio_1h` surges relative to the last hour.
SERVICE_DETECTOR_FEATURES: tuple[str, ...] = (
    "error_rate",
    "p95_latency_ms",
    "restarts_15m",
    "not_ready_ratio",
    "cpu_utilisation",
    "memory_utilisation",
    "request_rate_ratio_1h",
)

#: Features the anomaly detector is trained and scored on (feature service `detector_v2`):
#: the service's own, then its view of the families it depends on (`ROLLUP_COLUMNS`).
DETECTOR_FEATURES: tuple[str, ...] = (*SERVICE_DETECTOR_FEATURES, *ROLLUP_COLUMNS)

#: Features of feature service `forecaster_v1`.
FORECASTER_FEATURES: tuple[str, ...] = WINDOW_COLUMNS

#: Entity join key and the Feast event-timestamp column of every feature row.
ENTITY_KEY = "service"
EVENT_TIMESTAMP = "event_timestamp"

#: How far back a point-in-time join may look for a feature row. Rows arrive every minute,
#: so a quarter of an hour bridges scrape gaps but never serves a stale state as current.
FEATURE_TTL = timedelta(minutes=15)

#: File name of the offline feature table inside the data directory.
OFFLINE_FILE = "service_metrics.parquet"
#: File name of the per-service family rollup table, and its push source.
ROLLUP_FILE = "service_families.parquet"
ROLLUP_PUSH_SOURCE = "service_families_push"
#: Name of the push source the live loop writes through.
PUSH_SOURCE = "service_metrics_push"
#: Names of the feature services, one per model role.
DETECTOR_SERVICE = "detector_v2"
FORECASTER_SERVICE = "forecaster_v1"
#: The features of each feature service, in the order retrieval returns them.
SERVICE_FEATURES: dict[str, tuple[str, ...]] = {
    DETECTOR_SERVICE: DETECTOR_FEATURES,
    FORECASTER_SERVICE: FORECASTER_FEATURES,
}
