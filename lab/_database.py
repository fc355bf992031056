"""A managed database (RDS-like) with a primary and a read replica, reached through DNS.

The application never names a database instance: it resolves two ``ExternalName`` Services
the lab creates at start, as an estate that can fail a database over without a redeploy has.
``<db>`` (the writer Service, named as the database) points at the primary's endpoint and
carries the writes; ``<db>-reader`` carries the reads and points at ``<db>``'s cluster name, a
CNAME chain, so by default the reads follow the writes to the primary. Repointing the reader
at the replica moves the reads only (``SwitchDatabase`` ``traffic="reads"``); repointing the
writer moves the writes and, through the chain, the reads with them (``reads_and_writes``).

Each sub-step the database resolves both Services from the API's store (a read of the lab's
own state, no counted call), so a switch takes effect at the next sub-step, and adds the
extra time its reads and writes take now over a healthy instance's to its service's own
latency. An instance that is down, or a name that resolves to no instance, fails every
request that needs it. The two instances are one Aurora-like cluster named as the database:
only its writer takes writes (the other is read-only), so moving the writes takes a failover
(``FailoverDBCluster``, through the fake RDS API below) as well as the writer Service; the
instance failed over to answers nothing for ``failover_s`` while it is promoted, and the old
writer becomes a reader. Reads from the replica are fine while its lag is small, which the
exporter reports and the runbook checks before it switches.

Its exporter is CloudWatch's: per instance ``aws_rds_read_latency_average`` and
``aws_rds_write_latency_average`` in seconds (CloudWatch's unit) and, for the replica,
``aws_rds_replica_lag_average``; plus ``serving_reads`` / ``serving_writes`` (1 on the
instance the Services resolve to). A down instance reports nothing (NaN). Naming, which the
runbook relies on: the primary's identifier is the database's name, the replica's is
``<db>-replica``, an instance's endpoint is ``<identifier>.<region>.rds.amazonaws.com``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from botocore.exceptions import ClientError

from contracts import MetricFamily
from lab._dependencies import Dependency, Sample
from lab._faults import TickEffects
from lab._settings import DatabaseSettings

if TYPE_CHECKING:
    from lab._estate import Lab

#: Relative noise of a sampled latency or lag (CloudWatch's one-minute average wanders).
_SAMPLE_NOISE = 0.05
#: Longest CNAME chain followed before a name counts as unresolvable.
_MAX_CHAIN = 4


def reader_service(database: str) -> str:
    """The name of the ExternalName Service the application's reads resolve."""
    return f"{database}-reader"


def replica_identifier(database: str) -> str:
    """The ``DBInstanceIdentifier`` of the database's read replica."""
    return f"{database}-replica"


def endpoint(identifier: str, region: str) -> str:
    """The DNS name of an instance's endpoint."""
    return f"{identifier}.{region}.rds.amazonaws.com"


def cluster_name(service: str, namespace: str) -> str:
    """The cluster DNS name of a Service (what a CNAME to another Service names)."""
    return f"{service}.{namespace}.svc.cluster.local"


def database_services(
    settings: DatabaseSettings, namespace: str, region: str
) -> list[dict[str, Any]]:
    """The two ExternalName Services the lab creates for a database at start."""
    labels = {"app.kubernetes.io/name": settings.name, "app.kubernetes.io/component": "database"}

    def service(name: str, target: str) -> dict[str, Any]:
        return {
            "metadata": {"name": name, "labels": labels},
            "spec": {"type": "ExternalName", "externalName": target},
        }

    return [
        service(settings.name, endpoint(settings.name, region)),
        service(reader_service(settings.name), cluster_name(settings.name, namespace)),
    ]


@dataclass
class DbInstance:
    """One database instance and its state now."""

    identifier: str
    role: str
    """``primary`` or ``replica``."""
    endpoint: str
    read_latency_ms: float
    """Latency of one read now."""
    write_latency_ms: float
    """Latency of one write now."""
    up: bool = True
    """False: it answers no connection (every request that needs it fails)."""
    writer: bool = False
    """Whether it is its cluster's writer (the only instance that takes writes)."""
    restarting_until: float = 0.0
    """Epoch second until which it answers nothing (promoted by a failover)."""

    def available(self, t: float) -> bool:
        """Whether it answers at ``t``."""
        return self.up and t >= self.restarting_until


class Database(Dependency):
    """One database: its primary, its replica, the replica's lag, the Services to them."""

    family = MetricFamily.DATABASE

    def __init__(self, lab: Lab, settings: DatabaseSettings) -> None:
        super().__init__(lab, settings.name)
        self.settings = settings
        region = lab.settings.topology.region
        self._namespace = lab.settings.topology.namespace
        self.primary = DbInstance(
            settings.name,
            "primary",
            endpoint(settings.name, region),
            settings.read_latency_ms,
            settings.write_latency_ms,
            writer=True,
        )
        replica = replica_identifier(settings.name)
        self.replica = DbInstance(
            replica,
            "replica",
            endpoint(replica, region),
            settings.read_latency_ms,
            settings.write_latency_ms,
        )
        self.replica_lag_s = settings.replica_lag_s
        """The replica's lag now, seconds."""
        self._service = lab.service_index(settings.service)
        self._base_ms = lab.settings.topology.services[self._service].base_latency_ms
        # Its own stream, so that sampling it shifts no other draw of the estate.
        self._rng = np.random.default_rng([lab.settings.seed, 3, zlib.crc32(self.name.encode())])

    @property
    def instances(self) -> tuple[DbInstance, DbInstance]:
        """Primary, then replica."""
        return self.primary, self.replica

    def resolve(self, service: str) -> DbInstance | None:
        """The instance the Service ``service`` resolves to now (None: none does)."""
        core = self.lab.kube.core_v1
        name = core.external_name(service)
        suffix = cluster_name("", self._namespace)  # ".<namespace>.svc.cluster.local"
        for _ in range(_MAX_CHAIN):
            if name is None:
                return None
            found = next((i for i in self.instances if i.endpoint == name), None)
            if found is not None or not name.endswith(suffix):
                return found
            name = core.external_name(name.removesuffix(suffix))
        return None

    @property
    def serving(self) -> tuple[DbInstance | None, DbInstance | None]:
        """The instances that serve the reads and the writes now."""
        return self.resolve(reader_service(self.name)), self.resolve(self.name)

    def before(self, t0: float, h: float, fx: TickEffects) -> None:
        s = self.settings
        reads, writes = self.serving
        i = self._service
        extra_ms = 0.0
        ok = 1.0
        for instance, per_request, latency, healthy in (
            (reads, s.reads_per_request, "read_latency_ms", s.read_latency_ms),
            (writes, s.writes_per_request, "write_latency_ms", s.write_latency_ms),
        ):
            if per_request <= 0:
                continue
            read_only = (
                latency == "write_latency_ms" and instance is not None and not instance.writer
            )
            if instance is None or not instance.available(t0) or read_only:
                ok *= 1.0 - min(1.0, per_request)
            else:
                extra_ms += per_request * (getattr(instance, latency) - healthy)
        fx.latency[i] += extra_ms / self._base_ms
        fx.errors[i] = 1.0 - (1.0 - fx.errors[i]) * ok

    def sample(self, t: float) -> list[Sample]:
        reads, writes = self.serving
        service = self.settings.service
        noises = np.exp(self._rng.normal(0.0, _SAMPLE_NOISE, (2, 3))).tolist()
        out: list[Sample] = []
        for instance, noise in zip(self.instances, noises, strict=True):
            keys = (service, instance.identifier, instance.role)
            if not instance.available(t):
                out.append((keys, (np.nan,) * 5))
                continue
            lag = self.replica_lag_s * noise[2] if instance is self.replica else np.nan
            values = (
                instance.read_latency_ms * noise[0] / 1000.0,
                instance.write_latency_ms * noise[1] / 1000.0,
                lag,
                float(reads is instance),
                float(writes is instance),
            )
            out.append((keys, values))
        return out


def _rds_error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


class FakeRds:
    """The boto3 ``rds`` client calls ooda makes, over the lab's databases: each is an
    Aurora-like cluster named as the database, its primary and replica the members (keyword
    arguments, response shapes and error codes as boto3's)."""

    def __init__(self, lab: Lab, databases: list[Database]) -> None:
        self._lab = lab
        self._databases = {d.name: d for d in databases}

    def _cluster(self, identifier: str, operation: str) -> Database:
        found = self._databases.get(identifier)
        if found is None:
            raise _rds_error(
                "DBClusterNotFoundFault", f"DBCluster {identifier} not found.", operation
            )
        return found

    def _describe(self, database: Database) -> dict[str, Any]:
        now = self._lab.clock.now().timestamp()
        busy = any(not i.available(now) for i in database.instances if i.up)
        return {
            "DBClusterIdentifier": database.name,
            "Engine": "aurora-postgresql",
            "Status": "failing-over" if busy else "available",
            "DBClusterMembers": [
                {"DBInstanceIdentifier": i.identifier, "IsClusterWriter": i.writer}
                for i in database.instances
            ],
        }

    def describe_db_clusters(self, **kwargs: Any) -> dict[str, Any]:
        name = kwargs.get("DBClusterIdentifier")
        if name is None:
            return {"DBClusters": [self._describe(d) for d in self._databases.values()]}
        return {"DBClusters": [self._describe(self._cluster(str(name), "DescribeDBClusters"))]}

    def failover_db_cluster(self, **kwargs: Any) -> dict[str, Any]:
        """Promote ``TargetDBInstanceIdentifier`` (default: the other member) to writer."""
        operation = "FailoverDBCluster"
        database = self._cluster(str(kwargs["DBClusterIdentifier"]), operation)
        now = self._lab.clock.now().timestamp()
        name = kwargs.get("TargetDBInstanceIdentifier")
        readers = [i for i in database.instances if not i.writer]
        target = readers[0] if name is None else None
        for instance in database.instances:
            if instance.identifier == name:
                target = instance
        if target is None or target.writer:
            raise _rds_error(
                "InvalidParameterValue",
                f"Cannot find a reader {name!r} of DBCluster {database.name} to fail over to",
                operation,
            )
        if not target.available(now):
            raise _rds_error(
                "InvalidDBInstanceState",
                f"Instance {target.identifier} should be in valid state for failover.",
                operation,
            )
        for instance in database.instances:
            instance.writer = instance is target
        target.restarting_until = now + database.settings.failover_s
        return {"DBCluster": self._describe(database)}


def build_databases(lab: Lab) -> list[Database]:
    """The topology's databases; the lab's cloud clients get an RDS client over them."""
    databases = [Database(lab, settings) for settings in lab.settings.topology.databases]
    if databases:
        lab.cloud = replace(lab.cloud, rds=FakeRds(lab, databases))
    return databases
