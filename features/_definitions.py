"""The Feast objects of the ooda feature repo, built by one function for both entry points.

The Feast CLI reads module-level objects from `features/repo/definitions.py`; the library
(`open_store` + `apply`) needs the same objects pointing at a data directory chosen at run
time (temp dirs in tests, `.ooda/` in the demo). Both call `build_definitions`, so the
two repos cannot drift apart. The offline parquet path is relative to the repo root (the
parent of the data directory), which is how `feature_store.yaml` lays the CLI repo out.
"""

from __future__ import annotations

from dataclasses import dataclass

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
from feast.data_format import ParquetFormat
from feast.feast_object import FeastObject
from feast.types import Array, Float32, Float64, Int64, String, UnixTimestamp

from contracts import METRIC_VALUE_COLUMNS
from features._families import FamilyDefinitions, build_family_definitions
from features._rollup import ROLLUP_COLUMNS
from features._schema import (
    DETECTOR_FEATURES,
    DETECTOR_SERVICE,
    ENTITY_KEY,
    EVENT_TIMESTAMP,
    FEATURE_TTL,
    FORECASTER_FEATURES,
    FORECASTER_SERVICE,
    OFFLINE_FILE,
    PUSH_SOURCE,
    ROLLING_COLUMNS,
    ROLLUP_FILE,
    ROLLUP_PUSH_SOURCE,
)


@dataclass(frozen=True)
class FeatureRepoDefinitions:
    """Every Feast object of the repo, in the order `FeatureStore.apply` wants them."""

    service: Entity
    metrics_source: FileSource
    push_source: PushSource
    service_metrics: FeatureView
    service_rolling: FeatureView
    rollup_source: FileSource
    rollup_push: PushSource
    service_families: FeatureView
    """Each service's view of the families it depends on (``features._rollup``)."""
    detector_v2: FeatureService
    forecaster_v1: FeatureService
    families: FamilyDefinitions
    """One feature view per metric family beside the services' own (``features._families``)."""

    def objects(self) -> list[FeastObject]:
        """The objects to register, entities and sources first."""
        return [
            self.service,
            self.metrics_source,
            self.push_source,
            self.service_metrics,
            self.service_rolling,
            self.rollup_source,
            self.rollup_push,
            self.service_families,
            self.detector_v2,
            self.forecaster_v1,
            *self.families.objects(),
        ]


def build_definitions(data_dir: str) -> FeatureRepoDefinitions:
    """Build the repo's Feast objects with the offline table in `data_dir` (absolute: the
    DuckDB offline engine reads it relative to the working directory otherwise)."""
    service = Entity(
        name=ENTITY_KEY,
        join_keys=[ENTITY_KEY],
        value_type=ValueType.STRING,
        description="A Kubernetes service (deployment) of the estate.",
    )
    metrics_source = FileSource(
        name="service_metrics_source",
        path=f"{data_dir}/{OFFLINE_FILE}",
        file_format=ParquetFormat(),
        timestamp_field=EVENT_TIMESTAMP,
        description="Per-minute service metrics with rolling features, written by ingest().",
    )
    push_source = PushSource(name=PUSH_SOURCE, batch_source=metrics_source)
    service_metrics = FeatureView(
        name="service_metrics",
        entities=[service],
        ttl=FEATURE_TTL,
        schema=[
            *(Field(name=name, dtype=Float64) for name in METRIC_VALUE_COLUMNS),
            Field(name="region", dtype=String),
        ],
        source=push_source,
        online=True,
        description="The tidy per-minute metrics of a service, as scraped.",
    )
    service_rolling = FeatureView(
        name="service_rolling",
        entities=[service],
        ttl=FEATURE_TTL,
        schema=[
            *(Field(name=name, dtype=Float64) for name in ROLLING_COLUMNS),
            Field(
                name="request_rate_window",
                dtype=Array(Float32),
                description="Last 60 per-minute request rates, oldest first, gaps interpolated.",
            ),
            Field(
                name="window_end",
                dtype=UnixTimestamp,
                description="Timestamp of the newest value of request_rate_window.",
            ),
            Field(
                name="window_filled",
                dtype=Int64,
                description="How many values of request_rate_window were interpolated.",
            ),
        ],
        source=push_source,
        online=True,
        description="Trailing-window features computed at ingestion time.",
    )
    rollup_source = FileSource(
        name="service_families_source",
        path=f"{data_dir}/{ROLLUP_FILE}",
        file_format=ParquetFormat(),
        timestamp_field=EVENT_TIMESTAMP,
        description="Per-minute rollup of the metric families per service (ingest_families).",
    )
    rollup_push = PushSource(name=ROLLUP_PUSH_SOURCE, batch_source=rollup_source)
    service_families = FeatureView(
        name="service_families",
        entities=[service],
        ttl=FEATURE_TTL,
        schema=[
            *(Field(name=name, dtype=Float64) for name in ROLLUP_COLUMNS),
            Field(name="region", dtype=String),
        ],
        source=rollup_push,
        online=True,
        description="A service's view of the pods, nodes, databases, consumer groups, queues"
        " and upstream APIs it depends on: shares, ratios and seconds.",
    )
    metric_features = [n for n in DETECTOR_FEATURES if n in METRIC_VALUE_COLUMNS]
    rolling_features = [n for n in DETECTOR_FEATURES if n in ROLLING_COLUMNS]
    detector_v2 = FeatureService(
        name=DETECTOR_SERVICE,
        features=[
            service_metrics[metric_features],
            service_rolling[rolling_features],
            service_families[list(ROLLUP_COLUMNS)],
        ],
        description="Inputs of the anomaly detector (features.DETECTOR_FEATURES): the"
        " service's own metrics and its view of the families it depends on.",
    )
    forecaster_v1 = FeatureService(
        name=FORECASTER_SERVICE,
        features=[service_rolling[list(FORECASTER_FEATURES)]],
        description="Inputs of the load forecaster: the last hour of request rates.",
    )
    return FeatureRepoDefinitions(
        service=service,
        metrics_source=metrics_source,
        push_source=push_source,
        service_metrics=service_metrics,
        service_rolling=service_rolling,
        rollup_source=rollup_source,
        rollup_push=rollup_push,
        service_families=service_families,
        detector_v2=detector_v2,
        forecaster_v1=forecaster_v1,
        families=build_family_definitions(data_dir, service),
    )
