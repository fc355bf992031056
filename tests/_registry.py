"""A throwaway MLflow registry for tests: one logged pyfunc registered as N versions.

Creating an MLflow SQLite store runs its schema migrations (seconds each time), so each kind
of registry is built once per test session and every test gets a copy of its database.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.pyfunc import PythonModel


class Echo(PythonModel):
    """A pyfunc that answers with its input."""

    def predict(
        self, context: object, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        return model_input


_TEMPLATES: dict[tuple[str, int], Path] = {}


def _template(name: str, versions: int) -> Path:
    """The database of a registry holding ``versions`` versions of ``name`` (built once)."""
    key = (name, versions)
    if key not in _TEMPLATES:
        root = Path(tempfile.mkdtemp(prefix="ooda-registry-"))
        atexit.register(shutil.rmtree, root, True)
        uri = f"sqlite:///{root}/mlflow.db"
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        experiment = client.create_experiment("tests", artifact_location=(root / "a").as_uri())
        mlflow.set_tracking_uri(uri)
        with mlflow.start_run(experiment_id=experiment) as run:
            logged = mlflow.pyfunc.log_model(name="model", python_model=Echo())
        client.create_registered_model(name)
        for _ in range(versions):
            client.create_model_version(name, logged.model_uri, run_id=run.info.run_id)
        _TEMPLATES[key] = root / "mlflow.db"
    return _TEMPLATES[key]


def registry_with_versions(root: Path, name: str, versions: int) -> tuple[str, MlflowClient]:
    """A SQLite registry under ``root`` holding ``versions`` versions of ``name`` (no alias);
    the global tracking and registry URIs point at it. Its artifacts are shared with the
    other copies (tests only read them)."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(_template(name, versions), root / "mlflow.db")
    uri = f"sqlite:///{root}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri, MlflowClient(tracking_uri=uri, registry_uri=uri)
