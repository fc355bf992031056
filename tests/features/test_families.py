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
    DETECTOR_SERVICE,
    FAMILY_ENTITIES,
    ROLLUP_COLUMNS,
    FeatureRepoSettings,
    FeatureSchemaError,
    MissingFeaturesError,
    apply,
    family_features,
    family_view,
    historical_family_features,
    ingest_families,
    online_family_features,
    online_features,
    open_store,
    service_rollup,
    training_frame,
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
    assert (data / "service_families.parquet").exists()


def test_the_detector_reads_each_service_s_rollup_of_the_families_point_in_time(
    store: FeatureStore, frames: dict[MetricFamily, pd.DataFrame]
) -> None:
    ingest_families(store, frames)
    rollup = service_rollup(frames)
    middle = rollup["timestamp"].sort_values().iloc[len(rollup) // 2]
    services = sorted(rollup["service"].unique())
    got = training_frame(store, middle, middle + STEP, services, DETECTOR_SERVICE)
    then = rollup[rollup["timestamp"] == middle].set_index("service")[list(ROLLUP_COLUMNS)]
    pd.testing.assert_frame_equal(
        got.set_index("service")[list(ROLLUP_COLUMNS)].sort_index(),
        then.sort_index(),
        check_dtype=False,
        check_names=False,
    )
    online = online_features(store, services, DETECTOR_SERVICE)
    newest = rollup.sort_values("timestamp").drop_duplicates("service", keep="last")
    pd.testing.assert_frame_equal(
        online.set_index("service")[list(ROLLUP_COLUMNS)].sort_index(),
        newest.set_index("service")[list(ROLLUP_COLUMNS)].sort_index(),
        check_dtype=False,
        check_names=False,
    )
    # Fewer families than all would make the rollup partly unknown: it is left as it was.
    ingest_families(store, {MetricFamily.NODE: frames[MetricFamily.NODE].iloc[:0]})
    ingest_families(
        store,
        {
            MetricFamily.POD: frames[MetricFamily.POD].assign(
                kube_pod_container_resource_limits_memory_bytes=1.0
            )
        },
    )
    again = training_frame(store, middle, middle + STEP, services, DETECTOR_SERVICE)
    pd.testing.assert_frame_equal(again, got)
