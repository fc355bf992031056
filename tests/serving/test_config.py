"""Settings from `serve` config args, and the checked-in `serve build` config stays deployable."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from serving import InvalidSettingsError, ServingSettings, app_builder
from serving._settings import settings_from_args

CONFIG = Path(__file__).parents[2] / "serving" / "serve_config.yaml"


def test_settings_from_args_converts_and_defaults_to_repo_layout(tmp_path: Path) -> None:
    settings = settings_from_args({"poll_interval_s": "2.5", "max_batch_size": 8}, tmp_path)
    assert settings == ServingSettings(
        tracking_uri=f"sqlite:///{tmp_path}/mlruns/mlflow.db",
        feature_data_dir=tmp_path / "features" / "repo" / "data",
        poll_interval_s=2.5,
        max_batch_size=8,
    )


def test_settings_from_args_rejects_unknown_and_mistyped(tmp_path: Path) -> None:
    with pytest.raises(InvalidSettingsError, match="poll_intervall"):
        settings_from_args({"poll_intervall": 1}, tmp_path)
    with pytest.raises(InvalidSettingsError, match="port='http'"):
        settings_from_args({"port": "http"}, tmp_path)


def test_checked_in_config_is_a_valid_serve_config_for_this_app() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    ServeDeploySchema.model_validate(config)
    (application,) = config["applications"]
    assert application["import_path"] == "serving:app_builder"
    built = app_builder(application.get("args", {}))
    assert built._bound_deployment.name == "ScoringAPI"
    assert {d["name"] for d in application["deployments"]} == {"ScoringAPI", "LoadForecaster"}
