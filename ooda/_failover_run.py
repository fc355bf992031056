"""``ooda failover``: the failover controller on the wall clock, against configured regions.

Wiring: each region's Prometheus (``features.PrometheusSource``, the region's ``selector``)
and cluster (its kubeconfig, the region's namespace), boto3's ``route53`` for the hosted zone,
and a probe of each region from outside it: the blackbox exporter's ``probe_success`` read
from a Prometheus that scrapes it (``failover.probe_prometheus``: probers in several places),
or an HTTP request to each region's public health endpoint from where ooda runs. Every audit
entry is printed as one JSON line, as ``ooda run`` prints its own, and escalations go to the
configured Alertmanager.
The controller's audit log is its own (``<audit>-failover.db`` beside the loop's, or the
shared PostgreSQL log): one writer per SQLite file.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from contracts import WallClock
from features import FeatureError, PrometheusSettings, PrometheusSource
from ooda._audit import AuditError, AuditStore, open_audit
from ooda._config import OodaConfig
from ooda._errors import ConfigError
from ooda._escalate import Escalator
from ooda._failover import FailoverController
from ooda._journal import Journal
from ooda._region_health import RegionPorts
from ooda._run import EXIT_OK, EXIT_UNTRUSTED, audit_line, aws_client, connect_kube
from ooda._settings import OodaSettings

log = logging.getLogger("ooda.failover")
decisions = logging.getLogger("ooda.audit")


class HttpProbe:
    """GETs each region's health URL; 1.0 for a 2xx answer, 0.0 for anything else."""

    def __init__(self, urls: dict[str, str], timeout_s: float) -> None:
        self.urls = dict(urls)
        self._http = httpx.Client(timeout=timeout_s, follow_redirects=True)

    def __call__(self, region: str) -> float | None:
        url = self.urls.get(region)
        if url is None:
            return None
        try:
            answer = self._http.get(url)
        except httpx.HTTPError as exc:
            log.info("probe of %s (%s) failed: %s", region, url, exc)
            return 0.0
        return 1.0 if answer.is_success else 0.0

    def close(self) -> None:
        self._http.close()


class PrometheusProbe:
    """Each region's synthetic probes as a Prometheus that scrapes the blackbox exporter saw
    them: ``query`` with ``{region}`` replaced, averaged over the series it answers (several
    probers, several URLs). No series is no answer (None), and so is a Prometheus that cannot
    answer: that says nothing of the region. A failing read is logged once, until it works
    again."""

    def __init__(self, source: PrometheusSource, query: str) -> None:
        self.source = source
        self.query = query
        self._failing: set[str] = set()

    def __call__(self, region: str) -> float | None:
        query = self.query.replace("{region}", region)
        try:
            series = self.source.query_vector(query)
        except FeatureError as exc:
            if region not in self._failing:
                log.warning("probes of %s unread (%s): no probe answer until they are", region, exc)
            self._failing.add(region)
            return None
        if region in self._failing:
            log.info("probes of %s read again", region)
            self._failing.discard(region)
        values = [v for _, v in series if math.isfinite(v)]
        return min(1.0, max(0.0, sum(values) / len(values))) if values else None

    def close(self) -> None:
        self.source.close()


def make_probe(config: OodaConfig) -> HttpProbe | PrometheusProbe:
    """The failover's probe as configured: the blackbox exporter's ``probe_success`` from
    Prometheus (``failover.probe_prometheus``), or an HTTP request per region from here."""
    given = config.failover
    if given is None:
        raise ConfigError("the configuration has no failover section")
    if given.probe_prometheus is not None:
        where = given.probe_prometheus
        settings = PrometheusSettings(
            url=where.url, region="probes", timeout=where.timeout, attempts=2
        )
        return PrometheusProbe(PrometheusSource(settings), where.query)
    return HttpProbe(given.probes, given.probe_timeout.total_seconds())


def failover_audit(config: OodaConfig) -> AuditStore:
    """The controller's audit log: the shared PostgreSQL log, or its own SQLite file."""
    if config.audit.url:
        return open_audit(config.audit.url)
    path = config.audit.path
    return open_audit(path.with_name(f"{path.stem}-failover{path.suffix or '.db'}"))


def build_failover(
    config: OodaConfig, settings: OodaSettings, probe: Callable[[str], float | None]
) -> FailoverController:
    """The controller wired to the configured regions, Route 53 and ``probe``."""
    given = config.failover
    if given is None:
        raise ConfigError("the configuration has no failover section")
    ports = {}
    for region in config.regions:
        source: Any = PrometheusSource(config.prometheus(region.name))
        namespace = region.namespace or config.namespace
        ports[region.name] = RegionPorts(region.name, source, connect_kube(region), namespace)
    journal = Journal(failover_audit(config))
    return FailoverController(
        settings,
        ports,
        aws_client(given.aws, "route53"),
        probe,
        journal,
        sleep=time.sleep,
    )


class FailoverRunner:
    """Ticks the controller every ``loop.tick`` until stopped; prints its audit lines."""

    def __init__(
        self,
        controller: FailoverController,
        escalator: Escalator,
        clock: WallClock | None = None,
    ) -> None:
        self.controller = controller
        self.escalator = escalator
        self.clock = clock or WallClock()
        self.stop = threading.Event()
        self._seen = max((e.id or 0 for e in controller.journal.audit.entries()), default=0)

    def tick(self) -> None:
        status = self.controller.tick(self.clock.now())
        new = self.controller.journal.audit.entries(after_id=self._seen)
        for entry in new:
            decisions.info(audit_line(entry))
        if new:
            self._seen = new[-1].id or self._seen
        self.escalator.escalate(new)
        log.info("users on %s (%s)", status.active, status.state)

    def run(self, once: bool = False) -> int:
        """Tick until :attr:`stop` is set (``once``: a single tick); the exit code."""
        period = self.controller.settings.loop.tick.total_seconds()
        while not self.stop.is_set():
            began = time.monotonic()
            try:
                self.tick()
            except AuditError as exc:
                log.error("audit log unavailable, acting on nothing until it is back: %s", exc)
                if once:
                    return EXIT_UNTRUSTED
            if once:
                return EXIT_OK
            self.stop.wait(max(0.0, period - (time.monotonic() - began)))
        log.warning("stopped; users on %s", self.controller.status.active)
        return EXIT_OK
