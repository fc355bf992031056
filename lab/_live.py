"""The lab on the wall clock: a thread keeps its simulated time level with real time and its
exporters answer ``/metrics``, so a real Prometheus scrapes it like an estate.

This is how ``ooda run`` meets the lab: the loop reads the lab's series from Prometheus and
acts on a cluster, with nothing in between that knows it is a simulation. The lab advances
one scrape interval at a time, under a lock that ``/metrics`` also takes, so a scrape never
sees half a step; each sample carries the lab's time of that step, so Prometheus' rates are
the lab's own however its scrapes and the lab's steps fall.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from lab._errors import InvalidTimeError

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from lab._estate import Lab


class LiveLab:
    """Runs ``lab`` level with the wall clock and serves its ``/metrics``; a context manager.

    ``/healthz`` is the region's public endpoint as a synthetic probe sees it: 503 while the
    lab's region is down (``Lab.region_down``), 200 otherwise.

    ``lab``'s clock must be a ``SimClock`` at or before now (a history may be generated
    first): the thread catches it up and then follows real time.
    """

    def __init__(self, lab: Lab, addr: str = "127.0.0.1", port: int = 0) -> None:
        if lab.clock.now() > datetime.now(UTC) + timedelta(seconds=1):
            raise InvalidTimeError(f"the lab's clock {lab.clock.now()} is ahead of the wall clock")
        self.lab = lab
        self.lock = threading.Lock()
        self._addr, self._port = addr, port
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._server: WSGIServer | None = None
        self._interval = timedelta(seconds=lab.settings.scrape.interval_s)

    @property
    def port(self) -> int:
        """The port ``/metrics`` answers on."""
        if self._server is None:
            raise InvalidTimeError("the live lab is not started")
        return int(self._server.server_port)

    def start(self) -> LiveLab:
        """Catch up with the wall clock, then serve and follow it."""
        self._catch_up()
        self._server, _ = self.lab.source.serve(
            self._port,
            self._addr,
            self.lock,
            healthy=lambda: not self.lab.region_down,
            timestamped=True,
        )
        self._thread = threading.Thread(target=self._follow, name="live-lab", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop following and serving (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def _catch_up(self) -> None:
        while self.lab.clock.now() + self._interval <= datetime.now(UTC):
            with self.lock:
                self.lab.step(self._interval)

    def _follow(self) -> None:
        while not self._stop.is_set():
            self._catch_up()
            self._stop.wait(0.25)

    def __enter__(self) -> LiveLab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
