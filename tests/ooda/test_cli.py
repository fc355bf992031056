"""``ooda models list | promote | rollback`` against a throwaway MLflow registry."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from ooda.cli import main

NAME = "ooda-forecaster"


class _Constant(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    def predict(self, context: object, model_input: pd.DataFrame) -> pd.DataFrame:
        return model_input


@pytest.fixture
def uri(tmp_path: Path) -> str:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("cli", artifact_location=(tmp_path / "a").as_uri())
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(experiment_id=experiment) as run:
        logged = mlflow.pyfunc.log_model(name="model", python_model=_Constant())
    client.create_registered_model(NAME)
    for _ in range(2):
        client.create_model_version(NAME, logged.model_uri, run_id=run.info.run_id)
    return uri


def champion(uri: str) -> str:
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return str(client.get_model_version_by_alias(NAME, "champion").version)


def test_promote_and_rollback_move_the_champion_alias(
    uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--tracking-uri", uri, "models"]
    assert main([*base, "promote", NAME, "1", "--reason", "first", "--actor", "ci"]) == 0
    assert main([*base, "promote", NAME, "2", "--reason", "better MASE", "--actor", "ci"]) == 0
    assert champion(uri) == "2"
    assert main([*base, "rollback", NAME, "--reason", "bad forecasts", "--actor", "ci"]) == 0
    assert champion(uri) == "1"
    out = capsys.readouterr().out
    assert "rolled back to v1" in out
    tags = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version(NAME, "2").tags
    assert tags["rolled_back_by"] == "ci" and tags["rolled_back_reason"] == "bad forecasts"


def test_promote_without_a_version_is_a_usage_error(uri: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--tracking-uri", uri, "models", "promote", NAME])
    assert exc.value.code == 2


def test_serve_without_champions_says_what_to_do_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = f"sqlite:///{tmp_path}/empty.db"
    assert main(["--tracking-uri", empty, "serve", "--port", "8999"]) == 2
    assert "no @champion detector and forecaster yet" in capsys.readouterr().out
