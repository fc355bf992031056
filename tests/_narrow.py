"""Narrowing of ``Optional`` values a test knows are set, for the type checker.

Mostly the official Kubernetes client's models, whose fields are all ``Optional``: the API
(real or the lab's) fills in the fields a test reads, and these helpers assert that it did, so
that a test reads ``name_of(pod)`` rather than asserting ``pod.metadata is not None`` and
``pod.metadata.name is not None`` before each use. A None fails the test where it is read.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from kubernetes.client import V1ObjectMeta

T = TypeVar("T")


class HasMetadata(Protocol):
    @property
    def metadata(self) -> V1ObjectMeta | None: ...


def some(value: T | None) -> T:
    """``value``, which must not be None."""
    assert value is not None, "expected a value, got None"
    return value


def name_of(obj: HasMetadata) -> str:
    """The object's ``metadata.name``, which must be set."""
    return some(some(obj.metadata).name)
