"""A throwaway MLflow registry for tests: one logged pyfunc registered as N versions."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient


class Echo(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """A pyfunc that answers with its input."""

    def predict(self, context: object, model_input: pd.DataFrame) -> pd.DataFrame:
        return model_input


def registry_with_versions(root: Path, name: str, versions: int) -> tuple[str, MlflowClient]:
    """A SQLite registry under ``root`` holding ``versions`` versions of ``name`` (no alias);
    the global tracking and registry URIs point at it."""
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("tests", artifact_location=(root / "a").as_uri())
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with mlflow.start_run(experiment_id=experiment) as run:
        logged = mlflow.pyfunc.log_model(name="model", python_model=Echo())
    client.create_registered_model(name)
    for _ in range(versions):
        client.create_model_version(name, logged.model_uri, run_id=run.info.run_id)
    return uri, client
