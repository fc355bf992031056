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


class MetricSourceError(FeatureError):
    """A metric source could not answer."""


class SourceUnavailableError(MetricSourceError):
    """Temporary: the source is unreachable, timed out or overloaded (429, 5xx); retried with
    backoff before it is raised."""


class QueryError(MetricSourceError, ValueError):
    """Permanent: the source refused a query (bad PromQL, unknown column, bad range); the
    message names the query."""
