"""Open, fill and read the Feast store: the one door to features for training and serving.

Feast is the system of record (registry, offline parquet table, SQLite online store); this
module adds what the loop needs around it: a store for any data directory (tests and the
demo use temp dirs), idempotent appends that recompute rolling features with the right
history, a live push of the newest row per service that never moves the online row back
in time, and retrieval that hands back plain frames, one row per entity row asked for.

The offline store is Feast's DuckDB engine over the parquet table: its point-in-time join
of a week of 3 services at one-minute steps takes about 4 s here, where Feast's dask-based
`file` engine took about 15 s for only 500 entity rows, and `materialize` takes well under
a second where the dask engine took 12-20 s. DuckDB keeps timestamps in microseconds, so
the table is written in microseconds.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from contracts import METRIC_VALUE_COLUMNS
from features._errors import FeatureSchemaError, MissingFeaturesError, UnknownFeatureServiceError
from features._families import create_family_tables
from features._schema import (
    ENTITY_KEY,
    EVENT_TIMESTAMP,
    FORECAST_WINDOW,
    OFFLINE_FILE,
    PUSH_SOURCE,
    ROLLING_COLUMNS,
    SERVICE_FEATURES,
)
from features._transform import (
    FEATURE_ROW_COLUMNS,
    build_features,
    entity_frame,
    features_to_metrics,
    latest_features,
    validate_metrics,
)

if TYPE_CHECKING:  # Feast takes seconds to import; processes that never touch it skip that
    from feast import FeatureService, FeatureStore

#: History prepended from the offline table when appending, so the first new rows get full
#: windows (the longest window is the hour of `request_rate_1h_mean`/`request_rate_window`).
_CONTEXT = timedelta(minutes=FORECAST_WINDOW)
_SOURCE_NAME = "service_metrics_source"

#: Arrow schema of the offline table (column order = `FEATURE_ROW_COLUMNS`).
OFFLINE_SCHEMA = pa.schema(
    [
        pa.field(EVENT_TIMESTAMP, pa.timestamp("us", tz="UTC")),
        pa.field(ENTITY_KEY, pa.string()),
        pa.field("region", pa.string()),
        *(pa.field(name, pa.float64()) for name in (*METRIC_VALUE_COLUMNS, *ROLLING_COLUMNS)),
        pa.field("request_rate_window", pa.list_(pa.float32())),
        pa.field("window_end", pa.timestamp("us", tz="UTC")),
        pa.field("window_filled", pa.int64()),
    ]
)


@dataclass(frozen=True)
class FeatureRepoSettings:
    """Where a feature repo keeps its state; the repo root is the parent of `data_dir`."""

    #: Directory of the registry (`registry.db`), the SQLite online store
    #: (`online_store.db`) and the offline table (`service_metrics.parquet`), like
    #: `features/repo/data` for the checked-in repo. Created on `open_store`.
    data_dir: Path
    #: Feast project name; `features/repo/feature_store.yaml` uses the default.
    project: str = "ooda"


def repo_config_dict(settings: FeatureRepoSettings) -> dict[str, object]:
    """The `feature_store.yaml` content for `settings`, with absolute paths."""
    data_dir = settings.data_dir.resolve()
    return {
        "project": settings.project,
        "provider": "local",
        "registry": str(data_dir / "registry.db"),
        "online_store": {"type": "sqlite", "path": str(data_dir / "online_store.db")},
        "offline_store": {"type": "duckdb"},
        "entity_key_serialization_version": 3,
        "auth": {"type": "no_auth"},
    }


def open_store(settings: FeatureRepoSettings) -> FeatureStore:
    """A `FeatureStore` over `settings.data_dir`, configured like the checked-in repo."""
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    from feast import FeatureStore, RepoConfig

    config = RepoConfig(repo_path=data_dir.parent, **repo_config_dict(settings))
    return FeatureStore(repo_path=str(data_dir.parent), config=config)


def apply(store: FeatureStore) -> None:
    """Register the entity, sources, feature views and feature services of the repo.

    Also creates the (empty) offline table, so retrieval and materialization work before
    the first `ingest`. Safe to repeat.
    """
    repo_root = Path(store.config.repo_path or store.repo_path)
    # The registry lives in the data directory (an absolute path replaces repo_root).
    data_dir = (repo_root / store.config.registry.path).parent
    from features._definitions import build_definitions

    definitions = build_definitions(str(data_dir.resolve()))
    table = data_dir / OFFLINE_FILE
    if not table.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        _write_table(table, OFFLINE_SCHEMA.empty_table())
    create_family_tables(data_dir)
    store.apply(definitions.objects())


def ingest(store: FeatureStore, metrics: pd.DataFrame) -> pd.DataFrame:
    """Append tidy metrics to the offline table as feature rows and bring the online store up.

    The hour before the new rows is read back from the offline table so rolling features
    of the first new rows are complete. Rows already stored for the same (service,
    timestamp) are replaced, so re-ingesting a range is idempotent. Online, each touched
    service then holds its newest stored row, as `materialize` up to that row would leave
    it; it is written through the push source because the file store's `materialize`
    re-reads the whole table each time (see the module notes). Returns the rows written.
    """
    frame = validate_metrics(metrics)
    if frame.empty:
        return build_features(frame)
    path = _offline_path(store)
    stored = pd.read_parquet(path)
    for column in (EVENT_TIMESTAMP, "window_end"):  # stored in us (DuckDB's unit), used in ns
        stored[column] = stored[column].astype("datetime64[ns, UTC]")
    context = stored[
        stored[ENTITY_KEY].isin(frame["service"].unique())
        & (stored[EVENT_TIMESTAMP] >= frame["timestamp"].min() - _CONTEXT)
    ]
    features = build_features(pd.concat([features_to_metrics(context), frame]))
    new_keys = pd.MultiIndex.from_frame(frame[["service", "timestamp"]])
    is_new = pd.MultiIndex.from_frame(features[[ENTITY_KEY, EVENT_TIMESTAMP]]).isin(new_keys)
    new_rows = features[is_new].reset_index(drop=True)
    combined = pd.concat([stored, new_rows], ignore_index=True) if len(stored) else new_rows
    combined = combined.drop_duplicates([ENTITY_KEY, EVENT_TIMESTAMP], keep="last")
    combined = combined.sort_values([EVENT_TIMESTAMP, ENTITY_KEY], ignore_index=True)
    _write_table(path, _to_arrow(combined))
    with contextlib.redirect_stdout(io.StringIO()):  # Feast prints a progress banner
        store.materialize(
            start_date=new_rows[EVENT_TIMESTAMP].min().to_pydatetime(),
            end_date=new_rows[EVENT_TIMESTAMP].max().to_pydatetime() + timedelta(seconds=1),
        )
    return new_rows


def push_live(store: FeatureStore, metrics: pd.DataFrame) -> pd.DataFrame:
    """Push the newest feature row of each service in `metrics` to the online store.

    Call once per tick with at least the last `FORECAST_WINDOW` minutes (plus the longest
    gap to bridge) of tidy metrics, so the rolling features and `request_rate_window` of
    the pushed row equal what `ingest` computes for that minute. Only the online store is
    written (`PushMode.ONLINE`); the offline history grows through `ingest`, which
    recomputes the same rows idempotently. A row older than the service's online row is
    not pushed. Returns the newest rows computed (`latest_features`: only those rows).
    """
    rows = latest_features(metrics)
    _push_online(store, rows)
    return rows


def historical_features(
    store: FeatureStore, entity_df: pd.DataFrame, feature_service_name: str
) -> pd.DataFrame:
    """Point-in-time correct features for each (`service`, `event_timestamp`) row.

    Each row gets the newest feature row of its service at or before its timestamp and
    at most `FEATURE_TTL` older (else NaN). Extra columns of `entity_df` (labels) are kept.
    Returns the rows sorted by service and timestamp. The join runs in DuckDB over the
    parquet table (a week of 3 services at one-minute steps: about 4 s here).
    """
    feature_service = _feature_service(store, feature_service_name)
    entities = entity_frame(entity_df, [ENTITY_KEY, EVENT_TIMESTAMP])
    keys = [ENTITY_KEY, EVENT_TIMESTAMP]
    names = list(SERVICE_FEATURES[feature_service_name])
    joined = store.get_historical_features(
        entity_df=entities[keys].drop_duplicates(), features=feature_service
    ).to_df()
    joined[EVENT_TIMESTAMP] = pd.to_datetime(joined[EVENT_TIMESTAMP], utc=True)
    if "window_end" in joined.columns:  # DuckDB hands timestamps of features back as text
        joined["window_end"] = pd.to_datetime(joined["window_end"], utc=True)
    # Joining back onto the entity rows keeps rows the engine dropped (older than the TTL),
    # with NaN features.
    frame = entities.merge(joined.loc[:, keys + names], on=keys, how="left")
    return frame.sort_values(keys, ignore_index=True)


def training_frame(
    store: FeatureStore,
    start: datetime,
    end: datetime,
    services: Sequence[str],
    feature_service_name: str,
    step: timedelta = timedelta(minutes=1),
) -> pd.DataFrame:
    """Historical features on a regular grid: every `step` in [start, end) for each service.

    With `step=timedelta(minutes=FORECAST_WINDOW)` and `forecaster_v1`, consecutive
    `request_rate_window`s tile the range, giving the full per-minute series cheaply.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise FeatureSchemaError(f"start {start!r} and end {end!r} must be tz-aware")
    grid = pd.date_range(start, end, freq=step, inclusive="left", tz="UTC")
    entity_df = pd.DataFrame(
        {
            ENTITY_KEY: [service for service in services for _ in grid],
            EVENT_TIMESTAMP: pd.DatetimeIndex(list(grid) * len(services)),
        }
    )
    return historical_features(store, entity_df, feature_service_name)


def online_features(
    store: FeatureStore, services: Sequence[str], feature_service_name: str
) -> pd.DataFrame:
    """The latest stored features of each service, one row per service in the given order.

    `request_rate_window` comes back as a list of floats, `window_end` as a UTC timestamp.
    Raises `MissingFeaturesError` naming the services that have no online row.
    """
    feature_service = _feature_service(store, feature_service_name)
    response = store.get_online_features(
        features=feature_service, entity_rows=[{ENTITY_KEY: s} for s in services]
    )
    frame = response.to_df()
    names = list(SERVICE_FEATURES[feature_service_name])
    absent = frame[ENTITY_KEY][frame[names].isna().all(axis=1)].tolist()
    if absent:
        raise MissingFeaturesError(
            f"no online features for services {absent} in {feature_service_name!r}"
        )
    if "window_end" in frame.columns:
        frame["window_end"] = pd.to_datetime(frame["window_end"], utc=True)
    return frame.loc[:, [ENTITY_KEY, *names]]


def _push_online(store: FeatureStore, rows: pd.DataFrame) -> None:
    """Write rows online through the push source unless the online row is newer.

    One read and one push for all services, whatever their number.
    """
    if rows.empty:
        return
    current = store.get_online_features(
        features=["service_rolling:window_end"],
        entity_rows=[{ENTITY_KEY: s} for s in rows[ENTITY_KEY]],
    ).to_df()
    online_end = pd.to_datetime(current["window_end"], utc=True)
    older = rows["window_end"].reset_index(drop=True) < online_end
    fresh = rows[~older.to_numpy()]
    if not fresh.empty:
        from feast.data_source import PushMode

        store.push(PUSH_SOURCE, fresh, to=PushMode.ONLINE)


def stored_range(store: FeatureStore) -> tuple[datetime, datetime] | None:
    """The first and last event time in the offline store (None: nothing ingested yet, or the
    repo never applied)."""
    from feast.errors import DataSourceObjectNotFoundException

    try:
        path = _offline_path(store)
    except DataSourceObjectNotFoundException:
        return None
    if not path.exists():
        return None
    stamps = pq.read_table(path, columns=[EVENT_TIMESTAMP]).column(0).to_pandas()
    if stamps.empty:
        return None
    stamps = pd.to_datetime(stamps, utc=True)
    return stamps.min().to_pydatetime(), stamps.max().to_pydatetime()


def _feature_service(store: FeatureStore, name: str) -> FeatureService:
    if name not in SERVICE_FEATURES:
        raise UnknownFeatureServiceError(
            f"unknown feature service {name!r}; known: {sorted(SERVICE_FEATURES)}"
        )
    return store.get_feature_service(name)


def _offline_path(store: FeatureStore) -> Path:
    source = store.get_data_source(_SOURCE_NAME)
    from feast import FileSource

    assert isinstance(source, FileSource)
    repo_root = store.config.repo_path or store.repo_path
    return Path(FileSource.get_uri_for_file_path(repo_path=repo_root, uri=source.path))


def _to_arrow(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(
        frame.loc[:, list(FEATURE_ROW_COLUMNS)], schema=OFFLINE_SCHEMA, preserve_index=False
    )


def _write_table(path: Path, table: pa.Table) -> None:
    """Write atomically, so a reader (materialize, retrieval) never sees half a file."""
    partial = path.with_suffix(".partial")
    pq.write_table(table, partial)
    partial.replace(path)
