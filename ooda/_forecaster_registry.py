"""The models' registry as the live watches see it, on MLflow.

A watch asks four things: which version is champion, which champion it replaced (the
``previous_champion`` tag the registry functions keep), what an older version would have
answered on the same input (loaded once per version, as serving loads it: a forecast from a
history, or anomaly verdicts on feature rows), and to move ``@champion`` back through
``training.rollback`` with the numbers in the tags.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

import training
from models import FORECAST_COLUMNS, pyfunc_history

#: Who the registry's tags name for the watch's moves.
ACTOR = "ooda"


class _MlflowRegistry:
    """What both watches need of one registered model."""

    def __init__(self, client: MlflowClient, name: str) -> None:
        self.client = client
        self.name = name
        self._loaded: dict[str, Any] = {}

    def champion(self) -> str | None:
        try:
            return str(self.client.get_model_version_by_alias(self.name, training.CHAMPION).version)
        except MlflowException:
            return None

    def previous(self, version: str) -> str | None:
        tags = self.client.get_model_version(self.name, version).tags
        return tags.get(f"previous_{training.CHAMPION}") or None

    def _model(self, version: str) -> Any:
        model = self._loaded.get(version)
        if model is None:
            uri = self.client.get_model_version_download_uri(self.name, version)
            model = self._loaded[version] = mlflow.pyfunc.load_model(uri)
        return model

    def rollback(self, version: str, reason: str, evidence: Mapping[str, Any]) -> str:
        if self.champion() != version:
            raise training.RegistryError(f"{self.name}: @champion is no longer v{version}")
        back = training.rollback(self.client, self.name, actor=ACTOR, reason=reason)
        self.client.set_model_version_tag(
            self.name, version, "rollback_evidence", json.dumps(dict(evidence), sort_keys=True)
        )
        return back.version


class MlflowForecasterRegistry(_MlflowRegistry):
    """``ooda._model_watch.ForecasterRegistry`` over an MLflow registry."""

    def forecast(self, version: str, history: pd.DataFrame, horizon: int) -> pd.DataFrame:
        model = self._model(version)
        out = pd.DataFrame(model.predict(pyfunc_history(history), params={"horizon": horizon}))
        out = out[list(FORECAST_COLUMNS)]
        return out.assign(timestamp=pd.to_datetime(out["timestamp"], utc=True))


class MlflowDetectorRegistry(_MlflowRegistry):
    """``ooda._detector_watch.DetectorRegistry`` over an MLflow registry."""

    def anomalous(self, version: str, rows: pd.DataFrame) -> list[bool]:
        answer = pd.DataFrame(self._model(version).predict(rows))
        return [bool(v) for v in answer["is_anomaly"]]
