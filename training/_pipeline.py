"""Training pipelines: Feast history -> fit -> judge against gates -> MLflow run and registry.

A candidate gets its alias (``champion``, or ``challenger`` to be tried in shadow first) only
when it beats the simple baseline *and* the current champion on the same held-back tail; the
rule and the figures go into the version's tags so whoever looks at the MLflow UI later can
see why a version was (or was not) promoted. When the first candidate ever fails its gate the
baseline is registered and made champion instead, so serving always has a model that has been
judged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from feast import FeatureStore
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from features import DETECTOR_FEATURES, FORECAST_WINDOW, ROLLUP_MIN_SCALES, training_frame
from models import (
    IsolationForestDetector,
    LSTMForecaster,
    RobustZScoreDetector,
    SeasonalNaiveForecaster,
    detector_metrics,
    forecast_metrics,
    log_detector,
    log_forecaster,
    pyfunc_history,
)
from training._registry import CHAMPION, promote
from training._settings import TrainingSettings

ACTOR = "training-pipeline"


@dataclass(frozen=True)
class Incident:
    """A labelled incident in the history (ground truth for judging the detector)."""

    service: str
    start: datetime
    end: datetime
    scenario: str


@dataclass(frozen=True)
class TrainingResult:
    """What one pipeline run produced and decided."""

    model_name: str
    version: str
    kind: str
    promoted: bool
    """Whether the chosen version became champion."""
    rule: str
    candidate: dict[str, float]
    baseline: dict[str, float]
    champion: dict[str, float] | None
    run_id: str
    alias: str = ""
    """The alias the chosen version got (``champion``, ``challenger``), "" when none."""
    experiment_id: str = ""


def _experiment(settings: TrainingSettings) -> str:
    reg = settings.registry
    mlflow.set_tracking_uri(reg.tracking_uri)
    mlflow.set_registry_uri(reg.tracking_uri)
    existing = mlflow.get_experiment_by_name(reg.experiment)
    if existing is not None:
        return str(existing.experiment_id)
    reg.artifact_root.mkdir(parents=True, exist_ok=True)
    location = reg.artifact_root.resolve().as_uri()
    return str(mlflow.create_experiment(reg.experiment, artifact_location=location))


def _champion(client: MlflowClient, name: str) -> tuple[str, Any] | None:
    try:
        version = client.get_model_version_by_alias(name, "champion")
    except MlflowException:
        return None
    return str(version.version), mlflow.pyfunc.load_model(f"models:/{name}@champion")


def training_window(client: MlflowClient, name: str) -> tuple[datetime, datetime] | None:
    """The history the champion of ``name`` was trained on (its run's ``start`` and ``end``);
    None without a champion or without those parameters."""
    try:
        version = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None
    if not version.run_id:
        return None
    params = client.get_run(version.run_id).data.params
    if "start" not in params or "end" not in params:
        return None
    return datetime.fromisoformat(params["start"]), datetime.fromisoformat(params["end"])


def _split(frame: pd.DataFrame, start: datetime, end: datetime, holdout: float) -> pd.Timestamp:
    return pd.Timestamp(start) + (pd.Timestamp(end) - pd.Timestamp(start)) * (1.0 - holdout)


def label_incidents(frame: pd.DataFrame, incidents: Sequence[Incident]) -> np.ndarray:
    """1 for rows of a service inside one of its incidents, else 0."""
    labels = np.zeros(len(frame), dtype=int)
    ts = pd.to_datetime(frame["event_timestamp"], utc=True)
    for incident in incidents:
        inside = (ts >= pd.Timestamp(incident.start)) & (ts < pd.Timestamp(incident.end))
        if incident.service != "*":
            inside &= frame["service"] == incident.service
        labels[inside.to_numpy()] = 1
    return labels


def _register(
    client: MlflowClient, model_uri: str, run_id: str, name: str, tags: dict[str, str]
) -> str:
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name, description="ooda model; serving loads the version under the alias champion"
        )
    # A logged model's URI names it (models:/m-...); a tracking server wants that id too.
    model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
    version = client.create_model_version(
        name, model_uri, run_id=run_id, tags=tags, model_id=model_id
    )
    return str(version.version)


def _decide(
    client: MlflowClient,
    name: str,
    version: str,
    passed: bool,
    rule: str,
    fallback_uri: str | None,
    run_id: str,
    alias: str = CHAMPION,
) -> tuple[str, str, str]:
    """Give the candidate ``alias`` when it passed (``champion`` when there is none yet); else,
    with no champion yet, promote the baseline."""
    has_champion = True
    try:
        client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        has_champion = False
    if passed:
        to = alias if has_champion else CHAMPION
        promote(client, name, version, alias=to, actor=ACTOR, reason=f"gate passed: {rule}")
        return version, to, "candidate"
    if has_champion or fallback_uri is None:
        return version, "", "candidate"
    baseline_version = _register(
        client, fallback_uri, run_id, name, {"role": "baseline", "gate_rule": "fallback"}
    )
    promote(
        client,
        name,
        baseline_version,
        actor=ACTOR,
        reason=f"no champion yet and candidate v{version} failed its gate ({rule}): baseline",
    )
    return baseline_version, CHAMPION, "baseline"


def train_detector(
    store: FeatureStore,
    client: MlflowClient,
    settings: TrainingSettings,
    *,
    start: datetime,
    end: datetime,
    services: Sequence[str],
    incidents: Sequence[Incident],
) -> TrainingResult:
    """Train the Isolation Forest on the quiet part of the history and judge it on the tail."""
    experiment_id = _experiment(settings)
    frame = training_frame(store, start, end, list(services), "detector_v2")
    labels = label_incidents(frame, incidents)
    cutoff = _split(frame, start, end, settings.holdout_fraction)
    ts = pd.to_datetime(frame["event_timestamp"], utc=True)
    complete = frame[list(DETECTOR_FEATURES)].notna().all(axis=1)
    head = ((ts < cutoff) & (labels == 0) & complete).to_numpy()
    tail = (ts >= cutoff).to_numpy()
    features = list(DETECTOR_FEATURES)
    cfg = settings.detector
    candidate = IsolationForestDetector(
        features=features,
        n_estimators=cfg.n_estimators,
        threshold_quantile=cfg.threshold_quantile,
        envelope_quantile=cfg.envelope_quantile,
        random_state=cfg.seed,
        min_scales=ROLLUP_MIN_SCALES,
    ).fit(frame[head])
    baseline = RobustZScoreDetector(
        features=features, threshold_quantile=cfg.threshold_quantile, min_scales=ROLLUP_MIN_SCALES
    ).fit(frame[head])
    tail_frame = frame[tail].reset_index(drop=True)
    tail_labels = labels[tail]
    cand = detector_metrics(tail_labels, candidate.score(tail_frame))
    base = detector_metrics(tail_labels, baseline.score(tail_frame))
    champ_metrics: dict[str, float] | None = None
    champion = _champion(client, settings.registry.detector_name)
    if champion is not None:
        out = champion[1].predict(tail_frame[["service", *features]])
        champ_metrics = detector_metrics(tail_labels, out["anomaly_score"].to_numpy())
    passed, rule = _gate("f1", cand, base, champ_metrics, higher_is_better=True)
    name = settings.registry.detector_name
    with mlflow.start_run(experiment_id=experiment_id, run_name="detector") as run:
        mlflow.log_params(
            {
                "model": "IsolationForest",
                "features": ",".join(features),
                "n_estimators": cfg.n_estimators,
                "threshold_quantile": cfg.threshold_quantile,
                "envelope_quantile": cfg.envelope_quantile,
                "train_rows": int(head.sum()),
                "eval_rows": int(tail.sum()),
                "eval_positives": int(tail_labels.sum()),
                "start": start.isoformat(),
                "end": end.isoformat(),
            }
        )
        example = tail_frame[["service", *features]].head(5)
        return _record(
            client,
            name,
            run.info.run_id,
            Judged(cand, base, champ_metrics, passed, rule),
            log_detector(candidate, example, name="detector").model_uri,
            log_detector(baseline, example, name="baseline").model_uri,
            "isolation_forest",
            settings.promote_to,
        )


def _rolling_forecasts(
    predict: Callable[[pd.DataFrame, int], pd.DataFrame],
    series: pd.DataFrame,
    origins: Sequence[pd.Timestamp],
    horizon: int,
    lookback: int,
) -> pd.DataFrame:
    """One forecast from each origin, each using only the ``lookback`` minutes before it."""
    parts = []
    for origin in origins:
        history = series[series["timestamp"] < origin]
        history = history.groupby("service", group_keys=False).tail(lookback)
        parts.append(predict(history, horizon))
    return pd.concat(parts, ignore_index=True)


def request_rate_series(
    store: FeatureStore, start: datetime, end: datetime, services: Sequence[str]
) -> pd.DataFrame:
    """The per-minute request rate of each service, rebuilt from the forecaster's own feature.

    Retrieving ``forecaster_v1`` every ``FORECAST_WINDOW`` minutes gives windows that tile the
    range, so the model is trained on exactly the feature it is served with.
    """
    step = timedelta(minutes=FORECAST_WINDOW)
    frame = training_frame(store, start + step, end, list(services), "forecaster_v1", step=step)
    parts = []
    for row in frame.dropna(subset=["window_end"]).itertuples(index=False):
        window = np.asarray(row.request_rate_window, dtype=float)
        stamps = pd.date_range(end=pd.Timestamp(row.window_end), periods=len(window), freq="1min")
        parts.append(
            pd.DataFrame({"service": row.service, "timestamp": stamps, "request_rate": window})
        )
    series = pd.concat(parts, ignore_index=True)
    series["timestamp"] = series["timestamp"].astype("datetime64[ns, UTC]")
    series = series.drop_duplicates(["service", "timestamp"], keep="last")
    return series.sort_values(["service", "timestamp"], ignore_index=True)


def train_forecaster(
    store: FeatureStore,
    client: MlflowClient,
    settings: TrainingSettings,
    *,
    start: datetime,
    end: datetime,
    services: Sequence[str],
) -> TrainingResult:
    """Train the LSTM on the head of the history; judge rolling forecasts on the tail."""
    experiment_id = _experiment(settings)
    series = request_rate_series(store, start, end, services)
    cutoff = _split(series, start, end, settings.holdout_fraction)
    head = series[series["timestamp"] < cutoff]
    cfg = settings.forecaster
    candidate = LSTMForecaster(
        input_chunk_length=cfg.input_chunk_length,
        training_length=cfg.training_length,
        hidden_dim=cfg.hidden_dim,
        n_epochs=cfg.epochs,
        learning_rate=cfg.learning_rate,
        max_samples_per_ts=cfg.max_samples_per_ts,
        random_state=cfg.seed,
    ).fit(head)
    baseline = SeasonalNaiveForecaster().fit(head)
    tail_end = series["timestamp"].max() - pd.Timedelta(minutes=cfg.horizon)
    origins = list(pd.date_range(cutoff, tail_end, periods=cfg.eval_origins).floor("min"))
    lookback = max(candidate.min_history, baseline.min_history)
    cand = forecast_metrics(
        series, _rolling_forecasts(candidate.predict, series, origins, cfg.horizon, lookback), head
    )
    base = forecast_metrics(
        series, _rolling_forecasts(baseline.predict, series, origins, cfg.horizon, lookback), head
    )
    champ_metrics: dict[str, float] | None = None
    champion = _champion(client, settings.registry.forecaster_name)
    if champion is not None:
        pyfunc = champion[1]

        def champion_predict(history: pd.DataFrame, horizon: int) -> pd.DataFrame:
            out = pyfunc.predict(pyfunc_history(history), params={"horizon": horizon})
            return out.assign(timestamp=pd.to_datetime(out["timestamp"], utc=True))

        champ_metrics = forecast_metrics(
            series,
            _rolling_forecasts(champion_predict, series, origins, cfg.horizon, lookback),
            head,
        )
    passed, rule = _gate("mae", cand, base, champ_metrics, higher_is_better=False)
    name = settings.registry.forecaster_name
    with mlflow.start_run(experiment_id=experiment_id, run_name="forecaster") as run:
        mlflow.log_params(
            {
                "model": "darts.RNNModel(LSTM)",
                "input_chunk_length": cfg.input_chunk_length,
                "hidden_dim": cfg.hidden_dim,
                "epochs": cfg.epochs,
                "learning_rate": cfg.learning_rate,
                "max_samples_per_ts": cfg.max_samples_per_ts,
                "horizon": cfg.horizon,
                "eval_origins": len(origins),
                "train_points": len(head),
                "start": start.isoformat(),
                "end": end.isoformat(),
            }
        )
        example = series.groupby("service", group_keys=False).tail(lookback)
        h = cfg.horizon
        return _record(
            client,
            name,
            run.info.run_id,
            Judged(cand, base, champ_metrics, passed, rule),
            log_forecaster(candidate, example, name="forecaster", horizon=h).model_uri,
            log_forecaster(baseline, example, name="baseline", horizon=h).model_uri,
            "lstm",
            settings.promote_to,
        )


@dataclass(frozen=True)
class Judged:
    """A candidate's evaluation beside the baseline's and the champion's, and the verdict."""

    candidate: dict[str, float]
    baseline: dict[str, float]
    champion: dict[str, float] | None
    passed: bool
    rule: str


def _gate(
    metric: str,
    cand: dict[str, float],
    base: dict[str, float],
    champ: dict[str, float] | None,
    *,
    higher_is_better: bool,
) -> tuple[bool, str]:
    """The promotion rule: strictly better than the baseline, at least as good as champion."""
    sign = 1.0 if higher_is_better else -1.0
    passed = sign * cand[metric] > sign * base[metric]
    better, as_good = (">", ">=") if higher_is_better else ("<", "<=")
    rule = f"{metric} {cand[metric]:.3f} {better} baseline {base[metric]:.3f}"
    if champ is not None:
        passed = passed and sign * cand[metric] >= sign * champ[metric]
        rule += f" and {as_good} champion {champ[metric]:.3f}"
    return passed, rule


def _record(
    client: MlflowClient,
    name: str,
    run_id: str,
    judged: Judged,
    candidate_uri: str,
    baseline_uri: str,
    role: str,
    alias: str = CHAMPION,
) -> TrainingResult:
    """Log the evaluation in the active run, register the candidate, move the alias if due."""
    mlflow.log_metrics(
        _prefixed(judged.candidate, "candidate_") | _prefixed(judged.baseline, "baseline_")
    )
    if judged.champion:
        mlflow.log_metrics(_prefixed(judged.champion, "champion_"))
    tags = _tags(judged.rule, judged.passed, judged.candidate, role)
    version = _register(client, candidate_uri, run_id, name, tags)
    active = mlflow.active_run()
    chosen, got, kind = _decide(
        client, name, version, judged.passed, judged.rule, baseline_uri, run_id, alias
    )
    return TrainingResult(
        name,
        chosen,
        kind,
        got == CHAMPION,
        judged.rule,
        judged.candidate,
        judged.baseline,
        judged.champion,
        run_id,
        alias=got,
        experiment_id=active.info.experiment_id if active is not None else "",
    )


def _prefixed(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    return {prefix + k: float(v) for k, v in metrics.items() if math.isfinite(float(v))}


def _tags(rule: str, passed: bool, metrics: dict[str, float], role: str) -> dict[str, str]:
    return {
        "role": role,
        "gate_rule": rule,
        "gate_passed": str(passed).lower(),
        "evaluation": json.dumps({k: round(float(v), 5) for k, v in metrics.items()}),
    }
