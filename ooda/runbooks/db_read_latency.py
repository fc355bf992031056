"""Database read latency: send a slow primary's traffic to its healthy replica.

A long-running query holding locks or a noisy neighbour on the primary's storage makes every
read slow, and every request of the service that reads it waits; more pods would only wait
too. The signal is CloudWatch's (``aws_rds_read_latency_average``, ``..._write_latency_...``,
``aws_rds_replica_lag_average``, per ``dbinstance_identifier`` and ``role``) with the
``serving_reads`` / ``serving_writes`` gauges that say which instance the service's Services
resolve to. The runbook fires when the primary serves the service's reads, takes at least
``db_read_latency_ms`` per read and ``db_latency_factor`` x its own quickest minute of the
window, while the service's p95 stands ``db_service_inflation`` x its normal. It matches
before the generic latency runbook (priority 30 < 60): the slowness has a named cause.

The heal repoints an ExternalName Service at the replica's endpoint (``SwitchDatabase``):
the reader Service (``db_reader_service``) when only reads are slow, the writer Service
(named as the database) when the primary's writes are slow too (``db_write_latency_ms``), which
moves the reads with them; also when the writes turn slow after the reads were moved. A
replica takes no writes until it is promoted: moving the writes fails the database's Aurora
cluster (``db_cluster``) over to the replica first. Only
to a replica that reports (a healthy one does), reads quickly and lags at most
``db_max_replica_lag_s``; otherwise the diagnosis stands and the
runbook proposes nothing (escalated): a stale replica is no heal. The action checks the
same bound again, with the lag observed here.

Naming (the lab's, and the usual RDS one): the primary's identifier is the database's name,
its replica's ``<db>-replica``; endpoints follow ``db_endpoint``.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from actuators import Action, SwitchDatabase
from contracts import MetricFamily, ScenarioId
from ooda._records import ComponentKind, Diagnosis, Finding, Snapshot
from ooda.runbooks._base import Runbook, register_runbook

#: How far back the service's normal p95 is read (minutes before ``NORMAL_GAP``).
NORMAL_WINDOW = timedelta(minutes=60)
#: The normal ends this long before now, so a slowdown that began minutes ago is not in it.
NORMAL_GAP = timedelta(minutes=15)


def _ms(series: pd.Series) -> np.ndarray:
    """A CloudWatch latency column (seconds) in milliseconds."""
    return series.to_numpy(dtype=float) * 1000.0


def _newest(values: np.ndarray) -> float:
    """The newest finite value (NaN: none). One minute is enough: the bounds are several
    times a healthy read, far beyond a minute's noise, and the service must feel it too."""
    finite = values[np.isfinite(values)]
    return float(finite[-1]) if finite.size else math.nan


@register_runbook
class DbReadLatency(Runbook):
    """Switch a slow primary's reads (and writes, if it is sick) to its replica."""

    name = "db_read_latency"
    scenarios = (ScenarioId.DB_READ_LATENCY,)
    priority = 30
    heals = ComponentKind.DATABASE
    deadline = timedelta(minutes=6)
    families = (MetricFamily.DATABASE,)

    def _service_inflation(self, snapshot: Snapshot, service: str) -> float:
        """The service's p95 over its normal (NaN when unknown)."""
        view = snapshot.views.get(service)
        if view is None or not view.usable:
            return math.nan
        history = view.history
        stamps = history["timestamp"]
        now = pd.Timestamp(snapshot.at)
        normal = history[(stamps <= now - NORMAL_GAP) & (stamps > now - NORMAL_GAP - NORMAL_WINDOW)]
        if len(normal) < 20:
            return math.nan
        base = float(np.nanmedian(normal["p95_latency_ms"].to_numpy(dtype=float)))
        p95 = _newest(history["p95_latency_ms"].to_numpy(dtype=float))
        return p95 / base if base > 0 else math.nan

    def matches(self, snapshot: Snapshot, service: str) -> Diagnosis | None:
        frame = snapshot.families.get(MetricFamily.DATABASE)
        if frame is None or not len(frame):
            return None
        mine = frame[frame["service"] == service].sort_values("timestamp")
        primaries = mine[mine["role"] == "primary"]
        for database, primary in primaries.groupby("dbinstance_identifier", sort=True):
            diagnosis = self._diagnose(snapshot, service, str(database), primary, mine)
            if diagnosis is not None:
                return diagnosis
        return None

    def _diagnose(
        self,
        snapshot: Snapshot,
        service: str,
        database: str,
        primary: pd.DataFrame,
        rows: pd.DataFrame,
    ) -> Diagnosis | None:
        policy = self.settings.policy
        latest = primary.iloc[-1]
        read = _ms(primary["aws_rds_read_latency_average"])
        write = _ms(primary["aws_rds_write_latency_average"])
        read_ms, write_ms = _newest(read), _newest(write)
        quickest = float(np.nanmin(read)) if np.isfinite(read).any() else math.nan
        quickest_write = float(np.nanmin(write)) if np.isfinite(write).any() else math.nan
        factor = policy.db_latency_factor
        # Only what the primary still serves can be switched away from it.
        reads_slow = bool(
            latest["serving_reads"] >= 1
            and read_ms >= policy.db_read_latency_ms
            and read_ms >= factor * quickest
        )
        sick = bool(
            latest["serving_writes"] >= 1
            and write_ms >= policy.db_write_latency_ms
            and write_ms >= factor * quickest_write
        )
        if not (reads_slow or sick):
            return None
        inflation = self._service_inflation(snapshot, service)
        if not inflation >= policy.db_service_inflation:
            return None
        replica_id = f"{database}-replica"
        replica = rows[rows["dbinstance_identifier"] == replica_id]
        replica_read_ms, lag_s = math.nan, math.nan
        if len(replica):
            newest = replica.iloc[-1]
            replica_read_ms = float(newest["aws_rds_read_latency_average"]) * 1000.0
            lag_s = float(newest["aws_rds_replica_lag_average"])
        healthy = bool(replica_read_ms < policy.db_read_latency_ms) and math.isfinite(lag_s)
        evidence: dict[str, Any] = {
            "database": database,
            "read_latency_ms": round(read_ms, 2),
            "quickest_read_latency_ms": round(quickest, 2),
            "write_latency_ms": round(write_ms, 2),
            "p95_inflation": round(inflation, 2),
            "primary_sick": sick,
            "replica": replica_id,
            "replica_read_latency_ms": round(replica_read_ms, 2),
            "replica_lag_s": round(lag_s, 2),
            "replica_healthy": healthy,
            "max_replica_lag_s": policy.db_max_replica_lag_s,
            "traffic": "reads_and_writes" if sick else "reads",
            "db_service": database if sick else policy.db_reader_service.format(database=database),
            "secondary": policy.db_endpoint.format(instance=replica_id, region=snapshot.region),
        }
        fit = healthy and lag_s <= policy.db_max_replica_lag_s
        return self.diagnose(
            snapshot,
            service,
            0.85 if fit else 0.6,
            evidence,
            target=f"service/{snapshot.namespace}/{evidence['db_service']}",
        )

    def follow_up(self, diagnosis: Diagnosis, action: Action, snapshot: Snapshot) -> Finding:
        ev = diagnosis.evidence
        moved = "reads and writes" if ev["traffic"] == "reads_and_writes" else "reads"
        return Finding(
            f"database/{ev['database']}",
            f"the {moved} of {ev['database']} were moved to {ev['replica']} (its primary's reads"
            f" took {ev['read_latency_ms']} ms): find what slowed the primary (a long query, its"
            " storage), repair it, then point the Services back",
        )

    def propose(self, diagnosis: Diagnosis, snapshot: Snapshot) -> Action | None:
        evidence = diagnosis.evidence
        lag_s = float(evidence["replica_lag_s"])
        if not (evidence["replica_healthy"] and lag_s <= self.settings.policy.db_max_replica_lag_s):
            return None  # no replica fit to serve: a human decides
        what = "primary sick, reads and writes" if evidence["primary_sick"] else "reads"
        cluster = ""
        if evidence["traffic"] == "reads_and_writes":
            cluster = self.settings.policy.db_cluster.format(database=evidence["database"])
        return SwitchDatabase(
            snapshot.namespace,
            diagnosis.service,
            reason=f"{evidence['database']} reads take {evidence['read_latency_ms']} ms"
            f" (p95 x{evidence['p95_inflation']}): {what} to {evidence['replica']},"
            f" {lag_s} s behind",
            db_service=str(evidence["db_service"]),
            secondary=str(evidence["secondary"]),
            replica_lag_s=lag_s,
            max_replica_lag_s=self.settings.policy.db_max_replica_lag_s,
            secondary_healthy=bool(evidence["replica_healthy"]),
            traffic=str(evidence["traffic"]),
            cluster=cluster,
            secondary_instance=str(evidence["replica"]) if cluster else "",
        )
