"""A server process the tests start and stop: its log, its readiness, its end.

Every server binds to 127.0.0.1 on a free port, runs in its own session (so a stop reaches
its children) and writes to a log file whose tail goes into every start error.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.registry import Collector

from lab.servers._errors import ServerStartError

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_collector(collector: Collector, port: int = 0) -> WSGIServer:
    """An exporter: ``collector``'s series on ``/metrics`` at 127.0.0.1:``port`` (0: any)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    server, _ = start_http_server(port, addr="127.0.0.1", registry=registry)
    return server


def http_ok(url: str) -> bool:
    """Whether ``url`` answers 200."""
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


class ManagedProcess:
    """One started server binary."""

    def __init__(self, name: str, args: Sequence[str], log: Path, cwd: Path) -> None:
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._handle = log.open("wb")
        self.popen = subprocess.Popen(
            list(args),
            stdout=self._handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=cwd,
        )

    def tail(self, lines: int = 20) -> str:
        """The last lines of its log."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, ready: Callable[[], bool], timeout: float) -> None:
        """Poll ``ready`` until true; raise ``ServerStartError`` (with the log's tail) when the
        process exits or ``timeout`` seconds pass first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise ServerStartError(
                    f"{self.name} exited with code {self.popen.returncode}:\n{self.tail()}"
                )
            with contextlib.suppress(Exception):
                if ready():
                    return
            time.sleep(0.1)
        self.stop()
        raise ServerStartError(f"{self.name} not ready after {timeout:.0f} s:\n{self.tail()}")

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM its session, SIGKILL after ``grace`` seconds; idempotent."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(grace)
        self._handle.close()

    @property
    def running(self) -> bool:
        """Whether it has not exited."""
        return self.popen.poll() is None


class Server:
    """A server binary started on 127.0.0.1:``port`` with its log under ``workdir``; a
    context manager. Subclasses write ``start`` and launch through :meth:`_launch`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.port = 0
        self._process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """Its base URL."""
        if not self.port:
            raise ServerStartError(f"{type(self).__name__} is not started")
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Server:
        """Start it and wait until it is ready."""
        raise NotImplementedError

    def _launch(
        self, name: str, args: Sequence[str], timeout: float, ready: str = "/-/ready"
    ) -> None:
        """Run ``args`` and wait until ``ready`` answers 200 (``/-/ready``: Prometheus' and
        Alertmanager's probe)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._process = ManagedProcess(name, args, self.workdir / f"{name}.log", self.workdir)
        self._process.wait_ready(lambda: http_ok(f"{self.url}{ready}"), timeout)

    def stop(self) -> None:
        """Stop it (idempotent); what it stored under ``workdir`` stays for a restart."""
        if self._process is not None:
            self._process.stop()
            self._process = None

    @property
    def running(self) -> bool:
        """Whether it is started and alive."""
        return self._process is not None and self._process.running

    def log_tail(self, lines: int = 20) -> str:
        """The end of its log."""
        return self._process.tail(lines) if self._process is not None else ""

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
