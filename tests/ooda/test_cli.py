"""``ooda models list | promote | rollback`` against a throwaway MLflow registry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from rich.console import Console

from lab.servers import free_port
from ooda import OodaSettings, TrainInputError
from ooda._train import retrain
from ooda.cli import main
from tests._registry import Echo, registry_with_versions

NAME = "ooda-forecaster"


@pytest.fixture
def uri(tmp_path: Path) -> str:
    return registry_with_versions(tmp_path, NAME, 2)[0]


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


def _versions(uri: str) -> dict[str, tuple[str, ...]]:
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return {
        str(v.version): tuple(sorted(v.aliases))
        for v in client.search_model_versions(f"name = '{NAME}'")
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["promote", NAME, "9"], "version 9 of model 'ooda-forecaster' is not registered"),
        (["rollback", NAME], "has no version with alias 'champion'"),
        (["promote", "no-such-model", "1"], "model 'no-such-model' is not registered"),
    ],
)
def test_registry_mistakes_exit_2_and_change_nothing(
    uri: str, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    before = _versions(uri)
    assert main(["--tracking-uri", uri, "models", *args]) == 2
    assert message in " ".join(capsys.readouterr().out.split())
    assert _versions(uri) == before


def test_rollback_with_nothing_before_the_champion_exits_2(
    uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--tracking-uri", uri, "models", "promote", NAME, "1"]) == 0
    capsys.readouterr()
    assert main(["--tracking-uri", uri, "models", "rollback", NAME]) == 2
    assert "no previous champion to roll back to" in capsys.readouterr().out
    assert champion(uri) == "1"


def test_a_challenger_with_another_signature_is_refused(
    uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    mlflow.set_tracking_uri(uri)
    experiment = client.create_experiment("signed", artifact_location=(tmp_path / "a").as_uri())
    example = pd.DataFrame({"service": ["checkout"], "request_rate": [1.0]})
    signed = []
    for frame in (example, example.assign(extra=2.0)):
        with mlflow.start_run(experiment_id=experiment) as run:
            logged = mlflow.pyfunc.log_model(name="model", python_model=Echo(), input_example=frame)
        signed.append(client.create_model_version(NAME, logged.model_uri, run_id=run.info.run_id))
    first, second = (str(v.version) for v in signed)
    base = ["--tracking-uri", uri, "models", "promote", NAME]
    assert main([*base, first]) == 0
    capsys.readouterr()
    assert main([*base, second, "--alias", "challenger"]) == 2
    assert "inputs signature differs from champion" in " ".join(capsys.readouterr().out.split())
    assert "challenger" not in {a for aliases in _versions(uri).values() for a in aliases}


def test_a_tracking_server_that_is_down_exits_2_quickly(
    capsys: pytest.CaptureFixture[str],
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    assert main(["--tracking-uri", down, "models", "promote", NAME, "1"]) == 2
    assert f"tracking server at {down}" in capsys.readouterr().out


def test_train_of_an_unknown_model_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    workdir = tmp_path / "ooda"
    code = main(["--tracking-uri", uri, "--workdir", str(workdir), "train", "--models", "bogus"])
    assert code == 2
    assert "unknown model(s) ['bogus']" in " ".join(capsys.readouterr().out.split())


def test_train_without_history_in_feast_says_what_to_do(tmp_path: Path) -> None:
    settings = OodaSettings(feature_dir=tmp_path / "features", workdir=tmp_path / "ooda")
    with pytest.raises(TrainInputError, match=r"no history in the Feast store .* run `ooda demo`"):
        retrain(settings, Console(), models=["detector"])


def test_promoting_the_challenger_without_a_shadow_record_exits_2(
    uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--tracking-uri", uri, "models", "promote", NAME]
    assert main([*base, "1"]) == 0
    assert main([*base, "2", "--alias", "challenger"]) == 0
    capsys.readouterr()
    empty = tmp_path / "shadow.db"
    assert main([*base, "--from-challenger", "--shadow", str(empty)]) == 2
    assert f"the shadow record {empty} holds no forecast" in " ".join(
        capsys.readouterr().out.split()
    )
    assert champion(uri) == "1"


def test_a_demo_whose_serve_never_comes_up_exits_2_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import ooda._demo
    from serving import ServeStartError

    def serve_never_healthy(*_args: object) -> None:
        raise ServeStartError("http://127.0.0.1:8000/healthz not healthy after 120 s")

    monkeypatch.setattr(ooda._demo, "run_demo", serve_never_healthy)
    assert main(["--workdir", str(tmp_path), "demo"]) == 2
    said = " ".join(capsys.readouterr().out.split())
    assert "Ray Serve did not come up" in said and "not healthy after 120 s" in said


def test_models_list_is_quiet_and_refuses_a_registry_that_is_not_there(tmp_path: Path) -> None:
    """Nothing but the table and what to do: no library warning reaches the terminal; a
    registry file that does not exist is named, not created empty."""

    def models_list(uri: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ooda.cli", "--tracking-uri", uri, "models", "list"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    missing = tmp_path / "typo" / "mlflow.db"
    refused = models_list(f"sqlite:///{missing}")
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert f"no registry at {missing}" in " ".join(refused.stdout.split())
    assert not missing.parent.exists()
    done = models_list(registry_with_versions(tmp_path / "reg", NAME, 1)[0])
    assert done.returncode == 0, done.stderr[-2000:]
    assert NAME in done.stdout and "ooda-detector: not registered yet" in done.stdout
    assert "Warning" not in done.stdout + done.stderr, done.stderr[-2000:]
