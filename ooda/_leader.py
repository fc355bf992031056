"""Leader election on a ``coordination.k8s.io/v1`` Lease, so that of several ``ooda run``
replicas exactly one acts.

The algorithm is client-go's ``leaderelection`` with its defaults (15 s lease, 10 s renew
deadline, 2 s retry): a candidate takes the Lease when nobody holds it or when the record it
last saw has not changed for a whole lease duration (time measured on its own monotonic clock
from when it saw the record change, never by comparing clocks across machines); every write
carries the ``resourceVersion`` it read, so of two candidates writing at once one gets 409 and
stays a standby. The leader renews every retry period and counts itself the leader only while
its last successful renewal is younger than the renew deadline -- shorter than the lease
duration, so it has stopped acting before anyone else may take over. A clean stop releases the
Lease so that a standby takes over at its next retry.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ooda._settings import LeaderSettings

log = logging.getLogger("ooda.leader")


def default_identity() -> str:
    """``host_random``: unique per process, readable in ``kubectl get lease``."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class LeaderElector:
    """One candidate for one Lease; :meth:`start` runs it in a thread."""

    def __init__(
        self,
        coordination_v1: Any,
        namespace: str,
        settings: LeaderSettings,
        identity: str | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.api = coordination_v1
        self.namespace = namespace
        self.settings = settings
        self.identity = identity or default_identity()
        self._monotonic = monotonic
        self._now = now
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._renewed_at: float | None = None
        self.holder: str | None = None
        """Who held the Lease at the last attempt."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def is_leader(self) -> bool:
        """Whether this candidate may act now (renewed within the renew deadline)."""
        if self._renewed_at is None:
            return False
        return self._monotonic() - self._renewed_at < self.settings.renew_deadline.total_seconds()

    def try_acquire_or_renew(self) -> bool:
        """One attempt; True when this candidate holds the Lease afterwards."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        name, now = self.settings.lease, self._now()
        seconds = round(self.settings.lease_duration.total_seconds())
        try:
            lease = self.api.read_namespaced_lease(name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = client.V1Lease(
                metadata=client.V1ObjectMeta(name=name, namespace=self.namespace),
                spec=client.V1LeaseSpec(
                    holder_identity=self.identity,
                    lease_duration_seconds=seconds,
                    acquire_time=now,
                    renew_time=now,
                    lease_transitions=0,
                ),
            )
            try:
                self.api.create_namespaced_lease(self.namespace, body)
            except ApiException as exc2:
                if exc2.status == 409:
                    return False  # another candidate created it first
                raise
            return self._won()
        spec = lease.spec
        record = (spec.holder_identity, spec.renew_time, spec.lease_transitions)
        if record != self._observed:
            self._observed, self._observed_at = record, self._monotonic()
        self.holder = spec.holder_identity or None
        held_by_other = bool(spec.holder_identity) and spec.holder_identity != self.identity
        duration = spec.lease_duration_seconds or seconds
        if held_by_other and self._monotonic() < self._observed_at + duration:
            self._renewed_at = None
            return False
        if spec.holder_identity != self.identity:
            spec.acquire_time = now
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
        spec.holder_identity = self.identity
        spec.renew_time = now
        spec.lease_duration_seconds = seconds
        try:
            self.api.replace_namespaced_lease(name, self.namespace, lease)
        except ApiException as exc:
            if exc.status == 409:
                self._renewed_at = None
                return False  # someone wrote it since we read it
            raise
        return self._won()

    def _won(self) -> bool:
        if not self.is_leader():
            log.warning(
                "%s: acquired lease %s/%s", self.identity, self.namespace, self.settings.lease
            )
        self._renewed_at = self._monotonic()
        self.holder = self.identity
        return True

    def release(self) -> None:
        """Give the Lease up (a clean stop), so a standby takes it at its next retry."""
        from kubernetes.client.exceptions import ApiException

        if not self.is_leader():
            return
        self._renewed_at = None
        try:
            lease = self.api.read_namespaced_lease(self.settings.lease, self.namespace)
            if lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = ""
                lease.spec.lease_duration_seconds = 1
                self.api.replace_namespaced_lease(self.settings.lease, self.namespace, lease)
        except ApiException as exc:
            log.warning("could not release lease %s: %s", self.settings.lease, exc.reason)

    def _run(self) -> None:
        period = self.settings.retry_period.total_seconds()
        while not self._stop.is_set():
            try:
                self.try_acquire_or_renew()
            except Exception as exc:  # an unreachable API: leadership lapses by the deadline
                log.warning("lease %s: %s: %s", self.settings.lease, type(exc).__name__, exc)
            self._stop.wait(period)

    def start(self) -> LeaderElector:
        """Try and renew every retry period in a thread."""
        self._thread = threading.Thread(target=self._run, name="ooda-leader", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop trying, then release the Lease if held."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.retry_period.total_seconds() + 10)
            self._thread = None
        self.release()
