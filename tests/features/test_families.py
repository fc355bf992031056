"""Every metric family in Feast: one view each, filled from the lab, read back online and
point-in-time correct, idempotent, and refusing frames that break the contract."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from feast import FeatureStore

from contracts import FAMILIES, MetricFamily, SimClock
from features import (
    FAMILY_ENTITIES,
    FeatureRepoSettings,
    FeatureSchemaError,
    MissingFeaturesError,
    apply,
    family_features,
    family_view,
    historical_family_features,
    ingest_families,
    online_family_features,
    open_store,
)
from lab import Lab, LabSettings

START = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
STEP = timedelta(minutes=1)


@pytest.fixture(scope="module")
def lab() -> Lab:
    lab = Lab(LabSettings(seed=3), SimClock(START))
    lab.step(timedelta(minutes=30))
    return lab


@pytest.fixture(scope="module")
def frames(lab: Lab) -> dict[MetricFamily, pd.DataFrame]:
    end = lab.clock.now()
    return {f: lab.source.query_family(f, START, end, STEP) for f in MetricFamily}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    store = open_store(FeatureRepoSettings(tmp_path_factory.mktemp("families") / "data"))
    apply(store)
    return store


def test_every_family_has_a_view_keyed_by_region_and_its_entity(store: FeatureStore) -> None:
    views = {fv.name: fv for fv in store.list_feature_views()}
    for family, joins in FAMILY_ENTITIES.items():
        view = views[family_view(family)]
        assert joins[0] == "region"
        assert set(view.join_keys) == set(joins)
        assert set(FAMILIES[family].keys) <= {*joins, *family_features(family)}
        assert {f.name for f in view.features} == set(family_features(family))


def test_ingested_families_read_back_online_and_as_of_a_time(
    store: FeatureStore, frames: dict[MetricFamily, pd.DataFrame]
) -> None:
    written = ingest_families(store, frames)
    assert written == sum(len(f) for f in frames.values()) > 0
    assert ingest_families(store, frames) == written  # the same rows again: replaced
    for family, frame in frames.items():
        if frame.empty:
            continue
        joins = list(FAMILY_ENTITIES[family])
        values = list(FAMILIES[family].values)
        keyed = frame.astype(dict.fromkeys(joins, str))
        newest = keyed.sort_values("timestamp").drop_duplicates(joins, keep="last")
        online = online_family_features(store, family, newest[joins].to_dict("records"))
        expected = newest.set_index(joins)[values].sort_index()
        got = online.set_index(joins)[values].sort_index()
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)

        # As of a minute in the middle: that minute's row of each series, not a newer one.
        middle = keyed["timestamp"].sort_values().iloc[len(keyed) // 2]
        asked = keyed[keyed["timestamp"] == middle][joins].assign(event_timestamp=middle)
        past = historical_family_features(store, family, asked)
        then = keyed[keyed["timestamp"] == middle].set_index(joins)[values].sort_index()
        pd.testing.assert_frame_equal(
            past.set_index(joins)[values].sort_index(), then, check_dtype=False
        )


def test_bad_frames_and_unknown_series_are_named(
    store: FeatureStore, frames: dict[MetricFamily, pd.DataFrame]
) -> None:
    node = frames[MetricFamily.NODE]
    with pytest.raises(FeatureSchemaError, match="node_filesystem_avail_bytes"):
        ingest_families(
            store, {MetricFamily.NODE: node.drop(columns="node_filesystem_avail_bytes")}
        )
    naive = node.assign(timestamp=node["timestamp"].dt.tz_localize(None))
    with pytest.raises(FeatureSchemaError, match="timezone-aware"):
        ingest_families(store, {MetricFamily.NODE: naive})
    with pytest.raises(MissingFeaturesError, match="no-such-node"):
        online_family_features(
            store, MetricFamily.NODE, [{"region": "eu-west-1", "node": "no-such-node"}]
        )
    with pytest.raises(FeatureSchemaError, match="node"):
        online_family_features(store, MetricFamily.NODE, [{"region": "eu-west-1"}])


def test_the_tables_are_parquet_files_beside_the_service_table(store: FeatureStore) -> None:
    data = Path(str(store.repo_path)) / "data"
    for family in FAMILY_ENTITIES:
        assert (data / f"{family_view(family)}.parquet").exists()
