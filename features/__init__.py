"""Feast feature repo of ooda and the ingestion that fills it from a metric source.

A metric source (Prometheus, the lab) yields the tidy metrics frame (`contracts.METRIC_COLUMNS`).
`build_features` adds rolling-window features; `ingest` appends them to the offline
parquet table and materializes the online SQLite store; `push_live` pushes the newest row
per service online each tick, computed alone (and fast) by `latest_features`. Training
reads `historical_features`/`training_frame` (point-in-time correct), serving reads
`online_features`, through one feature service per model: `detector_v2`
(`DETECTOR_FEATURES`: the service's own features and, from `service_rollup`, its view of
the families it depends on, in the `service_families` view) and `forecaster_v1` (the last
`FORECAST_WINDOW` per-minute request rates as `request_rate_window`, with `window_end`).
Every other metric family (pods, nodes, databases, Kafka, queues, upstream APIs;
`contracts.FAMILIES`) has its own feature view keyed by region and the family's entity
(`FAMILY_ENTITIES`), filled by `ingest_families` and read by `online_family_features` and
`historical_family_features`.
The same definitions are the Feast CLI repo in `features/repo/`.
`PrometheusSource` is the metric source of a real estate: the tidy frames from Prometheus'
HTTP API, one PromQL recipe per column (`SERVICE_RECIPES`, `FAMILY_RECIPES`, overridable in
`PrometheusSettings`).

Exceptions::

    FeatureError
    ├── FeatureSchemaError           (also ValueError) a frame breaks its column contract
    ├── UnknownFeatureServiceError   (also LookupError) not one of the repo's services
    ├── MissingFeaturesError         (also LookupError) no stored values where required
    └── MetricSourceError            a metric source could not answer
        ├── SourceUnavailableError   temporary: unreachable, timed out, 429/5xx (retried first)
        └── QueryError               (also ValueError) permanent: a refused query or range
"""

from __future__ import annotations

from features._errors import (
    FeatureError,
    FeatureSchemaError,
    MetricSourceError,
    MissingFeaturesError,
    QueryError,
    SourceUnavailableError,
    UnknownFeatureServiceError,
)
from features._families import (
    FAMILY_ENTITIES,
    family_features,
    family_view,
    historical_family_features,
    ingest_families,
    online_family_features,
)
from features._prometheus import (
    FAMILY_RECIPES,
    SERVICE_RECIPES,
    PrometheusSettings,
    PrometheusSource,
)
from features._rollup import ROLLUP_COLUMNS, ROLLUP_MIN_SCALES, service_rollup
from features._schema import (
    DETECTOR_FEATURES,
    DETECTOR_SERVICE,
    ENTITY_KEY,
    FEATURE_TTL,
    FORECAST_WINDOW,
    FORECASTER_FEATURES,
    FORECASTER_SERVICE,
    PUSH_SOURCE,
    SERVICE_DETECTOR_FEATURES,
)
from features._store import (
    FeatureRepoSettings,
    apply,
    historical_features,
    ingest,
    online_features,
    open_store,
    push_live,
    repo_config_dict,
    stored_range,
    training_frame,
)
from features._transform import (
    FEATURE_ROW_COLUMNS,
    build_features,
    latest_features,
    latest_rows,
)

__all__ = [
    "DETECTOR_FEATURES",
    "DETECTOR_SERVICE",
    "ENTITY_KEY",
    "FAMILY_ENTITIES",
    "FAMILY_RECIPES",
    "FEATURE_ROW_COLUMNS",
    "FEATURE_TTL",
    "FORECASTER_FEATURES",
    "FORECASTER_SERVICE",
    "FORECAST_WINDOW",
    "PUSH_SOURCE",
    "ROLLUP_COLUMNS",
    "ROLLUP_MIN_SCALES",
    "SERVICE_DETECTOR_FEATURES",
    "SERVICE_RECIPES",
    "FeatureError",
    "FeatureRepoSettings",
    "FeatureSchemaError",
    "MetricSourceError",
    "MissingFeaturesError",
    "PrometheusSettings",
    "PrometheusSource",
    "QueryError",
    "SourceUnavailableError",
    "UnknownFeatureServiceError",
    "apply",
    "build_features",
    "family_features",
    "family_view",
    "historical_family_features",
    "historical_features",
    "ingest",
    "ingest_families",
    "latest_features",
    "latest_rows",
    "online_family_features",
    "online_features",
    "open_store",
    "push_live",
    "repo_config_dict",
    "service_rollup",
    "stored_range",
    "training_frame",
]
