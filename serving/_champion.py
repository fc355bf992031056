"""Follow ``models:/NAME@alias`` in the registry and swap versions without dropping requests.

A replica resolves the alias itself (it does not trust whoever moved it to tell it), so a
promotion or rollback by any tool reaches serving within one poll interval. A new version is
loaded completely before one attribute assignment makes it current; requests already
running keep the snapshot they took, so nothing fails during a swap. When the alias (or the
registered model) disappears the replica stays up but unready, and says why.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PyFuncModel

from serving._errors import ModelUnavailableError

_log = logging.getLogger(__name__)

_NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"


@dataclass(frozen=True)
class LoadedModel:
    """A model version loaded and ready to predict."""

    #: Registered model version (decimal string).
    version: str
    #: The loaded pyfunc model.
    model: PyFuncModel
    #: Input column names from the model signature; empty when it was logged without one.
    input_names: tuple[str, ...]
    #: ``predict(frame, params=None)``: the python model's own, without MLflow's per-call
    #: schema enforcement (callers check columns themselves), else the pyfunc's.
    predict: Callable[..., Any]
    #: The unwrapped python model (``models.DetectorModel`` and the like), None for a
    #: flavour's own model.
    python_model: Any = None


@dataclass(frozen=True)
class ModelStatus:
    """What a replica serves for one model, as shown by ``/v1/models`` and ``/healthz``."""

    #: Registered model name.
    name: str
    #: Alias followed.
    alias: str
    #: Version being served, or None when none is loaded.
    version: str | None
    #: Why the model is not served, or why the last check failed; "" when all is well.
    reason: str

    @property
    def ready(self) -> bool:
        """Whether requests can be scored."""
        return self.version is not None


@dataclass(frozen=True)
class _State:
    loaded: LoadedModel | None
    reason: str


def _python_model(model: PyFuncModel) -> Any:
    try:
        return model.unwrap_python_model()
    except MlflowException:  # a flavour's own model, not a python_function one
        return None


class ChampionModel:
    """The version of one registered model currently under an alias, kept up to date."""

    def __init__(
        self,
        name: str,
        alias: str,
        client: MlflowClient,
        load: Callable[[str], PyFuncModel],
    ) -> None:
        self._name = name
        self._alias = alias
        self._client = client
        self._load = load
        self._state = _State(None, "not loaded yet")

    def current(self) -> LoadedModel:
        """The loaded version; raises :class:`ModelUnavailableError` when there is none."""
        state = self._state
        if state.loaded is None:
            raise ModelUnavailableError(self._name, self._alias, state.reason)
        return state.loaded

    def status(self) -> ModelStatus:
        """Served version and the reason for any trouble."""
        state = self._state
        version = state.loaded.version if state.loaded else None
        return ModelStatus(self._name, self._alias, version, state.reason)

    def refresh(self) -> None:
        """Resolve the alias once; load and swap in a new version if it moved (blocking)."""
        loaded = self._state.loaded
        try:
            registered = self._client.get_registered_model(self._name)
        except MlflowException as exc:
            if exc.error_code != _NOT_FOUND:
                _log.warning("checking %s@%s failed: %s", self._name, self._alias, exc)
                self._state = _State(loaded, f"registry check failed: {exc.message}")
                return
            self._state = _State(None, f"model {self._name!r} is not registered")
            return
        if self._alias not in registered.aliases:
            self._state = _State(
                None, f"model {self._name!r} has no version with alias {self._alias!r}"
            )
            return
        version = str(registered.aliases[self._alias])
        if loaded is not None and loaded.version == version:
            self._state = _State(loaded, "")
            return
        try:
            model = self._load(f"models:/{self._name}/{version}")
        except Exception as exc:  # any failure of user model code must not kill the replica
            _log.exception("loading %s version %s failed", self._name, version)
            self._state = _State(loaded, f"loading version {version} failed: {exc}")
            return
        schema = model.metadata.get_input_schema()
        names = tuple(map(str, schema.input_names())) if schema is not None else ()
        python_model = _python_model(model)
        predict = model.predict if python_model is None else partial(python_model.predict, None)
        self._state = _State(LoadedModel(version, model, names, predict, python_model), "")
        _log.info("now serving %s version %s under %r", self._name, version, self._alias)

    async def follow(self, interval_s: float) -> None:
        """Refresh every ``interval_s`` seconds, off the event loop, until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await asyncio.to_thread(self.refresh)
            except Exception:  # keep following whatever happens; the next poll retries
                _log.exception("following %s@%s failed", self._name, self._alias)
