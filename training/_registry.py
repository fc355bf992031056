"""Model registry operations: list, promote and roll back by moving MLflow aliases.

Serving loads only ``models:/NAME@champion``, so promotion and rollback are nothing but alias
moves. Stages are deprecated in MLflow and never used. Each move leaves tags on the versions
involved saying who moved the alias, when and why, and which version held it before; that
``previous_<alias>`` tag chain is what :func:`rollback` walks, so the registry itself is the
audit trail and no other state is needed to undo a promotion.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import MlflowException
from mlflow.models import Model

#: Alias that serving loads and the loop acts on.
CHAMPION = "champion"
#: Alias of a candidate that scores in shadow beside the champion and never drives a decision.
CHALLENGER = "challenger"

_NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"


class RegistryError(Exception):
    """Base class of every error raised by the registry operations."""


class UnknownModelError(RegistryError):
    """The registered model (or one of its versions) does not exist."""

    def __init__(self, name: str, version: str | None = None) -> None:
        self.name = name
        self.version = version
        what = f"version {version} of model {name!r}" if version else f"model {name!r}"
        super().__init__(f"{what} is not registered")


class MissingAliasError(RegistryError):
    """The registered model has no version under the alias."""

    def __init__(self, name: str, alias: str) -> None:
        self.name = name
        self.alias = alias
        super().__init__(f"model {name!r} has no version with alias {alias!r}")


class SignatureMismatchError(RegistryError):
    """The version's input or output signature differs from the champion's: serving and the
    loop would send it what it cannot read."""

    def __init__(self, name: str, version: str, champion: str, what: str) -> None:
        self.name, self.version, self.champion = name, version, champion
        super().__init__(
            f"model {name!r}: version {version}'s {what} differs from champion v{champion}'s;"
            " not promoted"
        )


class NothingToRollBackError(RegistryError):
    """The champion has no recorded predecessor to return to."""

    def __init__(self, name: str, version: str) -> None:
        self.name = name
        self.version = version
        super().__init__(
            f"model {name!r}: champion version {version} has no previous champion to roll back to"
        )


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered model version as the platform sees it."""

    #: Registered model name, e.g. ``ooda-detector``.
    name: str
    #: Version number as MLflow spells it (a decimal string).
    version: str
    #: Aliases pointing at this version, e.g. ``("champion",)``.
    aliases: tuple[str, ...]
    #: MLflow run that produced the version ("" when registered without a run).
    run_id: str
    #: Registration time.
    created: datetime
    #: Version tags: evaluation results left by training, promotion and rollback records.
    tags: dict[str, str] = field(default_factory=dict)


def list_models(client: MlflowClient, names: Iterable[str]) -> list[ModelVersionInfo]:
    """All versions of the named registered models, by name then ascending version."""
    infos: list[ModelVersionInfo] = []
    for name in names:
        model = _registered_model(client, name)
        versions = client.search_model_versions(f"name = '{name}'")
        infos.extend(
            sorted(
                (_info(version, model) for version in versions), key=lambda info: int(info.version)
            )
        )
    return infos


def promote(
    client: MlflowClient,
    name: str,
    version: str | int,
    *,
    alias: str = CHAMPION,
    actor: str,
    reason: str,
    now: datetime | None = None,
) -> ModelVersionInfo:
    """Point ``alias`` at ``version`` and record who, when, why and what it replaced.

    Tags ``promoted_by``, ``promoted_reason``, ``promoted_at`` (ISO 8601 UTC) and
    ``previous_<alias>`` (the version that held the alias, or "") go on the promoted version.
    Promoting the version that already holds the alias refreshes the who/why tags but keeps
    its ``previous_<alias>``, so the rollback chain is never turned into a loop. A version
    whose signature differs from the champion's is refused (:class:`SignatureMismatchError`)
    before anything changes.
    """
    version = str(version)
    model = _registered_model(client, name)
    target = _model_version(client, name, version)
    champion = str(model.aliases.get(CHAMPION, ""))
    if champion and champion != version:
        _same_signature(client, name, version, champion)
    holder = str(model.aliases.get(alias, ""))
    previous_key = f"previous_{alias}"
    previous = target.tags.get(previous_key, "") if holder == version else holder
    when = (now or datetime.now(UTC)).astimezone(UTC).isoformat()
    tags = {
        "promoted_by": actor,
        "promoted_reason": reason,
        "promoted_at": when,
        previous_key: previous,
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    client.set_registered_model_alias(name, alias, version)
    return _info(client.get_model_version(name, version), client.get_registered_model(name))


def rollback(
    client: MlflowClient,
    name: str,
    *,
    actor: str,
    reason: str,
    now: datetime | None = None,
) -> ModelVersionInfo:
    """Return ``champion`` to the version it replaced; returns the new champion.

    The version losing the alias gets ``rolled_back_by``, ``rolled_back_at`` and
    ``rolled_back_reason``. Repeated rollbacks walk further back along the
    ``previous_champion`` tags.
    """
    model = _registered_model(client, name)
    if CHAMPION not in model.aliases:
        raise MissingAliasError(name, CHAMPION)
    current = str(model.aliases[CHAMPION])
    previous = _model_version(client, name, current).tags.get(f"previous_{CHAMPION}", "")
    if not previous:
        raise NothingToRollBackError(name, current)
    _model_version(client, name, previous)
    when = (now or datetime.now(UTC)).astimezone(UTC).isoformat()
    tags = {"rolled_back_by": actor, "rolled_back_at": when, "rolled_back_reason": reason}
    for key, value in tags.items():
        client.set_model_version_tag(name, current, key, value)
    client.set_registered_model_alias(name, CHAMPION, previous)
    return _info(client.get_model_version(name, previous), client.get_registered_model(name))


def _signature(client: MlflowClient, name: str, version: str) -> dict[str, Any] | None:
    source = client.get_model_version_download_uri(name, version)
    signature = Model.load(download_artifacts(artifact_uri=f"{source}/MLmodel")).signature
    return None if signature is None else signature.to_dict()


def _same_signature(client: MlflowClient, name: str, version: str, champion: str) -> None:
    """Refuse a version whose logged signature differs from the champion's (versions logged
    without one are not compared)."""
    mine, theirs = _signature(client, name, version), _signature(client, name, champion)
    if mine is None or theirs is None:
        return
    for part in ("inputs", "outputs", "params"):
        if mine.get(part) != theirs.get(part):
            raise SignatureMismatchError(name, version, champion, f"{part} signature")


def _registered_model(client: MlflowClient, name: str) -> RegisteredModel:
    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == _NOT_FOUND:
            raise UnknownModelError(name) from exc
        raise


def _model_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    try:
        return client.get_model_version(name, version)
    except MlflowException as exc:
        if exc.error_code == _NOT_FOUND:
            raise UnknownModelError(name, version) from exc
        raise


def _info(version: ModelVersion, model: RegisteredModel) -> ModelVersionInfo:
    aliases = tuple(sorted(a for a, v in model.aliases.items() if str(v) == str(version.version)))
    return ModelVersionInfo(
        name=version.name,
        version=str(version.version),
        aliases=aliases,
        run_id=version.run_id or "",
        created=datetime.fromtimestamp(version.creation_timestamp / 1000, tz=UTC),
        tags=dict(version.tags),
    )
