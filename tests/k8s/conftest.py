"""Fixtures for the tests that need Kubernetes: the real control plane and both backends.

The real cluster is started once per session (its binaries are built on first use). Where it
cannot start, its tests are skipped with the reason -- unless ``OODA_REQUIRE_K8S=1`` (set by
``.ci/run``), where that is a failure: CI can never pass without them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from lab.k8s import K8sError, KubeCluster
from tests.k8s._backends import Backend, lab_backend, real_backend


def _unavailable(reason: str) -> None:
    if os.environ.get("OODA_REQUIRE_K8S") == "1":
        pytest.fail(f"OODA_REQUIRE_K8S=1 but the Kubernetes control plane is unavailable: {reason}")
    pytest.skip(f"no Kubernetes control plane: {reason}")


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[KubeCluster]:
    cluster = KubeCluster()
    try:
        cluster.start()
    except K8sError as exc:
        _unavailable(str(exc))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["lab", pytest.param("real", marks=pytest.mark.k8s)])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "lab":
        yield lab_backend()[0]
        return
    b = real_backend(request.getfixturevalue("kube_cluster"))
    try:
        yield b
    finally:
        for cleanup in b.cleanups:
            cleanup()
