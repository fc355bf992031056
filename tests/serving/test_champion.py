"""`ChampionModel` follows the alias: swaps only fully loaded versions, says why it is unready."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.pyfunc import PyFuncModel

from serving import ChampionModel, ModelUnavailableError

NAME = "ooda-detector"


class _FakeModel:
    """Stands in for a loaded pyfunc: `metadata.get_input_schema()`, `predict` and
    `unwrap_python_model()` (an object of its own, as for any python_function model)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.metadata = self

    def get_input_schema(self) -> None:
        return None

    def predict(self, context: object, frame: object, params: object = None) -> object:
        return frame

    def unwrap_python_model(self) -> _FakeModel:
        return self


class _Loader:
    def __init__(self) -> None:
        self.loaded: list[str] = []
        self.failing: set[str] = set()

    def __call__(self, uri: str) -> PyFuncModel:
        if uri in self.failing:
            raise OSError(f"cannot read {uri}")
        self.loaded.append(uri)
        return _FakeModel(uri)  # type: ignore[return-value]


@pytest.fixture
def client(tmp_path: Path) -> MlflowClient:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow_client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    mlflow_client.create_registered_model(NAME)
    for _ in range(2):
        mlflow_client.create_model_version(NAME, (tmp_path / "model").as_uri())
    return mlflow_client


def test_follows_alias_and_keeps_serving_through_failures(client: MlflowClient) -> None:
    loader = _Loader()
    champion = ChampionModel(NAME, "champion", client, loader)
    champion.refresh()
    assert not champion.status().ready
    assert champion.status().reason == f"model {NAME!r} has no version with alias 'champion'"
    with pytest.raises(ModelUnavailableError) as raised:
        champion.current()
    assert (raised.value.model, raised.value.alias) == (NAME, "champion")

    client.set_registered_model_alias(NAME, "champion", "1")
    champion.refresh()
    champion.refresh()
    assert champion.current().version == "1"
    assert loader.loaded == [f"models:/{NAME}/1"]

    loader.failing.add(f"models:/{NAME}/2")
    client.set_registered_model_alias(NAME, "champion", "2")
    champion.refresh()
    assert champion.current().version == "1"
    assert "loading version 2 failed: cannot read" in champion.status().reason

    loader.failing.clear()
    champion.refresh()
    assert champion.status().version == "2"
    assert champion.status().reason == ""

    client.delete_registered_model(NAME)
    champion.refresh()
    assert champion.status().version is None
    assert champion.status().reason == f"model {NAME!r} is not registered"


def test_follow_polls_until_cancelled(client: MlflowClient) -> None:
    champion = ChampionModel(NAME, "champion", client, _Loader())
    client.set_registered_model_alias(NAME, "champion", "2")

    async def follow_briefly() -> None:
        task = asyncio.create_task(champion.follow(0.05))
        for _ in range(100):
            if champion.status().ready:
                break
            await asyncio.sleep(0.05)
        task.cancel()

    asyncio.run(follow_briefly())
    assert champion.current().version == "2"
