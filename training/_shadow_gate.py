"""Promotion on the shadow record: the challenger must win on live traffic, by the training
gate's rule, before it becomes champion.

The training gate judged the challenger on a held-back tail of the history; serving has since
scored live requests with it beside the champion (``models.read_shadow``). The same rule is
applied to that live window: for the forecaster, a mean absolute error strictly below the
seasonal naive forecast's (the same minute a day earlier, where the actuals reach back that
far) and at most the champion's; for the detector, an F1 against the incidents at least the
champion's (the baseline detector is not scored in shadow, so it is not part of the live
rule, and the verdict says so). The rule and the numbers go into the challenger's tags, and
the numbers into its run as ``shadow_*`` metrics, beside the held-back tail's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd
from mlflow import MlflowClient

from models import detector_metrics
from training._pipeline import Incident, label_incidents
from training._registry import (
    CHALLENGER,
    MissingAliasError,
    ModelVersionInfo,
    RegistryError,
    _registered_model,
    promote,
)


class ShadowGateError(RegistryError):
    """The challenger did not win on the shadow record (or there is too little of it)."""


@dataclass(frozen=True)
class ShadowVerdict:
    """The live rule's outcome for one challenger."""

    challenger: str
    champion: str
    passed: bool
    rule: str
    numbers: dict[str, float]


def judge_forecaster_shadow(
    record: pd.DataFrame,
    actuals: pd.DataFrame,
    *,
    season: timedelta = timedelta(days=1),
    min_points: int = 30,
) -> ShadowVerdict:
    """Judge the challenger's shadow forecasts against what happened (``actuals``: service,
    timestamp, request_rate)."""
    if record.empty:
        raise ShadowGateError("the shadow record holds no forecast: nothing to judge")
    latest = record.sort_values("at").iloc[-1]
    champion, challenger = str(latest["champion"]), str(latest["challenger"])
    rows = record[(record["challenger"] == challenger) & (record["champion"] == champion)]
    rows = rows.sort_values("at").drop_duplicates(["service", "timestamp"], keep="last")
    seen = actuals.assign(timestamp=pd.to_datetime(actuals["timestamp"], utc=True))
    seen = seen.drop_duplicates(["service", "timestamp"], keep="last")
    points = rows.merge(seen, on=["service", "timestamp"], how="inner")
    if len(points) < min_points:
        raise ShadowGateError(
            f"only {len(points)} shadow forecast points have come true (need {min_points})"
        )
    actual = points["request_rate"].to_numpy(dtype=float)
    mae_champion = float(np.abs(points["champion_q50"] - actual).mean())
    mae_challenger = float(np.abs(points["challenger_q50"] - actual).mean())
    before = seen.assign(timestamp=seen["timestamp"] + pd.Timedelta(season))
    base = points.merge(before, on=["service", "timestamp"], suffixes=("", "_before"))
    numbers = {
        "points": float(len(points)),
        "mae_champion": round(mae_champion, 4),
        "mae_challenger": round(mae_challenger, 4),
    }
    passed = mae_challenger <= mae_champion
    rule = f"live mae {mae_challenger:.3f} <= champion {mae_champion:.3f}"
    if len(base) >= min_points:
        mae_base = float(np.abs(base["request_rate_before"] - base["request_rate"]).mean())
        numbers["mae_baseline"] = round(mae_base, 4)
        rule = (
            f"live mae {mae_challenger:.3f} < baseline {mae_base:.3f}"
            f" and <= champion {mae_champion:.3f}"
        )
        passed = passed and mae_challenger < mae_base
    else:
        rule += " (no day of actuals before the window: seasonal naive not judged)"
    return ShadowVerdict(challenger, champion, passed, rule, numbers)


def judge_detector_shadow(
    record: pd.DataFrame, incidents: Sequence[Incident], *, min_rows: int = 30
) -> ShadowVerdict:
    """Judge the challenger's shadow scores against the incidents (F1 at 0.5)."""
    if len(record) < min_rows:
        raise ShadowGateError(f"only {len(record)} shadow scores recorded (need {min_rows})")
    latest = record.sort_values("at").iloc[-1]
    champion, challenger = str(latest["champion"]), str(latest["challenger"])
    rows = record[(record["challenger"] == challenger) & (record["champion"] == champion)]
    labels = label_incidents(rows.rename(columns={"at": "event_timestamp"}), incidents)
    if labels.sum() == 0:
        raise ShadowGateError("no incident falls in the shadow window: F1 cannot be judged")
    mine = detector_metrics(labels, rows["champion_score"].to_numpy(dtype=float))
    theirs = detector_metrics(labels, rows["challenger_score"].to_numpy(dtype=float))
    passed = theirs["f1"] >= mine["f1"]
    rule = (
        f"live f1 {theirs['f1']:.3f} >= champion {mine['f1']:.3f}"
        " (the baseline detector is not scored in shadow)"
    )
    numbers = {
        "rows": float(len(rows)),
        "positives": float(labels.sum()),
        "f1_champion": round(mine["f1"], 4),
        "f1_challenger": round(theirs["f1"], 4),
    }
    return ShadowVerdict(challenger, champion, passed, rule, numbers)


def promote_challenger(
    client: MlflowClient, name: str, verdict: ShadowVerdict, *, actor: str
) -> ModelVersionInfo:
    """Make the challenger champion if it won on the shadow record; the rule and the numbers
    go into its tags either way. Raises :class:`ShadowGateError`, changing no alias, when it
    lost or the record is not about the current challenger."""
    model = _registered_model(client, name)
    current = str(model.aliases.get(CHALLENGER, ""))
    if not current:
        raise MissingAliasError(name, CHALLENGER)
    if current != verdict.challenger:
        raise ShadowGateError(
            f"model {name!r}: the shadow record judges v{verdict.challenger}, but"
            f" @challenger is v{current}"
        )
    client.set_model_version_tag(name, current, "shadow_rule", verdict.rule)
    client.set_model_version_tag(name, current, "shadow_passed", str(verdict.passed).lower())
    client.set_model_version_tag(
        name, current, "shadow_evaluation", json.dumps(verdict.numbers, sort_keys=True)
    )
    run_id = client.get_model_version(name, current).run_id
    if run_id:  # the live figures beside the held-back ones, in the version's own run
        for key, value in verdict.numbers.items():
            client.log_metric(run_id, f"shadow_{key}", float(value))
    if not verdict.passed:
        raise ShadowGateError(
            f"model {name!r}: v{current} lost on the shadow record: {verdict.rule}"
        )
    info = promote(client, name, current, actor=actor, reason=f"shadow gate passed: {verdict.rule}")
    client.delete_registered_model_alias(name, CHALLENGER)
    return info
