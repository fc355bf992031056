"""Promotion and rollback move the ``champion`` alias and leave who/why tags behind."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from mlflow import MlflowClient

from tests._registry import registry_with_versions
from training._registry import (
    MissingAliasError,
    NothingToRollBackError,
    UnknownModelError,
    list_models,
    promote,
    rollback,
)

NAME = "ooda-detector"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> MlflowClient:
    return registry_with_versions(tmp_path_factory.mktemp("mlflow"), NAME, 3)[1]


def test_promote_then_rollback_moves_alias_and_tags(client: MlflowClient) -> None:
    at = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    first = promote(client, NAME, 1, actor="alice", reason="initial", now=at)
    assert first.aliases == ("champion",)
    assert first.tags["previous_champion"] == ""
    assert first.tags["promoted_by"] == "alice"
    assert first.tags["promoted_at"] == at.isoformat()

    second = promote(client, NAME, "2", actor="bob", reason="better recall")
    assert second.aliases == ("champion",)
    assert second.tags["previous_champion"] == "1"
    assert second.tags["promoted_reason"] == "better recall"

    back = rollback(client, NAME, actor="carol", reason="false positives", now=at)
    assert back.version == "1"
    assert back.aliases == ("champion",)
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
    loser = client.get_model_version(NAME, "2").tags
    assert loser["rolled_back_by"] == "carol"
    assert loser["rolled_back_reason"] == "false positives"
    assert loser["rolled_back_at"] == at.isoformat()

    listed = {info.version: info for info in list_models(client, [NAME])}
    assert list(listed) == ["1", "2", "3"]
    assert listed["1"].aliases == ("champion",)
    assert listed["2"].aliases == ()
    assert listed["1"].created.tzinfo is not None

    with pytest.raises(NothingToRollBackError, match=NAME):
        rollback(client, NAME, actor="carol", reason="again")


def test_rollback_walks_the_chain_and_repromotion_keeps_it(client: MlflowClient) -> None:
    promote(client, NAME, 1, actor="a", reason="r")
    promote(client, NAME, 2, actor="a", reason="r")
    promote(client, NAME, 3, actor="a", reason="r")
    promote(client, NAME, 3, actor="b", reason="re-promote is idempotent")
    assert client.get_model_version(NAME, "3").tags["previous_champion"] == "2"
    assert rollback(client, NAME, actor="a", reason="r").version == "2"
    assert rollback(client, NAME, actor="a", reason="r").version == "1"


def test_other_aliases_keep_their_own_chain(client: MlflowClient) -> None:
    info = promote(client, NAME, 3, alias="challenger", actor="ci", reason="shadow")
    assert "challenger" in info.aliases
    assert info.tags["previous_challenger"] == ""


def test_errors_name_the_model(client: MlflowClient) -> None:
    with pytest.raises(UnknownModelError, match="nope"):
        list_models(client, ["nope"])
    with pytest.raises(UnknownModelError, match="version 9"):
        promote(client, NAME, 9, actor="a", reason="r")
    client.create_registered_model("empty")
    with pytest.raises(MissingAliasError, match=r"'empty'.*'champion'"):
        rollback(client, "empty", actor="a", reason="r")
