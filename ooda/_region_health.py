"""How the failover sees a region: its users' minutes from its own Prometheus, its workloads
from its own cluster, its replicas' lag, and a probe from outside it.

A region that cannot be read is evidence, not a crash: its :class:`RegionHealth` carries the
problem, and only its probes can then call it down. ``down`` and ``serves`` are the two
judgements the failover's rules are made of (module docstring of ``ooda._failover``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from contracts import KubeClients, MetricFamily, MetricSource, WorkloadState
from ooda._cluster_state import read_workloads
from ooda._observe import clean_metrics
from ooda._settings import OodaSettings

MINUTE = timedelta(minutes=1)

Probe = Callable[[str], float | None]
"""Share of synthetic requests to a region's public endpoint that succeed now (None: no probe
answer), as the blackbox exporter's ``probe_success`` averages it."""


@dataclass(frozen=True)
class RegionPorts:
    """How one region is read and acted on."""

    name: str
    source: MetricSource
    kube: KubeClients
    namespace: str = "shop"


@dataclass(frozen=True)
class RegionHealth:
    """One region as observed in one tick."""

    region: str
    at: datetime
    error_rates: tuple[float, ...] = ()
    """Share of the entry services' requests that failed, per minute, oldest first (NaN: a
    minute without requests)."""
    p95_ms: tuple[float, ...] = ()
    """The entry services' worst p95 per minute (NaN: no requests)."""
    probe: float | None = None
    workloads: Mapping[str, WorkloadState] = field(default_factory=dict)
    newest_minute: datetime | None = None
    """The newest minute of the entry services' metrics (None: none)."""
    problem: str | None = None
    """Why the region could not be observed (None: it was)."""

    @property
    def ready(self) -> dict[str, int]:
        """Ready pods per service."""
        return {s: w.ready_replicas for s, w in self.workloads.items()}


class RegionObserver:
    """Observes every region once a tick and keeps each one's recent probe answers."""

    def __init__(
        self, settings: OodaSettings, regions: Mapping[str, RegionPorts], probe: Probe
    ) -> None:
        self.settings = settings
        self.cfg = settings.failover
        self.regions = dict(regions)
        self.probe = probe
        # Minutes of metrics read per region and tick: what the longest rule looks back over
        # (down, browned out, a verdict's healthy minutes), and the minute in progress.
        self._window = MINUTE * (
            1
            + max(
                self.cfg.down_minutes,
                self.cfg.brownout_minutes,
                settings.verify.healthy_minutes,
                5,
            )
        )
        self._probes: dict[str, deque[tuple[datetime, float | None]]] = {
            r: deque(maxlen=64) for r in self.cfg.regions
        }

    def observe(self, region: str, now: datetime) -> RegionHealth:
        """``region``'s users' minutes, its probe, workloads and replica lag; never raises."""
        ports = self.regions[region]
        probe = self._probe(region)
        self._probes[region].append((now, probe))
        # Whole minutes, so that a minute is one row however often the controller ticks.
        end = pd.Timestamp(now).floor("min").to_pydatetime()
        start = end - self._window
        try:
            raw = ports.source.query_range(start, end, MINUTE)
            metrics, _ = clean_metrics(raw, now)
            workloads = read_workloads(ports.kube, ports.namespace, self.settings.services)
        except Exception as exc:  # an unreachable region is evidence, not a crash
            return RegionHealth(region, now, probe=probe, problem=f"{type(exc).__name__}: {exc}")
        entries = metrics[metrics["service"].isin(self.cfg.entries)]
        rates, p95, newest = _per_minute(entries)
        return RegionHealth(
            region,
            now,
            error_rates=rates,
            p95_ms=p95,
            newest_minute=newest,
            probe=probe,
            workloads=workloads,
        )

    def _probe(self, region: str) -> float | None:
        try:
            value = self.probe(region)
        except Exception:  # a probe that cannot answer says nothing
            return None
        if value is None or not math.isfinite(value):
            return None
        return float(value)

    def replica_lag(self, region: str, now: datetime) -> float | None:
        """The largest lag of ``region``'s database replicas in its newest minute (None: none
        reported); read only when a standby is judged, not every tick."""
        end = pd.Timestamp(now).floor("min").to_pydatetime()
        try:
            frame = self.regions[region].source.query_family(
                MetricFamily.DATABASE, end - self._window, end, MINUTE
            )
        except Exception:
            return None
        if frame is None or frame.empty or "aws_rds_replica_lag_average" not in frame:
            return None
        newest = frame[frame["timestamp"] == frame["timestamp"].max()]
        lags = pd.to_numeric(newest["aws_rds_replica_lag_average"], errors="coerce").dropna()
        return float(lags.max()) if len(lags) else None

    def probes_failing(self, region: str, now: datetime) -> bool:
        """Every probe answer of the last ``down_minutes`` is below the floor."""
        span = self.cfg.down_minutes * MINUTE
        seen = [(at, p) for at, p in self._probes[region] if now - at <= span]
        if not seen or now - seen[0][0] < span - timedelta(seconds=1):
            return False
        return all(p is not None and p < self.cfg.probe_floor for _, p in seen)

    def down(self, health: RegionHealth) -> bool:
        """Most of the region's users' requests fail, or its probes do, for ``down_minutes``."""
        n = self.cfg.down_minutes
        rates = health.error_rates[-n:]
        failing = len(rates) == n and all(r >= self.cfg.down_error_rate for r in rates)
        return failing or self.probes_failing(health.region, health.at)

    def browned_out(self, health: RegionHealth) -> bool:
        """At least ``brownout_error_rate`` of the region's users' requests failed in each of
        the last ``brownout_minutes`` (a minute without requests breaks the run)."""
        n = self.cfg.brownout_minutes
        rates = health.error_rates[-n:]
        return len(rates) == n and all(r >= self.cfg.brownout_error_rate for r in rates)

    def serves(self, health: RegionHealth) -> bool:
        """The region answers: its probe passes and its newest minute is not mostly failing."""
        if health.problem is not None or health.probe is None:
            return False
        if health.probe < self.cfg.probe_floor:
            return False
        newest = health.error_rates[-1] if health.error_rates else math.nan
        return not newest >= self.cfg.down_error_rate

    def within_slo(self, health: RegionHealth) -> bool | None:
        """Whether the newest minute met the SLO (None: no requests in it)."""
        if not health.error_rates or math.isnan(health.error_rates[-1]):
            return None
        slo = self.settings.slo
        p95 = health.p95_ms[-1]
        return bool(health.error_rates[-1] <= slo.max_error_rate and p95 <= slo.p95_ms)


def _per_minute(
    entries: pd.DataFrame,
) -> tuple[tuple[float, ...], tuple[float, ...], datetime | None]:
    """Per minute of the entry services: the share of failed requests and the worst p95;
    and the newest minute."""
    if entries.empty:
        return (), (), None
    rate = entries["request_rate"].to_numpy(dtype=float)
    errors = rate * entries["error_rate"].to_numpy(dtype=float)
    frame = pd.DataFrame(
        {
            "timestamp": entries["timestamp"].to_numpy(),
            "requests": rate,
            "errors": np.nan_to_num(errors),
            "p95": np.where(rate > 0, entries["p95_latency_ms"].to_numpy(dtype=float), np.nan),
        }
    )
    minutes = frame.groupby("timestamp", sort=True).agg(
        requests=("requests", "sum"), errors=("errors", "sum"), p95=("p95", "max")
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(minutes["requests"] > 0, minutes["errors"] / minutes["requests"], np.nan)
    newest = pd.Timestamp(minutes.index[-1]).to_pydatetime()
    return tuple(float(v) for v in share), tuple(float(v) for v in minutes["p95"]), newest
