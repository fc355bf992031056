"""A third-party API a service calls: a rate quota, 429s with ``Retry-After``, the caller's
retries, and a Gateway API HTTPRoute that splits the calls between two regions of it.

The calls leave the mesh through an egress Gateway: at start the lab installs Gateway API's
``HTTPRoute`` CRD and one route per upstream, named after the upstream, in the estate's
namespace, whose one rule sends the calls to two ``backendRefs``: the primary (named as the
upstream, weight 100) and its secondary region (``UpstreamSettings.secondary``, weight 0).
Naming, which the runbook relies on: the route is named after the upstream, its primary
backend likewise, and the secondary is ``<upstream>-<suffix>`` (``card-gateway-dr``).

Each sub-step the upstream reads the route's weights from the API's store (the lab's own
state, no counted call; a route that is gone sends every call to the primary, weights that
sum to nothing fail every call, as a Gateway answers 500), splits the calls of the last
sub-step (the calling service's served requests x ``calls_per_request``) by weight, and each
backend answers 429 to what comes beyond its quota. The caller's client waits the
``Retry-After`` and retries up to ``max_retries`` times, so a throttled share ``p`` of the
attempts solves ``p = 1 - quota / (calls x (1 + p + ... + p^retries))``: every retry is one
more attempt against the same quota. A call fails when every attempt was throttled
(``p^(retries + 1)``), which fails the request that made it; the waits, and the secondary's
longer round trip, are added to the calling service's own latency (their mean bends its
median, a simplification of the long tail a few waits give).

Its exporter is the client's: per backend ``http_client_requests_rate`` (every attempt,
retries included), ``http_client_requests_throttled_rate`` (the 429s) and
``http_client_request_duration_p95_ms`` (one call, its retries' waits included; the gateway's
health checks keep it known for a backend that takes no calls). A fault lowers a backend's
quota through its ``cut_to``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from contracts import MetricFamily
from lab._dependencies import Dependency, Sample
from lab._errors import SettingsError
from lab._faults import TickEffects
from lab._kube_net import seeded_uid
from lab._settings import UpstreamSettings

if TYPE_CHECKING:
    from lab._estate import Lab

GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_VERSION = "v1"
HTTPROUTES = "httproutes"
#: The route's egress Gateway (its ``parentRefs``).
EGRESS_GATEWAY = "egress"
#: p95 over the median of one healthy call (log-normal, sigma 0.3).
_P95_FACTOR = math.exp(1.645 * 0.3)
#: A call duration's p95 includes a retry's wait once more than this share of calls need it.
_TAIL = 0.05

#: Gateway API's HTTPRoute CRD as the lab installs it (its schema keeps what it is given).
HTTPROUTE_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {
        "name": f"{HTTPROUTES}.{GATEWAY_GROUP}",
        # *.k8s.io groups are protected: the API server wants the KEP's approval named.
        "annotations": {
            "api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api/pull/2466"
        },
    },
    "spec": {
        "group": GATEWAY_GROUP,
        "scope": "Namespaced",
        "names": {
            "kind": "HTTPRoute",
            "listKind": "HTTPRouteList",
            "plural": HTTPROUTES,
            "singular": "httproute",
        },
        "versions": [
            {
                "name": GATEWAY_VERSION,
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


def upstream_route(settings: UpstreamSettings) -> dict[str, Any]:
    """The HTTPRoute the lab creates for an upstream: every call to the primary."""

    def backend(name: str, weight: int) -> dict[str, Any]:
        return {"group": "", "kind": "Service", "name": name, "port": 443, "weight": weight}

    return {
        "apiVersion": f"{GATEWAY_GROUP}/{GATEWAY_VERSION}",
        "kind": "HTTPRoute",
        "metadata": {
            "name": settings.name,
            "labels": {"app.kubernetes.io/name": settings.name, "app": settings.service},
        },
        "spec": {
            "parentRefs": [{"name": EGRESS_GATEWAY}],
            "hostnames": [settings.name],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [backend(settings.name, 100), backend(settings.secondary, 0)],
                }
            ],
        },
    }


def throttled_share(calls: float, quota: float, retries: int) -> float:
    """The share of attempts a backend answers 429 when ``calls`` per second reach it and the
    client retries each throttled one up to ``retries`` times (0 within the quota)."""
    if calls <= quota:
        return 0.0

    def excess(p: float) -> float:
        attempts = calls * sum(p**k for k in range(retries + 1))
        return p - (1.0 - quota / attempts)

    low, high = 0.0, 1.0  # excess(0) < 0 < excess(1); it rises in between
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (mid, high) if excess(mid) < 0 else (low, mid)
    return (low + high) / 2


class Backend:
    """One region of an upstream: its quota, its latency and its exporter's counters."""

    def __init__(self, name: str, quota_rps: float, latency_ms: float) -> None:
        self.name = name
        self.quota_rps = quota_rps
        """Calls per second it accepts before it answers 429."""
        self.cut_to: float | None = None
        """A fault's lower quota for the coming sub-step only (a scenario's ``effect`` sets it
        each sub-step while the fault lasts, so the quota comes back when it ends)."""
        self.latency_ms = latency_ms
        self.calls = 0.0
        """Calls per second the route sent it in the last sub-step (before retries)."""
        self.throttled = 0.0
        """Share of its attempts it answered 429 in the last sub-step."""
        self.requests_total = 0.0
        self.throttled_total = 0.0


class Upstream(Dependency):
    """One upstream API of one service, its two backends and the route between them."""

    family = MetricFamily.UPSTREAM

    def __init__(self, lab: Lab, settings: UpstreamSettings) -> None:
        super().__init__(lab, settings.name)
        if not settings.secondary.startswith(f"{settings.name}-"):
            raise SettingsError(
                f"upstream {settings.name!r}: the secondary must be named"
                f" '{settings.name}-<suffix>', got {settings.secondary!r}"
            )
        if (
            settings.max_retries < 0
            or not settings.retry_after_s >= 0
            or not settings.secondary_quota_rps > 0
            or not settings.calls_per_request >= 0
        ):
            raise SettingsError(
                f"upstream {settings.name!r}: need max_retries >= 0, retry_after_s >= 0,"
                f" secondary_quota_rps > 0 and calls_per_request >= 0, got"
                f" {settings.max_retries}, {settings.retry_after_s},"
                f" {settings.secondary_quota_rps}, {settings.calls_per_request}"
            )
        self.settings = settings
        self._index = lab.service_index(settings.service)
        self._base_ms = lab.settings.topology.services[self._index].base_latency_ms
        self._namespace = lab.settings.topology.namespace
        self.primary = Backend(settings.name, settings.quota_rps, settings.latency_ms)
        self.secondary = Backend(
            settings.secondary, settings.secondary_quota_rps, settings.secondary_latency_ms
        )
        self.call_rps = 0.0
        """Calls per second the service made in the last sub-step (before retries)."""
        self._install()

    @property
    def backends(self) -> tuple[Backend, Backend]:
        """The primary and the secondary."""
        return self.primary, self.secondary

    def _install(self) -> None:
        """The HTTPRoute CRD (once per estate) and this upstream's route, with seeded uids."""
        kube = self.lab.kube
        crd = HTTPROUTE_CRD["metadata"]["name"]
        if crd not in kube.apiextensions_v1._store.crds:
            kube.apiextensions_v1._create(HTTPROUTE_CRD, seeded_uid("crds", "", crd))
        uid = seeded_uid(HTTPROUTES, self._namespace, self.name)
        kube.custom_objects._create(
            GATEWAY_GROUP,
            GATEWAY_VERSION,
            self._namespace,
            HTTPROUTES,
            upstream_route(self.settings),
            uid,
        )

    def weights(self) -> tuple[float, float] | None:
        """The route's weights of the primary and the secondary now; None: no route (the
        calls go to the primary directly)."""
        route = self.lab.kube.custom_objects._stored(
            GATEWAY_GROUP, HTTPROUTES, self._namespace, self.name
        )
        if route is None:
            return None
        rules = (route.get("spec") or {}).get("rules") or [{}]
        found = {
            ref.get("name"): float(ref.get("weight", 1))
            for ref in rules[0].get("backendRefs") or []
        }
        return found.get(self.primary.name, 0.0), found.get(self.secondary.name, 0.0)

    def before(self, t0: float, h: float, fx: TickEffects) -> None:
        u, i = self.settings, self._index
        weights = self.weights() or (1.0, 0.0)
        total = sum(weights)
        calls = self.call_rps
        failed = 1.0 if total <= 0 else 0.0  # share of the calls that fail
        extra_s = 0.0  # mean time a call takes beyond a healthy primary's
        for backend, weight in zip(self.backends, weights, strict=True):
            share = 0.0 if total <= 0 else weight / total
            backend.calls = calls * share
            quota = backend.quota_rps if backend.cut_to is None else backend.cut_to
            backend.cut_to = None
            p = throttled_share(backend.calls, quota, u.max_retries)
            backend.throttled = p
            attempts = backend.calls * sum(p**k for k in range(u.max_retries + 1))
            backend.requests_total += attempts * h
            backend.throttled_total += attempts * p * h
            waits = u.retry_after_s * sum(p**k for k in range(1, u.max_retries + 1))
            slower = (backend.latency_ms - self.primary.latency_ms) / 1e3
            failed += share * p ** (u.max_retries + 1)
            extra_s += share * (waits + slower)
        per_request = u.calls_per_request
        fx.latency[i] *= max(0.0, 1.0 + per_request * extra_s * 1e3 / self._base_ms)
        failing = min(1.0, per_request * failed)
        fx.errors[i] = 1.0 - (1.0 - fx.errors[i]) * (1.0 - failing)

    def after(self, t0: float, h: float, served: np.ndarray, serving: np.ndarray) -> None:
        self.call_rps = float(served[self._index]) * self.settings.calls_per_request

    def _p95_ms(self, backend: Backend) -> float:
        """p95 of one call: the round trip, plus the waits of as many retries as more than
        ``_TAIL`` of the calls need."""
        waits = sum(
            1 for k in range(1, self.settings.max_retries + 1) if backend.throttled**k > _TAIL
        )
        return backend.latency_ms * _P95_FACTOR + 1e3 * self.settings.retry_after_s * waits

    def sample(self, t: float) -> list[Sample]:
        service = self.settings.service
        return [
            (
                (service, b.name),
                (b.requests_total, b.throttled_total, self._p95_ms(b)),
            )
            for b in self.backends
        ]
