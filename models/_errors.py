"""The exception tree of `models`.

Callers (training pipelines, serving endpoints) need to tell "this model cannot answer this
input" apart from bugs, so every refusal raises a `ModelError` subclass whose message names
the offending value.
"""

from __future__ import annotations

from collections.abc import Iterable


class ModelError(Exception):
    """Base class of every error raised on purpose by `models`."""


class NotFittedError(ModelError):
    """A model was asked to score, predict or save before `fit()`."""

    def __init__(self, model: str) -> None:
        super().__init__(f"{model} is not fitted: call fit() first")


class MissingFeatureError(ModelError):
    """An input frame lacks columns the model needs."""

    def __init__(self, missing: Iterable[str], *, model: str) -> None:
        self.missing = tuple(missing)
        super().__init__(f"{model} needs columns missing from the frame: {list(self.missing)}")


class InsufficientHistoryError(ModelError):
    """A series is too short to fit on or to predict from."""


class InvalidInputError(ModelError):
    """An input is malformed: empty frame, all-NaN series, bad horizon, bad parameter."""


class ModelFileError(ModelError):
    """A saved model directory is missing, of an unknown kind or of another model class."""
