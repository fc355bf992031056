"""The serving tests' module-scoped registry and feature store (built in ``_shared``)."""

from __future__ import annotations

from tests.serving._shared import feature_dir, registry

__all__ = ["feature_dir", "registry"]
