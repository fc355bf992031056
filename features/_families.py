"""Every metric family beside the services' own in Feast: one feature view per family.

The runbooks read pods, nodes, databases, Kafka, queues and upstream APIs; a model that
learns from those signals, and a human exploring them in a notebook, read them from the
same store as the service features, point-in-time correct. Each family's tidy frame
(``contracts.FAMILIES``) is its feature table as it is: the family's entity keys (with the
region) are the join keys, its values are the features, and the keys that are not part of
the entity (a pod's service and node, a database's role) ride along as string features.

Like the service table, each family is one parquet file in the data directory appended to
idempotently, and its newest row per entity is pushed online (the file store's
``materialize`` re-reads the whole table).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from contracts import FAMILIES, MetricFamily
from features._errors import FeatureSchemaError, MissingFeaturesError
from features._rollup import ROLLUP_COLUMNS, service_rollup
from features._schema import (
    ENTITY_KEY,
    EVENT_TIMESTAMP,
    FEATURE_TTL,
    ROLLUP_FILE,
    ROLLUP_PUSH_SOURCE,
)
from features._transform import entity_frame

if TYPE_CHECKING:
    from feast import Entity, FeatureStore, FeatureView, FileSource, PushSource
    from feast.feast_object import FeastObject

#: The join keys of each family's entity: what one series of the family is about.
FAMILY_ENTITIES: dict[MetricFamily, tuple[str, ...]] = {
    MetricFamily.POD: ("region", "pod"),
    MetricFamily.NODE: ("region", "node"),
    MetricFamily.DATABASE: ("region", "service", "dbinstance_identifier"),
    MetricFamily.KAFKA: ("region", "consumergroup", "topic", "partition"),
    MetricFamily.QUEUE: ("region", "queue_name"),
    MetricFamily.UPSTREAM: ("region", "service", "upstream"),
}


def family_view(family: MetricFamily) -> str:
    """Name of ``family``'s feature view (``node_metrics`` ...)."""
    return f"{family}_metrics"


def family_labels(family: MetricFamily) -> tuple[str, ...]:
    """The keys of ``family`` that are string features, not join keys."""
    joins = FAMILY_ENTITIES[family]
    return tuple(k for k in ("region", *FAMILIES[family].keys) if k not in joins)


def family_features(family: MetricFamily) -> tuple[str, ...]:
    """The features of ``family``'s view, labels first."""
    return (*family_labels(family), *FAMILIES[family].values)


def _schema(family: MetricFamily) -> pa.Schema:
    keys = ("region", *FAMILIES[family].keys)
    return pa.schema(
        [
            pa.field(EVENT_TIMESTAMP, pa.timestamp("us", tz="UTC")),
            *(pa.field(k, pa.string()) for k in keys),
            *(pa.field(v, pa.float64()) for v in FAMILIES[family].values),
        ]
    )


@dataclass(frozen=True)
class FamilyDefinitions:
    """The Feast objects of every family: entities, then sources, then views."""

    entities: tuple[Entity, ...]
    sources: tuple[FileSource, ...]
    pushes: tuple[PushSource, ...]
    views: tuple[FeatureView, ...]

    def objects(self) -> list[FeastObject]:
        """The objects to register, entities and sources first."""
        return [*self.entities, *self.sources, *self.pushes, *self.views]


def build_family_definitions(data_dir: str, service: Entity) -> FamilyDefinitions:
    """The family views with their tables in ``data_dir``; ``service`` is the repo's service
    entity, which the database and upstream views share."""
    from feast import Entity, FeatureView, Field, FileSource, PushSource, ValueType
    from feast.data_format import ParquetFormat
    from feast.types import Float64, String

    keys = sorted({k for joins in FAMILY_ENTITIES.values() for k in joins} - {service.name})
    entities = {
        key: Entity(
            name=key,
            join_keys=[key],
            value_type=ValueType.STRING,
            description=f"The {key} label of the exporters' series.",
        )
        for key in keys
    }
    entities[service.name] = service
    sources, pushes, views = [], [], []
    for family, joins in FAMILY_ENTITIES.items():
        name = family_view(family)
        source = FileSource(
            name=f"{name}_source",
            path=f"{data_dir}/{name}.parquet",
            file_format=ParquetFormat(),
            timestamp_field=EVENT_TIMESTAMP,
            description=f"Per-minute {family} metrics, as the exporters name them.",
        )
        push = PushSource(name=f"{name}_push", batch_source=source)
        views.append(
            FeatureView(
                name=name,
                entities=[entities[k] for k in joins],
                ttl=FEATURE_TTL,
                schema=[
                    *(Field(name=k, dtype=String) for k in family_labels(family)),
                    *(Field(name=v, dtype=Float64) for v in FAMILIES[family].values),
                ],
                source=push,
                online=True,
                description=f"The {family} family (contracts.FAMILIES), one row per series"
                " and minute.",
            )
        )
        sources.append(source)
        pushes.append(push)
    return FamilyDefinitions(
        tuple(entities[k] for k in keys), tuple(sources), tuple(pushes), tuple(views)
    )


_ROLLUP_SCHEMA = pa.schema(
    [
        pa.field(EVENT_TIMESTAMP, pa.timestamp("us", tz="UTC")),
        pa.field(ENTITY_KEY, pa.string()),
        pa.field("region", pa.string()),
        *(pa.field(c, pa.float64()) for c in ROLLUP_COLUMNS),
    ]
)


def create_family_tables(data_dir: Path) -> None:
    """Create the empty table of each family, and of the per-service rollup, that has none."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for family in FAMILY_ENTITIES:
        path = data_dir / f"{family_view(family)}.parquet"
        if not path.exists():
            _write(path, _schema(family).empty_table())
    rollup = data_dir / ROLLUP_FILE
    if not rollup.exists():
        _write(rollup, _ROLLUP_SCHEMA.empty_table())


def family_rows(family: MetricFamily, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (``FAMILIES[family]``'s tidy frame) as feature rows: ``event_timestamp``,
    string keys, float values. Raises :class:`FeatureSchemaError` naming what is wrong."""
    schema = FAMILIES[family]
    missing = [c for c in schema.columns if c not in frame.columns]
    if missing:
        raise FeatureSchemaError(f"{family} frame lacks column(s) {missing}")
    stamps = frame["timestamp"]
    if len(frame) and not isinstance(stamps.dtype, pd.DatetimeTZDtype):
        raise FeatureSchemaError(
            f"{family} timestamps must be timezone-aware, got dtype {stamps.dtype}"
        )
    rows = pd.DataFrame({EVENT_TIMESTAMP: pd.to_datetime(stamps, utc=True)})
    for key in ("region", *schema.keys):
        rows[key] = frame[key].astype(str).to_numpy()
    for value in schema.values:
        rows[value] = pd.to_numeric(frame[value], errors="coerce").astype(float).to_numpy()
    return rows


def ingest_families(store: FeatureStore, frames: Mapping[MetricFamily, pd.DataFrame]) -> int:
    """Append each family frame to its offline table and bring its online rows up to date.

    Rows already stored for the same series and minute are replaced (re-ingesting a range
    is idempotent). Online, each series then holds its newest stored row. When ``frames``
    holds every family, each service's rollup of them (``service_families``, the detector's
    family features) is written the same way; from fewer families it would be partly
    unknown, so it is left as it is. Returns the number of family rows written.
    """
    from feast.data_source import PushMode

    written = 0
    for family, frame in frames.items():
        rows = family_rows(family, frame)
        if rows.empty:
            continue
        path = _table(store, family)
        stored = pd.read_parquet(path)
        stored[EVENT_TIMESTAMP] = stored[EVENT_TIMESTAMP].astype("datetime64[ns, UTC]")
        series = [*FAMILY_ENTITIES[family], *family_labels(family)]
        combined = pd.concat([stored, rows], ignore_index=True) if len(stored) else rows
        combined = combined.drop_duplicates([*series, EVENT_TIMESTAMP], keep="last")
        combined = combined.sort_values([EVENT_TIMESTAMP, *series], ignore_index=True)
        _write(path, pa.Table.from_pandas(combined, schema=_schema(family), preserve_index=False))
        newest = combined.drop_duplicates(list(FAMILY_ENTITIES[family]), keep="last")
        with contextlib.redirect_stdout(io.StringIO()):
            store.push(f"{family_view(family)}_push", newest, to=PushMode.ONLINE)
        written += len(rows)
    if set(FAMILY_ENTITIES) <= set(frames):
        _ingest_rollup(store, service_rollup(frames))
    return written


def _ingest_rollup(store: FeatureStore, rollup: pd.DataFrame) -> None:
    from feast.data_source import PushMode

    if rollup.empty:
        return
    rows = pd.DataFrame(
        {
            EVENT_TIMESTAMP: pd.to_datetime(rollup["timestamp"], utc=True),
            ENTITY_KEY: rollup["service"].astype(str),
            "region": rollup["region"].astype(str),
            **{c: rollup[c].astype(float) for c in ROLLUP_COLUMNS},
        }
    )
    path = _source_path(store, "service_families_source")
    stored = pd.read_parquet(path)
    stored[EVENT_TIMESTAMP] = stored[EVENT_TIMESTAMP].astype("datetime64[ns, UTC]")
    combined = pd.concat([stored, rows], ignore_index=True) if len(stored) else rows
    combined = combined.drop_duplicates([ENTITY_KEY, EVENT_TIMESTAMP], keep="last")
    combined = combined.sort_values([EVENT_TIMESTAMP, ENTITY_KEY], ignore_index=True)
    _write(path, pa.Table.from_pandas(combined, schema=_ROLLUP_SCHEMA, preserve_index=False))
    newest = combined.drop_duplicates([ENTITY_KEY], keep="last")
    with contextlib.redirect_stdout(io.StringIO()):
        store.push(ROLLUP_PUSH_SOURCE, newest, to=PushMode.ONLINE)


def online_family_features(
    store: FeatureStore, family: MetricFamily, entity_rows: Sequence[Mapping[str, str]]
) -> pd.DataFrame:
    """The newest stored row of each series in ``entity_rows`` (their join keys), in order.

    Raises :class:`MissingFeaturesError` naming the series that have none online.
    """
    joins = FAMILY_ENTITIES[family]
    for row in entity_rows:
        lacking = [k for k in joins if k not in row]
        if lacking:
            raise FeatureSchemaError(f"{family} entity row {dict(row)} lacks {lacking}")
    names = family_features(family)
    view = family_view(family)
    frame = store.get_online_features(
        features=[f"{view}:{n}" for n in names],
        entity_rows=[{k: str(row[k]) for k in joins} for row in entity_rows],
    ).to_df()
    absent = frame[frame[list(FAMILIES[family].values)].isna().all(axis=1)]
    if len(absent):
        found = absent[list(joins)].to_dict("records")
        raise MissingFeaturesError(f"no online {family} features for {found}")
    return frame.loc[:, [*joins, *names]]


def historical_family_features(
    store: FeatureStore, family: MetricFamily, entity_df: pd.DataFrame
) -> pd.DataFrame:
    """Point-in-time correct family features for each row of ``entity_df`` (its join keys
    and ``event_timestamp``): the newest row of the series at or before the timestamp, at
    most ``FEATURE_TTL`` older (else NaN). Extra columns are kept; rows come back sorted."""
    keys = [*FAMILY_ENTITIES[family], EVENT_TIMESTAMP]
    entities = entity_frame(entity_df, keys)
    names = list(family_features(family))
    view = family_view(family)
    joined = store.get_historical_features(
        entity_df=entities[keys].drop_duplicates(),
        features=[f"{view}:{n}" for n in names],
    ).to_df()
    joined[EVENT_TIMESTAMP] = pd.to_datetime(joined[EVENT_TIMESTAMP], utc=True)
    frame = entities.merge(joined.loc[:, keys + names], on=keys, how="left")
    return frame.sort_values(keys, ignore_index=True)


def _table(store: FeatureStore, family: MetricFamily) -> Path:
    return _source_path(store, f"{family_view(family)}_source")


def _source_path(store: FeatureStore, name: str) -> Path:
    from feast import FileSource

    source = store.get_data_source(name)
    assert isinstance(source, FileSource)
    root = store.config.repo_path or store.repo_path
    return Path(FileSource.get_uri_for_file_path(repo_path=root, uri=source.path))


def _write(path: Path, table: pa.Table) -> None:
    """Write atomically, so a reader never sees half a file."""
    partial = path.with_suffix(".partial")
    pq.write_table(table, partial)
    partial.replace(path)
