"""Exceptions of the features package (the tree is drawn in the package docstring).

One root lets callers (training, serving, the loop) catch every feature-store problem in
one place while tests and operators still see which contract was broken.
"""

from __future__ import annotations


class FeatureError(Exception):
    """Root of every error raised by the features package."""


class FeatureSchemaError(FeatureError, ValueError):
    """A frame given to the package breaks its column or dtype contract."""


class UnknownFeatureServiceError(FeatureError, LookupError):
    """A feature service name that the repo does not define."""


class MissingFeaturesError(FeatureError, LookupError):
    """The store holds no feature values where some were required."""
