"""Models logged as MLflow pyfuncs load back (here, and from a tracking server in a fresh
virtual environment with nothing but their requirements) and answer the same.

The fresh environment loads the detector and the seasonal-naive forecaster, once: it proves
the models' code travels with them (``code_paths``) and their pinned requirements suffice;
the LSTM round trip runs in-process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest

from lab.servers import free_port
from models import (
    Forecaster,
    ForecasterModel,
    IsolationForestDetector,
    LSTMForecaster,
    SeasonalNaiveForecaster,
    log_detector,
    log_forecaster,
    pyfunc_history,
)
from training._pipeline import _register


def _point_mlflow_at(tracking: str, registry: str | None = None) -> tuple[str, str]:
    """Point MLflow's global tracking and registry URIs (the registry's defaults to the
    tracking one); the previous pair, to restore. Another test's training may have left a
    registry URI behind, which ``models:/`` URIs would otherwise resolve against."""
    previous = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(registry or tracking)
    return previous


@pytest.fixture()
def tracking(tmp_path: Path) -> Iterator[Path]:
    previous = _point_mlflow_at(f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.set_experiment(
        experiment_id=mlflow.create_experiment(
            "models-tests", artifact_location=(tmp_path / "artifacts").as_uri()
        )
    )
    yield tmp_path
    _point_mlflow_at(*previous)


ROOT = Path(__file__).resolve().parents[2]

_FRESH_VENV = """
import json, sys
from pathlib import Path

import mlflow
import pandas as pd

out = {}
for uri, role, path in zip(sys.argv[1::3], sys.argv[2::3], sys.argv[3::3]):
    model = mlflow.pyfunc.load_model(uri)
    params = {"horizon": 5} if role == "forecaster" else None
    model.predict(pd.read_parquet(path), params=params).to_parquet(path + ".out")
import models
out["models_from"] = str(Path(models.__file__).resolve())
try:
    import ooda  # noqa: F401
    out["project_importable"] = True
except ImportError:
    out["project_importable"] = False
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server --serve-artifacts`` on 127.0.0.1: runs, registry and artifacts over
    HTTP (clients never see the artifact store's paths)."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            f"sqlite:///{root}/mlflow.db",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(root / "server.log").open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"mlflow server did not start: {(root / 'server.log').read_text()}"
                )
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_logged_model_loads_from_the_tracking_server_in_a_fresh_venv(
    tracking_server: str,
    tmp_path: Path,
    feature_rows: pd.DataFrame,
    hourly_traffic: pd.DataFrame,
) -> None:
    """Log to a tracking server, then load by registry name in a new virtual environment
    holding only the model's pinned requirements (not this project): the models' code travels
    with them, the artifacts come over HTTP, and the answers match."""
    previous = _point_mlflow_at(tracking_server)
    try:
        client = mlflow.MlflowClient(tracking_server, tracking_server)
        detector = IsolationForestDetector(n_estimators=50).fit(feature_rows)
        forecaster = SeasonalNaiveForecaster(season=60).fit(hourly_traffic)
        rows = feature_rows.iloc[:20].reset_index(drop=True)
        history = pyfunc_history(hourly_traffic)
        mlflow.set_experiment("portable")
        with mlflow.start_run() as run:
            logged = {
                "portable-detector": (log_detector(detector, input_example=rows), "detector", rows),
                "portable-forecaster": (
                    log_forecaster(forecaster, input_example=history),
                    "forecaster",
                    history,
                ),
            }
        assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri
        argv = []
        for i, (name, (info, role, frame)) in enumerate(logged.items()):
            # Registered as the training pipeline registers (a server wants the model id).
            assert _register(client, info.model_uri, run.info.run_id, name, {"role": role}) == "1"
            frame.to_parquet(tmp_path / f"{i}.parquet")
            argv += [f"models:/{name}/1", role, str(tmp_path / f"{i}.parquet")]
        requirements = mlflow.artifacts.download_artifacts(
            "models:/portable-forecaster/1/requirements.txt", dst_path=str(tmp_path / "req")
        )
    finally:
        _point_mlflow_at(*previous)
    venv = tmp_path / "venv"
    uv = str(Path(sys.executable).with_name("uv"))
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", python, "-r", requirements],
        check=True,
        timeout=900,
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MLFLOW_TRACKING_URI": tracking_server}
    done = subprocess.run(
        [python, "-I", "-c", _FRESH_VENV, *argv],
        check=True,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    said = json.loads(done.stdout.strip().splitlines()[-1])
    assert not said["project_importable"], "the fresh venv must not see this project"
    assert "/code/models/" in said["models_from"], "imported from the model's own code"
    assert str(ROOT) not in said["models_from"] and "site-packages" not in said["models_from"]
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "0.parquet.out"),
        pd.DataFrame(
            {
                "service": rows["service"].astype(str),
                "anomaly_score": detector.score(rows),
                "is_anomaly": detector.score(rows) >= 0.5,
            }
        ),
    )
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "1.parquet.out"), forecaster.predict(history, 5)
    )


def test_detector_round_trip(tracking: Path, feature_rows: pd.DataFrame) -> None:
    detector = IsolationForestDetector(n_estimators=50).fit(feature_rows)
    rows = feature_rows.iloc[:20].reset_index(drop=True)
    with mlflow.start_run():
        info = log_detector(detector, input_example=rows.iloc[:5])
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    out = loaded.predict(rows)
    assert list(out.columns) == ["service", "anomaly_score", "is_anomaly"]
    np.testing.assert_array_equal(out["anomaly_score"], detector.score(rows))
    assert (out["is_anomaly"] == (out["anomaly_score"] >= 0.5)).all()
    assert list(out["service"]) == list(rows["service"])
    assert loaded.metadata.metadata["kind"] == "IsolationForestDetector"
    assert loaded.metadata.metadata["role"] == "detector"


def test_forecasters_round_trip(tracking: Path, hourly_traffic: pd.DataFrame) -> None:
    forecasters: dict[str, Forecaster] = {
        "naive": SeasonalNaiveForecaster(season=60).fit(hourly_traffic),
        "lstm": LSTMForecaster(
            input_chunk_length=20,
            training_length=30,
            n_epochs=1,
            max_samples_per_ts=40,
            num_samples=20,
        ).fit(hourly_traffic),
    }
    with mlflow.start_run():
        for name, forecaster in forecasters.items():
            history = hourly_traffic.groupby("service").tail(forecaster.min_history)
            info = log_forecaster(forecaster, input_example=history, name=name, horizon=12)
            loaded = mlflow.pyfunc.load_model(info.model_uri)
            history = pyfunc_history(history)
            assert loaded.metadata.metadata["min_history"] == forecaster.min_history
            assert isinstance(loaded.unwrap_python_model(), ForecasterModel)
            default = loaded.predict(history)
            assert len(default) == 12 * 3
            out = loaded.predict(history, params={"horizon": 5})
            pd.testing.assert_frame_equal(out, forecaster.predict(history, 5))
