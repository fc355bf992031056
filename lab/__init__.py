"""lab -- the embedded estate: a simulated region reached through the ports a real one offers.

One region (eu-west-1), three nodes, three services in a call chain (frontend -> checkout ->
payments), each a Deployment with a reactive CPU HPA; seasonal, noisy traffic; queueing
latency and overload errors; failure scenarios with ground truth. ``call_forest`` builds
large estates instead (e.g. 1,000 services in independent call trees, 10,000 pods). The loop
talks to it through ``Lab.kube`` (the official ``kubernetes.client`` method names and
models) and ``Lab.source`` (the tidy metrics frame, computed from exporter-named series),
with time from a ``SimClock``. ``LiveLab`` runs it level with the wall clock instead and
serves its exporters' ``/metrics`` to a real Prometheus (``lab.servers``).

Each failure scenario is one module of ``lab.scenarios`` that registers itself
(``register_scenario``); ``Lab.inject`` takes one of its ``ScenarioInstance`` (``draw`` makes
random ones), ``Lab.clear`` fixes it by hand, ``Lab.ground_truth`` keeps a ``FaultRecord`` of
each and ``check_scenario`` is the contract every scenario passes. ``Lab.background`` adds the
benign events a loop must leave alone. ``Fleet`` puts two or more regions behind one
weighted Route 53 name (``FakeRoute53``) and fails a whole region, for regional failover.

Exceptions::

    LabError                    base of every lab error
    +-- SettingsError           inconsistent settings (also a ValueError)
    +-- UnknownServiceError     a fault names a service the estate does not run (also KeyError)
    +-- UnknownRegionError      a fleet has no such region, or no such outage (also KeyError)
    +-- InvalidTimeError        naive datetime, non-positive step, bad range (also ValueError)
    +-- NoTargetError           a fault found nothing to break
    +-- ScenarioError           a scenario id registered twice or not at all (also KeyError)

The fake Kubernetes API raises ``kubernetes.client.exceptions.ApiException`` subclasses
(400 BadRequest, 404 NotFound, 409 AlreadyExists, 415 UnsupportedMediaType, 422 Invalid,
429 TooManyRequests) instead, as a real API server would.
"""

from __future__ import annotations

from contracts import Clock, SimClock, WallClock
from lab._errors import (
    InvalidTimeError,
    LabError,
    NoTargetError,
    SettingsError,
    UnknownRegionError,
    UnknownServiceError,
)
from lab._estate import Lab
from lab._faults import (
    BackgroundEvent,
    CrashLoopFault,
    Fault,
    FaultRecord,
    ScenarioInstance,
    TrafficSurgeFault,
)
from lab._fleet import Fleet, FleetSettings, RegionOutage
from lab._kube import FakeCoreV1Api
from lab._kube_apps import FakeAppsV1Api
from lab._kube_autoscaling import FakeAutoscalingV2Api
from lab._kube_extra import (
    FakeApiextensionsV1Api,
    FakeCustomObjectsApi,
    FakeKubernetes,
    FakePolicyV1Api,
)
from lab._live import LiveLab
from lab._metrics import LabMetricSource, histogram_quantile
from lab._route53 import FakeRoute53
from lab._settings import (
    BackgroundSettings,
    HpaSettings,
    IncidentSettings,
    LabSettings,
    ScrapeSettings,
    ServiceModelSettings,
    ServiceSettings,
    TopologySettings,
    TrafficSettings,
)
from lab._topology import call_forest
from lab.scenarios import (
    Scenario,
    ScenarioError,
    check_scenario,
    register_scenario,
    registered,
    scenario,
)

registered_scenarios = registered

__all__ = [
    "BackgroundEvent",
    "BackgroundSettings",
    "Clock",
    "CrashLoopFault",
    "FakeApiextensionsV1Api",
    "FakeAppsV1Api",
    "FakeAutoscalingV2Api",
    "FakeCoreV1Api",
    "FakeCustomObjectsApi",
    "FakeKubernetes",
    "FakePolicyV1Api",
    "FakeRoute53",
    "Fault",
    "FaultRecord",
    "Fleet",
    "FleetSettings",
    "HpaSettings",
    "IncidentSettings",
    "InvalidTimeError",
    "Lab",
    "LabError",
    "LabMetricSource",
    "LabSettings",
    "LiveLab",
    "NoTargetError",
    "RegionOutage",
    "Scenario",
    "ScenarioError",
    "ScenarioInstance",
    "ScrapeSettings",
    "ServiceModelSettings",
    "ServiceSettings",
    "SettingsError",
    "SimClock",
    "TopologySettings",
    "TrafficSettings",
    "TrafficSurgeFault",
    "UnknownRegionError",
    "UnknownServiceError",
    "WallClock",
    "call_forest",
    "check_scenario",
    "histogram_quantile",
    "register_scenario",
    "registered_scenarios",
    "scenario",
]
