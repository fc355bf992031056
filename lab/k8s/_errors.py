"""Errors of the real control plane under ``lab.k8s``.

Exceptions::

    LabError (lab)
    +-- K8sError                    base of every lab.k8s error
        +-- BinariesMissingError    a control-plane binary is absent and could not be built
        +-- ClusterStartError       a component exited or did not become ready in time
        +-- ClusterStoppedError     the cluster was used after stop()
        +-- ChartError              helm could not render ooda's chart
"""

from __future__ import annotations

from lab._errors import LabError


class K8sError(LabError):
    """Base of every ``lab.k8s`` error."""


class BinariesMissingError(K8sError):
    """A control-plane binary is not in the cache and building it failed."""


class ClusterStartError(K8sError):
    """A component exited early or did not become ready; the message carries its log tail."""


class ClusterStoppedError(K8sError):
    """The cluster was used after ``stop()``."""


class ChartError(K8sError):
    """``helm template`` failed; the message carries helm's own error."""
