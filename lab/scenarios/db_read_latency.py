"""``db_read_latency``: a database's primary turns slow to read, and its service with it.

A long-running query holding locks, or a noisy neighbour on the primary's storage: the
primary's read latency climbs over a few minutes (the lock queue builds) to ``magnitude``
times a healthy read's (x10-x40), and every request of the service that reads it waits. One
instance in three is a sick primary: its writes slow down alike. Scaling the service does
not help (its pods wait on the database, not on CPU); the heal is to send the traffic to the
replica, which is healthy and close behind: the reads (the reader Service) for a read
slowdown, reads and writes (the writer Service) for a sick primary (``lab._database``).

The fault has no duration: it lasts until the service no longer uses the sick primary for
the traffic it slowed (a switch), or until ``Lab.clear`` (the DBA kills the query, the
primary is healthy again). A switch ends the fault, not the primary's trouble: the primary
stays slow, off the request path, until someone fixes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from contracts import ActionKind, ScenarioId
from lab._database import Database
from lab._errors import NoTargetError
from lab._faults import ActiveFault, FaultRecord, ScenarioInstance, TickEffects, ramp_multiplier
from lab.scenarios._registry import Scenario, register_scenario

if TYPE_CHECKING:
    from lab._estate import Lab


def _database(lab: Lab, instance: ScenarioInstance) -> Database:
    name = str(instance.params["database"])
    database = lab.dependency(name)
    if not isinstance(database, Database):
        raise NoTargetError(f"{name!r} is a {type(database).__name__}, not a database")
    return database


@register_scenario
class DbReadLatency(Scenario):
    """The primary of database ``params["database"]`` reads ``magnitude`` x slower (and
    writes too when ``params["writes"]`` is 1), reaching it over ``params["ramp_s"]``."""

    id = ScenarioId.DB_READ_LATENCY
    title = "database read latency spike"
    heals = (ActionKind.SWITCH_DATABASE,)

    def draw(self, rng: np.random.Generator, lab: Lab) -> ScenarioInstance:
        databases = lab.dependencies(Database)
        if not databases:
            raise NoTargetError("the estate has no database to slow down")
        database = databases[int(rng.integers(len(databases)))]
        magnitude = float(rng.uniform(10.0, 40.0))
        ramp_s = float(round(rng.uniform(120.0, 420.0)))
        writes = float(rng.random() < 1.0 / 3.0)
        return ScenarioInstance(
            self.id,
            database.settings.service,
            magnitude=magnitude,
            params={"database": database.name, "ramp_s": ramp_s, "writes": writes},
        )

    def inject(self, lab: Lab, instance: ScenarioInstance) -> FaultRecord:
        database = _database(lab, instance)
        return lab.begin_fault(instance, target=instance.service, root_cause=database.name)

    def effect(self, lab: Lab, fault: ActiveFault, t0: float, h: float, fx: TickEffects) -> None:
        instance = fault.instance
        database = _database(lab, instance)
        elapsed = t0 + h / 2 - fault.started
        ramp_s = float(instance.params.get("ramp_s", 0.0))
        slower = ramp_multiplier(elapsed, instance.magnitude, ramp_s, float("inf"))
        settings = database.settings
        database.primary.read_latency_ms = settings.read_latency_ms * slower
        if float(instance.params.get("writes", 0.0)):
            database.primary.write_latency_ms = settings.write_latency_ms * slower

    def is_over(self, lab: Lab, fault: ActiveFault, t: float) -> bool:
        database = _database(lab, fault.instance)
        reads, writes = database.serving
        sick = database.primary
        if float(fault.instance.params.get("writes", 0.0)):  # to a writer that takes them
            return reads is not sick and writes is not sick and writes is not None and writes.writer
        return reads is not sick

    def clear(self, lab: Lab, fault: ActiveFault, t: float) -> None:
        database = _database(lab, fault.instance)
        database.primary.read_latency_ms = database.settings.read_latency_ms
        database.primary.write_latency_ms = database.settings.write_latency_ms
