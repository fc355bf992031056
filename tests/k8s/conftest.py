"""The two backends of the actuator contract suite (the session's real control plane,
``kube_cluster``, is in ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.k8s._backends import Backend, lab_backend, real_backend


@pytest.fixture(params=["lab", pytest.param("real", marks=pytest.mark.k8s)])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "lab":
        yield lab_backend()[0]
        return
    b = real_backend(request.getfixturevalue("kube_cluster"), request.getfixturevalue("ooda_chart"))
    try:
        yield b
    finally:
        for cleanup in b.cleanups:
            cleanup()
