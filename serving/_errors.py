"""The serving exception tree (drawn in :mod:`serving`).

A model replica returns its refusals to the HTTP ingress as values, which Ray pickles; so
every error keeps its constructor arguments in ``args`` (unpickling rebuilds it as
``cls(*args)``) and exposes them as attributes that the ingress turns into JSON.
"""

from __future__ import annotations


class ServingError(Exception):
    """Base class of every error raised by :mod:`serving`."""


class InvalidSettingsError(ServingError):
    """A serving setting (``serve`` config arg) is unknown or has the wrong type."""


class ModelUnavailableError(ServingError):
    """No version of the model is loaded under the alias (answered with HTTP 503)."""

    def __init__(self, model: str, alias: str, reason: str) -> None:
        super().__init__(model, alias, reason)
        self.model = model
        self.alias = alias
        self.reason = reason

    def __str__(self) -> str:
        return f"model {self.model!r}@{self.alias} is unavailable: {self.reason}"


class InvalidInputError(ServingError):
    """A request is well-formed JSON but does not fit the model (answered with HTTP 422)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


class MalformedBodyError(InvalidInputError):
    """The body is not JSON (answered with HTTP 400)."""


class RequestTooLargeError(InvalidInputError):
    """A request holds more rows than one call may score (answered with HTTP 413)."""


class ServeStartError(ServingError):
    """Serve did not start (a port taken, say), or the application was not healthy in time."""
