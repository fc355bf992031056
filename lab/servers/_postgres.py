"""PostgreSQL on this machine: the shared audit store of ooda's replicas, for tests.

Debian's ``postgresql`` package (``make postgres-bins``) provides the binaries; the server's
cluster is initialised in a fresh directory, trusts local connections, and listens on
127.0.0.1 only. PostgreSQL refuses to run as root, so under root it runs as the package's
``postgres`` user (``runuser``). :meth:`PostgresServer.database` hands each test a database
of its own, so one server serves a whole session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from lab.servers._errors import ServerMissingError, ServerStartError
from lab.servers._process import ManagedProcess, Server, free_port

POSTGRES_PACKAGE = "postgresql"
USER = "ooda"
"""The superuser the cluster is initialised with (trusted on 127.0.0.1)."""


def postgres_bin_dir() -> Path:
    """Where the newest installed PostgreSQL's ``initdb`` and ``postgres`` are."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise ServerMissingError(
        f"PostgreSQL is not installed (no initdb); `make postgres-bins` installs Debian's"
        f" {POSTGRES_PACKAGE!r}"
    )


class PostgresServer(Server):
    """A throwaway PostgreSQL cluster on 127.0.0.1; a context manager."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self._data: Path | None = None
        self._databases = 0

    @property
    def url(self) -> str:
        """The URL of its ``ooda`` database."""
        if not self.port:
            raise ServerStartError("PostgresServer is not started")
        return f"postgresql://{USER}@127.0.0.1:{self.port}/ooda"

    def start(self, timeout: float = 60.0) -> PostgresServer:
        """Initialise a cluster, start it, create the ``ooda`` database."""
        import psycopg

        bin_dir = postgres_bin_dir()
        as_root = os.geteuid() == 0
        prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
        # Its own directory under the system's temp dir: a root-only parent (pytest's) would
        # keep the postgres user out.
        self._data = Path(tempfile.mkdtemp(prefix="ooda-pg-"))
        if as_root:
            shutil.chown(self._data, "postgres", "postgres")
        cluster = self._data / "cluster"
        init = subprocess.run(
            [*prefix, str(bin_dir / "initdb"), "-D", str(cluster), "-U", USER, "--auth=trust",
             "--encoding=UTF8", "--no-sync", "--no-instructions"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if init.returncode != 0:
            raise ServerStartError(f"initdb failed: {(init.stdout + init.stderr).strip()}")
        self.port = self.port or free_port()
        args = [
            *prefix, str(bin_dir / "postgres"), "-D", str(cluster), "-p", str(self.port),
            "-k", str(self._data), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
            "-c", "full_page_writes=off", "-c", "synchronous_commit=off",
        ]  # fmt: skip
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._process = ManagedProcess("postgres", args, self.workdir / "postgres.log", self._data)
        admin = f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

        def ready() -> bool:
            with psycopg.connect(admin, connect_timeout=2):
                return True

        self._process.wait_ready(ready, timeout)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE ooda")
        return self

    def database(self) -> str:
        """A new, empty database; its URL."""
        import psycopg

        self._databases += 1
        name = f"ooda_{self._databases}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def stop(self) -> None:
        """A fast shutdown (SIGINT: clients are cut off), then the cluster's files go."""
        if self._process is not None and self._process.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.popen.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.popen.wait(10)
        super().stop()
        if self._data is not None:
            shutil.rmtree(self._data, ignore_errors=True)
            self._data = None
