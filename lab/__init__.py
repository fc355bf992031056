"""lab -- the embedded estate: a simulated region reached through the ports a real one offers.

One region (eu-west-1), three nodes, three services in a call chain (frontend -> checkout ->
payments), each a Deployment with a reactive CPU HPA; seasonal, noisy traffic; queueing
latency and overload errors; fault injectors with ground truth. The loop talks to it through
``Lab.kube`` (the official ``kubernetes.client`` method names and models) and ``Lab.source``
(the tidy metrics frame, computed from exporter-named series), with time from a ``SimClock``.

Exceptions::

    LabError                    base of every lab error
    +-- SettingsError           inconsistent settings (also a ValueError)
    +-- UnknownServiceError     a fault names a service the estate does not run (also KeyError)
    +-- InvalidTimeError        naive datetime, non-positive step, bad range (also ValueError)
    +-- NoTargetError           a fault found nothing to break

The fake Kubernetes API raises ``kubernetes.client.exceptions.ApiException`` subclasses
(400 BadRequest, 404 NotFound, 409 AlreadyExists, 415 UnsupportedMediaType, 422 Invalid,
429 TooManyRequests) instead, as a real API server would.
"""

from __future__ import annotations

from lab._clock import Clock, SimClock, WallClock
from lab._errors import (
    InvalidTimeError,
    LabError,
    NoTargetError,
    SettingsError,
    UnknownServiceError,
)
from lab._estate import Lab
from lab._faults import CrashLoopFault, Fault, FaultRecord, TrafficSurgeFault
from lab._kube import FakeAutoscalingV2Api, FakeCoreV1Api
from lab._kube_apps import FakeAppsV1Api
from lab._kube_extra import (
    FakeApiextensionsV1Api,
    FakeCustomObjectsApi,
    FakeKubernetes,
    FakePolicyV1Api,
)
from lab._metrics import TIDY_COLUMNS, LabMetricSource, histogram_quantile
from lab._settings import (
    HpaSettings,
    IncidentSettings,
    LabSettings,
    ScrapeSettings,
    ServiceModelSettings,
    ServiceSettings,
    TopologySettings,
    TrafficSettings,
)

__all__ = [
    "TIDY_COLUMNS",
    "Clock",
    "CrashLoopFault",
    "FakeApiextensionsV1Api",
    "FakeAppsV1Api",
    "FakeAutoscalingV2Api",
    "FakeCoreV1Api",
    "FakeCustomObjectsApi",
    "FakeKubernetes",
    "FakePolicyV1Api",
    "Fault",
    "FaultRecord",
    "HpaSettings",
    "IncidentSettings",
    "InvalidTimeError",
    "Lab",
    "LabError",
    "LabMetricSource",
    "LabSettings",
    "NoTargetError",
    "ScrapeSettings",
    "ServiceModelSettings",
    "ServiceSettings",
    "SettingsError",
    "SimClock",
    "TopologySettings",
    "TrafficSettings",
    "TrafficSurgeFault",
    "UnknownServiceError",
    "WallClock",
    "histogram_quantile",
]
