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

import httpx

from lab.servers._errors import ServerStartError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
