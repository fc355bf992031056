"""features: build_features against hand computation, and the Feast store end to end.

The store tests share one repo in a temp dir (Feast's apply is the slow part); each test
uses its own services so they do not see each other's rows.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from feast import FeatureStore, FileSource
from feast.repo_operations import parse_repo

import features
from contracts import METRIC_COLUMNS
from features import (
    DETECTOR_FEATURES,
    DETECTOR_SERVICE,
    FEATURE_ROW_COLUMNS,
    FEATURE_TTL,
    FORECAST_WINDOW,
    FORECASTER_SERVICE,
    FeatureRepoSettings,
    FeatureSchemaError,
    MissingFeaturesError,
    UnknownFeatureServiceError,
    apply,
    build_features,
    historical_features,
    ingest,
    online_features,
    open_store,
    push_live,
    repo_config_dict,
    training_frame,
)

REPO_DIR = Path(features.__file__).parent / "repo"
START = datetime(2024, 3, 4, tzinfo=UTC)


def tidy_metrics(
    start: datetime,
    minutes: int,
    services: Sequence[str] = ("frontend", "checkout"),
    seed: int = 0,
) -> pd.DataFrame:
    """A tidy metrics frame: one row per (minute, service), noisy but well-behaved values."""
    rng = np.random.default_rng(seed)
    timestamps = pd.date_range(start, periods=minutes, freq="min", tz="UTC")
    frames = []
    for offset, service in enumerate(services):
        n = len(timestamps)
        frames.append(
            pd.DataFrame(
                {
                    "timestamp": timestamps,
                    "region": "eu-west-1",
                    "service": service,
                    "request_rate": 100.0 + 10 * offset + rng.normal(0, 1, n),
                    "p95_latency_ms": 50.0 + rng.normal(0, 1, n),
                    "p99_latency_ms": 80.0 + rng.normal(0, 1, n),
                    "error_rate": rng.uniform(0, 0.01, n),
                    "cpu_utilisation": rng.uniform(0.3, 0.6, n),
                    "memory_utilisation": rng.uniform(0.3, 0.6, n),
                    "restarts": rng.poisson(0.2, n).astype(float),
                    "ready_pods": 3.0,
                    "desired_pods": 3.0,
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True)
    frame.insert(4, "request_rate_instant", frame["request_rate"])
    return frame


def one_service(minutes: int) -> pd.DataFrame:
    return tidy_metrics(START, minutes, services=("checkout",))


def test_rolling_features_match_hand_computation() -> None:
    metrics = one_service(90)
    metrics.loc[20, ["ready_pods", "desired_pods"]] = [1.0, 4.0]
    metrics.loc[21, ["ready_pods", "desired_pods"]] = [5.0, 4.0]
    metrics.loc[22, ["ready_pods", "desired_pods"]] = [0.0, 0.0]
    features = build_features(metrics)

    assert list(features.columns) == list(FEATURE_ROW_COLUMNS)
    assert len(features) == 90
    err, p95 = metrics["error_rate"].to_numpy(), metrics["p95_latency_ms"].to_numpy()
    restarts, rate = metrics["restarts"].to_numpy(), metrics["request_rate"].to_numpy()
    for i in (0, 3, 4, 30, 89):
        row = features.iloc[i]
        assert row["error_rate_5m_mean"] == pytest.approx(err[max(0, i - 4) : i + 1].mean())
        assert row["p95_latency_ms_5m_mean"] == pytest.approx(p95[max(0, i - 4) : i + 1].mean())
        lags = [restarts[j] for j in (i, i - 5, i - 10) if j >= 0]
        assert row["restarts_15m"] == pytest.approx(sum(lags))
        hour = rate[max(0, i - 59) : i + 1]
        assert row["request_rate_1h_mean"] == pytest.approx(hour.mean())
        assert row["request_rate_ratio_1h"] == pytest.approx(rate[i] / hour.mean())
        assert row["event_timestamp"] == metrics["timestamp"].iloc[i]
    assert features["not_ready_ratio"].iloc[20] == pytest.approx(0.75)
    assert features["not_ready_ratio"].iloc[21] == 0.0  # clipped, more ready than desired
    assert features["not_ready_ratio"].iloc[22] == 0.0  # nothing desired, nothing missing


def test_request_rate_window_is_last_hour_oldest_first() -> None:
    metrics = one_service(90)
    features = build_features(metrics)
    rate = metrics["request_rate"].to_numpy(np.float32)

    last = features.iloc[-1]
    np.testing.assert_array_equal(last["request_rate_window"], rate[-FORECAST_WINDOW:])
    assert last["window_end"] == metrics["timestamp"].iloc[-1]
    assert last["window_filled"] == 0
    # Ten minutes in, the window is padded before the first sample and says so.
    early = features.iloc[9]
    assert len(early["request_rate_window"]) == FORECAST_WINDOW
    np.testing.assert_array_equal(early["request_rate_window"][-10:], rate[:10])
    assert (early["request_rate_window"][:-10] == rate[0]).all()
    assert early["window_filled"] == FORECAST_WINDOW - 10


def test_missing_columns_are_named() -> None:
    metrics = one_service(5).drop(columns=["error_rate", "ready_pods"])
    with pytest.raises(FeatureSchemaError, match=r"error_rate.*ready_pods"):
        build_features(metrics)


def test_naive_timestamps_are_rejected() -> None:
    metrics = one_service(5)
    metrics["timestamp"] = metrics["timestamp"].dt.tz_localize(None)
    with pytest.raises(FeatureSchemaError, match="tz-aware"):
        build_features(metrics)


def test_gaps_are_interpolated_and_counted_without_looking_ahead() -> None:
    metrics = one_service(80)
    metrics.loc[70, "request_rate"] = np.nan  # a NaN value
    metrics.loc[71, "error_rate"] = np.nan
    metrics = metrics.drop(index=[73, 74])  # two missing rows
    metrics.loc[79, "request_rate"] = np.nan  # a NaN at the newest row
    features = build_features(metrics).set_index("event_timestamp")
    rate = one_service(80)["request_rate"].to_numpy()
    minute = START + timedelta(minutes=78)

    window = features.loc[minute, "request_rate_window"]
    # Window of minute 78 spans minutes 19..78; index of minute m is m - 19.
    assert window[70 - 19] == pytest.approx((rate[69] + rate[71]) / 2, rel=1e-6)
    assert window[73 - 19] == pytest.approx(rate[72] + (rate[75] - rate[72]) / 3, rel=1e-6)
    assert features.loc[minute, "window_filled"] == 3
    assert not np.isnan(window).any()
    errors = one_service(80)["error_rate"].to_numpy()
    at_72 = features.loc[START + timedelta(minutes=72), "error_rate_5m_mean"]
    assert at_72 == pytest.approx(np.mean(errors[[68, 69, 70, 72]]))
    # The newest row's NaN rate is carried from minute 78, never taken from the future.
    newest = features.iloc[-1]
    assert newest["request_rate_window"][-1] == pytest.approx(rate[78], rel=1e-6)
    assert np.isnan(newest["request_rate"])


def test_a_service_without_rates_gets_an_all_nan_window() -> None:
    metrics = one_service(3)
    metrics["request_rate"] = np.nan
    features = build_features(metrics)
    assert np.isnan(features.iloc[-1]["request_rate_window"]).all()
    assert features.iloc[-1]["window_filled"] == FORECAST_WINDOW


def test_live_window_of_the_last_hour_equals_the_batch_row() -> None:
    metrics = tidy_metrics(START, 200)
    batch = build_features(metrics)
    recent = metrics[metrics["timestamp"] > metrics["timestamp"].max() - timedelta(minutes=70)]
    live = build_features(recent)
    for service in ("frontend", "checkout"):
        b = batch[batch["service"] == service].iloc[-1]
        r = live[live["service"] == service].iloc[-1]
        np.testing.assert_array_equal(b["request_rate_window"], r["request_rate_window"])
        for column in ("request_rate_1h_mean", "restarts_15m", "error_rate_5m_mean"):
            assert b[column] == pytest.approx(r[column])


def test_metric_columns_follow_the_contract() -> None:
    assert METRIC_COLUMNS[:3] == ("timestamp", "region", "service")
    assert len(METRIC_COLUMNS) == 13


# --- the Feast store ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    store = open_store(FeatureRepoSettings(tmp_path_factory.mktemp("repo") / "data"))
    apply(store)
    return store


def test_historical_features_are_point_in_time_correct(store: FeatureStore) -> None:
    metrics = tidy_metrics(START, 30, services=("pit",))
    step_at = START + timedelta(minutes=20)
    metrics["error_rate"] = np.where(metrics["timestamp"] < step_at, 0.0, 1.0)
    ingest(store, metrics)
    entity_df = pd.DataFrame(
        {
            "service": "pit",
            "event_timestamp": [
                step_at - timedelta(seconds=1),  # the jump is one second in the future
                step_at,
                step_at + timedelta(seconds=30),
                START + timedelta(minutes=29, seconds=59) + FEATURE_TTL,  # too stale
            ],
            "label": [0, 1, 2, 3],
        }
    )
    frame = historical_features(store, entity_df, DETECTOR_SERVICE)

    assert list(frame.columns[:3]) == ["service", "event_timestamp", "label"]
    assert set(DETECTOR_FEATURES) <= set(frame.columns)
    assert frame["error_rate"].iloc[:3].tolist() == [0.0, 1.0, 1.0]
    assert np.isnan(frame["error_rate"].iloc[3])
    # The window served one second before the jump ends at the minute before it.
    early = historical_features(store, entity_df.iloc[:1], FORECASTER_SERVICE)
    assert early["window_end"].iloc[0] == step_at - timedelta(minutes=1)


def test_ingest_appends_with_history_and_is_idempotent(store: FeatureStore) -> None:
    metrics = tidy_metrics(START, 120, services=("append",))
    ingest(store, metrics.iloc[:70])
    ingest(store, metrics.iloc[70:])
    ingest(store, metrics.iloc[100:])
    grid = training_frame(
        store,
        START,
        START + timedelta(minutes=120),
        ["append"],
        FORECASTER_SERVICE,
        step=timedelta(minutes=FORECAST_WINDOW),
    )
    series = np.concatenate(grid["request_rate_window"].to_list())
    # Consecutive hourly windows tile the range: the full per-minute series comes back.
    np.testing.assert_allclose(series[-60:], metrics["request_rate"].to_numpy()[1:61], rtol=1e-6)
    stored = pd.read_parquet(store.repo_path / "data" / "service_metrics.parquet")
    rows = stored[stored["service"] == "append"]
    assert len(rows) == 120
    expected = build_features(metrics).iloc[-1]
    assert rows["request_rate_1h_mean"].iloc[-1] == pytest.approx(expected["request_rate_1h_mean"])


def test_a_store_written_before_a_column_existed_takes_appends(store: FeatureStore) -> None:
    """A store from before ``request_rate_instant``: its rows are the appends' context, the
    column NaN there, and the new rows carry it."""
    metrics = tidy_metrics(START, 90, services=("older",))
    ingest(store, metrics.iloc[:60])
    path = store.repo_path / "data" / "service_metrics.parquet"
    pd.read_parquet(path).drop(columns=["request_rate_instant"]).to_parquet(path)
    new_rows = ingest(store, metrics.iloc[60:])
    assert len(new_rows) == 30
    np.testing.assert_allclose(
        new_rows["request_rate_instant"], metrics["request_rate_instant"].iloc[60:]
    )
    rows = pd.read_parquet(path)
    rows = rows[rows["service"] == "older"]
    assert len(rows) == 90 and rows["request_rate_instant"].isna().sum() == 60
    expected = build_features(metrics).iloc[-1]
    assert rows["request_rate_1h_mean"].iloc[-1] == pytest.approx(expected["request_rate_1h_mean"])


def test_online_features_hold_the_latest_row_and_follow_pushes(store: FeatureStore) -> None:
    services = ["live-a", "live-b"]
    history = tidy_metrics(START, 120, services=services, seed=3)
    ingest(store, history)
    online = online_features(store, services, FORECASTER_SERVICE)
    latest = build_features(history).groupby("service").tail(1).set_index("service")

    assert online["service"].tolist() == services
    assert (online["window_end"] == history["timestamp"].max()).all()
    np.testing.assert_array_equal(
        np.asarray(online["request_rate_window"].iloc[0], dtype=np.float32),
        latest.loc["live-a", "request_rate_window"],
    )
    detector = online_features(store, services, DETECTOR_SERVICE)
    assert list(detector.columns) == ["service", *DETECTOR_FEATURES]

    tick = tidy_metrics(START + timedelta(minutes=60), 61, services=services, seed=4)
    pushed = push_live(store, tick)
    after = online_features(store, services, DETECTOR_SERVICE).set_index("service")
    window = online_features(store, services, FORECASTER_SERVICE).set_index("service")
    assert after.loc["live-b", "error_rate"] == pytest.approx(
        pushed.set_index("service").loc["live-b", "error_rate"]
    )
    assert window.loc["live-a", "window_end"] == START + timedelta(minutes=120)
    assert window.loc["live-a", "request_rate_window"][-1] == pytest.approx(
        tick["request_rate"].iloc[60], rel=1e-6
    )
    # An older push never moves the online row back in time.
    push_live(store, tidy_metrics(START, 30, services=services))
    again = online_features(store, services, FORECASTER_SERVICE)
    assert (again["window_end"] == START + timedelta(minutes=120)).all()


def test_lookup_errors_name_the_bad_value(store: FeatureStore) -> None:
    with pytest.raises(UnknownFeatureServiceError, match="detector_v9"):
        online_features(store, ["frontend"], "detector_v9")
    with pytest.raises(MissingFeaturesError, match="nobody"):
        online_features(store, ["nobody"], DETECTOR_SERVICE)
    with pytest.raises(FeatureSchemaError, match="event_timestamp"):
        historical_features(store, pd.DataFrame({"service": ["x"]}), DETECTOR_SERVICE)


def test_checked_in_repo_loads_and_applies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(REPO_DIR, repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
    cli_store = FeatureStore(repo_path=str(repo))
    assert cli_store.config.project == "ooda"
    assert cli_store.config.entity_key_serialization_version == 3
    with (repo / "feature_store.yaml").open() as handle:
        checked_in = yaml.safe_load(handle)
    built = repo_config_dict(FeatureRepoSettings(repo / "data"))
    built["registry"] = "data/registry.db"
    built["online_store"] = {"type": "sqlite", "path": "data/online_store.db"}
    assert checked_in == built

    monkeypatch.chdir(repo)  # `feast apply` collects the definitions like this
    monkeypatch.syspath_prepend(str(repo))
    contents = parse_repo(repo)
    apply(cli_store)
    registered = {fv.name for fv in cli_store.list_feature_views()}
    assert registered == {fv.name for fv in contents.feature_views}
    assert {fs.name for fs in cli_store.list_feature_services()} == {
        DETECTOR_SERVICE,
        FORECASTER_SERVICE,
    }
    source = cli_store.get_data_source("service_metrics_source")
    assert isinstance(source, FileSource)
    assert source.path == str((repo / "data" / "service_metrics.parquet").resolve())
    assert source in contents.data_sources
