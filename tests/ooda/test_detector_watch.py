"""The detector's live precision and recall: a champion that cries wolf, or that is silent
through real incidents, loses to the robust z-score baseline and the loop takes the
baseline's verdicts; a good champion is left alone; a verified heal counts as an incident."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.pyfunc import PythonModel
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import training
from contracts import ScenarioId
from lab import ScenarioInstance
from ooda import AuditLog, OodaSettings, RuleScorer, ServiceView
from ooda._detector_watch import BASELINE, DetectorWatch
from ooda._escalate import alert_of
from ooda._forecaster_registry import MlflowDetectorRegistry
from ooda._records import AnomalyScores
from ooda._run_metrics import RunMetrics
from ooda._settings import DetectorWatchSettings, SloSettings
from tests.ooda._harness import make_lab, make_loop, run

T0 = datetime(2026, 11, 16, 6, 0, tzinfo=UTC)
SERVICES = ("frontend", "checkout", "payments")
SETTINGS = DetectorWatchSettings(min_incidents=2, min_baseline_minutes=20)


def _slo(service: str) -> SloSettings:
    return SloSettings()


def _incident(minute: int) -> str | None:
    """Checkout breaches 40-49, payments 100-109, frontend 160-169 (minutes from T0)."""
    for start, service in ((40, "checkout"), (100, "payments"), (160, "frontend")):
        if start <= minute < start + 10:
            return service
    return None


def _tick(minute: int, rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, ServiceView]]:
    at = pd.Timestamp(T0) + pd.Timedelta(minutes=minute)
    sick = _incident(minute)
    rows, views = [], {}
    for service in SERVICES:
        bad = service == sick
        rows.append({"service": service, "x": rng.normal(0, 1) + (12 if bad else 0)})
        history = pd.DataFrame(
            {"timestamp": [at], "p95_latency_ms": [220.0 if bad else 90.0], "error_rate": [0.0]}
        )
        views[service] = ServiceView(service, history)
    return pd.DataFrame(rows), views


def play(watch: DetectorWatch, verdict: Any, minutes: int, version: str = "2") -> list[Any]:
    """``verdict(minute, service, row)`` is the champion's call; returns the watch's events
    and the scores the loop would act on, per minute."""
    rng = np.random.default_rng(4)
    events, acted = [], []
    for minute in range(minutes):
        rows, views = _tick(minute, rng)
        flags = {s: bool(verdict(minute, s, r)) for s, r in zip(rows.service, rows.x, strict=True)}
        scores = AnomalyScores(version, {s: float(f) for s, f in flags.items()}, flags)
        now = T0 + timedelta(minutes=minute)
        acted.append(watch.observe(now, scores, rows, views, _slo))
        events += watch.tick(now)
    return [events, acted]


def test_a_champion_that_cries_wolf_is_condemned_and_the_baseline_decides() -> None:
    watch = DetectorWatch(SETTINGS)
    events, acted = play(watch, lambda m, s, x: True, 180)
    assert [e.kind for e in events] == ["fallback"]
    event = events[0]
    assert event.version == "2" and "robust" in event.summary
    assert event.evidence["precision"] < 0.3 and event.evidence["baseline_f1"] > 0.8
    assert watch.condemned == {"2"}
    after = [a for a in acted if a.model_version.startswith(BASELINE)]
    assert after, "the loop takes the baseline's verdicts after the fallback"
    # After the fallback a quiet minute is quiet again: the baseline's verdicts, not v2's.
    assert acted[130].model_version.startswith(BASELINE)
    assert not any(acted[130].anomalous.values()) and max(acted[130].scores.values()) < 0.5
    flagged_in_incident = acted[160].anomalous  # frontend breaches from minute 160
    assert flagged_in_incident["frontend"] and not flagged_in_incident["checkout"]


def test_a_silent_champion_is_condemned_for_its_recall() -> None:
    watch = DetectorWatch(SETTINGS)
    events, _ = play(watch, lambda m, s, x: False, 180)
    assert [e.kind for e in events] == ["fallback"]
    assert events[0].evidence["recall"] == 0.0 and events[0].evidence["baseline_recall"] == 1.0


def test_a_champion_as_good_as_the_baseline_is_left_alone() -> None:
    watch = DetectorWatch(SETTINGS)
    events, acted = play(watch, lambda m, s, x: x > 6, 180)
    assert events == [] and watch.condemned == set()
    assert watch.last["2"].recall == 1.0 and watch.last["2"].precision == 1.0
    assert all(a.model_version == "2" for a in acted)


def test_a_condemned_champion_as_good_as_the_baseline_again_is_reinstated() -> None:
    """v2 cries wolf for its first hour, then calls only what is wrong: once the bad hour
    has left the window its verdicts are taken again, and the watch says so."""
    watch = DetectorWatch(replace(SETTINGS, min_incidents=1, window=timedelta(minutes=90)))
    events, acted = play(watch, lambda m, s, x: m < 60 or x > 6, 240)
    assert [e.kind for e in events] == ["fallback", "reinstated"], events
    fallback, back = events
    assert fallback.at < T0 + timedelta(minutes=60)
    # Not while most of the bad hour is still in the 90-minute window.
    assert back.at >= T0 + timedelta(minutes=140)
    assert back.evidence["f1"] >= back.evidence["baseline_f1"]
    assert watch.condemned == set()
    minute = int((back.at - T0) / timedelta(minutes=1))
    assert acted[minute - 1].model_version.startswith(BASELINE)
    assert all(a.model_version == "2" for a in acted[minute + 1 :])


def test_nothing_is_judged_before_enough_incidents() -> None:
    watch = DetectorWatch(replace(SETTINGS, min_incidents=5))
    events, _ = play(watch, lambda m, s, x: True, 180)
    assert events == [] and watch.condemned == set()


def test_a_verified_heal_is_an_incident_even_when_the_slo_held() -> None:
    watch = DetectorWatch(SETTINGS)
    play(watch, lambda m, s, x: x > 6, 80)
    now = T0 + timedelta(minutes=79)
    before = watch.quality("2", now)
    assert before.incidents == 1  # checkout's breach
    watch.verified("payments", T0 + timedelta(minutes=60), T0 + timedelta(minutes=64))
    after = watch.quality("2", now)
    assert after.incidents == 2 and after.caught == before.caught


class _Crying:
    """A detector endpoint whose v2 calls every service anomalous; forecasts by the rules."""

    def __init__(self) -> None:
        self.rules = RuleScorer()

    def anomaly_rows(self, rows: pd.DataFrame) -> AnomalyScores:
        services = [str(s) for s in rows["service"]]
        return AnomalyScores("2", dict.fromkeys(services, 0.99), dict.fromkeys(services, True))

    def forecast_history(self, history: pd.DataFrame, horizon: int) -> Any:
        return self.rules.forecast_history(history, horizon)


def test_the_loop_falls_back_from_a_detector_that_cries_wolf_and_alerts() -> None:
    """Two real 5xx incidents healed by the loop: v2, anomalous every minute, is condemned,
    a human is alerted, and the loop's anomaly verdicts come from the baseline after it."""
    lab = make_lab(seed=6)
    audit = AuditLog(":memory:")
    watch = replace(SETTINGS, lead=timedelta(minutes=5))
    loop = make_loop(lab, OodaSettings(detector_watch=watch), scorer=_Crying(), audit=audit)
    run(lab, loop, 30)
    lab.inject(ScenarioInstance(ScenarioId.HTTP_5XX_SPIKE, "checkout"))
    run(lab, loop, 30)
    lab.inject(ScenarioInstance(ScenarioId.HTTP_5XX_SPIKE, "payments"))
    run(lab, loop, 20)
    entries = audit.entries()
    fallback = next(e for e in entries if e.action == "model_fallback")
    assert fallback.kind == "escalation" and fallback.service == "ooda-detector"
    assert fallback.evidence["version"] == "2" and fallback.evidence["incidents"] >= 2
    alert = alert_of(fallback, "shop", "eu-west-1")
    assert alert is not None and alert.name == "OodaDetectorFallback"
    assert loop.detector_watch.condemned == {"2"}
    scored = loop._scored
    assert scored is not None and scored.model_version.startswith(BASELINE)


class Registry:
    """Detector versions as rules on the feature ``x``; ``@champion`` and its history."""

    name = "ooda-detector"

    def __init__(self, rules: dict[str, Any], champion: str, previous: str | None) -> None:
        self.rules = rules
        self.current = champion
        self.before = {champion: previous}
        self.rollbacks: list[tuple[str, str, dict[str, Any]]] = []

    def champion(self) -> str | None:
        return self.current

    def previous(self, version: str) -> str | None:
        return self.before.get(version)

    def anomalous(self, version: str, rows: pd.DataFrame) -> list[bool]:
        return [bool(self.rules[version](x)) for x in rows["x"]]

    def rollback(self, version: str, reason: str, evidence: Mapping[str, Any]) -> str:
        self.rollbacks.append((version, reason, dict(evidence)))
        self.current = self.before[version] or version
        return self.current


def test_the_previous_champion_replayed_on_the_same_rows_takes_the_alias_back() -> None:
    registry = Registry({"1": lambda x: x > 6, "2": lambda x: True}, "2", "1")
    watch = DetectorWatch(SETTINGS, registry)
    events, _ = play(watch, lambda m, s, x: True, 180)
    assert [e.kind for e in events] == ["fallback", "rollback"]
    assert registry.current == "1"
    version, reason, evidence = registry.rollbacks[0]
    assert version == "2" and "live detector watch" in reason
    assert evidence["v1_f1"] > evidence["v2_f1"] + 0.3
    # v1's own verdicts are taken again: it is not condemned.
    later = AnomalyScores("1", {"checkout": 0.9}, {"checkout": True})
    assert watch.verdicts(later, {}) is later


def test_a_previous_champion_no_better_leaves_the_alias_and_the_fallback_holds() -> None:
    registry = Registry({"1": lambda x: True, "2": lambda x: True}, "2", "1")
    watch = DetectorWatch(SETTINGS, registry)
    events, _ = play(watch, lambda m, s, x: True, 180)
    assert [e.kind for e in events] == ["fallback", "no_rollback"]
    assert "no better" in events[1].summary and registry.current == "2"
    assert watch.condemned == {"2"}


class _Threshold(PythonModel):
    """A detector pyfunc: anomalous where ``x`` exceeds ``limit``."""

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def predict(
        self, context: object, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        x = model_input["x"].astype(float)
        return pd.DataFrame(
            {"service": model_input["service"], "anomaly_score": x, "is_anomaly": x > self.limit}
        )


def test_the_mlflow_registry_scores_with_an_old_version_and_rolls_back_with_tags(
    tmp_path: Path,
) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("watch", artifact_location=(tmp_path / "a").as_uri())
    mlflow.set_tracking_uri(uri)
    client.create_registered_model("ooda-detector")
    rows = pd.DataFrame({"service": ["checkout", "payments"], "x": [1.0, 9.0]})
    for limit in (6.0, -1.0):
        with mlflow.start_run(experiment_id=experiment) as run:
            logged = mlflow.pyfunc.log_model(name="model", python_model=_Threshold(limit))
        client.create_model_version("ooda-detector", logged.model_uri, run_id=run.info.run_id)
    for version in ("1", "2"):
        training.promote(client, "ooda-detector", version, actor="ci", reason="test")
    registry = MlflowDetectorRegistry(client, "ooda-detector")
    assert (registry.champion(), registry.previous("2")) == ("2", "1")
    assert registry.anomalous("1", rows) == [False, True]
    assert registry.anomalous("2", rows) == [True, True]
    assert registry.rollback("2", "live detector watch: v2 F1 0.31", {"v2_f1": 0.31}) == "1"
    tags = client.get_model_version("ooda-detector", "2").tags
    assert tags["rolled_back_by"] == "ooda" and "F1 0.31" in tags["rolled_back_reason"]
    assert json.loads(tags["rollback_evidence"]) == {"v2_f1": 0.31}


def test_the_live_figures_and_the_condemned_versions_reach_metrics() -> None:
    lab = make_lab(seed=2, hours=0.5)
    loop = make_loop(lab, OodaSettings())
    watch = loop.detector_watch
    play(watch, lambda m, s, x: True, 180)  # v2 cries wolf and is condemned
    metrics = RunMetrics()
    metrics.observe_tick(loop, 0.1, [], T0 + timedelta(minutes=180))
    families = {
        f.name: f
        for f in text_string_to_metric_families(generate_latest(metrics.registry).decode())
    }
    quality = {
        (s.labels["model"], s.labels["version"], s.labels["measure"]): s.value
        for s in families["ooda_model_live_quality"].samples
    }
    assert quality[("detector", "2", "precision")] == pytest.approx(watch.last["2"].precision)
    assert quality[("detector", BASELINE, "f1")] > quality[("detector", "2", "f1")]
    condemned = {
        (s.labels["model"], s.labels["version"]): s.value
        for s in families["ooda_model_condemned"].samples
    }
    assert condemned == {("detector", "2"): 1.0}


def _reference(
    record: dict[tuple[str, int], tuple[str, bool, bool | None, bool]],
    now: int,
    window: int,
    lead: int,
    gap: int,
    min_breach: int,
    version: str,
) -> tuple[int, ...]:
    """The watch's figures for ``version``, minute by minute: ``record`` maps (service,
    minute) to (version, champion, baseline, breach)."""
    flagged = flagged_true = incidents = caught = 0
    for service in {s for s, _ in record}:
        mine = {m: v for (s, m), v in record.items() if s == service and m > now - window - 1}
        verdict = {m: v[1] for m, v in mine.items() if v[2] is not None and v[0] == version}
        breach = sorted(m for m, v in mine.items() if v[3])
        runs: list[list[int]] = []
        for m in breach:
            if runs and m == runs[-1][-1] + 1:
                runs[-1].append(m)
            else:
                runs.append([m])
        bad = sorted(m for run in runs if len(run) >= min_breach for m in run)
        stretches: list[list[int]] = []
        for m in bad:
            if stretches and m - stretches[-1][1] < gap:
                stretches[-1][1] = m
            else:
                stretches.append([m, m])
        real = [(a, b) for a, b in stretches if any(a <= m <= b for m in verdict)]
        hits = [m for m, f in verdict.items() if f]
        flagged += len(hits)
        flagged_true += sum(any(a - lead <= m <= b + lead for a, b in real) for m in hits)
        incidents += len(real)
        caught += sum(any(a - lead <= m <= b for m in hits) for a, b in real)
    return flagged, flagged_true, incidents, caught


@pytest.mark.parametrize("seed", range(6))
def test_the_figures_match_a_minute_by_minute_count(seed: int) -> None:
    """The watch counts on arrays; a plain count over the same minutes must agree, with
    missed scorings, services that come and go and a change of version."""
    rng = np.random.default_rng(seed)
    settings = replace(SETTINGS, window=timedelta(minutes=int(rng.integers(30, 90))))
    watch = DetectorWatch(settings)
    record: dict[tuple[str, int], tuple[str, bool, bool | None, bool]] = {}
    services = [f"s{i}" for i in range(int(rng.integers(2, 7)))]
    checked = 0
    for minute in range(180):
        if rng.random() < 0.1:
            continue
        now = T0 + timedelta(minutes=minute)
        here = [s for s in services if rng.random() < 0.9]
        rows = pd.DataFrame({"service": here, "x": rng.normal(0, 1, len(here))})
        breach = dict(zip(here, (rng.random(len(here)) < 0.35).tolist(), strict=True))
        views = {
            s: ServiceView(
                s,
                pd.DataFrame(
                    {
                        "timestamp": [now],
                        "p95_latency_ms": [200.0 if breach[s] else 90.0],
                        "error_rate": [0.0],
                    }
                ),
            )
            for s in here
        }
        flags = dict(zip(here, (rng.random(len(here)) < 0.15).tolist(), strict=True))
        version = "1" if minute < 80 else "2"
        watch.observe(
            now, AnomalyScores(version, dict.fromkeys(here, 0.0), flags), rows, views, _slo
        )
        baseline = watch._baseline_scores(rows)  # the one observe used (refits come first)
        for s in here:
            given = baseline.get(s)
            record[(s, minute)] = (
                version,
                flags[s],
                None if given is None else given >= 0.5,
                breach[s],
            )
        if minute % 10 == 9:
            for v in ("1", "2"):
                got = watch.quality(v, now)
                want = _reference(
                    record, minute, settings.window // timedelta(minutes=1), 15, 15, 3, v
                )
                assert (got.flagged, got.flagged_true, got.incidents, got.caught) == want
                checked += want[2]
    assert checked > 0, "some incidents were counted"


def test_services_that_left_the_window_are_forgotten() -> None:
    """An estate whose services come and go keeps the watch's grid to the services it still
    judges, and their records intact."""
    watch = DetectorWatch(replace(SETTINGS, window=timedelta(minutes=30)))
    rng = np.random.default_rng(0)
    for minute in range(300):
        now = T0 + timedelta(minutes=minute)
        here = ["steady", f"passing-{minute}"]
        rows = pd.DataFrame({"service": here, "x": rng.normal(0, 1, 2)})
        views = {
            s: ServiceView(
                s,
                pd.DataFrame(
                    {
                        "timestamp": [now],
                        "p95_latency_ms": [220.0 if minute % 40 < 5 else 90.0],
                        "error_rate": [0.0],
                    }
                ),
            )
            for s in here
        }
        flags = {"steady": minute % 40 < 5, f"passing-{minute}": False}
        watch.observe(now, AnomalyScores("2", dict.fromkeys(here, 0.0), flags), rows, views, _slo)
    assert len(watch._index) < 200, "the grid keeps only services still in the window"
    assert "steady" in watch._index and "passing-299" in watch._index
    got = watch.quality("2", T0 + timedelta(minutes=299))
    assert got.flagged == got.flagged_true and got.caught == got.incidents > 0
